# SPDX-License-Identifier: Apache-2.0
# kernels.mk — per-file flags for the fast forward kernels (included by the
# Makefile; its pattern rule adds $(XCFLAGS_$*) for model/FILE.c).
#
# The kernels are C with vector extensions (model/net_fast_body.h):
# -ffp-contract=fast so that a * b + c becomes one FMA (-std=c11 turns
# contraction off), -O3 (the user's CFLAGS, -O2 by default, come later and
# win; the kernel's unroll pragmas keep the register tiles whole either way).  The instruction-set
# files get their -m flags only when the compiler targets x86; elsewhere they
# compile to "not available" and net_fast.c uses the generic one.
KERNEL_CFLAGS := -O3 -ffp-contract=fast
ifneq ($(filter x86_64% i386% i486% i586% i686%,$(shell $(CC) -dumpmachine)),)
XCFLAGS_model/net_fast_avx512 := $(KERNEL_CFLAGS) -mavx512f -mfma -mavx2
XCFLAGS_model/net_fast_avx2   := $(KERNEL_CFLAGS) -mavx2 -mfma
endif
XCFLAGS_model/net_fast_generic := $(KERNEL_CFLAGS)
