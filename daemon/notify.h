/* SPDX-License-Identifier: Apache-2.0 */
/* notify.h — telling systemd how the daemon is doing (sd_notify protocol).
 *
 * A thin layer over libsystemd's sd_notify(): each call sends one datagram to
 * $NOTIFY_SOCKET and does nothing, returning 0, when it is not set (started
 * by hand, in tests).  Call from the main thread only, never from a signal
 * handler.  The protocol, as main uses it (docs/DESIGN.md "Service"):
 *
 *   start:    ... init chain ...  notify_ready()          READY=1
 *   running:  notify_status("3 streams, 35.2 windows/s, 0 dropped")
 *             notify_watchdog() each time the pipeline proved progress,
 *             at least every notify_watchdog_usec() / 2
 *   SIGHUP:   notify_reloading() ... reload ... notify_ready()
 *   SIGTERM:  notify_stopping() ... drain, tear down ... exit
 *
 * Returns 0 when nothing was sent (no NOTIFY_SOCKET), 1 when sent, -errno on
 * failure (a failure to notify is logged by the caller, never fatal).
 */
#ifndef TRIDENT_NOTIFY_H
#define TRIDENT_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

int notify_ready(void);                                  /* READY=1 */
int notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* STATUS=... */
int notify_reloading(void);                              /* RELOADING=1, MONOTONIC_USEC=now */
int notify_stopping(void);                               /* STOPPING=1 */
int notify_watchdog(void);                               /* WATCHDOG=1 */

/* WatchdogSec= of the unit in microseconds, 0 when the watchdog is off (no
 * WATCHDOG_USEC, or WATCHDOG_PID names another process). */
uint64_t notify_watchdog_usec(void);

/* Watchdog pings that prove progress (docs/DESIGN.md "Service": not a timer that
 * would keep pinging while the pipeline is stuck).  The main loop calls
 * notify_wd_tick() whenever it wakes (at least every notify_wd_timeout_ms())
 * with the pipeline's progress counter (say, windows published) and whether
 * the pipeline is idle (nothing captured waits to be classified or
 * published).  A ping goes out, at most every period / 4, only if the counter
 * moved since the previous ping or the pipeline is idle; so once a worker or
 * the publisher sticks with work pending, at most one more ping follows and
 * systemd restarts the daemon one WatchdogSec= later.
 *
 *     notify_wd_init(&wd, notify_watchdog_usec(), now_us);
 *     for (;;) { wait up to notify_wd_timeout_ms(&wd);
 *                notify_wd_tick(&wd, now_us, windows_published, idle); ... }
 */
struct notify_wd {
    uint64_t period_us;       /* WatchdogSec= in us; 0: watchdog off, ticks do nothing */
    uint64_t last_ping_us;    /* CLOCK_MONOTONIC of the last ping */
    uint64_t last_progress;   /* progress counter at the last ping */
    uint64_t pings;           /* pings sent (for tests and STATUS) */
};

void notify_wd_init(struct notify_wd *wd, uint64_t period_us, uint64_t now_us);
/* 1 when it pinged, 0 when not due or no progress, -errno if sending failed. */
int  notify_wd_tick(struct notify_wd *wd, uint64_t now_us, uint64_t progress, bool idle);
/* How long the main loop may sleep before the next tick: period / 4 in ms,
 * or -1 (forever, as far as the watchdog is concerned) when it is off. */
int  notify_wd_timeout_ms(const struct notify_wd *wd);

/* CLOCK_MONOTONIC in microseconds (the clock of the watchdog and of
 * MONOTONIC_USEC). */
uint64_t notify_now_us(void);

#endif
