/* SPDX-License-Identifier: Apache-2.0 */
/* notify.c — sd_notify messages for systemd's Type=notify (see notify.h).
 *
 * libsystemd does the protocol (socket address, abstract names, credentials);
 * this file only fixes the messages so main.c cannot misspell them.
 * RELOADING=1 carries MONOTONIC_USEC: systemd 253+ requires it to tell this
 * reload from an older one (Type=notify-reload), 252 ignores it.
 */
#include "notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <time.h>

/* unset_environment = 0 everywhere: the daemon notifies many times. */

int notify_ready(void) { return sd_notify(0, "READY=1"); }

int notify_stopping(void) { return sd_notify(0, "STOPPING=1"); }

int notify_watchdog(void) { return sd_notify(0, "WATCHDOG=1"); }

int notify_status(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sd_notifyf(0, "STATUS=%s", msg);
}

uint64_t notify_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int notify_reloading(void)
{
    return sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)notify_now_us());
}

uint64_t notify_watchdog_usec(void)
{
    uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

void notify_wd_init(struct notify_wd *wd, uint64_t period_us, uint64_t now_us)
{
    wd->period_us = period_us;
    wd->last_ping_us = now_us;
    wd->last_progress = 0;
    wd->pings = 0;
}

int notify_wd_tick(struct notify_wd *wd, uint64_t now_us, uint64_t progress, bool idle)
{
    if (!wd->period_us || now_us - wd->last_ping_us < wd->period_us / 4)
        return 0;
    /* Progress is judged between pings, not between ticks: a counter that
     * moved once since the last ping proves the pipeline was alive then. */
    if (!idle && progress == wd->last_progress)
        return 0;
    int rc = notify_watchdog();
    wd->last_ping_us = now_us;
    wd->last_progress = progress;
    wd->pings++;
    return rc < 0 ? rc : 1;
}

int notify_wd_timeout_ms(const struct notify_wd *wd)
{
    if (!wd->period_us)
        return -1;
    uint64_t ms = wd->period_us / 4 / 1000;
    return ms ? (ms > 60000 ? 60000 : (int)ms) : 1;
}
