/* SPDX-License-Identifier: Apache-2.0 */
/* test_net_fast.c — every fast forward against the reference (net_ref.c).
 *
 * For each implementation this build and CPU can run (generic, avx2,
 * avx512), random models written as safetensors files and loaded through
 * net_load() (PyTorch-style uniform initialisation, times 1 and times 10,
 * with 4 and 7 classes) run random and special windows through
 * net_forward() and net_forward_ref() sharing one scratch; every logit must
 * be within 1e-5 * max|logit| of the reference's.  Prints the worst error.
 * Also checks how the implementation is chosen: TRIDENT_NET and
 * net_set_impl_override(). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"
#include "test.h"

/* Sanitizer builds check memory and races, not numerics: fewer windows
 * there keep the test at a few seconds (the reference is slow under TSan). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define N_WIN 6
#else
#define N_WIN 64
#endif
static const char *const impls[] = { "generic", "avx2", "avx512" };

static uint64_t rng = 0x9e3779b97f4a7c15u;
static double urand(void)                   /* [0, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (rng >> 11) * (1.0 / 9007199254740992.0);
}
static float sym(double a) { return (float)((2 * urand() - 1) * a); }

struct tensor { char name[32]; int shape[3], nd; };

/* Writes a random Net as safetensors to a temporary file; returns its path
 * in path (PATH_MAX) or -errno. */
static int write_model(char *path, size_t len, double scale, int classes)
{
    struct tensor t[2 + 2 * 9 + 2];
    int n = 0;
    t[n++] = (struct tensor){ "conv1.weight", { 64, 1, 32 }, 3 };
    t[n++] = (struct tensor){ "conv1.bias", { 64 }, 1 };
    const int cin[3] = { 64, 64, 128 }, cout[3] = { 64, 128, 256 };
    for (int k = 3; k <= 7; k += 2)
        for (int l = 0; l < 3; l++) {
            t[n] = (struct tensor){ "", { cout[l], cin[l], k }, 3 };
            snprintf(t[n++].name, sizeof t[0].name, "conv%d_%d.weight", k, l + 1);
            t[n] = (struct tensor){ "", { cout[l] }, 1 };
            snprintf(t[n++].name, sizeof t[0].name, "conv%d_%d.bias", k, l + 1);
        }
    t[n++] = (struct tensor){ "fc.weight", { classes, 768 }, 2 };
    t[n++] = (struct tensor){ "fc.bias", { classes }, 1 };

    char *hdr = malloc(8192);
    if (!hdr)
        return -ENOMEM;
    size_t h = 0, off = 0;
    h += snprintf(hdr + h, 8192 - h, "{");
    for (int i = 0; i < n; i++) {
        size_t cnt = 1;
        for (int d = 0; d < t[i].nd; d++)
            cnt *= t[i].shape[d];
        h += snprintf(hdr + h, 8192 - h, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d",
                      i ? "," : "", t[i].name, t[i].shape[0]);
        for (int d = 1; d < t[i].nd; d++)
            h += snprintf(hdr + h, 8192 - h, ",%d", t[i].shape[d]);
        h += snprintf(hdr + h, 8192 - h, "],\"data_offsets\":[%zu,%zu]}", off, off + 4 * cnt);
        off += 4 * cnt;
    }
    h += snprintf(hdr + h, 8192 - h, "}");
    while (h % 8)
        hdr[h++] = ' ';

    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, len, "%s/test_net_fast.XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        free(hdr);
        return -errno;
    }
    FILE *f = fdopen(fd, "wb");
    uint64_t hl = h;                        /* little-endian hosts only, as the loader */
    fwrite(&hl, 8, 1, f);
    fwrite(hdr, 1, h, f);
    int fan_in = 1;
    for (int i = 0; i < n; i++) {
        /* PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for a weight
         * and its bias (which follows it) */
        if (t[i].nd > 1)
            fan_in = t[i].shape[1] * (t[i].nd == 3 ? t[i].shape[2] : 1);
        size_t cnt = 1;
        for (int d = 0; d < t[i].nd; d++)
            cnt *= t[i].shape[d];
        for (size_t j = 0; j < cnt; j++) {
            float v = sym(scale / sqrt(fan_in));
            fwrite(&v, 4, 1, f);
        }
    }
    free(hdr);
    return fclose(f) ? -EIO : 0;
}

/* Window w of the test set: noise at several amplitudes, plus silence, a
 * constant, an impulse and a full-scale square wave. */
static void make_window(int w, float *x)
{
    for (int i = 0; i < NET_WIN; i++) {
        switch (w) {
        case 0: x[i] = 0; break;
        case 1: x[i] = 0.5f; break;
        case 2: x[i] = i == 517 ? 1.0f : 0.0f; break;
        case 3: x[i] = (i / 37) % 2 ? 1.0f : -1.0f; break;
        default: x[i] = sym(w % 3 == 0 ? 100.0 : w % 3 == 1 ? 1.0 : 0.01); break;
        }
    }
}

