"""Scale-out on Ray (``streaming.actor_pool``) on this machine: what the actors add and what
they sustain.

Three parts, each a key of the results JSON (a run of one part keeps the others' results):

``scaling``
    A local Ray instance, 1 and then 2 CPU actors decoding the same frames of ``--preset``
    (Veh-A at 20 dB, ``--frames`` frames cycling through ``--distinct`` ones, batches of one
    frame, 2 in flight an actor; ``--repeat`` times, alternating), and the receiver of ``zakotfs rx`` without ``--workers``
    on the same frames (this process, each batch of 2 split between 2 CPU worker processes,
    ``zakotfs.pipelined.PipelinedReceiver``): frames/s of each, the 2-to-1 ratio, whether
    the frames came back in order and whether the actors' bits are the single receiver's;
    the ratio is that of the medians.
``overhead``
    A local Ray instance and actors that do no work (the result: one bit): submit-to-result
    round trips one at a time for an empty batch (one sample), one frame of the demo grid,
    one of the paper grid and a batch of 8 paper frames (p50, p99, and the payload over the
    p50: the object transfer rate), and the batches/s that 2 such actors with 2 in flight
    each return; set against the frame times of the demo grid (1024x16 at 15.36 MHz) and
    the paper grid (16384x32 at 245.76 MHz).
``two_node``
    Two Ray nodes on this machine (``ray.cluster_utils.Cluster``: a head and a second
    raylet started as separate processes, one CPU each, advertising the custom resources
    ``node1`` and ``node2``): a stream of ``--preset tiny`` frames from a recording through the
    runner (acquisition, policy ``block``) to 2 receiver actors, one on each node; one
    actor's process is killed (SIGKILL) once a third of the frames are out; every frame
    decoded or counted lost, in order. Then the cross-node transfer rate (a paper frame, and
    a batch of 8, from this process to an actor on the other node, against one on this
    node: one at a time, and batches of 8 with 2 in flight), and ``zakotfs rx --cluster
    ADDRESS --workers 2 --policy block`` joining the same cluster from another process.

Writes ``bench/results/ray_scaleout_2core.json`` (and ``ray_scaleout_2core.png``).

Usage: ``python -m bench.ray_scaleout [scaling] [overhead] [two_node] [--out PATH]``.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import ray

from streaming.acquisition import FrameAcquirer
from streaming.actor_pool import ActorPool
from streaming.io import open_source
from streaming.runner import PipelineRunner
from zakotfs import preset
from zakotfs.benchmark import make_frames, run_metadata
from zakotfs.pipelined import PipelinedReceiver
from zakotfs.receiver import Receiver

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "ray_scaleout_2core.json"
OBJECT_STORE = 512 * 2**20


def no_work(config, options, batch):
    """``make_process`` of an actor that does nothing: one bit a batch."""
    return lambda frames: types.SimpleNamespace(bits=np.zeros((1, 1), np.uint8))


def keep_full(pool: ActorPool, batches: list) -> tuple[list, float]:
    """Submit ``batches`` keeping ``pool.depth`` in flight, collect every result in order;
    (results, seconds)."""
    results, waiting, in_flight = [], list(batches), 0
    start = time.perf_counter()
    while waiting or in_flight:
        while waiting and in_flight < pool.depth:
            pool.submit(waiting.pop(0))
            in_flight += 1
        results.append(pool.collect())
        in_flight -= 1
    return results, time.perf_counter() - start


def _local_ray(cpus: int = 2) -> None:
    ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=OBJECT_STORE, log_to_driver=False)


def scaling(args) -> dict:
    config = preset(args.preset)
    data = make_frames(config, args.distinct)
    frames = data.frames.astype(np.complex64)
    order = [k % args.distinct for k in range(args.frames)]
    receiver = Receiver(config, backend="cpu", quiet=True)
    receiver.warm_up(2)
    single = PipelinedReceiver(receiver, 2, depth=1, copy=True, workers=2)
    single.submit(frames[:2])
    single.collect()                                                            # warm
    start = time.perf_counter()
    reference = []
    for k in range(0, args.frames, 2):
        single.submit(frames[order[k:k + 2]])
        reference += list(single.collect().bits[:, None])
    single.close()
    out = {"preset": args.preset, "frames": args.frames, "distinct": args.distinct, "batch": 1,
           "in_flight_per_actor": 2, "frame_time_ms": config.wire_time * 1e3,
           "single_receiver": {"frames_per_s": args.frames / (time.perf_counter() - start)}}
    _local_ray()
    try:
        for repeat in range(args.repeat):
            for actors in (1, 2):
                pool = ActorPool(config, {"backend": "cpu"}, actors=actors, batch=1)
                try:
                    keep_full(pool, [frames[k:k + 1] for k in order[:2 * actors]])         # warm
                    results, seconds = keep_full(pool, [frames[k:k + 1] for k in order])
                    stats = pool.stats()
                finally:
                    pool.close()
                run = out.setdefault(f"actors_{actors}", {"frames_per_s": [], "runs": []})
                run["frames_per_s"].append(args.frames / seconds)
                run["runs"].append({
                    "identical_bits_to_single_receiver": all(np.array_equal(r.bits, ref)
                                                             for r, ref in zip(results, reference)),
                    "in_order": len(results) == args.frames,
                    "ber": float(np.mean([np.mean(r.bits[0] != data.bits[k]) for r, k in zip(results, order)])),
                    "per_actor": [{k: a[k] for k in ("name", "frames", "compute_ms", "round_trip_ms")}
                                  for a in stats["per_actor"]]})
    finally:
        ray.shutdown()
    one, two = (np.median(out[f"actors_{k}"]["frames_per_s"]) for k in (1, 2))
    out["ratio_2_to_1"] = float(two / one)
    out["ratio_2_to_1_each_repeat"] = [b / a for a, b in zip(out["actors_1"]["frames_per_s"],
                                                              out["actors_2"]["frames_per_s"])]
    out["identical_bits_to_single_receiver"] = all(r["identical_bits_to_single_receiver"]
                                                   for k in (1, 2) for r in out[f"actors_{k}"]["runs"])
    return out


def _round_trips(pool: ActorPool, frames: np.ndarray, n: int) -> dict:
    times = []
    for _ in range(n + 3):
        start = time.perf_counter()
        pool.submit(frames)
        pool.collect()
        times.append(time.perf_counter() - start)
    ms = np.asarray(times[3:]) * 1e3
    p50 = float(np.percentile(ms, 50))
    return {"bytes": int(frames.nbytes), "rounds": n, "p50_ms": p50, "p99_ms": float(np.percentile(ms, 99)),
            "transfer_mb_s": frames.nbytes / 1e6 / (p50 / 1e3)}


def _payloads() -> dict:
    demo, paper = preset("demo"), preset("paper")
    return {"empty": (1, 1), "demo_frame": (1, demo.cp_len + demo.MN), "paper_frame": (1, paper.cp_len + paper.MN),
            "paper_batch_8": (8, paper.cp_len + paper.MN)}


def overhead(args) -> dict:
    demo, paper = preset("demo"), preset("paper")
    out = {"frame_time_ms": {"demo": demo.wire_time * 1e3, "paper": paper.wire_time * 1e3}, "one_at_a_time": {}}
    _local_ray()
    try:
        pool = ActorPool(demo, {"backend": "cpu"}, actors=1, batch=8, in_flight=1, make_process=no_work)
        try:
            for name, shape in _payloads().items():
                frames = np.ones(shape, np.complex64)
                out["one_at_a_time"][name] = _round_trips(pool, frames, args.rounds if shape[1] < 10**5 else 50)
        finally:
            pool.close()
        pool = ActorPool(demo, {"backend": "cpu"}, actors=2, batch=8, in_flight=2, make_process=no_work)
        try:
            for name in ("empty", "demo_frame", "paper_frame", "paper_batch_8"):
                frames = np.ones(_payloads()[name], np.complex64)
                n = {"paper_frame": 300, "paper_batch_8": 60}.get(name, 2000)
                keep_full(pool, [frames] * 20)
                _, seconds = keep_full(pool, [frames] * n)
                out.setdefault("pipelined_2_actors_2_in_flight", {})[name] = {
                    "batches_per_s": n / seconds, "mb_s": n * frames.nbytes / 1e6 / seconds}
        finally:
            pool.close()
    finally:
        ray.shutdown()
    empty = out["one_at_a_time"]["empty"]["p50_ms"]
    out["empty_round_trip_over_frame_time"] = {k: empty / v for k, v in out["frame_time_ms"].items()}
    return out


def _recording(folder: Path, frames: int) -> Path:
    path = folder / "tiny.h5"
    for command in (["tx", "--preset", "tiny", "--out", str(folder / "tx.h5"), "--frames", str(frames), "--seed", "3"],
                    ["channel", "--in", str(folder / "tx.h5"), "--out", str(path), "--snr", "25", "--seed", "4"]):
        subprocess.run([sys.executable, "-m", "zakotfs.cli", *command], check=True, capture_output=True)
    return path


def two_node(args) -> dict:
    from ray.cluster_utils import Cluster

    config = preset("tiny")
    folder = Path(tempfile.mkdtemp(prefix="zakotfs-ray-"))
    recording = _recording(folder, args.stream_frames)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"node1": 1},
                                                            "include_dashboard": False,
                                                            "object_store_memory": OBJECT_STORE // 2})
    cluster.add_node(num_cpus=1, resources={"node2": 1}, object_store_memory=OBJECT_STORE // 2)
    out = {"cluster": {"address": cluster.address, "nodes": 2, "cpus_per_node": 1}}
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        pool = ActorPool(config, {"backend": "cpu"}, actors=2, batch=1, in_flight=2)
        source, acquirer = open_source(str(recording)), FrameAcquirer(config)
        seqs: list[int] = []
        killed = {}

        def sink(result, metas):
            seqs.extend(m["seq"] for m in metas)
            if len(seqs) >= args.stream_frames // 3 and not killed:
                victim = pool.actor_stats[0]
                killed.update(actor=victim.name, node=victim.node, pid=victim.pid, after_frames=len(seqs))
                os.kill(victim.pid, signal.SIGKILL)

        runner = PipelineRunner(source, acquirer.push, pool, sink, acquire_flush=acquirer.flush, policy="block",
                                batch_frames=1, queue_frames=16)
        try:
            stats = runner.run()
            scaleout = pool.stats()
        finally:
            pool.close()
        out["stream"] = {
            "frames_in_recording": args.stream_frames, "frames_acquired": stats.frames_in,
            "frames_decoded": stats.frames_out, "frames_failed": stats.frames_failed,
            "frames_dropped": stats.frames_dropped, "in_order": seqs == sorted(seqs),
            "every_frame_decoded_or_counted": stats.frames_out + stats.frames_failed + stats.frames_dropped
            == stats.frames_in,
            "killed": killed, "nodes_used": len({a["node"] for a in scaleout["per_actor"] if a["frames"]}),
            "scaleout": scaleout}
        out["cross_node_transfer"] = _cross_node()
    finally:
        ray.shutdown()
    out["rx_cluster_cli"] = _rx_cli(cluster.address, recording, folder)
    cluster.shutdown()
    return out


def _cross_node() -> dict:
    """Round trips of a paper frame and a batch of 8 from this node's object store to an
    actor on the other node (``node2``) and of the same to one on this node."""
    paper = preset("paper")
    out = {}
    for where, resources in (("same_node", {"node1": 0.01}), ("other_node", {"node2": 0.01})):
        pool = ActorPool(paper, {"backend": "cpu"}, actors=1, batch=8, in_flight=2, make_process=no_work,
                         resources=resources)
        try:
            out[where] = {name: _round_trips(pool, np.ones(_payloads()[name], np.complex64), 30)
                          for name in ("paper_frame", "paper_batch_8")}
            batch = np.ones(_payloads()["paper_batch_8"], np.complex64)
            _, seconds = keep_full(pool, [batch] * 40)
            out[where]["pipelined_paper_batch_8_2_in_flight"] = {"batches_per_s": 40 / seconds,
                                                                 "mb_s": 40 * batch.nbytes / 1e6 / seconds}
        finally:
            pool.close()
    return out


def _rx_cli(address: str, recording: Path, folder: Path) -> dict:
    report = folder / "report.json"
    command = ["zakotfs", "rx", "--in", str(recording), "--cluster", address, "--workers", "2", "--policy", "block",
               "--json", "--report", str(report)]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "zakotfs.cli", *command[1:]], capture_output=True, text=True)
    result = {"command": " ".join(command).replace(str(folder), "TMP"), "exit_status": done.returncode,
              "wall_s": time.perf_counter() - start}
    if done.returncode == 0:
        r = json.loads(report.read_text())
        result.update(frames=r["frames"], frames_lost=r["frames_lost"], ber=r["ber"],
                      nodes=r["scaleout"]["nodes"], per_actor_frames=[a["frames"] for a in r["scaleout"]["per_actor"]])
    else:
        result["stderr"] = done.stderr[-2000:]
    return result


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if "overhead" in results:
        trips = results["overhead"]["one_at_a_time"]
        names = list(trips)
        ax = axes[0]
        ax.bar(names, [trips[n]["p50_ms"] for n in names], label="round trip p50")
        ax.scatter(names, [trips[n]["p99_ms"] for n in names], color="k", zorder=3, label="p99")
        for grid, ms in results["overhead"]["frame_time_ms"].items():
            ax.axhline(ms, ls="--", color="C1" if grid == "demo" else "C2", label=f"{grid} frame time {ms:.2f} ms")
        ax.set_yscale("log")
        ax.set_ylabel("ms, submit to result (actor does no work)")
        ax.set_title("Ray's per-batch overhead, one at a time")
        ax.legend(fontsize=8)
    if "scaling" in results:
        s = results["scaling"]
        ax = axes[1]
        labels = ["rx, 2 CPU workers", "1 actor", "2 actors"]
        values = [s["single_receiver"]["frames_per_s"], np.median(s["actors_1"]["frames_per_s"]),
                  np.median(s["actors_2"]["frames_per_s"])]
        ax.bar(labels, values)
        for x, key in ((1, "actors_1"), (2, "actors_2")):
            ax.scatter([x] * len(s[key]["frames_per_s"]), s[key]["frames_per_s"], color="k", zorder=3, s=12)
        ax.set_ylabel("frames/s (bars: median of the runs, dots: each run)")
        ax.set_title(f"{s['preset']} grid on 2 cores: 2 actors / 1 = {s['ratio_2_to_1']:.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("parts", nargs="*", default=["scaling", "overhead", "two_node"],
                    choices=["scaling", "overhead", "two_node"])
    ap.add_argument("--preset", default="demo", help="scaling: the frame configuration")
    ap.add_argument("--frames", type=int, default=40, help="scaling: frames a run")
    ap.add_argument("--distinct", type=int, default=10, help="scaling: distinct frames")
    ap.add_argument("--repeat", type=int, default=3, help="scaling: runs of 1 and of 2 actors, alternating")
    ap.add_argument("--rounds", type=int, default=300, help="overhead: round trips a small payload")
    ap.add_argument("--stream-frames", type=int, default=150, help="two_node: frames in the recording")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for part in args.parts:
        print(f"bench.ray_scaleout: {part}", file=sys.stderr)
        results[part] = {"meta": {**run_metadata(sys.argv), "ray": ray.__version__,
                                  "load_average_before": os.getloadavg()},
                         **globals()[part](args)}
        args.out.write_text(json.dumps(results, indent=2, default=float))
    plot(results, args.out.with_suffix(".png"))
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "meta"} for k, v in results.items()}, indent=1,
                     default=float)[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
