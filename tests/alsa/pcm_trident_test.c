/* SPDX-License-Identifier: Apache-2.0 */
/* pcm_trident_test.c — an ALSA capture device for tests: paced, able to overrun and to vanish.
 *
 * alsa-lib's `file` plugin gives known data but has no clock; the machines
 * that run the tests have no sound card.  This ioplug plugin behaves like
 * capture hardware as far as an application can tell:
 *
 *   - the hardware pointer follows CLOCK_MONOTONIC at the negotiated rate
 *     from the moment the stream starts; frames the application leaves
 *     unread until a whole buffer is pending are lost and the stream goes
 *     to XRUN, so the next call returns -EPIPE;
 *   - its poll descriptor is a timerfd firing once per period;
 *   - frame k of the device's timeline (k counted in frames of CLOCK_MONOTONIC
 *     since the first start, across restarts) carries frame k mod N of a raw
 *     interleaved file, so a test can tell which frames were lost;
 *   - it accepts only what its options allow, to test refused parameters.
 *
 *   pcm_type.trident_test { lib "/abs/libasound_module_pcm_trident_test.so" }
 *   pcm.dev {
 *       type trident_test
 *       file "/abs/in.raw"       # raw interleaved samples, looped; none: silence
 *       rate 48000               # or: rates [ 8000 48000 ] / rates "8000,48000"; default any
 *       formats "S16_LE,S32_LE"  # or a list; default S16_LE S24_LE S24_3LE S32_LE FLOAT_LE
 *       channels 2               # default 1..32
 *       paced yes                # no: always a full buffer ready, never overruns
 *       xrun_at 24000            # or "500ms": once that much was read, the pointer
 *                                # freezes for a buffer + 50 ms, then the stream overruns
 *       suspend_at "300ms"       # paced, or frames: once that much was read, the device
 *                                # "sleeps" (pointer frozen) for suspend_ms (default 100),
 *                                # then goes to SUSPENDED as a driver does on system
 *                                # suspend: I/O returns -ESTRPIPE, poll says POLLERR
 *       resume_fails yes         # the resume callback refuses (the state stays SUSPENDED;
 *                                # alsa-lib 1.2.8's ioplug still returns 0 from
 *                                # snd_pcm_resume()), so only a prepare recovers; without
 *                                # it, resume goes on RUNNING, the frames of the sleep lost
 *       unplug_file "/abs/gone"  # while it exists: open fails and I/O returns -ENODEV
 *       loss_file "/abs/lost"    # paced: at every restart or resume, the frames of the
 *                                # device timeline never handed to the application since
 *                                # open are written there (exactly what was lost)
 *       period_min_file "/abs/p" # if it exists when the device is opened, it holds N:
 *                                # periods of at least N bytes (a device that grants
 *                                # other sizes when it is reopened)
 *   }
 *
 * Built with -DPIC (alsa-lib's plugin headers need it) as
 * libasound_module_pcm_trident_test.so.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <alsa/asoundlib.h>
#include <alsa/pcm_external.h>

#define MAX_LIST 32
#define STALL_EXTRA_NS 50000000LL   /* a forced overrun stalls a buffer + 50 ms */

