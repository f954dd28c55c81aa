/* SPDX-License-Identifier: Apache-2.0 */
/* sink_json.c — the JSON of the messages other than results: "_events",
 * "_severity", "_stats" and "_state" (docs/DESIGN.md "Messages"), from the
 * structures of sink.h.  The zmq, stdout and results sinks share them.
 * Written with publish_json_string/printf (publish.h): the same escaping and
 * number rules as a result, and snprintf's contract (the length needed is
 * returned, what fits is stored, buf stays NUL-terminated).
 */
#include "sink.h"

#include "publish.h"

#include <inttypes.h>
#include <math.h>

#define J publish_json_printf
#define JS publish_json_string

static void j_num(char *b, size_t len, size_t *pos, const char *fmt, double v)
{
    if (isfinite(v))
        J(b, len, pos, fmt, v);
    else
        J(b, len, pos, "null");
}

static void j_str_or_null(char *b, size_t len, size_t *pos, const char *s)
{
    if (s)
        JS(b, len, pos, s);
    else
        J(b, len, pos, "null");
}

size_t sink_json_event(const struct sink_event *e, char *b, size_t len)
{
    size_t pos = 0;
    if (len)
        b[0] = 0;
    J(b, len, &pos, "{\"stream\":");
    JS(b, len, &pos, e->stream);
    J(b, len, &pos, ",\"from\":");
    j_str_or_null(b, len, &pos, e->from);
    J(b, len, &pos, ",\"to\":");
    JS(b, len, &pos, e->to);
    J(b, len, &pos, ",\"seq\":%" PRIu64 ",\"sample\":%" PRIu64 ",\"t\":", e->seq, e->sample);
    j_num(b, len, &pos, "%.6f", e->t);
    J(b, len, &pos, ",\"at_seq\":%" PRIu64 ",\"agree\":%u,\"windows\":%u,\"confidence\":%.4g,"
      "\"score\":", e->at_seq, e->agree, e->windows,
      e->windows ? (double)e->agree / e->windows : 0.0);
    j_num(b, len, &pos, "%.6g", e->score);
    J(b, len, &pos, ",\"model\":");
    JS(b, len, &pos, e->model);
    J(b, len, &pos, "}");
    return pos;
}

size_t sink_json_severity(const struct sink_severity *e, char *b, size_t len)
{
    static const char *const name[SINK_NDEFECT] = { "ftf", "bpfo", "bpfi", "bsf" };
    size_t pos = 0;
    if (len)
        b[0] = 0;
    J(b, len, &pos, "{\"stream\":");
    JS(b, len, &pos, e->stream);
    J(b, len, &pos, ",\"t\":%.6f,\"seconds\":%.9g,\"sample\":%" PRIu64 ",\"velocity_mm_s\":",
      e->t, e->seconds, e->sample);
    j_num(b, len, &pos, "%.6g", e->velocity_mm_s);
    J(b, len, &pos, ",\"zone\":");
    if (e->zone)
        J(b, len, &pos, "\"%s\"", e->zone);
    else
        J(b, len, &pos, "null");
    J(b, len, &pos, ",\"band_hz\":[%g,%g],\"bounds_mm_s\":[%g,%g,%g]", e->band_hz[0],
      e->band_hz[1], e->bounds_mm_s[0], e->bounds_mm_s[1], e->bounds_mm_s[2]);
    if (e->has_defects) {
        J(b, len, &pos, ",\"defects\":{");
        for (int d = 0; d < SINK_NDEFECT; d++) {
            J(b, len, &pos, "%s\"%s\":{\"hz\":%.6g,\"db\":", d ? "," : "", name[d],
              e->defect_hz[d]);
            J(b, len, &pos, isfinite(e->defect_db[d]) ? "%.4g}" : "null}", e->defect_db[d]);
        }
        J(b, len, &pos, "}");
    }
    J(b, len, &pos, "}");
    return pos;
}

