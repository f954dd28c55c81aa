#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# spdx.sh — every source file says its licence in its first lines:
# "SPDX-License-Identifier: Apache-2.0" (https://spdx.dev), in the file's
# own comment syntax.
#
#   sh packaging/spdx.sh          list the files that lack it; exit 1 if any
#   sh packaging/spdx.sh --add    add it where it is missing (after a #! line)
#
# Run from the source tree's root.  "Source" is what git tracks (else what
# find sees) with these names: *.c *.h *.py *.sh *.mk *.in Makefile, the
# man pages (*.1 *.5 *.8), .ci/run, packaging/debian/rules and the systemd
# unit.  Data (recordings, models, corpora), Markdown and the Debian control
# files are not: their licence is stated in LICENSE and debian/copyright.
# config/trident.conf is generated (make conf) with the line already in it.
set -eu
TAG="SPDX-License-Identifier: Apache-2.0"
mode=${1:-check}

list() {
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files
    else
        find . -type f ! -path './.git/*' ! -path './build*' | sed 's|^\./||'
    fi | grep -E '(\.(c|h|py|sh|mk|in|1|5|8)$|(^|/)Makefile$|^\.ci/run$|^packaging/debian/rules$|\.service$)' \
       | grep -v -E '^tests/fuzz/(corpus|regress)/'
}

comment() {           # the line for file $1
    case "$1" in
        *.c|*.h) echo "/* $TAG */" ;;
        *.1|*.5|*.8) echo ".\\\" $TAG" ;;
        *) echo "# $TAG" ;;
    esac
}

missing=0
for f in $(list); do
    [ -f "$f" ] || continue
    if head -n 3 "$f" | grep -q "$TAG"; then
        continue
    fi
    if [ "$mode" = "--add" ]; then
        line=$(comment "$f")
        tmp="$f.spdx.$$"
        if head -n 1 "$f" | grep -q '^#!'; then
            { head -n 1 "$f"; echo "$line"; tail -n +2 "$f"; } >"$tmp"
        else
            { echo "$line"; cat "$f"; } >"$tmp"
        fi
        chmod --reference="$f" "$tmp" 2>/dev/null || true
        mv "$tmp" "$f"
        echo "spdx.sh: added to $f"
    else
        echo "spdx.sh: $f: no '$TAG' in its first 3 lines"
        missing=$((missing + 1))
    fi
done
if [ "$mode" != "--add" ] && [ "$missing" -gt 0 ]; then
    echo "spdx.sh: $missing file(s) without the licence line; sh packaging/spdx.sh --add adds it" >&2
    exit 1
fi
exit 0
