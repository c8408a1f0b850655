#!/usr/bin/env bash
# usage: rank1_set.sh KEY=VALUE COMMAND...
# Runs COMMAND; on rank 1 of an mpirun job (OMPI_COMM_WORLD_RANK=1) with `--set KEY=VALUE`
# appended: a job whose ranks disagree (tests/CMakeLists.txt, cli_ranks_disagree_*).
set -u
setting=$1
shift
[ "${OMPI_COMM_WORLD_RANK:-0}" = 1 ] && exec "$@" --set "$setting"
exec "$@"
