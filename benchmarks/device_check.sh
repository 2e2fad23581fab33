#!/usr/bin/env bash
# GPU readiness, in one run on a CUDA machine (about 10 minutes on one H200):
#   1. the unit tests, with the CUDA tests (tests/evaluation/test_cuda.py) that CPUs skip;
#   2. the evaluator against the report-style loop on the GPU (benchmarks/evaluator_speed.py);
#   3. configurations per second with and without batched cells (benchmarks/batching.py);
#   4. the 6,400-cell report 002 grid's estimated time (benchmarks/grid_scale.py);
#   5. halving with survivors continuing from checkpoints against the grid
#      (benchmarks/halving_cost.py), and a TPE search replayed from a table made there;
#   6. the fixed cost of a trial on the GPU, SQLite and journal (benchmarks/trial_cost.py).
# Usage: bash benchmarks/device_check.sh [OUT_DIR]
# On the device tool's machine, carry the wheels pip there lacks (optuna, deap, mlxtend, ...)
# in .whl/ (see the device README); they are installed first when present.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-device-check}}
mkdir -p "$out"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-')" | tee "$out/device.txt"
status=0
step() {  # step NAME LIMIT_SECONDS COMMAND...: one step, its log in OUT/NAME.log
    local name=$1 limit=$2; shift 2
    echo "== $name"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.log" | tail -25
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "== $name FAILED"; status=1; }
}
step tests 200 python3 -m pytest -q -x -m "not process and not slow" -p no:cacheprovider tests
step evaluator 120 python3 benchmarks/evaluator_speed.py --device cuda --rounds 2 --json
step batching 90 python3 benchmarks/batching.py --device cuda --configs 12 --epochs 1,6 --rounds 2
step grid-scale 90 python3 benchmarks/grid_scale.py --device cuda --per-model 3 --json
step halving 90 python3 benchmarks/halving_cost.py --device cuda --rounds 1 --epochs 6
table() {  # a 12-cell grid with curves on the GPU, exported, then TPE replayed from it
    local db="sqlite:///$out/table.db" flags=(--space quick --epochs 4 --device cuda --no-progress)
    python3 -m pairsearch grid "${flags[@]}" --curves --storage "$db" --study g &&
    python3 -m pairsearch export --storage "$db" --study g --out "$out/table.json.gz" &&
    python3 -m pairsearch tpe "${flags[@]}" --trials 20 --table "$out/table.json.gz" \
        --storage "$db" --study replay
}
export out; export -f table  # timeout runs programs, not shell functions
step table 90 bash -c table
step trial-cost 120 python3 benchmarks/trial_cost.py --device cuda --rounds 1 --writes 10
exit $status
