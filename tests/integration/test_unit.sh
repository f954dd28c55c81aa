#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# test_unit.sh — the systemd unit: `systemd-analyze verify` must print nothing
# (it exits 0 on unknown keys and bad values, so any output is a failure), and
# the hardening score of `systemd-analyze security` must stay at or below
# 2.0 (--threshold is in tenths).  Verify runs on a copy whose ExecStart is the
# built tridentd, so the command line checked is a real executable.
# TAP lines for tests/run.sh.
set -u
. "$(dirname "$0")/tap.sh"
build=${TRIDENT_BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
unit=$root/packaging/trident.service
threshold=20

if [ ! -x "$build/bin/tridentd" ]; then
    fail "tridentd is not built in $build (daemon/main.c missing or not built): cannot verify ExecStart"
    exit 1
fi

grep -q '^ExecStart=/usr/sbin/tridentd ' "$unit" || fail "unit ExecStart is not /usr/sbin/tridentd"
sed "s|^ExecStart=/usr/sbin/tridentd |ExecStart=$build/bin/tridentd |" "$unit" >"$tmp/trident.service"

out=$(systemd-analyze verify --man=no "$tmp/trident.service" 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify is silent"
else echo "$out" | sed 's/^/# /'; fail "systemd-analyze verify (rc=$rc) printed something"; fi

# The check can fail: a misspelt key must make verify talk.
sed 's/^WatchdogSec=/WatchdogSecs=/' "$tmp/trident.service" >"$tmp/bad.service"
out=$(systemd-analyze verify --man=no "$tmp/bad.service" 2>&1)
[ -n "$out" ] && ok "verify reports a misspelt key" || fail "verify stayed silent on a misspelt key"

# Keys the issue requires, with their values.
for kv in Type=notify 'ExecReload=/bin/kill -HUP $MAINPID' 'RestartPreventExitStatus=64 78' \
          Restart=on-failure NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes \
          SupplementaryGroups=audio 'DeviceAllow=char-alsa rw' RestrictNamespaces=yes \
          'SystemCallFilter=@system-service' 'CapabilityBoundingSet=' MemoryDenyWriteExecute=yes; do
    grep -qxF "$kv" "$unit" && ok "unit has $kv" || fail "unit lacks $kv"
done
grep -q '^WatchdogSec=[1-9]' "$unit" && ok "unit has a WatchdogSec" || fail "unit has no WatchdogSec"

sec=$(systemd-analyze security --offline=true --threshold=$threshold "$tmp/trident.service" 2>&1)
rc=$?
echo "# $(echo "$sec" | grep 'Overall exposure')"
[ $rc -eq 0 ] && ok "security exposure at most $threshold/10" || { echo "$sec" | grep '✗' | sed 's/^/# /'; fail "security exposure above $threshold/10"; }
exit $failed
