#!/usr/bin/env bash
# The one prepared GPU check, at most ~8 minutes on a lent H100/H200, each step
# under its own timeout: environment and copy/FFT rates, `pytest -m gpu`, the kernel trace,
# zakotfs bench at the paper grid (batch 1 with the defaults and with the fastest settings,
# A/B against the previous operator window; batch 8 with 2 batches in flight), the BER
# beside every latency; every JSON and log tarred into $OUT/device_verify.tar.gz and a summary
# table printed last.
#
#   bash bench/device_verify.sh            # on the device machine, in the repository root
#
# The machine has no network: wheels it lacks (pyzmq, sigmf, pyfftw, tqdm and their needs)
# travel in .whl/ (download them here with `pip download -d .whl pyzmq sigmf pyfftw tqdm`
# and carry .whl); bench/device_run.sh installs them. Set ZAKOTFS_COMMIT to the commit
# under test.
set -u
OUT=${OUT:-out}
WORK="$OUT/verify"
mkdir -p "$WORK"
export OUT="$WORK" FRAMES=${FRAMES:-400}
log() { echo "== $(date -u +%H:%M:%S) $*"; }
step() { local limit=$1; shift; timeout "$limit" bash bench/device_run.sh "$@" || log "step $* ended with status $?"; }

step 60 env 2>&1 | tee "$WORK/env.log"
log "copy and FFT rates"
timeout 60 python3 - <<'EOF' 2>&1 | tee "$WORK/rates.log"
import json, os, time
import cupy as cp, numpy as np
out = {}
host = np.empty(1 << 24, np.complex64)                 # 128 MiB
pinned = cp.cuda.alloc_pinned_memory(host.nbytes)
dev = cp.empty(host.size, cp.complex64)
for name, src in (("pageable", host), ("pinned", np.frombuffer(pinned, np.complex64, host.size))):
    dev.set(src); cp.cuda.Device().synchronize()
    t = time.perf_counter(); dev.set(src); cp.cuda.Device().synchronize()
    out[f"h2d_{name}_GBps"] = host.nbytes / (time.perf_counter() - t) / 1e9
for n in (8192, 12288, 16384):
    a = cp.ones(((1 << 21) // n, n), cp.complex64)
    cp.fft.fft(a); cp.cuda.Device().synchronize()
    t = time.perf_counter()
    for _ in range(20): cp.fft.fft(a)
    cp.cuda.Device().synchronize()
    out[f"fft_{n}_GBps"] = 2 * a.nbytes * 20 / (time.perf_counter() - t) / 1e9
print(json.dumps(out, indent=1))
json.dump(out, open(os.path.join(os.environ["OUT"], "rates.json"), "w"), indent=1)
EOF
step 300 tests
step 150 trace
log "bench: defaults, fastest settings, the previous operator window, batch 8 in flight"
step 420 bench
if [ -n "${WITH_WINDOW_AB:-1}" ]; then
    timeout 120 python3 -m zakotfs.cli bench --preset paper --backend gpu --frames $FRAMES --cg-iterations 4 \
        --llr int8 --operator-window 4096 --json "$WORK/paper_cg4_int8_window4096.json" --quiet \
        || log "window A/B ended with status $?"
fi
tar -czf "${OUT%/verify}/device_verify.tar.gz" -C "$WORK" . 2>/dev/null || tar -czf "$WORK.tar.gz" -C "$WORK" .
log summary
python3 - "$WORK" <<'EOF'
import json, pathlib, sys
rows = []
for f in sorted(pathlib.Path(sys.argv[1]).glob("paper_*.json")):
    r = json.loads(f.read_text())
    lat = r.get("latency_us", {})
    piped = r.get("pipelined", {})
    rows.append((f.stem, r.get("batch"), r.get("cg_iterations"), lat.get("p50"), lat.get("p99"), lat.get("p999"),
                 lat.get("max"), r.get("deadline_us"), r.get("throughput_mbps"), piped.get("throughput_mbps"), r.get("ber")))
print(f"{'run':28s} {'batch':>5s} {'its':>3s} {'p50':>8s} {'p99':>8s} {'p99.9':>8s} {'max':>8s} {'deadline':>8s} {'Mbps':>7s} {'piped':>7s} {'BER':>9s}")
fmt = lambda v, w, p=0: (f"{v:{w}.{p}f}" if isinstance(v, (int, float)) else f"{'-':>{w}s}")
for r in rows:
    print(f"{r[0]:28s} {fmt(r[1], 5)} {fmt(r[2], 3)} " + " ".join(fmt(v, 8) for v in r[3:8])
          + f" {fmt(r[8], 7, 1)} {fmt(r[9], 7, 1)} {fmt(r[10], 9, 6) if r[10] is not None else '-':>9s}")
EOF
log done
