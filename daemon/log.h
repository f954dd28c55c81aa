/* SPDX-License-Identifier: Apache-2.0 */
/* log.h — one logger for the daemon.
 *
 * The macros test the level before formatting anything.  Messages go to
 * stderr as "tridentd: LEVEL: message"; under systemd (JOURNAL_STREAM set) a
 * "<N>" priority prefix replaces the program name so the journal keeps the
 * level.  Capture threads never log: they count, and the main loop reports.
 */
#ifndef TRIDENT_LOG_H
#define TRIDENT_LOG_H

enum log_level { LOG_ERR = 3, LOG_WARN = 4, LOG_INFO = 6, LOG_DEBUG = 7 };

extern int log_max_level;

void log_init(const char *progname);
void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_at(lvl, ...) do { if ((lvl) <= log_max_level) log_write((lvl), __VA_ARGS__); } while (0)
#define log_err(...)   log_at(LOG_ERR, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_at(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)

#endif