size_t sink_json_stats(const struct sink_stats *st, char *b, size_t len)
{
    size_t pos = 0;
    if (len)
        b[0] = 0;
    J(b, len, &pos, "{\"t\":%.6f,\"uptime\":%.3f,\"interval\":%g,%s\"streams\":[", st->t,
      st->uptime, st->interval, st->final ? "\"final\":true," : "");
    for (unsigned i = 0; i < st->n_streams; i++) {
        const struct sink_stream_stats *s = &st->streams[i];
        J(b, len, &pos, "%s{\"stream\":", i ? "," : "");
        JS(b, len, &pos, s->stream);
        J(b, len, &pos, ",\"windows\":%" PRIu64 ",\"gaps\":%" PRIu64 ",\"samples\":%" PRIu64
          ",\"dropped\":%" PRIu64 ",\"xruns\":%" PRIu64 ",\"span\":%" PRIu64
          ",\"skipped\":%" PRIu64 ",\"tail\":%" PRIu64 ",\"backlog\":%" PRIu64, s->windows,
          s->gaps, s->samples, s->dropped, s->xruns, s->span, s->skipped, s->tail, s->backlog);
        if (s->resampling)
            J(b, len, &pos, ",\"resampled\":%" PRIu64, s->resampled);
        J(b, len, &pos, ",\"quality\":{\"ok\":%" PRIu64 ",\"no_signal\":%" PRIu64
          ",\"clipped\":%" PRIu64 ",\"nonfinite\":%" PRIu64 "},\"unknown\":%" PRIu64
          ",\"anomalous\":%" PRIu64, s->quality[0], s->quality[1], s->quality[2],
          s->quality[3], s->unknown, s->anomalous);
        J(b, len, &pos, ",\"state\":");
        j_str_or_null(b, len, &pos, s->state);
        J(b, len, &pos, ",\"events\":%" PRIu64, s->events);
        if (s->has_severity) {
            J(b, len, &pos, ",\"severity\":{\"blocks\":%" PRIu64 ",\"dropped\":%" PRIu64
              ",\"velocity_mm_s\":", s->sev_blocks, s->sev_dropped);
            j_num(b, len, &pos, "%.6g", s->sev_velocity);
            J(b, len, &pos, s->sev_zone ? ",\"zone\":\"%s\"}" : ",\"zone\":null}",
              s->sev_zone);
        }
        if (s->has_record)
            J(b, len, &pos, ",\"record\":{\"files\":%" PRIu64 ",\"recorded\":%" PRIu64
              ",\"lost\":%" PRIu64 ",\"unrecorded\":%" PRIu64 ",\"bytes\":%" PRIu64
              ",\"stopped\":%s}", s->rec_files, s->rec_recorded, s->rec_lost,
              s->rec_unrecorded, s->rec_bytes, s->rec_stopped ? "true" : "false");
        if (s->has_keep)
            J(b, len, &pos, ",\"keep\":{\"kept\":%" PRIu64 ",\"rate_limited\":%" PRIu64
              ",\"capped\":%" PRIu64 ",\"full\":%" PRIu64 ",\"failed\":%" PRIu64
              ",\"bytes\":%" PRIu64 "}", s->keep_kept, s->keep_rate_limited, s->keep_capped,
              s->keep_full, s->keep_failed, s->keep_bytes);
        J(b, len, &pos, ",\"eof\":%s,\"down\":%s,\"reopens\":%" PRIu64 "}",
          s->eof ? "true" : "false", s->down ? "true" : "false", s->reopens);
    }
    J(b, len, &pos, "],");
    if (st->n_sinks) {
        J(b, len, &pos, "\"sinks\":[");
        for (unsigned i = 0; i < st->n_sinks; i++) {
            const struct sink_account *a = &st->sinks[i];
            J(b, len, &pos, "%s{\"sink\":\"%s\",\"queued\":%" PRIu64 ",\"dropped\":%" PRIu64
              ",\"lost\":%" PRIu64 "}", i ? "," : "", a->name, a->queued, a->dropped, a->lost);
        }
        J(b, len, &pos, "],");
    }
    const struct stats_hist *h = st->latency_interval;
    J(b, len, &pos, "\"queue\":{\"depth\":%" PRIu64 ",\"slots\":%u,\"workers\":%u},"
      "\"latency_us\":{\"n\":%" PRIu64 ",\"p50\":%" PRIu64 ",\"p99\":%" PRIu64
      ",\"max\":%" PRIu64 "}}", st->queue_depth, st->queue_slots, st->workers, h->n,
      stats_hist_pct(h, 0.50), stats_hist_pct(h, 0.99), h->max);
    return pos;
}

size_t sink_json_state(const struct sink_stats *st, char *b, size_t len)
{
    size_t pos = 0;
    if (len)
        b[0] = 0;
    J(b, len, &pos, "{\"t\":%.6f,\"streams\":[", st->t);
    for (unsigned i = 0; i < st->n_streams; i++) {
        const struct sink_stream_stats *s = &st->streams[i];
        J(b, len, &pos, "%s{\"stream\":", i ? "," : "");
        JS(b, len, &pos, s->stream);
        J(b, len, &pos, ",\"state\":");
        if (s->state) {
            JS(b, len, &pos, s->state);
            J(b, len, &pos, ",\"seq\":%" PRIu64 ",\"sample\":%" PRIu64 ",\"t\":", s->state_seq,
              s->state_sample);
            j_num(b, len, &pos, "%.6f", s->state_t);
        } else {
            J(b, len, &pos, "null,\"seq\":null,\"sample\":null,\"t\":null");
        }
        J(b, len, &pos, ",\"events\":%" PRIu64 "}", s->events);
    }
    J(b, len, &pos, "]}");
    return pos;
}
