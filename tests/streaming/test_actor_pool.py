"""Scale-out on Ray (local instance, CPU actors): frame order, the bits of a single receiver,
an actor killed mid-stream, bounded batches in flight and counted drops, fast one-line
failures."""
import json
import subprocess
import sys
import time
import types

import h5py
import numpy as np
import pytest
import ray

from streaming.actor_pool import ActorPool, start_ray
from streaming.runner import PipelineRunner
from zakotfs import preset
from zakotfs.cli import main

pytestmark = pytest.mark.timeout(120)

CONFIG = preset("tiny")
L = 64                          # frame length of the stand-in receivers


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One small local Ray instance for the module (a 2-core CI box: 2 logical CPUs, a
    200 MB object store, no dashboard)."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False)
    yield
    ray.shutdown()


def stand_in(delay_s: float = 0.0, jitter: bool = False):
    """``make_process`` of an actor whose result for frame k (all samples k) is the 32 bits of
    k, after ``delay_s`` per batch (with ``jitter``: 0 to 4 times it, by frame number, so that
    the actors finish out of order). A closure, so that Ray ships it by value."""

    def make(config, options, batch):
        def process(frames):
            seqs = frames[:, 0].real.astype(np.int64)
            time.sleep(delay_s * (float(np.sum((seqs * 7919) % 5)) if jitter else 1.0))
            bits = np.unpackbits(seqs.astype(">u4").view(np.uint8)).reshape(len(seqs), 32)
            return types.SimpleNamespace(bits=bits, llr=bits.astype(np.float32))
        return process

    return make


def frames_of(seqs) -> np.ndarray:
    return np.repeat(np.asarray(seqs, np.complex64)[:, None], L, axis=1)


def seq_of(result) -> list[int]:
    return [int(v) for v in np.packbits(result.bits, axis=1).view(">u4").ravel()]


def run(pool, batches, *, kill_after=None, kill=None) -> list:
    """Submit ``batches`` (lists of frame numbers) keeping the pool full, collect every result
    in order; ``kill()`` once ``kill_after`` batches were submitted."""
    results, pending = [], list(batches)
    in_flight = 0
    submitted = 0
    while pending or in_flight:
        while pending and in_flight < pool.depth:
            pool.submit(frames_of(pending.pop(0)))
            in_flight += 1
            submitted += 1
            if submitted == kill_after:
                kill()
        results.append(pool.collect())
        in_flight -= 1
    return results


def test_results_come_back_in_submission_order_from_both_actors():
    pool = ActorPool(CONFIG, {"backend": "cpu"}, actors=2, batch=2, llr=False, make_process=stand_in(0.01, jitter=True))
    try:
        batches = [[2 * k, 2 * k + 1] for k in range(20)]
        results = run(pool, batches)
        stats = pool.stats()
    finally:
        pool.close()
    assert [seq_of(r) for r in results] == batches and all(r.llr is None for r in results)   # llr=False
    assert all(a["frames"] > 0 for a in stats["per_actor"])
    assert sum(a["frames"] for a in stats["per_actor"]) == 40
    assert stats["frames_lost"] == stats["frames_resubmitted"] == 0
    assert stats["per_actor"][0]["compute_ms"]["p50"] > 0 and stats["per_actor"][0]["round_trip_ms"]["p99"] > 0


@pytest.mark.parametrize("retries", [1, 0])
def test_an_actor_killed_mid_stream_has_its_batches_rerun_or_counted_lost(retries):
    """ray.kill of an actor with batches in flight: with a retry they are decoded by the
    other actor; without, they are counted lost and collect says None for them. No frame is
    missing silently either way, and Ray's restart of the actor takes batches again."""
    pool = ActorPool(CONFIG, {"backend": "cpu"}, actors=2, retries=retries, make_process=stand_in(0.2))
    try:
        victim = pool.actors[0]
        batches = [[k] for k in range(12)]
        results = run(pool, batches, kill_after=4, kill=lambda: ray.kill(victim, no_restart=False))
        stats = pool.stats()
        deadline = time.monotonic() + 60
        while pool.actor_stats[0].restarts == 0 and time.monotonic() < deadline:     # Ray restarts it
            run(pool, [[99]])
            time.sleep(0.2)
        frames_before = pool.actor_stats[0].frames
        assert seq_of(run(pool, [[100], [101], [102], [103]])[3]) == [103]
        assert pool.actor_stats[0].restarts == 1 and pool.actor_stats[0].frames > frames_before   # and takes batches
    finally:
        pool.close()
    decoded = [seq_of(r) for r in results if r is not None]
    lost = [b for b, r in zip(batches, results) if r is None]
    assert sorted(decoded + lost) == batches and decoded == sorted(decoded)
    assert stats["per_actor"][0]["failures"] >= 1
    if retries:
        assert not lost and stats["frames_resubmitted"] >= 1 and stats["frames_lost"] == 0
    else:
        assert lost and stats["frames_lost"] == len(lost) and stats["frames_resubmitted"] == 0
    assert sum(a["frames"] for a in stats["per_actor"]) == len(decoded)


