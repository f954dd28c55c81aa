/* SPDX-License-Identifier: Apache-2.0 */
/* test.h — trident's tiny unit-test harness.
 *
 * A test program is a set of TEST(name) functions run by RUN(name) from main;
 * each prints one TAP line ("ok - name" or "not ok - name") and the program
 * ends with TEST_END(), which exits non-zero if anything failed.  tests/run.sh
 * counts the TAP lines of every program and prints "N passed, N failed".
 *
 *   TEST(ring_wraps) { CHECK(x == 1); CHECKF(err == 0, "err=%d", err); }
 *   int main(void) { RUN(ring_wraps); return TEST_END(); }
 */
#ifndef TRIDENT_TEST_H
#define TRIDENT_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed_, test_failed_, test_cur_failed_;

#define TEST(name) static void name(void)

/* A failed check reports file:line and lets the test go on. */
#define CHECKF(cond, ...)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            test_cur_failed_ = 1;                                             \
            fprintf(stdout, "# %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, \
                    #cond);                                                   \
            fprintf(stdout, __VA_ARGS__);                                     \
            fputc('\n', stdout);                                              \
        }                                                                     \
    } while (0)
#define CHECK(cond) CHECKF(cond, "%s", "")

/* A failed REQUIRE ends the current test at once (use inside the test body). */
#define REQUIRE(cond)                                                         \
    do {                                                                      \
        if (!(cond)) {                                                        \
            CHECKF(cond, "%s", "(required)");                                 \
            return;                                                           \
        }                                                                     \
    } while (0)

#define RUN(name)                                                             \
    do {                                                                      \
        test_cur_failed_ = 0;                                                 \
        fflush(stdout);                                                       \
        name();                                                               \
        if (test_cur_failed_) { test_failed_++; printf("not ok - %s\n", #name); } \
        else { test_passed_++; printf("ok - %s\n", #name); }                  \
        fflush(stdout);                                                       \
    } while (0)

#define TEST_END() (test_failed_ ? 1 : 0)

#endif
