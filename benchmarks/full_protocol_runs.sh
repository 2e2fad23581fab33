#!/bin/bash
# The studies benchmarks/full_protocol.py compares: report 002's searches at its full
# protocol (3-fold CV, 25 epochs, 1000 pairs, seed 0), one process at a time, then the
# retests of the grid-free searches. Run `pairsearch run report002 --storage URL` first
# for the exhaustive grid, the genetic algorithm's seed 0 and their retests.
#
# Usage: bash benchmarks/full_protocol_runs.sh STORAGE_URL [flags for every command]
# (flags tpe, genetic, grid and retest all take: --device, --precision)
# e.g.   bash benchmarks/full_protocol_runs.sh sqlite:///bench/experiments.db \
#            --device cpu --precision fp32
# About 75 min of a 2-core CPU (halving 45 of them). Every command resumes when run again.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: bash benchmarks/full_protocol_runs.sh STORAGE_URL [pairsearch flags]" >&2
  exit 2
fi
storage=$1; shift
common=(--storage "$storage" --epochs 25 --no-progress "$@")
run() { echo "$(date -u +%T) $*"; pairsearch "$@"; }
for seed in 0 1 2; do
  suffix=$([ "$seed" = 0 ] && echo "" || echo "-s$seed")
  run tpe "${common[@]}" --trials 200 --strategy-seed "$seed" --study "report002-tpe$suffix"
  run tpe "${common[@]}" --trials 200 --pruner hyperband --strategy-seed "$seed" \
      --study "report002-tpe-hyperband$suffix"
  if [ "$seed" != 0 ]; then  # seed 0 is `pairsearch run report002`'s genetic stage
    run genetic "${common[@]}" --strategy-seed "$seed" --study "report002-genetic$suffix"
  fi
done
run genetic "${common[@]}" --strategy-seed 0 --halving --study report002-genetic-halving
run grid "${common[@]}" --halving --min-epochs 1 --study report002-halving
for study in report002-tpe report002-tpe-s1 report002-tpe-s2; do
  run retest --storage "$storage" --study "$study" --top 3 --no-progress "$@"
done
