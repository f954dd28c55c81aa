/* net_fast.c — choosing the forward implementation (a stub for now).
 *
 * Until the fast kernels arrive this always selects the reference; it is the
 * one place that decides what net_forward() runs (net_internal.h). */
#include "net_internal.h"

int net_fast_init(net_model *m)
{
    m->impl = "ref";
    m->forward = net_forward_ref;
    m->scratch_floats = net_ref_scratch_floats();
    return 0;
}

void net_forward(const net_model *m, net_scratch *s, const float *x, float *logits)
{
    m->forward(m, s, x, logits);
}
