/* SPDX-License-Identifier: Apache-2.0 */
/* publish_json.c — one classification as the one-line JSON object of
 * docs/DESIGN.md "Messages" (publish_format, see publish.h for the rules), and
 * the same string and number writing for the "_stats" object
 * (publish_json_string, publish_json_printf).
 *
 * A tiny writer that behaves like snprintf: it counts every byte it would
 * write, stores only what fits, and always leaves the buffer NUL-terminated,
 * so the caller learns the size it needs from one call and nothing is
 * allocated here.
 */
#include "publish.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct jw {
    char  *buf;
    size_t len;     /* capacity, including the NUL */
    size_t pos;     /* bytes produced so far (may exceed len) */
};

static void jw_putc(struct jw *w, char c)
{
    if (w->pos + 1 < w->len)
        w->buf[w->pos] = c;
    w->pos++;
}

static void jw_puts(struct jw *w, const char *s)
{
    while (*s)
        jw_putc(w, *s++);
}

static void jw_vprintf(struct jw *w, const char *fmt, va_list ap)
{
    /* Write straight into the remaining space; vsnprintf's own truncation
     * keeps the NUL, and the count keeps us in step with jw_putc. */
    size_t room = w->pos < w->len ? w->len - w->pos : 0;
    int n = vsnprintf(room ? w->buf + w->pos : NULL, room, fmt, ap);
    if (n > 0)
        w->pos += (size_t)n;
}

static void jw_printf(struct jw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jw_printf(struct jw *w, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    jw_vprintf(w, fmt, ap);
    va_end(ap);
}

/* The NUL after what was stored (publish_json_*: the caller's buffer is
 * terminated after every call, as snprintf's would be). */
static void jw_end(const struct jw *w)
{
    if (w->len)
        w->buf[w->pos < w->len ? w->pos : w->len - 1] = '\0';
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0.  p is NUL-terminated, and NUL
 * is never a continuation byte, so reading ahead stops in time. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    unsigned lo = 0x80, hi = 0xBF;
    size_t n;

    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;          /* overlong */
        if (c == 0xED)
            hi = 0x9F;          /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;          /* overlong */
        if (c == 0xF4)
            hi = 0x8F;          /* above U+10FFFF */
    } else
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

static void jw_string(struct jw *w, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");

    jw_putc(w, '"');
    while (*p) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            jw_putc(w, '\\');
            jw_putc(w, (char)c);
            p++;
        } else if (c < 0x20) {
            switch (c) {
            case '\b': jw_puts(w, "\\b"); break;
            case '\f': jw_puts(w, "\\f"); break;
            case '\n': jw_puts(w, "\\n"); break;
            case '\r': jw_puts(w, "\\r"); break;
            case '\t': jw_puts(w, "\\t"); break;
            default:   jw_printf(w, "\\u%04x", c); break;
            }
            p++;
        } else if (c < 0x80) {
            jw_putc(w, (char)c);
            p++;
        } else {
            size_t n = utf8_len(p);
            if (n == 0) {
                /* Not UTF-8: a JSON parser would refuse the whole message. */
                jw_puts(w, "\\ufffd");
                p++;
            } else {
                while (n--)
                    jw_putc(w, (char)*p++);
            }
        }
    }
    jw_putc(w, '"');
}

/* float32 -> decimal: 9 significant digits always read back to the same
 * float.  A value that prints like an integer ("1", "-0") gets ".0", so the
 * JSON type of a float field never changes with its value (jansson and other
 * typed parsers tell 1 from 1.0). */
static void jw_float(struct jw *w, float x)
{
    char tmp[32];

    if (!isfinite(x)) {
        jw_puts(w, "null");
        return;
    }
    snprintf(tmp, sizeof tmp, "%.9g", (double)x);
    jw_puts(w, tmp);
    if (!strpbrk(tmp, ".e"))
        jw_puts(w, ".0");
}

/* A double to 17 significant digits (the detector's score: compared with a
 * reference to 1e-4), null when not finite. */
static void jw_double(struct jw *w, double x)
{
    char tmp[40];

    if (!isfinite(x)) {
        jw_puts(w, "null");
        return;
    }
    snprintf(tmp, sizeof tmp, "%.17g", x);
    jw_puts(w, tmp);
    if (!strpbrk(tmp, ".en"))
        jw_puts(w, ".0");
}

static void jw_floats(struct jw *w, const float *v, int n)
{
    jw_putc(w, '[');
    for (int i = 0; v && i < n; i++) {
        if (i)
            jw_putc(w, ',');
        jw_float(w, v[i]);
    }
    jw_putc(w, ']');
}

size_t publish_format(const struct result *r, char *buf, size_t len)
{
    struct jw w = { buf, len, 0 };

    jw_puts(&w, "{\"stream\":");
    jw_string(&w, r->stream);
    jw_printf(&w, ",\"seq\":%" PRIu64 ",\"sample\":%" PRIu64 ",\"t\":", r->seq, r->sample);
    if (isfinite(r->t))
        jw_printf(&w, "%.6f", r->t);
    else
        jw_puts(&w, "null");
    jw_puts(&w, ",\"label\":");
    if (r->label)
        jw_string(&w, r->label);
    else
        jw_puts(&w, "null");
    jw_puts(&w, ",\"state\":");
    if (r->state)
        jw_string(&w, r->state);
    else
        jw_puts(&w, "null");
    if (r->cls >= 0)
        jw_printf(&w, ",\"class\":%d,\"score\":", r->cls);
    else
        jw_puts(&w, ",\"class\":null,\"score\":");
    jw_float(&w, r->score);
    jw_puts(&w, ",\"probs\":");
    if (r->probs)
        jw_floats(&w, r->probs, r->n_classes);
    else
        jw_puts(&w, "null");
    jw_puts(&w, ",\"logits\":");
    if (r->logits)
        jw_floats(&w, r->logits, r->n_classes);
    else
        jw_puts(&w, "null");
    if (r->quality) {
        jw_puts(&w, ",\"quality\":");
        jw_string(&w, r->quality);
        jw_puts(&w, ",\"rms\":");
        jw_float(&w, (float)r->rms);
        jw_puts(&w, ",\"peak\":");
        jw_float(&w, (float)r->peak);
        jw_puts(&w, ",\"crest\":");
        jw_float(&w, (float)r->crest);
        jw_puts(&w, ",\"kurtosis\":");
        jw_float(&w, (float)r->kurtosis);
    }
    if (r->has_detector) {
        jw_puts(&w, ",\"anomaly\":");
        jw_double(&w, r->anomaly);
        jw_puts(&w, ",\"threshold\":");
        jw_double(&w, r->threshold);
    }
    jw_printf(&w, ",\"gap\":%s,\"latency_us\":%" PRId64 ",\"model\":",
              r->gap ? "true" : "false", r->latency_us > 0 ? r->latency_us : 0);
    jw_string(&w, r->model);
    jw_putc(&w, '}');
    jw_end(&w);
    return w.pos;
}

void publish_json_string(char *buf, size_t len, size_t *pos, const char *s)
{
    struct jw w = { buf, len, *pos };

    jw_string(&w, s);
    jw_end(&w);
    *pos = w.pos;
}

void publish_json_printf(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
    struct jw w = { buf, len, *pos };
    va_list ap;

    va_start(ap, fmt);
    jw_vprintf(&w, fmt, ap);
    va_end(ap);
    jw_end(&w);
    *pos = w.pos;
}
