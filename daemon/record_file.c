/* SPDX-License-Identifier: Apache-2.0 */
/* record_file.c — the writer thread's recordings: 32-bit float WAV files that
 * rotate by size and age, named after their first sample, each with a JSON
 * sidecar (written when it opens and again when it closes), and the queue
 * drained into them.  The design is record.c's note (docs/DESIGN.md
 * "Recording and kept windows"). */
#include "record_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "publish.h"

/* ---- the writer ----------------------------------------------------------- */

static void stop_recording(struct rec_tap *t, const char *what, const char *why)
{
    if (!t->stop_logged)
        log_err("stream %s: recording stopped: %s: %s (classification goes on)",
                t->st->name, what, why);
    t->stop_logged = true;
    atomic_store_explicit(&t->stopped, true, memory_order_relaxed);
}

static void sidecar(struct rec_tap *t, bool complete)
{
    /* the input's path and the stream's name escaped at worst 6 bytes a byte */
    char model[16], path[PATH_MAX + 8], start[40],
         b[REC_LOSS_JSON + 6 * (PATH_MAX + 16) + 6 * STREAM_NAME_MAX + 1024];
    size_t pos = 0;
    pthread_mutex_lock(&t->r->mu);
    memcpy(model, t->r->model, sizeof model);
    pthread_mutex_unlock(&t->r->mu);
    rec_iso_time(t->f_start, start, sizeof start);
    publish_json_printf(b, sizeof b, &pos, "{\"stream\":");
    publish_json_string(b, sizeof b, &pos, t->st->name);
    publish_json_printf(b, sizeof b, &pos, ",\"input\":");
    publish_json_string(b, sizeof b, &pos, t->input);
    publish_json_printf(b, sizeof b, &pos, ",\"input_format\":");
    publish_json_string(b, sizeof b, &pos, t->format);
    publish_json_printf(b, sizeof b, &pos,
                        ",\"rate\":%.17g,\"encoding\":\"float32\",\"channels\":1,"
                        "\"first_sample\":%" PRIu64 ",\"samples\":%" PRIu64
                        ",\"start\":\"%s\",\"start_unix\":%.6f,\"model\":",
                        t->st->rate, t->f_first, t->f_n, start, t->f_start);
    publish_json_string(b, sizeof b, &pos, model);
    publish_json_printf(b, sizeof b, &pos,
                        ",\"lost_writer\":%" PRIu64 ",\"lost_input\":%" PRIu64
                        ",\"losses\":[%.*s],\"losses_not_listed\":%u,\"complete\":%s}\n",
                        t->f_lost_writer, t->f_lost_input, (int)t->f_loss_len, t->f_loss,
                        t->f_loss_more, complete ? "true" : "false");
    snprintf(path, sizeof path, "%s.json", t->base);
    if (pos < sizeof b && rec_write_text(path, b, pos) == 0)
        rec_add(&t->bytes, pos);
}

void rec_close_file(struct rec_tap *t)
{
    if (!t->sf)
        return;
    char path[PATH_MAX + 8];
    int rc = sf_close(t->sf);
    t->sf = NULL;
    snprintf(path, sizeof path, "%s.wav", t->base);
    rec_add(&t->bytes, rec_file_size(path));
    if (rc)
        stop_recording(t, path, "cannot close the file");
    sidecar(t, rc == 0);
}

/* Create BASE.wav, never over an existing file: on a clash (a restart in
 * the same second, two names that map to the same safe name, clips of an
 * earlier run) BASE gets "-1", "-2", ...  The SNDFILE, or NULL with errno
 * (and *why libsndfile's word, if it refused). */
SNDFILE *rec_create_wav(char *base, size_t len, const SF_INFO *info0, const char **why)
{
    size_t n0 = strlen(base);
    *why = NULL;
    for (int k = 0; k < 1000; k++) {
        char path[PATH_MAX + 24];
        if (k && (n0 + 12 >= len || snprintf(base + n0, len - n0, "-%d", k) < 0)) {
            errno = ENAMETOOLONG;
            return NULL;
        }
        snprintf(path, sizeof path, "%s.wav", base);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
            if (errno == EEXIST)
                continue;
            return NULL;
        }
        SF_INFO info = *info0;
        SNDFILE *sf = sf_open_fd(fd, SFM_WRITE, &info, SF_TRUE);    /* closes fd on failure */
        if (!sf) {
            *why = sf_strerror(NULL);
            unlink(path);
            errno = EIO;
        }
        return sf;
    }
    errno = EEXIST;
    return NULL;
}

static bool open_file(struct rec_tap *t)
{
    char stamp[32], path[PATH_MAX + 8];
    t->f_first = t->wpos;
    t->f_start = stream_time(t->st, t->wpos);
    rec_utc_stamp(t->f_start, stamp, sizeof stamp);
    int n = snprintf(t->base, sizeof t->base, "%s/%s-%s-%" PRIu64, t->dir, t->name, stamp,
                     t->wpos);
    if (n < 0 || (size_t)n + 8 >= sizeof t->base) {
        stop_recording(t, t->dir, "file name too long");
        return false;
    }
    snprintf(path, sizeof path, "%s.wav", t->base);
    SF_INFO info = { .samplerate = (int)lround(t->st->rate), .channels = 1,
                     .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT };
    if (t->st->rate > 4.0e6 || fabs(t->st->rate - info.samplerate) > 1e-9) {
        stop_recording(t, path, "a WAV file holds only an integer rate");
        return false;
    }
    const char *why;
    t->sf = rec_create_wav(t->base, sizeof t->base, &info, &why);
    if (!t->sf) {
        stop_recording(t, path, why ? why : strerror(errno));
        return false;
    }
    /* no PEAK chunk: its header rewrite is of no use here */
    sf_command(t->sf, SFC_SET_ADD_PEAK_CHUNK, NULL, SF_FALSE);
    t->f_n = 0;
    t->f_loss_len = 0;
    t->f_loss_more = 0;
    t->f_lost_writer = t->f_lost_input = 0;
    rec_add(&t->files, 1);
    sidecar(t, false);
    return true;
}

