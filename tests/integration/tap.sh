# SPDX-License-Identifier: Apache-2.0
# tap.sh — sourced by the shell integration tests (test_*.sh): the repository
# root, a temporary folder removed at exit, and TAP lines for tests/run.sh.
# A test ends with `exit $failed`.
root=$(cd "$(dirname "$0")/../.." && pwd)
failed=0
ok()   { echo "ok - $1"; }
fail() { echo "not ok - $1"; failed=1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
