#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# test_deb.sh — `make deb` builds the Debian package (dpkg-buildpackage with
# hardening=+all, then lintian failing on errors and warnings), and the
# package holds what an operator needs: both programs, the unit, the example
# config as a conffile, the default model and the three man pages.  The
# binaries are checked for the hardening flags (PIE, BIND_NOW, stack
# protector).  TAP lines for tests/run.sh.
set -u
. "$(dirname "$0")/tap.sh"
cd "$root" || exit 1

if ! make --no-print-directory deb >"$tmp/log" 2>&1; then
    sed 's/^/# /' "$tmp/log" | tail -40
    fail "make deb"
    exit 1
fi
ok "make deb (dpkg-buildpackage, lintian clean)"
grep -i '^[EW]: ' "$tmp/log" | sed 's/^/# /'

version=$(cat VERSION)
deb=build/deb/trident_${version}_$(dpkg --print-architecture).deb
[ -f "$deb" ] && ok "package $deb" || { fail "no $deb"; exit 1; }

dpkg -c "$deb" | awk '{print $6}' >"$tmp/files"
need() { # path, what
    if grep -qxF "./$1" "$tmp/files"; then ok "package has /$1"
    else fail "package lacks /$1${2:+ ($2)}"; fi
}
need usr/sbin/tridentd
need usr/bin/trident-sub
need lib/systemd/system/trident.service
need etc/trident/trident.conf
need usr/share/man/man8/tridentd.8.gz
need usr/share/man/man5/trident.conf.5.gz
need usr/share/man/man1/trident-sub.1.gz
need usr/bin/trident-train
need usr/bin/trident-eval
need usr/lib/trident/trident-prep
need usr/share/trident/python/trident_train.py
need usr/share/man/man1/trident-train.1.gz
need usr/share/man/man1/trident-eval.1.gz
if [ -f model/cwru.safetensors ]; then
    need usr/share/trident/cwru.safetensors
else
    fail "model/cwru.safetensors is missing from the source tree (the default model, produced by the train helper), so the package has no default model"
fi

dpkg-deb -e "$deb" "$tmp/control"
grep -qxF /etc/trident/trident.conf "$tmp/control/conffiles" 2>/dev/null &&
    ok "/etc/trident/trident.conf is a conffile" || fail "/etc/trident/trident.conf is not a conffile"
grep -q 'systemctl\|deb-systemd' "$tmp/control/postinst" 2>/dev/null &&
    ok "postinst enables the unit (dh_installsystemd)" || fail "postinst does not handle the unit"

# The unit's ExecReload runs /bin/kill, which procps ships (not Essential).
dpkg-deb -f "$deb" Depends | grep -qw procps &&
    ok "package depends on procps (/bin/kill for ExecReload)" || fail "package does not depend on procps"

dpkg-deb -f "$deb" Depends | grep -qw python3-numpy &&
    ok "package depends on python3-numpy (trident-train, trident-eval)" || fail "no python3-numpy dependency"
dpkg-deb -f "$deb" Recommends | grep -qw python3-torch &&
    ok "package recommends python3-torch" || fail "python3-torch not recommended"
dpkg-deb -x "$deb" "$tmp/root"
cmp -s "$tmp/root/etc/trident/trident.conf" config/trident.conf &&
    ok "installed config is config/trident.conf" || fail "installed config differs from config/trident.conf"
grep -qx 'ExecStart=/usr/sbin/tridentd -c /etc/trident/trident.conf' \
    "$tmp/root/lib/systemd/system/trident.service" &&
    ok "unit runs /usr/sbin/tridentd -c /etc/trident/trident.conf" || fail "unit ExecStart paths"
for b in usr/sbin/tridentd usr/bin/trident-sub; do
    f=$tmp/root/$b
    h=$(readelf -h "$f" 2>/dev/null | grep 'Type:')
    d=$(readelf -d "$f" 2>/dev/null)
    case "$h" in *DYN*) ok "$b is PIE" ;; *) fail "$b is not PIE" ;; esac
    echo "$d" | grep -q 'BIND_NOW\|FLAGS_1.*NOW' && ok "$b is linked with -z now" || fail "$b lacks BIND_NOW"
    readelf -W --dyn-syms "$f" | grep -q '__stack_chk_fail\|__.*_chk@' &&
        ok "$b uses the stack protector / fortified functions" || fail "$b shows no hardening symbols"
done
exit $failed
