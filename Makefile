# SPDX-License-Identifier: Apache-2.0
# trident — GNU Makefile
#
#   make                      build daemon, tools and tests into $(BUILD)
#   make check                build normal, ASan+UBSan and TSan variants, run every test
#   make SANITIZER=address    ASan+UBSan build (also: undefined, thread) into build-$(SANITIZER)
#   make demo                 replay the shipped recordings with the shipped model
#   make bench                benchmarks against PyTorch
#   make soak                 32 real-time streams for 10 minutes (SOAK_SECONDS=600)
#   make train                retrain model/cwru.safetensors on ../shared/data/cwru
#                             (your own data: trident-train, model/train/trident_train.py)
#   make install              honours PREFIX and DESTDIR
#   make deb                  Debian package into build/deb/
#   make fuzz                 fuzz every parser FUZZ_SECONDS (60) each (clang, libFuzzer)
#   make conf                 regenerate config/trident.conf from config.c's key table
#
# The user's CFLAGS/LDFLAGS/CPPFLAGS are applied after the project's own flags
# (T_*), so they can override optimisation but never drop warnings or defines
# the code needs.  Every library comes from pkg-config.
#
# Targets that need Debian packages first run packaging/deps.sh, which installs
# what is missing (as root) or prints the apt-get line; the real work runs in a
# sub-make so that pkg-config is only asked once the packages are there.

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
DATADIR    ?= $(PREFIX)/share/trident
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
LIBEXECDIR ?= $(PREFIX)/lib/trident
PYDIR      ?= $(DATADIR)/python
DESTDIR    ?=

CC         ?= cc
CFLAGS     ?= -O2 -g
PYTHON     := /usr/bin/python3
SANITIZER  ?=
ifeq ($(SANITIZER),)
BUILD      ?= build
else
BUILD      ?= build-$(SANITIZER)
endif

# Targets that need packages, and which package sets (see packaging/deps.sh).
DEPS_all     := build
DEPS_tools   := build
DEPS_check   := build test deb sanitize
DEPS_demo    := build demo
DEPS_bench   := build test bench
DEPS_install := build
DEPS_deb     := build deb
DEPS_fuzz    := build sanitize
DEPS_fuzz-replay := build
DEPS_conf    := build
DEPS_train   := build test
DEPS_soak    := build test
DEP_TARGETS  := all tools check demo bench install deb fuzz fuzz-replay conf train soak

ifndef TRIDENT_DEPS_OK
# ---- outer make: install packages, then re-run with the real rules ----------
.DEFAULT_GOAL := all
$(DEP_TARGETS):
	@sh packaging/deps.sh $(DEPS_$@)
	@$(MAKE) --no-print-directory TRIDENT_DEPS_OK=1 $@

clean:
	rm -rf build build-*

.PHONY: $(DEP_TARGETS) clean
else
# ---- inner make: the real rules ---------------------------------------------
.DEFAULT_GOAL := all
PKGS      := alsa libzmq libconfig sndfile libsystemd jansson soxr libmicrohttpd libmosquitto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))

SAN_address   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SAN_undefined := -fsanitize=undefined -fno-sanitize-recover=undefined
SAN_thread    := -fsanitize=thread
SAN_fuzzer    := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
                 -fsanitize-coverage-ignorelist=tests/fuzz/coverage.ignore
ifneq ($(SANITIZER),)
ifeq ($(SAN_$(SANITIZER)),)
$(error SANITIZER must be address, undefined or thread (fuzzer: make fuzz))
endif
endif
SAN_FLAGS := $(SAN_$(SANITIZER))

T_CPPFLAGS := -D_GNU_SOURCE -Idsp -Imodel -Iconfig -Idaemon -Itests \
              -DTRIDENT_VERSION='"$(shell cat VERSION 2>/dev/null || echo 0.0.0)"' \
              -DTRIDENT_DATADIR='"$(DATADIR)"' -DTRIDENT_SYSCONFDIR='"$(SYSCONFDIR)"'