class ListSource:
    """The stand-in frames 0..n-1 back to back, read as fast as the runner asks, then eof."""

    def __init__(self, n):
        self.chunks = [frames_of([k])[0] for k in range(n)]
        self.eof = False

    def read(self):
        if self.chunks:
            return self.chunks.pop(0)
        self.eof = True
        return None


class Framer:
    def __call__(self, samples):
        return [(samples, {"seq": int(samples[0].real)})]


class BoundedPool(ActorPool):
    """Records the most batches ever in flight on one actor."""

    most = 0

    def submit(self, frames):
        super().submit(frames)
        self.most = max(self.most, *self._load)


def test_batches_in_flight_are_bounded_and_the_policy_drops_are_counted():
    """A stream faster than the actors: at most in_flight batches on an actor at a time; the
    frames past the runner's queue are dropped by the policy and counted; what is decoded
    comes out in order."""
    pool = BoundedPool(CONFIG, {"backend": "cpu"}, actors=2, in_flight=2, make_process=stand_in(0.05))
    seqs = []
    try:
        runner = PipelineRunner(ListSource(60), Framer(), pool, lambda result, metas: seqs.extend(seq_of(result)),
                                queue_frames=4, policy="drop-oldest", batch_frames=1)
        stats = runner.run()
    finally:
        pool.close()
    assert pool.most == 2 and pool.depth == 4
    assert stats.frames_dropped > 0 and stats.frames_out + stats.frames_dropped == stats.frames_in == 60
    assert seqs == sorted(seqs) and len(seqs) == stats.frames_out


def test_two_streams_share_the_actors_each_in_its_own_order():
    """Two runners (two inputs) on one pool at once: each stream's frames come back complete
    and in its order, and the report counts each stream apart."""
    pool = ActorPool(CONFIG, {"backend": "cpu"}, actors=2, make_process=stand_in(0.005, jitter=True))
    got = {0: [], 1: []}
    try:
        streams = [pool, pool.stream("cell-1")]
        runners = [PipelineRunner(ListSource(30), Framer(), stream, lambda r, m, k=k: got[k].extend(seq_of(r)),
                                  policy="block", batch_frames=1) for k, stream in enumerate(streams)]
        for runner in runners:
            runner.start()
        stats = [runner.run() for runner in runners]
        report = pool.stats()
    finally:
        pool.close()
    assert got[0] == got[1] == list(range(30)) and [s.frames_out for s in stats] == [30, 30]
    assert [s["name"] for s in report["streams"]] == ["stream-0", "cell-1"]
    assert sum(a["frames"] for a in report["per_actor"]) == 60


