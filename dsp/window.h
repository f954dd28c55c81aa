/* SPDX-License-Identifier: Apache-2.0 */
/* window.h — cutting a sample stream into fixed windows every `hop` samples.
 *
 *   hop < size: windows overlap            hop > size: samples skipped
 *   |<---- size ---->|                     |<- size ->|         |<- size ->|
 *        |<---- size ---->|                |<------ hop ------->|
 *   |hop>|
 *
 * Window k starts at sample k * hop.  A tail shorter than `size` is never
 * emitted.  Pure code: the pipeline feeds it what it pops from a ring.
 */
#ifndef TRIDENT_WINDOW_H
#define TRIDENT_WINDOW_H

#include <stddef.h>
#include <stdint.h>

typedef struct windower windower;

windower *win_create(unsigned size, unsigned hop);   /* NULL on ENOMEM, or EINVAL if size or hop is 0 */
void      win_destroy(windower *w);
void      win_reset(windower *w);                    /* back to sample 0, nothing buffered */
/* Take up to n samples; returns how many were consumed.  It stops consuming
 * as soon as a window is complete, so call win_next() until it returns 0,
 * then push the rest. */
size_t    win_push(windower *w, const float *x, size_t n);
/* Is a window complete (would win_next() return 1)?  Lets the caller find
 * room for it only when there is one. */
int       win_ready(const windower *w);
/* If a window is complete, copy it to out[size], set *seq and *start (index of
 * its first sample), advance by hop and return 1; else return 0. */
int       win_next(windower *w, float *out, uint64_t *seq, uint64_t *start);

#endif
