/* SPDX-License-Identifier: Apache-2.0 */
/* keep.c — kept windows: the publisher offers a window worth a label
 * (keep_offer: unsure, unknown, anomalous or a change of state; rate limit
 * and size cap), the writer thread writes its clip and sidecar
 * (rec_service_keep).  The design is record.c's note (docs/DESIGN.md
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

/* ---- publisher thread ----------------------------------------------------- */

void keep_offer(struct rec_tap *t, const struct result *r, const float *x,
                const net_model *m, bool event, const _Atomic bool *may_wait)
{
    const char *reason = NULL;
    if (event && t->k_events)
        reason = "event";
    else if (r->label && !strcmp(r->label, "unknown") && t->k_unknown)
        reason = "unknown";
    else if (r->label && !strcmp(r->label, "anomaly") && t->k_anomaly)
        reason = "anomaly";
    else if (r->probs && t->unsure_below > 0 && r->score < t->unsure_below)
        reason = "unsure";
    if (!reason)
        return;
    int64_t now = rec_mono_ns();
    if (now - t->k_minute >= 60000000000LL) {
        t->k_minute = now;
        t->k_in_minute = 0;
    }
    if (t->k_in_minute >= t->k_per_minute) {
        rec_add(&t->rate_limited, 1);
        return;
    }
    uint64_t refunded = rec_get(&t->k_refund);
    if (t->k_reserved - refunded + KEEP_CLIP_BYTES > t->k_max_bytes) {
        rec_add(&t->capped, 1);
        return;
    }
    uint32_t h = atomic_load_explicit(&t->k_head, memory_order_relaxed);
    uint32_t tl = atomic_load_explicit(&t->k_tail, memory_order_acquire);
    /* a pure replay: the publisher waits for the writer, for a while */
    for (int64_t until = rec_mono_ns() + KEEP_WAIT_MS * 1000000LL;
         t->wait && h - tl >= KEEP_SLOTS && atomic_load_explicit(may_wait, memory_order_relaxed)
         && rec_mono_ns() < until;) {
        struct timespec ts = { 0, 200000 };
        rec_wake_writer(t->r);
        nanosleep(&ts, NULL);
        tl = atomic_load_explicit(&t->k_tail, memory_order_acquire);
    }
    if (h - tl >= KEEP_SLOTS) {
        rec_add(&t->full, 1);
        return;
    }
    t->k_in_minute++;
    t->k_reserved += KEEP_CLIP_BYTES;
    struct keep_slot *k = &t->slots[h % KEEP_SLOTS];
    memcpy(k->x, x, sizeof k->x);
    k->seq = r->seq;
    k->sample = r->sample;
    k->t = r->t;
    k->rate = net_sample_rate(m) > 0 ? net_sample_rate(m) : t->st->rate;
    k->score = r->score;
    k->anomaly = r->has_detector ? r->anomaly : NAN;
    k->threshold = r->has_detector ? r->threshold : NAN;
    snprintf(k->label, sizeof k->label, "%s", r->label ? r->label : "");
    snprintf(k->state, sizeof k->state, "%s", r->state ? r->state : "");
    snprintf(k->quality, sizeof k->quality, "%s", r->quality ? r->quality : "");
    snprintf(k->reason, sizeof k->reason, "%s", reason);
    snprintf(k->model, sizeof k->model, "%s", r->model ? r->model : "");
    size_t pos = 0;
    k->probs[0] = 0;
    if (r->probs) {
        publish_json_printf(k->probs, sizeof k->probs, &pos, "{");
        for (int i = 0; i < r->n_classes; i++) {
            if (i)
                publish_json_printf(k->probs, sizeof k->probs, &pos, ",");
            publish_json_string(k->probs, sizeof k->probs, &pos, net_class_name(m, i));
            publish_json_printf(k->probs, sizeof k->probs, &pos, ":%.9g", (double)r->probs[i]);
        }
        publish_json_printf(k->probs, sizeof k->probs, &pos, "}");
        if (pos >= sizeof k->probs)
            snprintf(k->probs, sizeof k->probs, "null");    /* cut short: none */
    } else
        snprintf(k->probs, sizeof k->probs, "null");
    /* Release: the slot is written before the writer can see it. */
    atomic_store_explicit(&t->k_head, h + 1, memory_order_release);
}

