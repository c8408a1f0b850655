#!/usr/bin/env bash
# usage: expect.sh EXIT_CODE REGEX -- COMMAND...
# Runs COMMAND, and passes when it exits with EXIT_CODE and its combined output matches the
# extended regular expression REGEX (newlines in the output read as spaces). Prints the command, its exit code and output either way.
set -u
want_code=$1
pattern=$2
shift 2
[ "$1" = "--" ] && shift
out=$("$@" 2>&1)
code=$?
echo "\$ $*"
echo "$out"
echo "(exit code $code; expected $want_code and output matching: $pattern)"
if [ "$code" -ne "$want_code" ]; then
  echo "FAIL: exit code $code, expected $want_code"
  exit 1
fi
# the pattern may span lines: match against the output with newlines turned into spaces
if ! grep -Eq -- "$pattern" <<<"$(tr '\n' ' ' <<<"$out")"; then
  echo "FAIL: output does not match $pattern"
  exit 1
fi
echo "PASS"
