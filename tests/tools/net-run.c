/* SPDX-License-Identifier: Apache-2.0 */
/* net-run.c — run the network on raw windows, for tests against PyTorch.
 *
 *   net-run [--impl ref|auto] MODEL IN.f32 OUT.f32
 *       IN: N x 1024 little-endian float32 (already normalised), OUT: N x C logits
 *   net-run --info MODEL
 *       key=value lines: classes, n_classes, sample_rate, normalize, digest, impl
 *
 * --impl ref runs net_forward_ref(), auto (the default) net_forward().  A bad
 * model prints the loader's one-line message and exits 1; usage errors exit 64.
 */
#include "net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: net-run [--impl ref|auto] MODEL IN.f32 OUT.f32\n"
                    "       net-run --info MODEL\n");
    return 64;
}

static int info(const char *path)
{
    char err[512];
    net_model *m;
    if (net_load(path, &m, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("classes=");
    for (int i = 0; i < net_classes(m); i++)
        printf("%s%s", i ? "," : "", net_class_name(m, i));
    printf("\nn_classes=%d\nsample_rate=%g\nnormalize=%s\ndigest=%s\nimpl=%s\n",
           net_classes(m), net_sample_rate(m), norm_name(net_normalize(m)), net_digest(m),
           net_impl(m));
    net_destroy(m);
    return 0;
}

int main(int argc, char **argv)
{
    int ref = 0, i = 1;
    if (argc == 3 && strcmp(argv[1], "--info") == 0)
        return info(argv[2]);
    if (argc > 2 && strcmp(argv[1], "--impl") == 0) {
        if (strcmp(argv[2], "ref") == 0)
            ref = 1;
        else if (strcmp(argv[2], "auto") != 0)
            return usage();
        i = 3;
    }
    if (argc - i != 3)
        return usage();

    char err[512];
    net_model *m;
    if (net_load(argv[i], &m, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    FILE *in = fopen(argv[i + 1], "rb");
    FILE *out = in ? fopen(argv[i + 2], "wb") : NULL;
    if (!in || !out) {
        fprintf(stderr, "%s: %s\n", argv[in ? i + 2 : i + 1], strerror(errno));
        if (in)
            fclose(in);
        net_destroy(m);
        return 1;
    }
    int c = net_classes(m), rc = 0;
    net_scratch *s = net_scratch_create(m);
    float *x = malloc(NET_WIN * sizeof *x), *y = malloc((size_t)c * sizeof *y);
    if (!s || !x || !y) {
        fprintf(stderr, "net-run: out of memory\n");
        rc = 1;
    }
    size_t n;
    while (!rc && (n = fread(x, sizeof *x, NET_WIN, in)) > 0) {
        if (n != NET_WIN) {
            fprintf(stderr, "%s: trailing partial window (%zu samples)\n", argv[i + 1], n);
            rc = 1;
            break;
        }
        if (ref)
            net_forward_ref(m, s, x, y);
        else
            net_forward(m, s, x, y);
        if (fwrite(y, sizeof *y, (size_t)c, out) != (size_t)c) {
            fprintf(stderr, "%s: %s\n", argv[i + 2], strerror(errno));
            rc = 1;
        }
    }
    if (fclose(out) != 0 && !rc) {
        fprintf(stderr, "%s: %s\n", argv[i + 2], strerror(errno));
        rc = 1;
    }
    fclose(in);
    free(x);
    free(y);
    net_scratch_destroy(s);
    net_destroy(m);
    return rc;
}