void rec_service_keep(struct rec_tap *t)
{
    uint32_t h = atomic_load_explicit(&t->k_head, memory_order_acquire);
    uint32_t tl = atomic_load_explicit(&t->k_tail, memory_order_relaxed);
    for (; tl != h; tl++) {
        const struct keep_slot *k = &t->slots[tl % KEEP_SLOTS];
        char lab[96], base[PATH_MAX], path[PATH_MAX + 24], iso[40],
             b[2048 + sizeof k->probs + 6 * (STREAM_NAME_MAX + sizeof k->label + sizeof k->state)];
        rec_safe_name(lab, sizeof lab, k->label[0] ? k->label : k->quality);
        int n = snprintf(base, sizeof base, "%s/%s-%" PRIu64 "-%s", t->dir, t->name, k->seq, lab);
        bool ok = n > 0 && (size_t)n + 8 < sizeof base;
        if (ok) {
            SF_INFO info = { .samplerate = (int)lround(k->rate), .channels = 1,
                             .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT };
            const char *why;
            SNDFILE *sf = rec_create_wav(base, sizeof base, &info, &why);   /* base may grow "-N" */
            snprintf(path, sizeof path, "%s.wav", base);
            ok = sf != NULL;
            if (sf) {
                sf_command(sf, SFC_SET_ADD_PEAK_CHUNK, NULL, SF_FALSE);
                ok = sf_write_float(sf, k->x, NET_WIN) == NET_WIN;
                ok &= sf_close(sf) == 0;
                rec_writer_sleep(t->r, false);
            }
            if (ok) {
                size_t pos = 0;
                rec_iso_time(k->t, iso, sizeof iso);
                publish_json_printf(b, sizeof b, &pos, "{\"stream\":");
                publish_json_string(b, sizeof b, &pos, t->st->name);
                publish_json_printf(b, sizeof b, &pos,
                                    ",\"seq\":%" PRIu64 ",\"sample\":%" PRIu64
                                    ",\"t\":%.6f,\"time\":\"%s\",\"rate\":%.17g,\"kept\":\"%s\",\"label\":",
                                    k->seq, k->sample, k->t, iso, k->rate, k->reason);
                if (k->label[0])
                    publish_json_string(b, sizeof b, &pos, k->label);
                else
                    publish_json_printf(b, sizeof b, &pos, "null");
                publish_json_printf(b, sizeof b, &pos, ",\"state\":");
                if (k->state[0])
                    publish_json_string(b, sizeof b, &pos, k->state);
                else
                    publish_json_printf(b, sizeof b, &pos, "null");
                publish_json_printf(b, sizeof b, &pos, ",\"quality\":\"%s\",\"score\":", k->quality);
                publish_json_printf(b, sizeof b, &pos, isfinite(k->score) ? "%.9g" : "null",
                                    k->score);
                publish_json_printf(b, sizeof b, &pos, ",\"anomaly\":");
                publish_json_printf(b, sizeof b, &pos, isfinite(k->anomaly) ? "%.6g" : "null",
                                    k->anomaly);
                publish_json_printf(b, sizeof b, &pos, ",\"threshold\":");
                publish_json_printf(b, sizeof b, &pos, isfinite(k->threshold) ? "%.6g" : "null",
                                    k->threshold);
                publish_json_printf(b, sizeof b, &pos, ",\"probs\":%s,\"model\":\"%s\"}\n",
                                    k->probs, k->model);
                char jp[PATH_MAX + 8];
                snprintf(jp, sizeof jp, "%s.json", base);
                ok = pos < sizeof b && rec_write_text(jp, b, pos) == 0;
                if (ok)
                    rec_add(&t->bytes, rec_file_size(path) + pos);
            }
            if (!ok && sf)
                unlink(path);       /* ours (create_wav made it), half written */
        }
        if (ok)
            rec_add(&t->kept, 1);
        else {
            rec_add(&t->k_refund, KEEP_CLIP_BYTES);
            if (!rec_get(&t->failed))
                log_err("stream %s: cannot keep a window in %s: %s (counted as failed)",
                        t->st->name, t->dir, errno ? strerror(errno) : "write error");
            rec_add(&t->failed, 1);
        }
        /* Release: the slot is read before the publisher reuses it. */
        atomic_store_explicit(&t->k_tail, tl + 1, memory_order_release);
    }
}

