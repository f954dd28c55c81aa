/* SPDX-License-Identifier: Apache-2.0 */
/* log.c — the daemon's logger (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int log_max_level = LOG_INFO;
static const char *log_prog = "tridentd";
static int log_journal;

void log_init(const char *progname)
{
    if (progname)
        log_prog = progname;
    log_journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_write(int level, const char *fmt, ...)
{
    static const char *const names[8] = {
        "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"
    };
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (level < 0)
        level = 0;
    if (level > 7)
        level = 7;
    /* One fprintf per line so lines from several threads never interleave. */
    if (log_journal)
        fprintf(stderr, "<%d>%s\n", level, msg);
    else
        fprintf(stderr, "%s: %s: %s\n", log_prog, names[level], msg);
}
