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

int notify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long us = (unsigned long long)ts.tv_sec * 1000000ULL +
                            (unsigned long long)ts.tv_nsec / 1000ULL;
    return sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", us);
}

uint64_t notify_watchdog_usec(void)
{
    uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}