static void note_loss(struct rec_tap *t, unsigned why, uint64_t n)
{
    if (why == WHY_WRITER)
        t->f_lost_writer += n;
    else
        t->f_lost_input += n;
    int k = snprintf(t->f_loss + t->f_loss_len, sizeof t->f_loss - t->f_loss_len,
                     "%s{\"at\":%" PRIu64 ",\"n\":%" PRIu64 ",\"why\":\"%s\"}",
                     t->f_loss_len ? "," : "", t->f_n, n, rec_why_names[why]);
    if (k > 0 && t->f_loss_len + (size_t)k < sizeof t->f_loss)
        t->f_loss_len += (size_t)k;
    else
        t->f_loss_more++;
}

void rec_writer_sleep(const recorder *r, bool final)
{
    if (!r->delay_ms || final)      /* the test's slow disk ends with the stop */
        return;
    struct timespec ts = { r->delay_ms / 1000, (long)(r->delay_ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Write n queued samples (stream positions wpos...) into files, rotating
 * as needed.  false once the recording stopped. */
static bool write_samples(struct rec_tap *t, uint32_t n, bool final)
{
    while (n > 0) {
        if (t->sf && (t->f_n >= t->max_samples || (double)t->f_n >= t->max_age * t->st->rate))
            rec_close_file(t);
        if (!t->sf && !open_file(t))
            return false;
        uint64_t room = t->max_samples - t->f_n;
        uint64_t age = (uint64_t)ceil(t->max_age * t->st->rate);
        if (age > t->f_n && age - t->f_n < room)
            room = age - t->f_n;
        struct ring_vec v;
        ring_read_vec(t->q, &v);
        uint32_t k = n < v.n[0] ? n : v.n[0];
        if (k > REC_CHUNK)
            k = REC_CHUNK;
        if (k > room)
            k = (uint32_t)room;
        sf_count_t w = sf_write_float(t->sf, v.p[0], k);
        rec_writer_sleep(t->r, final);
        if (w != (sf_count_t)k) {
            char path[PATH_MAX + 8];
            snprintf(path, sizeof path, "%s.wav", t->base);
            stop_recording(t, path, sf_strerror(t->sf));
            if (w > 0) {
                t->f_n += (uint64_t)w;
                rec_add(&t->recorded, (uint64_t)w);
            }
            ring_read_commit(t->q, k);
            t->wpos += k;
            rec_add(&t->unrecorded, k - (uint64_t)(w > 0 ? w : 0));
            rec_close_file(t);
            return false;
        }
        ring_read_commit(t->q, k);
        t->wpos += k;
        t->f_n += k;
        rec_add(&t->recorded, k);
        n -= k;
    }
    return true;
}

/* Drain what the queue holds now. */
void rec_service_record(struct rec_tap *t, bool final)
{
    uint32_t avail = ring_read_avail(t->q);       /* acquire: entries before these */
    for (;;) {
        uint32_t h = atomic_load_explicit(&t->lq_head, memory_order_acquire);
        uint32_t tl = atomic_load_explicit(&t->lq_tail, memory_order_relaxed);
        bool have = tl != h;
        uint64_t at = have ? atomic_load_explicit(&t->lq[tl % REC_LOSSQ].at,
                                                  memory_order_relaxed) : 0;
        if (have && at <= t->wpos) {
            uint64_t n = atomic_load_explicit(&t->lq[tl % REC_LOSSQ].n, memory_order_relaxed);
            unsigned why = atomic_load_explicit(&t->lq[tl % REC_LOSSQ].why, memory_order_relaxed);
            /* Release: the entry is read before the producer reuses it. */
            atomic_store_explicit(&t->lq_tail, tl + 1, memory_order_release);
            if (!atomic_load_explicit(&t->stopped, memory_order_relaxed)
                && (t->sf || open_file(t)))
                note_loss(t, why, n);
            if (why == WHY_WRITER)
                t->wpos += n;
            continue;
        }
        uint64_t lim = avail;
        if (have && at - t->wpos < lim)
            lim = at - t->wpos;
        if (lim == 0)
            break;
        if (atomic_load_explicit(&t->stopped, memory_order_relaxed)) {
            ring_read_commit(t->q, (uint32_t)lim);
            t->wpos += lim;
            rec_add(&t->unrecorded, lim);
        } else if (!write_samples(t, (uint32_t)lim, final)) {
            /* stopped part-way: count again, the rest is discarded above */
            avail = ring_read_avail(t->q);
            continue;
        }
        avail -= (uint32_t)lim;
    }
    if (final) {
        /* The capture thread is gone: what it still held as pending. */
        if (!atomic_load_explicit(&t->stopped, memory_order_relaxed) && t->sf) {
            if (t->pend_n)
                note_loss(t, WHY_WRITER, t->pend_n);
            if (t->pend_in_n)
                note_loss(t, WHY_INPUT, t->pend_in_n);
        }
        t->pend_n = t->pend_in_n = 0;
        rec_close_file(t);
    }
}