static double worst_rel;

static void check_model(double scale, int classes)
{
    char path[4096];
    int rc = write_model(path, sizeof path, scale, classes);
    REQUIRE(rc == 0);
    static float x[N_WIN][NET_WIN], ref[N_WIN][NET_MAX_CLASSES];
    for (int w = 0; w < N_WIN; w++)
        make_window(w, x[w]);

    int ran = 0;
    for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++) {
        char err[256];
        net_model *m = NULL;
        CHECK(net_set_impl_override(impls[i]) == 0);
        rc = net_load(path, &m, err, sizeof err);
        if (rc == -ENOTSUP) {
            printf("# %s: not supported by this CPU or build, skipped\n", impls[i]);
            continue;
        }
        CHECKF(rc == 0, "%s: %s", impls[i], err);
        if (rc)
            continue;
        CHECKF(!strcmp(net_impl(m), impls[i]), "asked %s, got %s", impls[i], net_impl(m));
        net_scratch *s = net_scratch_create(m);
        CHECK(s != NULL);
        double worst = 0;
        for (int w = 0; s && w < N_WIN; w++) {
            float got[NET_MAX_CLASSES];
            if (!ran)                       /* ref once per model; the scratch is shared */
                net_forward_ref(m, s, x[w], ref[w]);
            net_forward(m, s, x[w], got);
            double mx = 0, e = 0;
            for (int c = 0; c < classes; c++) {
                mx = fmax(mx, fabs(ref[w][c]));
                e = fmax(e, fabs(got[c] - ref[w][c]));
            }
            double rel = mx > 0 ? e / mx : e;
            CHECKF(rel <= 1e-5 && !isnan(got[0]),
                   "%s scale %g window %d: error %.3g of max|logit| %.4g", impls[i],
                   scale, w, rel, mx);
            worst = fmax(worst, rel);
        }
        printf("# %s, scale %g, %d classes: worst error %.3g x max|logit|\n", impls[i],
               scale, classes, worst);
        worst_rel = fmax(worst_rel, worst);
        ran++;
        net_scratch_destroy(s);
        net_destroy(m);
    }
    CHECKF(ran > 0, "no fast implementation ran");
    net_set_impl_override(NULL);
    unlink(path);
}

TEST(fast_matches_reference_scale_1) { check_model(1.0, 4); }
TEST(fast_matches_reference_scale_10) { check_model(10.0, 7); }

TEST(choosing_the_implementation)
{
    char path[4096], err[256];
    REQUIRE(write_model(path, sizeof path, 1.0, 4) == 0);
    net_model *m = NULL;

    CHECK(net_set_impl_override("avx9000") == -EINVAL);
    CHECK(net_set_impl_override("ref") == 0);
    CHECK(net_load(path, &m, err, sizeof err) == 0);
    CHECK(m && !strcmp(net_impl(m), "ref"));
    net_destroy(m);
    m = NULL;

    /* auto: the first of avx512, avx2, generic that runs here */
    const char *first = NULL;
    for (int i = 0; i < 3; i++) {  /* slowest first: the last that loads wins */
        CHECK(net_set_impl_override(impls[i]) == 0);
        if (net_load(path, &m, err, sizeof err) == 0)
            first = impls[i];
        net_destroy(m);
        m = NULL;
    }
    CHECK(net_set_impl_override(NULL) == 0);
    CHECK(net_load(path, &m, err, sizeof err) == 0);
    CHECKF(m && first && !strcmp(net_impl(m), first), "auto chose %s, expected %s",
           m ? net_impl(m) : "-", first ? first : "-");
    net_destroy(m);
    m = NULL;

    /* the environment variable wins over the override */
    CHECK(net_set_impl_override("generic") == 0);
    setenv("TRIDENT_NET", "ref", 1);
    CHECK(net_load(path, &m, err, sizeof err) == 0);
    CHECK(m && !strcmp(net_impl(m), "ref"));
    net_destroy(m);
    m = NULL;
    setenv("TRIDENT_NET", "bogus", 1);
    CHECK(net_load(path, &m, err, sizeof err) == -EINVAL);
    CHECK(m == NULL);
    unsetenv("TRIDENT_NET");
    net_set_impl_override(NULL);
    unlink(path);
}

int main(void)
{
    unsetenv("TRIDENT_NET");
    RUN(fast_matches_reference_scale_1);
    RUN(fast_matches_reference_scale_10);
    RUN(choosing_the_implementation);
    printf("# worst error of any implementation: %.3g x max|logit|\n", worst_rel);
    return TEST_END();
}