T_CFLAGS   := -std=c11 -Wall -Wextra -pthread -MMD -MP $(SAN_FLAGS) $(PKG_CFLAGS)
T_LDFLAGS  := -pthread $(SAN_FLAGS)
T_LDLIBS   := $(PKG_LIBS) -lm

# Everything but the programs' main files goes into one static library that
# programs, tests, benchmarks and fuzzers link.
LIB_SRC   := $(wildcard dsp/*.c model/*.c config/*.c) \
             $(filter-out daemon/main.c daemon/trident_sub.c,$(wildcard daemon/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB       := $(BUILD)/libtrident.a

# Programs: name := main source
PROGS     := tridentd trident-sub trident-prep
SRC_tridentd     := daemon/main.c
SRC_trident-sub  := daemon/trident_sub.c
SRC_trident-prep := model/train/prep.c
PROG_BIN  := $(foreach p,$(PROGS),$(if $(wildcard $(SRC_$(p))),$(BUILD)/bin/$(p)))

# Unit tests and test tools: tests/unit/test_*.c and tests/tools/*.c, one program each.
TEST_SRC  := $(wildcard tests/unit/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRC  := $(wildcard tests/tools/*.c)
TOOL_BIN  := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)

# Per-file extra flags (fast kernels compiled for their instruction sets).
-include model/kernels.mk

# The ALSA capture test device (tests/alsa): a module alsa-lib dlopens by
# absolute path; -DPIC is required by alsa-lib's plugin headers.
ALSA_PLUGIN := $(BUILD)/alsa/libasound_module_pcm_trident_test.so

all: $(PROG_BIN) $(TEST_BIN) $(TOOL_BIN) $(ALSA_PLUGIN)
tools: $(PROG_BIN) $(TOOL_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(T_CPPFLAGS) $(CPPFLAGS) $(T_CFLAGS) $(XCFLAGS_$*) $(CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

# link(OUTPUT, MAIN_OBJECT)
define link_rule
$(1): $(2) $(LIB)
	@mkdir -p $$(@D)
	$$(CC) $$(T_LDFLAGS) $$(LDFLAGS) -o $$@ $(2) $$(LIB) $$(T_LDLIBS) $$(LDLIBS)
endef
$(foreach p,$(PROGS),$(eval $(call link_rule,$(BUILD)/bin/$(p),$(BUILD)/obj/$(SRC_$(p):.c=.o))))
$(foreach t,$(TEST_SRC),$(eval $(call link_rule,$(t:tests/unit/%.c=$(BUILD)/tests/%),$(BUILD)/obj/$(t:.c=.o))))
$(foreach t,$(TOOL_SRC),$(eval $(call link_rule,$(t:tests/tools/%.c=$(BUILD)/tools/%),$(BUILD)/obj/$(t:.c=.o))))

$(ALSA_PLUGIN): tests/alsa/pcm_trident_test.c
	@mkdir -p $(@D)
	$(CC) -shared -fPIC -DPIC -D_GNU_SOURCE -std=gnu11 -Wall -Wextra $(shell pkg-config --cflags alsa) \
	    $(CFLAGS) $(LDFLAGS) -o $@ $< $(shell pkg-config --libs alsa)

# make fuzz: each tests/fuzz/fuzz_*.c as a libFuzzer program (clang,
# ASan+UBSan; coverage feedback from the parsers only, tests/fuzz/
# coverage.ignore) in build-fuzzer/fuzz/, then tests/fuzz/run.sh replays
# every input in tests/fuzz/regress/NAME/ and fuzzes each target for
# FUZZ_SECONDS (0: replay only) on a scratch copy of tests/fuzz/corpus/NAME/
# under build-fuzzer/fuzz/work/; it fails on any crash, sanitizer report,
# leak, timeout or memory blow-up and names the reproducer.
# make fuzz-replay: the same targets with a plain main (tests/fuzz/replay.c)
# in $(BUILD)/fuzz-replay/, for any compiler (test_fuzz.sh: gcc's ASan).
FUZZ_SECONDS ?= 60
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN    := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz-replay/%)
fuzz:
	@$(MAKE) --no-print-directory SANITIZER=fuzzer CC=clang fuzz-bins
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/run.sh build-fuzzer
fuzz-bins: $(FUZZ_BIN)
$(FUZZ_BIN): $(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(T_LDFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(LIB) $(T_LDLIBS) $(LDLIBS)
fuzz-replay: $(FUZZ_REPLAY)
$(FUZZ_REPLAY): $(BUILD)/fuzz-replay/%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/obj/tests/fuzz/replay.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(T_LDFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/obj/tests/fuzz/replay.o $(LIB) $(T_LDLIBS) $(LDLIBS)

# make check: the normal build runs everything; the ASan+UBSan and TSan builds
# run the unit tests and the integration tests that ask for them
# (TRIDENT_BUILDS).  tests/run.sh prints the final "N passed, N failed".
CHECK_BUILDS := build build-address build-thread
check:
	@$(MAKE) --no-print-directory BUILD=build SANITIZER= all
	@$(MAKE) --no-print-directory BUILD=build-address SANITIZER=address all
	@$(MAKE) --no-print-directory BUILD=build-thread SANITIZER=thread all
	@TRIDENT_BUILDS="$(CHECK_BUILDS)" PYTHON=$(PYTHON) sh tests/run.sh

demo: all
	@PYTHON=$(PYTHON) BUILD=$(BUILD) sh tests/demo.sh

# The example config is generated from the key table and committed;
# tests/unit/test_config.c fails when they differ.
conf: $(BUILD)/tools/cfg-example
	$(BUILD)/tools/cfg-example > config/trident.conf

# Benchmarks: tests/bench/*.c, built by make bench only.
BENCH_BIN := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(wildcard tests/bench/*.c))
$(foreach b,$(wildcard tests/bench/*.c),$(eval $(call link_rule,$(b:tests/bench/%.c=$(BUILD)/bench/%),$(BUILD)/obj/$(b:.c=.o))))

bench: all $(BENCH_BIN)
	@PYTHON=$(PYTHON) BUILD=$(BUILD) sh tests/bench/run.sh

# make soak: issue 8's soak, tests/integration/test_soak.py for SOAK_SECONDS
# (make check runs the same test for 60 s); it prints a summary at the end.
SOAK_SECONDS ?= 600
soak: all
	@TRIDENT_BUILD=$(BUILD) TRIDENT_SOAK_SECONDS=$(SOAK_SECONDS) $(PYTHON) tests/integration/test_soak.py

# The shipped model: every recording read and resampled by trident-prep.
.PHONY: train
train: $(BUILD)/bin/trident-prep
	$(PYTHON) model/train/train.py --prep $(BUILD)/bin/trident-prep

# make install: programs, unit, man pages, the example config (an existing
# one is kept: it is the operator's) and the default model.  The unit's
# paths follow SBINDIR and SYSCONFDIR.
# trident-train, trident-eval and trident-label: launchers in BINDIR running the Python
# modules in PYDIR with Debian's /usr/bin/python3; trident-prep (the daemon's
# reader and resampler, which training needs) in LIBEXECDIR.
MAN_PAGES := packaging/tridentd.8 packaging/trident.conf.5 packaging/trident-sub.1
PY_MODULES := model/train/net.py model/train/export.py model/train/dataset.py model/train/detector.py \
              model/train/card.py model/train/trident_train.py model/train/trident_eval.py \
              model/train/trident_label.py
install: $(BUILD)/bin/tridentd $(BUILD)/bin/trident-sub $(BUILD)/bin/trident-prep
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR) \
	    $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(PYDIR) \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/trident \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(BUILD)/bin/tridentd $(DESTDIR)$(SBINDIR)/tridentd
	install -m 755 $(BUILD)/bin/trident-sub $(DESTDIR)$(BINDIR)/trident-sub
	sed -e 's|/usr/sbin/tridentd|$(SBINDIR)/tridentd|' -e 's|/etc/trident/|$(SYSCONFDIR)/trident/|' \
	    packaging/trident.service >$(DESTDIR)$(UNITDIR)/trident.service
	chmod 644 $(DESTDIR)$(UNITDIR)/trident.service
	install -m 644 packaging/tridentd.8 $(DESTDIR)$(MANDIR)/man8/tridentd.8
	install -m 644 packaging/trident.conf.5 $(DESTDIR)$(MANDIR)/man5/trident.conf.5
	install -m 644 packaging/trident-sub.1 $(DESTDIR)$(MANDIR)/man1/trident-sub.1
	install -m 755 $(BUILD)/bin/trident-prep $(DESTDIR)$(LIBEXECDIR)/trident-prep
	install -m 644 $(PY_MODULES) $(DESTDIR)$(PYDIR)/
	install -m 644 VERSION $(DESTDIR)$(PYDIR)/VERSION
	for t in train eval label; do \
	    sed -e 's|@LIBEXECDIR@|$(LIBEXECDIR)|' -e 's|@SBINDIR@|$(SBINDIR)|' -e 's|@PYDIR@|$(PYDIR)|' \
	        packaging/trident-$$t.in >$(DESTDIR)$(BINDIR)/trident-$$t && \
	    chmod 755 $(DESTDIR)$(BINDIR)/trident-$$t && \
	    install -m 644 packaging/trident-$$t.1 $(DESTDIR)$(MANDIR)/man1/trident-$$t.1 || exit 1; \
	done
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/trident/trident.conf ]; then \
	    echo "keeping the existing $(DESTDIR)$(SYSCONFDIR)/trident/trident.conf"; \
	else \
	    echo "install -m 644 config/trident.conf $(DESTDIR)$(SYSCONFDIR)/trident/trident.conf"; \
	    install -m 644 config/trident.conf $(DESTDIR)$(SYSCONFDIR)/trident/trident.conf; \
	fi
	@if [ -f model/cwru.safetensors ]; then \
	    echo "install -m 644 model/cwru.safetensors $(DESTDIR)$(DATADIR)/cwru.safetensors"; \
	    install -m 644 model/cwru.safetensors $(DESTDIR)$(DATADIR)/cwru.safetensors; \
	else \
	    echo "WARNING: model/cwru.safetensors is missing: no default model installed" >&2; \
	fi

# make deb: dpkg-buildpackage on a staging copy (the top level of the
# repository has no debian/), the package into build/deb/, then lintian.
VERSION_STR := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
DEB_STAGE   := build/debsrc/trident-$(VERSION_STR)
deb:
	@head -1 packaging/debian/changelog | grep -qF "($(VERSION_STR))" || \
	    { echo "packaging/debian/changelog is not at version $(VERSION_STR) (VERSION)" >&2; exit 1; }
	rm -rf build/debsrc build/deb
	mkdir -p $(DEB_STAGE) build/deb
	tar -c --exclude=__pycache__ --exclude='*.pyc' Makefile VERSION README.md config daemon dsp \
	    model packaging | tar -x -C $(DEB_STAGE)
	cp -a packaging/debian $(DEB_STAGE)/debian
	cd $(DEB_STAGE) && dpkg-buildpackage -us -uc -b >../build.log 2>&1 || \
	    { tail -30 ../build.log >&2; echo "dpkg-buildpackage failed: build/debsrc/build.log" >&2; exit 1; }
	mv build/debsrc/*.deb build/deb/
	lintian --fail-on error,warning \
	    build/deb/*.deb
	@ls build/deb/*.deb

clean:
	rm -rf build build-*

.PHONY: all tools check demo bench install deb clean conf fuzz fuzz-bins fuzz-replay soak
-include $(wildcard $(BUILD)/obj/*/*.d $(BUILD)/obj/*/*/*.d)
endif
