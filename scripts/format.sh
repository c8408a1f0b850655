#!/usr/bin/env bash
# Formats the tree's C++ and CUDA sources with .clang-format (Google style, 120 columns).
#   scripts/format.sh           reformat every tracked source in place
#   scripts/format.sh --check   change nothing; list the files that differ and exit 1 if any do
# The files formatted: tracked *.cpp *.h *.cu *.cuh, except test fixtures under tests/data/ (inputs
# of the checks' own tests, kept byte for byte). The ctest `format` runs the check; it needs the
# clang-format that scripts/setup.sh installs (Debian 12's clang-format 14: another version may
# format differently, so the check names the version it expects).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null 2>&1 || { echo "format: clang-format not found: run scripts/setup.sh" >&2; exit 1; }
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh' | grep -v '^tests/data/')
if [ "${1:-}" = "--check" ]; then
  version=$(clang-format --version | sed -n 's/.*version \([0-9]*\).*/\1/p')
  bad=()
  for f in "${files[@]}"; do
    if ! clang-format "$f" | cmp -s - "$f"; then bad+=("$f"); fi
  done
  if [ ${#bad[@]} -gt 0 ]; then
    printf 'format: %s is not formatted (run scripts/format.sh)\n' "${bad[@]}" >&2
    [ "$version" = 14 ] || echo "format: this is clang-format $version; the tree is formatted with 14" >&2
    exit 1
  fi
  echo "format: ${#files[@]} files formatted (clang-format $version)"
  exit 0
fi
clang-format -i "${files[@]}"
