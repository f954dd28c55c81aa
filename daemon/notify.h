/* notify.h — telling systemd how the daemon is doing (sd_notify protocol).
 *
 * A thin layer over libsystemd's sd_notify(): each call sends one datagram to
 * $NOTIFY_SOCKET and does nothing, returning 0, when it is not set (started
 * by hand, in tests).  Call from the main thread only, never from a signal
 * handler.  The protocol, as main uses it (DESIGN.md "Service"):
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

#include <stdint.h>

int notify_ready(void);                                  /* READY=1 */
int notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* STATUS=... */
int notify_reloading(void);                              /* RELOADING=1, MONOTONIC_USEC=now */
int notify_stopping(void);                               /* STOPPING=1 */
int notify_watchdog(void);                               /* WATCHDOG=1 */

/* WatchdogSec= of the unit in microseconds, 0 when the watchdog is off (no
 * WATCHDOG_USEC, or WATCHDOG_PID names another process). */
uint64_t notify_watchdog_usec(void);

#endif
