#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# test_spdx.sh — the licence line (issue 18): every source file of the tree
# carries "SPDX-License-Identifier: Apache-2.0" (packaging/spdx.sh), and the
# check itself catches a file without it, names it, and --add mends it.
# TAP lines for tests/run.sh.
set -u
. "$(dirname "$0")/tap.sh"

out=$(cd "$root" && sh packaging/spdx.sh 2>&1)
if [ $? -eq 0 ]; then ok "every source file has its SPDX line"; else fail "files without the SPDX line: $out"; fi

# a tree of its own (not git: the check falls back to find)
mkdir -p "$tmp/t/dsp"
printf '/* SPDX-License-Identifier: Apache-2.0 */\nint a;\n' >"$tmp/t/dsp/good.c"
printf '/* bad.c */\nint b;\n' >"$tmp/t/dsp/bad.c"
printf '#!/bin/sh\necho hi\n' >"$tmp/t/run.sh"
out=$(cd "$tmp/t" && GIT_DIR=/nonexistent sh "$root/packaging/spdx.sh" 2>&1)
rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q "dsp/bad.c" && echo "$out" | grep -q "run.sh" \
   && ! echo "$out" | grep -q "good.c"; then
    ok "a file without the line: exit 1, named (and only it)"
else
    fail "check of a bad tree: rc $rc: $out"
fi
(cd "$tmp/t" && GIT_DIR=/nonexistent sh "$root/packaging/spdx.sh" --add >/dev/null 2>&1)
out=$(cd "$tmp/t" && GIT_DIR=/nonexistent sh "$root/packaging/spdx.sh" 2>&1)
if [ $? -eq 0 ] && [ "$(head -n 1 "$tmp/t/run.sh")" = "#!/bin/sh" ] \
   && [ "$(sed -n 2p "$tmp/t/run.sh")" = "# SPDX-License-Identifier: Apache-2.0" ] \
   && [ "$(head -n 1 "$tmp/t/dsp/bad.c")" = "/* SPDX-License-Identifier: Apache-2.0 */" ]; then
    ok "--add: the line after #!, in C comment syntax in C; then the check passes"
else
    fail "--add did not mend the tree: $out; $(head -n 2 "$tmp/t/run.sh")"
fi
exit $failed
