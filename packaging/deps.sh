#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# deps.sh — make sure the Debian packages a make target needs are installed.
#
#   packaging/deps.sh SET...      SET: build test demo bench sanitize deb
#
# Missing packages are installed with apt-get when run as root; otherwise the
# script prints the exact apt-get line and exits 1.  It is called by the
# Makefile before every target that needs more than the C compiler, so the
# README's commands work on a fresh Debian 12 machine.
set -eu

pkgs_build="build-essential pkg-config libasound2-dev libzmq3-dev libconfig-dev \
libsndfile1-dev libsystemd-dev libjansson-dev libsoxr-dev libmicrohttpd-dev libmosquitto-dev"
# mosquitto, prometheus (promtool) and chromium: the http and mqtt sinks
# tests talk to the real broker, scraper and browser.
pkgs_test="python3 python3-zmq python3-numpy python3-torch alsa-utils valgrind \
mosquitto mosquitto-clients prometheus chromium chromium-driver"
pkgs_demo="python3"
# PyTorch at its best: without OpenBLAS, Debian's torch runs its batch-1
# convolutions on netlib's reference BLAS (about 4x slower here), which would
# flatter trident's ratios in make bench.
pkgs_bench="libopenblas0-pthread"
pkgs_sanitize="clang libclang-rt-14-dev"
# procps: /bin/kill, the unit's ExecReload, which systemd-analyze verify
# (tests/integration/test_unit.sh) checks is executable; absent from minbase.
pkgs_deb="debhelper devscripts lintian fakeroot systemd procps"

want=""
for set in "$@"; do
    case "$set" in
    build)    want="$want $pkgs_build" ;;
    test)     want="$want $pkgs_test" ;;
    demo)     want="$want $pkgs_demo" ;;
    bench)    want="$want $pkgs_bench" ;;
    sanitize) want="$want $pkgs_sanitize" ;;
    deb)      want="$want $pkgs_deb" ;;
    *) echo "deps.sh: unknown package set '$set'" >&2; exit 64 ;;
    esac
done

missing=""
for p in $want; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = installed ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "trident: missing Debian packages; install them with:" >&2
    echo "  sudo apt-get install -y$missing" >&2
    exit 1
fi

echo "trident: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine are empty or stale: refresh once.
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >&2
