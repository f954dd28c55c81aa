#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# test_install.sh — `make install` honours PREFIX and DESTDIR, installs the
# programs, the unit (its paths following SBINDIR/SYSCONFDIR), the man pages,
# the example config and the model, and never overwrites an existing config.
# TAP lines for tests/run.sh.
set -u
. "$(dirname "$0")/tap.sh"
cd "$root" || exit 1
d=$tmp/dest

if ! make --no-print-directory install PREFIX=/opt/tri SYSCONFDIR=/opt/tri/etc DESTDIR="$d" >"$tmp/log" 2>&1; then
    sed 's/^/# /' "$tmp/log" | tail -20
    fail "make install"
    exit 1
fi
ok "make install PREFIX=/opt/tri DESTDIR=..."
for f in opt/tri/sbin/tridentd opt/tri/bin/trident-sub opt/tri/lib/systemd/system/trident.service \
         opt/tri/etc/trident/trident.conf opt/tri/share/man/man8/tridentd.8 \
         opt/tri/share/man/man5/trident.conf.5 opt/tri/share/man/man1/trident-sub.1 \
         opt/tri/bin/trident-train opt/tri/bin/trident-eval opt/tri/lib/trident/trident-prep \
         opt/tri/share/man/man1/trident-train.1 opt/tri/share/man/man1/trident-eval.1 \
         opt/tri/bin/trident-label opt/tri/share/man/man1/trident-label.1 opt/tri/share/trident/python/trident_label.py \
         opt/tri/share/trident/python/trident_train.py opt/tri/share/trident/python/dataset.py; do
    [ -f "$d/$f" ] && ok "installed /$f" || fail "missing /$f"
done
if [ -f model/cwru.safetensors ]; then
    [ -f "$d/opt/tri/share/trident/cwru.safetensors" ] && ok "installed the model" || fail "model not installed"
else
    fail "model/cwru.safetensors is missing (the default model, from the train helper): not installed"
fi
[ -x "$d/opt/tri/sbin/tridentd" ] && ok "tridentd is executable" || fail "tridentd not executable"
# Built for /usr/local, installed under /opt/tri: the binary finds the model
# of its own prefix (issue 16 item 14), and --no-publish needs no port.
"$d/opt/tri/sbin/tridentd" --replay tests/fixtures/cwru/ball.wav --no-publish --stats-interval 0 \
    >"$tmp/out" 2>"$tmp/err"
grep -q "model $d/opt/tri/share/trident/cwru.safetensors:" "$tmp/err" && [ "$(grep -c '"label"' "$tmp/out")" -gt 0 ] &&
    ok "the installed tridentd uses the model of its own prefix" ||
    fail "installed tridentd: $(head -2 "$tmp/err")"
grep -qx 'ExecStart=/opt/tri/sbin/tridentd -c /opt/tri/etc/trident/trident.conf' \
    "$d/opt/tri/lib/systemd/system/trident.service" && ok "unit paths follow SBINDIR and SYSCONFDIR" ||
    fail "unit ExecStart does not follow SBINDIR/SYSCONFDIR"
grep -q '/opt/tri/share/trident/python/trident_train.py' "$d/opt/tri/bin/trident-train" &&
    grep -q '/opt/tri/lib/trident/trident-prep' "$d/opt/tri/bin/trident-train" &&
    ok "trident-train runs the installed modules and trident-prep" || fail "trident-train launcher paths"
/usr/bin/python3 "$d/opt/tri/share/trident/python/trident_train.py" --help >"$tmp/help" 2>&1 && grep -q 'usage: trident-train' "$tmp/help" &&
    ok "installed trident_train.py --help runs from its folder alone" || fail "installed trident_train.py --help: $(tail -2 "$tmp/help")"
[ -z "$(find "$d" -path "$d/opt" -prune -o -print | grep -v "^$d\$")" ] && ok "nothing outside PREFIX" ||
    fail "files outside PREFIX: $(find "$d" -path "$d/opt" -prune -o -print | head -3)"

echo "workers = 1;  # the operator's" >"$d/opt/tri/etc/trident/trident.conf"
make --no-print-directory install PREFIX=/opt/tri SYSCONFDIR=/opt/tri/etc DESTDIR="$d" >"$tmp/log" 2>&1
grep -q "the operator's" "$d/opt/tri/etc/trident/trident.conf" && ok "an existing config is kept" ||
    fail "make install overwrote the config"
exit $failed