struct tt {
    snd_pcm_ioplug_t io;
    /* options */
    unsigned char *data;            /* the raw file, whole */
    size_t         data_len;
    char          *unplug_file;
    char          *loss_file;
    int            paced;
    long long      xrun_frames;     /* >0: force one overrun after that many frames read */
    long long      xrun_ms;         /* >0: same, in ms (converted at hw_params) */
    long long      suspend_frames;  /* >0: suspend once after that many frames read */
    long long      suspend_at_ms;   /* >0: same, in ms (converted at hw_params) */
    long long      suspend_len_ms;  /* how long the device sleeps before SUSPENDED */
    int            resume_fails;
    /* state */
    int            fd;              /* timerfd (paced) or eventfd (unpaced, always readable) */
    size_t         frame_bytes;
    int64_t        epoch_ns;        /* first start: frame 0 of the device timeline */
    int            started_once;
    int64_t        start_frame;     /* device frame at which the current run started */
    int64_t        hw;              /* frames captured in the current run */
    int64_t        read_total;      /* frames handed to the application since open */
    int64_t        next_frame;      /* device frame after the last one handed over */
    int64_t        lost;            /* device frames skipped at restarts since open */
    int            xrun_done;
    int64_t        stall_until_ns;  /* while now < this, the pointer does not move */
    int            suspend_done;
    int            sleeping;        /* pointer frozen since the suspend began */
    int64_t        sleep_until_ns;  /* then the state goes to SUSPENDED */
    /* After a resume, positions >= shift_from of this run are shift frames
     * later on the device timeline: the frames of the sleep were never captured. */
    int64_t        shift;
    int64_t        shift_from;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int unplugged(const struct tt *t)
{
    return t->unplug_file && access(t->unplug_file, F_OK) == 0;
}

static int64_t device_frame(const struct tt *t, int64_t ns)
{
    return (int64_t)((__int128)(ns - t->epoch_ns) * t->io.rate / 1000000000);
}

static void write_loss(const struct tt *t)
{
    FILE *f = t->loss_file ? fopen(t->loss_file, "w") : NULL;
    if (f) {
        fprintf(f, "%lld\n", (long long)t->lost);
        fclose(f);
    }
}

/* The device frame carried by position p of the current run. */
static int64_t run_frame(const struct tt *t, int64_t p)
{
    return t->start_frame + p + (p >= t->shift_from ? t->shift : 0);
}

static int tt_start(snd_pcm_ioplug_t *io)
{
    struct tt *t = io->private_data;
    if (unplugged(t))
        return -ENODEV;
    int64_t now = now_ns();
    t->sleeping = 0;
    t->shift = 0;
    t->shift_from = INT64_MAX;
    if (t->paced) {
        if (!t->started_once)
            t->epoch_ns = now;
        t->start_frame = device_frame(t, now);
        if (t->started_once && t->start_frame > t->next_frame) {
            t->lost += t->start_frame - t->next_frame;
            write_loss(t);
        }
        /* Fire a little after each period boundary so a whole period is ready. */
        int64_t period_ns = (int64_t)io->period_size * 1000000000 / io->rate;
        struct itimerspec its = {
            .it_interval = { period_ns / 1000000000, period_ns % 1000000000 },
            .it_value = { (period_ns + 20000) / 1000000000, (period_ns + 20000) % 1000000000 },
        };
        if (timerfd_settime(t->fd, 0, &its, NULL) < 0)
            return -errno;
    } else if (t->started_once) {
        t->start_frame += t->hw;   /* unpaced: the timeline continues where it stopped */
    }
    t->started_once = 1;
    t->hw = 0;
    return 0;
}

static int tt_stop(snd_pcm_ioplug_t *io)
{
    struct tt *t = io->private_data;
    if (t->paced) {
        struct itimerspec its = { { 0, 0 }, { 0, 0 } };
        timerfd_settime(t->fd, 0, &its, NULL);
    }
    return 0;
}

static snd_pcm_sframes_t tt_pointer(snd_pcm_ioplug_t *io)
{
    struct tt *t = io->private_data;
    int64_t appl = (int64_t)io->appl_ptr;
    if (unplugged(t))   /* nothing moves; I/O and poll report -ENODEV */
        return (snd_pcm_sframes_t)(t->hw % (int64_t)io->buffer_size);
    if (t->paced) {
        int64_t now = now_ns();
        if (!t->suspend_done && t->suspend_frames > 0 && t->read_total >= t->suspend_frames) {
            t->suspend_done = 1;
            t->sleeping = 1;
            t->sleep_until_ns = now + t->suspend_len_ms * 1000000;
        }
        if (t->sleeping) {
            /* Called under alsa-lib's lock, which is what snd_pcm_ioplug_set_state() needs. */
            if (now >= t->sleep_until_ns && io->state == SND_PCM_STATE_RUNNING)
                snd_pcm_ioplug_set_state(io, SND_PCM_STATE_SUSPENDED);
            return (snd_pcm_sframes_t)(t->hw % (int64_t)io->buffer_size);
        }
        if (!t->xrun_done && t->xrun_frames > 0 && t->read_total >= t->xrun_frames) {
            t->xrun_done = 1;
            t->stall_until_ns = now + (int64_t)io->buffer_size * 1000000000 / io->rate
                                + STALL_EXTRA_NS;
        }
        if (now >= t->stall_until_ns)
            t->hw = device_frame(t, now) - t->start_frame - t->shift;
        /* As the kernel does: a full buffer pending is an overrun. */
        if (t->hw - appl >= (int64_t)io->buffer_size)
            return -EPIPE;
    } else {
        t->hw = appl + (int64_t)io->buffer_size - 1;
    }
    return (snd_pcm_sframes_t)(t->hw % (int64_t)io->buffer_size);
}

static snd_pcm_sframes_t tt_transfer(snd_pcm_ioplug_t *io, const snd_pcm_channel_area_t *areas,
                                     snd_pcm_uframes_t offset, snd_pcm_uframes_t size)
{
    struct tt *t = io->private_data;
    if (unplugged(t))
        return -ENODEV;
    unsigned char *dst = (unsigned char *)areas[0].addr + areas[0].first / 8
                         + offset * t->frame_bytes;
    size_t nframes = t->data_len / t->frame_bytes;
    if (nframes == 0) {
        memset(dst, 0, size * t->frame_bytes);
    } else {
        int64_t p = (int64_t)io->appl_ptr, end = p + (int64_t)size;
        while (p < end) {
            /* Frame by run: a resume may shift the timeline inside this transfer. */
            int64_t seg_end = p < t->shift_from && end > t->shift_from ? t->shift_from : end;
            size_t pos = (size_t)(run_frame(t, p) % (int64_t)nframes);
            size_t left = (size_t)(seg_end - p);
            p = seg_end;
            while (left) {
                size_t n = nframes - pos < left ? nframes - pos : left;
                memcpy(dst, t->data + pos * t->frame_bytes, n * t->frame_bytes);
                dst += n * t->frame_bytes;
                left -= n;
                pos = 0;
            }
        }
    }
    t->read_total += (int64_t)size;
    t->next_frame = run_frame(t, (int64_t)io->appl_ptr + (int64_t)size);
    return (snd_pcm_sframes_t)size;
}

static int tt_prepare(snd_pcm_ioplug_t *io)
{
    struct tt *t = io->private_data;
    return unplugged(t) ? -ENODEV : 0;
}

static int tt_hw_params(snd_pcm_ioplug_t *io, snd_pcm_hw_params_t *params)
{
    (void)params;
    struct tt *t = io->private_data;
    t->frame_bytes = (size_t)snd_pcm_format_physical_width(io->format) / 8 * io->channels;
    if (t->xrun_ms > 0)
        t->xrun_frames = t->xrun_ms * io->rate / 1000;
    if (t->suspend_at_ms > 0)
        t->suspend_frames = t->suspend_at_ms * io->rate / 1000;
    return 0;
}

/* alsa-lib 1.2.8 ignores what this returns (snd_pcm_resume() says 0 either
 * way): the state is what tells the application whether it worked. */
static int tt_resume(snd_pcm_ioplug_t *io)
{
    struct tt *t = io->private_data;
    if (io->state != SND_PCM_STATE_SUSPENDED)
        return 0;
    if (t->resume_fails || unplugged(t))
        return -ENOSYS;
    /* The hardware was stopped while asleep: what it would have captured is lost. */
    int64_t skipped = device_frame(t, now_ns()) - t->start_frame - t->shift - t->hw;
    if (skipped > 0) {
        t->shift_from = t->hw;
        t->shift += skipped;
        t->lost += skipped;
        write_loss(t);
    }
    t->sleeping = 0;
    return snd_pcm_ioplug_set_state(io, SND_PCM_STATE_RUNNING);
}

static int tt_poll_revents(snd_pcm_ioplug_t *io, struct pollfd *pfds, unsigned int nfds,
                           unsigned short *revents)
{
    struct tt *t = io->private_data;
    if (unplugged(t)) {
        *revents = POLLERR;
        return -ENODEV;
    }
    *revents = 0;
    if (io->state == SND_PCM_STATE_SUSPENDED) {
        /* As the kernel says for a suspended stream; the timer keeps firing. */
        uint64_t expirations;
        if (t->paced && read(t->fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
            return -errno;
        *revents = POLLIN | POLLERR;
        return 0;
    }
    if (nfds >= 1 && (pfds[0].revents & POLLIN)) {
        if (t->paced) {
            uint64_t expirations;
            if (read(t->fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
                return -errno;
        }
        *revents = POLLIN;
    }
    return 0;
}

static int tt_close(snd_pcm_ioplug_t *io)
{
    struct tt *t = io->private_data;
    if (t->fd >= 0)
        close(t->fd);
    free(t->data);
    free(t->unplug_file);
    free(t->loss_file);
    free(t);
    return 0;
}

static const snd_pcm_ioplug_callback_t tt_callback = {
    .start = tt_start,
    .stop = tt_stop,
    .pointer = tt_pointer,
    .transfer = tt_transfer,
    .close = tt_close,
    .hw_params = tt_hw_params,
    .prepare = tt_prepare,
    .poll_revents = tt_poll_revents,
    .resume = tt_resume,
};

static int read_file(const char *path, unsigned char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    struct stat sb;
    if (fstat(fileno(f), &sb) < 0 || sb.st_size < 0) {
        fclose(f);
        return -EIO;
    }
    *len = (size_t)sb.st_size;
    *data = malloc(*len ? *len : 1);
    if (!*data || fread(*data, 1, *len, f) != *len) {
        fclose(f);
        return -EIO;
    }
    fclose(f);
    return 0;
}

/* An option given as an integer, or as a string of comma/space separated items. */
static int parse_list(snd_config_t *n, int is_format, unsigned *list, unsigned *count)
{
    char buf[512];
    long v;
    const char *s;
    *count = 0;
    if (snd_config_get_type(n) == SND_CONFIG_TYPE_COMPOUND) {
        snd_config_iterator_t i, next;
        snd_config_for_each(i, next, n) {
            snd_config_t *e = snd_config_iterator_entry(i);
            if (*count == MAX_LIST)
                return -EINVAL;
            if (is_format) {
                if (snd_config_get_string(e, &s) < 0)
                    return -EINVAL;
                snd_pcm_format_t f = snd_pcm_format_value(s);
                if (f == SND_PCM_FORMAT_UNKNOWN)
                    return -EINVAL;
                list[(*count)++] = (unsigned)f;
            } else {
                if (snd_config_get_integer(e, &v) < 0 || v <= 0)
                    return -EINVAL;
                list[(*count)++] = (unsigned)v;
            }
        }
        return *count ? 0 : -EINVAL;
    }
    if (!is_format && snd_config_get_integer(n, &v) == 0) {
        if (v <= 0)
            return -EINVAL;
        list[(*count)++] = (unsigned)v;
        return 0;
    }
    if (snd_config_get_string(n, &s) < 0 || strlen(s) >= sizeof buf)
        return -EINVAL;
    strcpy(buf, s);
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
        if (*count == MAX_LIST)
            return -EINVAL;
        if (is_format) {
            snd_pcm_format_t f = snd_pcm_format_value(tok);
            if (f == SND_PCM_FORMAT_UNKNOWN)
                return -EINVAL;
            list[(*count)++] = (unsigned)f;
        } else {
            char *end;
            v = strtol(tok, &end, 10);
            if (*end || v <= 0)
                return -EINVAL;
            list[(*count)++] = (unsigned)v;
        }
    }
    return *count ? 0 : -EINVAL;
}

/* N frames (an integer or "N") or "Nms": one of *frames, *ms set, > 0. */
static int parse_amount(snd_config_t *n, long *frames, long *ms)
{
    const char *s;
    char *end;
    if (snd_config_get_integer(n, frames) == 0)
        return *frames > 0 ? 0 : -EINVAL;
    if (snd_config_get_string(n, &s) < 0)
        return -EINVAL;
    long v = strtol(s, &end, 10);
    if (v <= 0)
        return -EINVAL;
    if (!strcmp(end, "ms"))
        *ms = v;
    else if (*end == 0)
        *frames = v;
    else
        return -EINVAL;
    return 0;
}

SND_PCM_PLUGIN_DEFINE_FUNC(trident_test)
{
    (void)root;
    snd_config_iterator_t i, next;
    const char *file = NULL, *unplug = NULL, *period_min_file = NULL, *loss = NULL;
    unsigned rates[MAX_LIST], n_rates = 0, formats[MAX_LIST], n_formats = 0;
    long channels = 0, xrun_frames = 0, xrun_ms = 0, suspend_frames = 0, suspend_ms = 0;
    long suspend_len = 100;
    int paced = 1, resume_fails = 0, err;

    if (stream != SND_PCM_STREAM_CAPTURE) {
        SNDERR("trident_test: capture only");
        return -EINVAL;
    }
    snd_config_for_each(i, next, conf) {
        snd_config_t *n = snd_config_iterator_entry(i);
        const char *id;
        if (snd_config_get_id(n, &id) < 0)
            continue;
        if (!strcmp(id, "comment") || !strcmp(id, "type") || !strcmp(id, "hint"))
            continue;
        if (!strcmp(id, "file")) {
            if (snd_config_get_string(n, &file) < 0)
                goto bad;
        } else if (!strcmp(id, "unplug_file")) {
            if (snd_config_get_string(n, &unplug) < 0)
                goto bad;
        } else if (!strcmp(id, "loss_file")) {
            if (snd_config_get_string(n, &loss) < 0)
                goto bad;
        } else if (!strcmp(id, "period_min_file")) {
            if (snd_config_get_string(n, &period_min_file) < 0)
                goto bad;
        } else if (!strcmp(id, "rate") || !strcmp(id, "rates")) {
            if (parse_list(n, 0, rates, &n_rates) < 0)
                goto bad;
        } else if (!strcmp(id, "formats")) {
            if (parse_list(n, 1, formats, &n_formats) < 0)
                goto bad;
        } else if (!strcmp(id, "channels")) {
            if (snd_config_get_integer(n, &channels) < 0 || channels < 1 || channels > 32)
                goto bad;
        } else if (!strcmp(id, "paced")) {
            if ((paced = snd_config_get_bool(n)) < 0)
                goto bad;
        } else if (!strcmp(id, "xrun_at")) {
            if (parse_amount(n, &xrun_frames, &xrun_ms) < 0)
                goto bad;
        } else if (!strcmp(id, "suspend_at")) {
            if (parse_amount(n, &suspend_frames, &suspend_ms) < 0)
                goto bad;
        } else if (!strcmp(id, "suspend_ms")) {
            if (snd_config_get_integer(n, &suspend_len) < 0 || suspend_len < 0)
                goto bad;
        } else if (!strcmp(id, "resume_fails")) {
            if ((resume_fails = snd_config_get_bool(n)) < 0)
                goto bad;
        } else {
            SNDERR("trident_test: unknown option %s", id);
            return -EINVAL;
        }
        continue;
bad:
        SNDERR("trident_test: invalid value for %s", id);
        return -EINVAL;
    }

    struct tt *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->fd = -1;
    t->paced = paced;
    t->xrun_frames = xrun_frames;
    t->xrun_ms = xrun_ms;
    t->suspend_frames = suspend_frames;
    t->suspend_at_ms = suspend_ms;
    t->suspend_len_ms = suspend_len;
    t->resume_fails = resume_fails;
    t->shift_from = INT64_MAX;
    if ((unplug && !(t->unplug_file = strdup(unplug)))
        || (loss && !(t->loss_file = strdup(loss)))) {
        err = -ENOMEM;
        goto fail;
    }
    if (unplugged(t)) {
        err = -ENODEV;
        goto fail;
    }
    if (file && (err = read_file(file, &t->data, &t->data_len)) < 0) {
        SNDERR("trident_test: cannot read %s", file);
        goto fail;
    }
    if (paced)
        t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    else if ((t->fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        t->fd = -1;
    if (t->fd < 0) {
        err = -errno;
        goto fail;
    }

    t->io.version = SND_PCM_IOPLUG_VERSION;
    t->io.name = "trident test capture";
    t->io.flags = SND_PCM_IOPLUG_FLAG_MONOTONIC;
    t->io.poll_fd = t->fd;
    t->io.poll_events = POLLIN;
    t->io.mmap_rw = 0;
    t->io.callback = &tt_callback;
    t->io.private_data = t;
    if ((err = snd_pcm_ioplug_create(&t->io, name, stream, mode)) < 0)
        goto fail;

    long period_min = 64;
    FILE *pf = period_min_file ? fopen(period_min_file, "r") : NULL;
    if (pf) {
        if (fscanf(pf, "%ld", &period_min) != 1 || period_min < 64 || period_min > 1 << 20)
            period_min = 64;
        fclose(pf);
    }
    static const unsigned access_list[] = { SND_PCM_ACCESS_RW_INTERLEAVED };
    static const unsigned default_formats[] = {
        SND_PCM_FORMAT_S16_LE, SND_PCM_FORMAT_S24_LE, SND_PCM_FORMAT_S24_3LE,
        SND_PCM_FORMAT_S32_LE, SND_PCM_FORMAT_FLOAT_LE,
    };
    if (!n_formats) {
        n_formats = sizeof default_formats / sizeof default_formats[0];
        memcpy(formats, default_formats, sizeof default_formats);
    }
    if ((err = snd_pcm_ioplug_set_param_list(&t->io, SND_PCM_IOPLUG_HW_ACCESS, 1, access_list)) < 0 ||
        (err = snd_pcm_ioplug_set_param_list(&t->io, SND_PCM_IOPLUG_HW_FORMAT, n_formats, formats)) < 0 ||
        (err = snd_pcm_ioplug_set_param_minmax(&t->io, SND_PCM_IOPLUG_HW_CHANNELS,
                                               channels ? (unsigned)channels : 1,
                                               channels ? (unsigned)channels : 32)) < 0 ||
        (err = n_rates ? snd_pcm_ioplug_set_param_list(&t->io, SND_PCM_IOPLUG_HW_RATE, n_rates, rates)
                       : snd_pcm_ioplug_set_param_minmax(&t->io, SND_PCM_IOPLUG_HW_RATE, 1000, 384000)) < 0 ||
        (err = snd_pcm_ioplug_set_param_minmax(&t->io, SND_PCM_IOPLUG_HW_PERIOD_BYTES,
                                               (unsigned)period_min, 1 << 20)) < 0 ||
        (err = snd_pcm_ioplug_set_param_minmax(&t->io, SND_PCM_IOPLUG_HW_BUFFER_BYTES, 256, 1 << 24)) < 0 ||
        (err = snd_pcm_ioplug_set_param_minmax(&t->io, SND_PCM_IOPLUG_HW_PERIODS, 2, 1024)) < 0) {
        snd_pcm_ioplug_delete(&t->io);   /* calls tt_close */
        return err;
    }
    *pcmp = t->io.pcm;
    return 0;

fail:
    if (t->fd >= 0)
        close(t->fd);
    free(t->data);
    free(t->unplug_file);
    free(t->loss_file);
    free(t);
    return err;
}

SND_PCM_PLUGIN_SYMBOL(trident_test);
