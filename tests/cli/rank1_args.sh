#!/usr/bin/env bash
# usage: rank1_args.sh [--swap FROM TO] [--add ARG]... -- COMMAND...
# Runs COMMAND; on rank 1 of an mpirun job (OMPI_COMM_WORLD_RANK=1) with every argument FROM
# replaced by TO and the --add arguments appended: a job whose ranks disagree on their command
# line (tests/CMakeLists.txt, cli_sweep_ranks_disagree_*).
set -u
from= to= add=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  case $1 in
    --swap) from=$2 to=$3; shift 3 ;;
    --add) add+=("$2"); shift 2 ;;
    *) echo "rank1_args.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
shift
[ "${OMPI_COMM_WORLD_RANK:-0}" = 1 ] || exec "$@"
cmd=()
for a in "$@"; do
  if [ -n "$from" ] && [ "$a" = "$from" ]; then cmd+=("$to"); else cmd+=("$a"); fi
done
exec "${cmd[@]}" "${add[@]}"
