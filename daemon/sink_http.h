/* SPDX-License-Identifier: Apache-2.0 */
/* sink_http.h — the HTTP sink's few names beyond its sink_ops (sink.h):
 * the port it really listens on (tests bind port 0), and the page it serves
 * (http_page.c).
 */
#ifndef TRIDENT_SINK_HTTP_H
#define TRIDENT_SINK_HTTP_H

#include <stddef.h>

/* The TCP port the sink whose state is S listens on (useful with port 0). */
unsigned sink_http_port(void *s);

/* The page served at "/": one HTML document, its CSS and script inline. */
extern const char   sink_http_page[];
extern const size_t sink_http_page_len;

#endif