def test_rx_workers_give_the_bits_of_one_receiver_in_order(tmp_path):
    """zakotfs rx --workers 2 (actors) against rx in this process, with a receiver option
    (--estimator paper at 18 dB, where its bits differ from the default estimator's): the
    same frames in the same order, the same bits, LLRs to float rounding."""
    tx, ch = str(tmp_path / "tx.h5"), str(tmp_path / "ch.h5")
    assert main(["tx", "--preset", "tiny", "--out", tx, "--frames", "8", "--seed", "5"]) == 0
    assert main(["channel", "--in", tx, "--out", ch, "--snr", "18", "--seed", "6"]) == 0
    runs = {"one": ["--estimator", "paper"], "actors": ["--estimator", "paper", "--workers", "2"], "accurate": []}
    for name, extra in runs.items():
        assert main(["rx", "--in", ch, "--backend", "cpu", "--json", "--out", str(tmp_path / f"{name}.h5"),
                     "--report", str(tmp_path / f"{name}.json"), *extra]) == 0
    one, actors, accurate = (json.loads((tmp_path / f"{name}.json").read_text()) for name in runs)
    assert actors["frames"] == one["frames"] == 8 and actors["frames_lost"] == 0
    assert actors["bit_errors"] == one["bit_errors"] != accurate["bit_errors"]
    scaleout = actors["scaleout"]
    assert scaleout["engine"] == "ray" and scaleout["actors"] == 2 and scaleout["frames_lost"] == 0
    assert all(a["frames"] > 0 for a in scaleout["per_actor"]) and sum(a["frames"] for a in scaleout["per_actor"]) == 8
    for key in ("cfo_hz", "preamble_cfo_hz", "sample_clock_ppm"):
        assert actors[key] == pytest.approx(one[key], abs=1e-3), key
    with h5py.File(tmp_path / "one.h5") as a, h5py.File(tmp_path / "actors.h5") as b:
        np.testing.assert_array_equal(b["seq"][:], a["seq"][:])
        np.testing.assert_array_equal(b["bits"][:], a["bits"][:])
        assert np.linalg.norm(b["llr"][:] - a["llr"][:]) <= 1e-3 * np.linalg.norm(a["llr"][:])
    assert ray.is_initialized()                  # the CLI left this module's Ray running


def test_rx_serves_two_inputs_on_one_pool_each_with_its_own_report_and_out(tmp_path, capsys):
    """rx --in A --in B --workers 2: two streams (different payloads) on the same actors; each
    report and --out holds its own input's frames (BER 0 against its own truth), and the
    one JSON on stdout lists both."""
    names = {"a": 5, "b": 3}
    for name, frames in names.items():
        assert main(["tx", "--preset", "tiny", "--out", str(tmp_path / f"{name}.h5"), "--frames", str(frames),
                     "--seed", str(frames)]) == 0
    args = ["rx", "--workers", "2", "--policy", "block", "--backend", "cpu", "--json"]
    for name in names:
        args += ["--in", str(tmp_path / f"{name}.h5"), "--report", str(tmp_path / f"{name}.json"),
                 "--out", str(tmp_path / f"{name}.out.h5")]
    capsys.readouterr()
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)["streams"]
    for k, (name, frames) in enumerate(names.items()):
        report = json.loads((tmp_path / f"{name}.json").read_text())
        assert report["frames"] == printed[k]["frames"] == frames and report["ber"] == 0.0
        assert report["scaleout"]["name"] == str(tmp_path / f"{name}.h5") and report["scaleout"]["frames_lost"] == 0
        with h5py.File(tmp_path / f"{name}.out.h5") as out:
            assert out["bits"].shape[0] == frames
    assert main(["rx", "--in", str(tmp_path / "a.h5"), "--in", str(tmp_path / "b.h5")]) == 2
    assert "--workers K or --cluster" in capsys.readouterr().err


def test_bad_receiver_options_unplaceable_actors_and_a_dead_address_are_one_line_at_once(tmp_path, capsys):
    tx = str(tmp_path / "tx.h5")
    assert main(["tx", "--preset", "tiny", "--out", tx, "--frames", "2"]) == 0
    cases = {"could not build their receiver": ["--workers", "1", "--cg-iterations", "-1"],
             "CPU: 5 needed, 2 in the cluster": ["--workers", "5"],
             "cell9: 2 needed, 0 in the cluster": ["--workers", "2", "--actor-resources", '{"cell9": 1}'],
             "no Ray cluster answers there": ["--cluster", "127.0.0.1:9"]}
    for expected, extra in cases.items():
        capsys.readouterr()
        start = time.monotonic()
        assert main(["rx", "--in", tx, "--backend", "cpu", "--json", *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
        assert time.monotonic() - start < 30, extra
    assert ray.is_initialized()


def test_the_commands_do_not_import_ray_unless_scaling_out():
    code = "import sys, zakotfs.cli; zakotfs.cli.build_parser(); print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_start_ray_keeps_a_running_instance_and_checks_an_address_first():
    assert start_ray() is False and ray.is_initialized()
    with pytest.raises(ValueError, match="HOST:PORT"):
        start_ray("nowhere")
