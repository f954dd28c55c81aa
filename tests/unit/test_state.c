/* SPDX-License-Identifier: Apache-2.0 */
/* test_state.c — the K-of-N smoother (daemon/state.h). */
#include <math.h>
#include <string.h>

#include "state.h"
#include "test.h"

static const char *const names[] = { "normal", "inner", "outer" };

/* Pushes codes[0..n-1] (seq = index); returns the number of changes and
 * records the seq each was decided at and its first window. */
static int run(smoother *s, const int *codes, int n, uint64_t *at, uint64_t *first,
               const char **to)
{
    int changes = 0;
    for (int i = 0; i < n; i++) {
        struct sm_change c;
        int code = codes[i];
        if (sm_push(s, code, code >= 0 ? names[code] : NULL, (uint64_t)i, (uint64_t)i * 1024,
                    i * 0.1, 0.9, &c)) {
            at[changes] = (uint64_t)i;
            first[changes] = c.seq;
            to[changes] = names[code];
            CHECK(!strcmp(c.to, names[code]));
            CHECK(c.agree >= 2 && c.agree <= c.windows);
            CHECK(fabs(c.score - 0.9) < 1e-12);
            changes++;
        }
    }
    return changes;
}

TEST(state_splice_two_changes)
{
    smoother *s = sm_create(5, 3, 0, 3);
    REQUIRE(s);
    int codes[60];
    for (int i = 0; i < 60; i++)
        codes[i] = i >= 20 && i < 40 ? 1 : 0;
    uint64_t at[8], first[8];
    const char *to[8];
    int n = run(s, codes, 60, at, first, to);
    CHECKF(n == 3, "%d changes", n);
    CHECK(at[0] == 2 && first[0] == 0 && !strcmp(to[0], "normal"));
    CHECK(at[1] == 22 && first[1] == 20 && !strcmp(to[1], "inner"));
    CHECK(at[2] == 42 && first[2] == 40 && !strcmp(to[2], "normal"));
    CHECK(sm_changes(s) == 3);
    sm_destroy(s);
}

TEST(state_alternating_does_not_flap)
{
    smoother *s = sm_create(5, 4, 0, 3);
    REQUIRE(s);
    int codes[100];
    for (int i = 0; i < 100; i++)
        codes[i] = i < 10 ? 0 : i % 2;
    uint64_t at[8], first[8];
    const char *to[8];
    int n = run(s, codes, 100, at, first, to);
    CHECKF(n == 1, "%d changes", n);
    CHECK(!strcmp(sm_state(s), "normal"));
    sm_destroy(s);
}

TEST(state_hold_and_none)
{
    /* min_score votes (SM_NONE) count among the N but for nothing */
    smoother *s = sm_create(5, 3, 0, 3);
    REQUIRE(s);
    int codes[] = { 0, SM_NONE, 0, SM_NONE, SM_NONE, 0 };
    uint64_t at[8], first[8];
    const char *to[8];
    CHECK(run(s, codes, 6, at, first, to) == 0);      /* never 3 of the last 5 */
    CHECK(sm_state(s) == NULL);
    sm_destroy(s);

    /* hold = 10: a new state is kept ten windows */
    s = sm_create(3, 2, 10, 3);
    REQUIRE(s);
    int c2[30];
    for (int i = 0; i < 30; i++)
        c2[i] = i < 5 ? 0 : i < 8 ? 1 : 2;
    int n = run(s, c2, 30, at, first, to);
    /* normal at 1; inner reaches 2 of 3 at 6 but is held until 1 + 10 */
    CHECKF(n == 2, "%d changes", n);
    CHECKF(at[0] == 1 && at[1] == 11 && !strcmp(to[1], "outer"), "at %llu %llu",
           (unsigned long long)at[0], (unsigned long long)at[1]);
    sm_destroy(s);
}

TEST(state_forget_keeps_state_by_name)
{
    smoother *s = sm_create(5, 3, 0, 3);
    REQUIRE(s);
    struct sm_change c;
    for (int i = 0; i < 5; i++)
        sm_push(s, 0, "normal", (uint64_t)i, 0, 0, NAN, &c);
    CHECK(!strcmp(sm_state(s), "normal"));
    /* a new model numbers "normal" 2: no change, since the name is the same */
    sm_forget(s);
    bool any = false;
    for (int i = 0; i < 5; i++)
        any |= sm_push(s, 2, "normal", (uint64_t)(5 + i), 0, 0, NAN, &c);
    CHECK(!any);
    CHECK(sm_changes(s) == 1);
    /* a longer name than any before */
    for (int i = 0; i < 3; i++)
        any = sm_push(s, 1, "a-rather-long-state-name-for-the-buffer", 10, 0, 0, NAN, &c);
    CHECK(any && !strcmp(c.from, "normal") && isnan(c.score));
    CHECK(!sm_create(3, 4, 0, 3) && !sm_create(0, 0, 0, 3));
    sm_destroy(s);
}

int main(void)
{
    RUN(state_splice_two_changes);
    RUN(state_alternating_does_not_flap);
    RUN(state_hold_and_none);
    RUN(state_forget_keeps_state_by_name);
    return TEST_END();
}
