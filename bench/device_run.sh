#!/usr/bin/env bash
# One call on the lent GPU machine (see docs/status.md): GPU tests and benchmarks, results
# under $OUT. Usage: bash bench/device_run.sh STEP...  with STEP in
#   env      nvidia-smi, library versions
#   tests    python -m pytest -m gpu (CPU/GPU agreement, CuPy emulator)
#   suite    the whole test suite (auto backend = the GPU) on 12 workers
#   profile  python -m bench.gpu_profile: device time of each piece of the chain, paper grid
#   bench    zakotfs bench, paper grid: batch 1 at the default 12 CG iterations (with two
#            batches in flight, the exact operator, op-by-op and staged runs beside it); batch 1
#            with 4 CG iterations and int8 LLRs (the latency headline); batch 1 with 8; batch 8
#            with 4 and int8 LLRs (throughput); batch 1 with the paper estimator
#   trace    python -m bench.kernel_trace: every kernel of the chain (4 CG iterations)
#   baseline zakotfs bench, paper grid, with the sparse-matrix CG baselines on one frame
#   sweep    python -m bench.latency_sweep on the GPU (every grid, baselines on two)
#   emulator the channel emulator's rate with CuPy
# Set ZAKOTFS_COMMIT to the commit under test: the copied tree's git metadata may be stale.
# The machine has no network: wheels missing there (pyzmq, sigmf and their needs) travel in
# .whl/ (carry it) and are installed to /tmp/site.
set -u
OUT=${OUT:-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
zk="python3 -m zakotfs.cli"
FRAMES=${FRAMES:-1000}     # timed frames per bench configuration
log() { echo "== $(date -u +%H:%M:%S) $*"; }

for step in "$@"; do
    case $step in
    env)
        log env
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
        python3 -c "import cupy, numpy, scipy, numba; print('cupy', cupy.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'numba', numba.__version__, 'cuda runtime', cupy.cuda.runtime.runtimeGetVersion())"
        ;;
    tests)
        log "pytest -m gpu"
        timeout 300 python3 -m pytest -q -m gpu -p no:cacheprovider -o addopts="--import-mode=importlib" \
            -rs 2>&1 | tee "$OUT/gpu_tests.log" | tail -30
        ;;
    suite)
        log "whole suite"
        timeout 400 python3 -m pytest -q -m "not slow" -n 12 -p no:cacheprovider 2>&1 | tee "$OUT/suite.log" | tail -30
        ;;
    profile)
        log profile
        timeout 150 python3 -m bench.gpu_profile --preset paper --backend gpu --json "$OUT/profile.json"
        ;;
    bench)
        log "bench paper b1 (12 CG iterations, the default), compared with the exact operator, op by op, staged"
        timeout 200 $zk bench --preset paper --backend gpu --frames $FRAMES --batch 1 --json "$OUT/paper_b1.json" --quiet
        log "bench paper b1, 4 CG iterations, int8 LLRs (the latency headline)"
        timeout 120 $zk bench --preset paper --backend gpu --frames $FRAMES --cg-iterations 4 --llr int8 --json "$OUT/paper_cg4_int8.json" --quiet
        log "bench paper b1, 8 CG iterations"
        timeout 120 $zk bench --preset paper --backend gpu --frames $FRAMES --cg-iterations 8 --json "$OUT/paper_cg8.json" --quiet
        log "bench paper b8, 4 CG iterations, int8 LLRs (throughput)"
        timeout 150 $zk bench --preset paper --backend gpu --frames $((FRAMES * 8 / 5)) --batch 8 --cg-iterations 4 --llr int8 --json "$OUT/paper_b8.json" --quiet
        log "bench paper estimator"
        timeout 120 $zk bench --preset paper --backend gpu --frames $FRAMES --estimator paper --json "$OUT/paper_est_paper.json" --quiet
        ;;
    trace)
        log "kernel trace, paper, 4 CG iterations"
        timeout 150 python3 -m bench.kernel_trace --preset paper --cg-iterations 4 --top 30 --json "$OUT/kernels_cg4.json"
        ;;
    baseline)
        log "baselines"
        timeout 300 $zk bench --preset paper --backend gpu --frames 50 --baseline 1 --json "$OUT/paper_baselines.json" --quiet
        ;;
    sweep)
        log sweep
        timeout ${SWEEP_TIMEOUT:-330} python3 -m bench.latency_sweep --backend gpu --frames 200 --baseline 1 \
            --baseline-grids 1024x16,4096x32 --max-seconds-per-point 60 --tag h100 --out-dir "$OUT" 2>&1 | tail -22
        ;;
    emulator)
        log "emulator on the GPU"
        timeout 120 python3 -m bench.channel_plots --gpu-throughput --out "$OUT"
        ;;
    *) echo "unknown step $step"; exit 2 ;;
    esac
done
log done
