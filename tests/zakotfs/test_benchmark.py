"""The benchmark runs in CI-sized form (so it cannot rot) and its baseline matrix is right."""
import numpy as np
import scipy.sparse

from zakotfs import FrameConfig, inverse_zak, preset, zak
from zakotfs.benchmark import (command_line, dd_sparse_matrix, make_frames, run_metadata, time_receiver,
                               time_sparse_baseline)
from zakotfs.channel_operator import ChannelOperator
from zakotfs.receiver import Receiver


def test_dd_sparse_matrix_is_the_structured_operator(rng):
    c = FrameConfig(M=32, N=8, bandwidth=1e6, guard_neg=4, guard_pos=4)
    delays, dopplers = np.arange(-2, 5), np.arange(-2, 3)
    h = np.zeros((delays.size, dopplers.size), complex)
    h[[0, 2, 3, 6], [1, 2, 4, 0]] = [0.1j, 0.9, 0.3 - 0.2j, 0.2]
    H = dd_sparse_matrix(c, h, delays, dopplers, scipy.sparse)
    x = rng.standard_normal((c.M, c.N)) + 1j * rng.standard_normal((c.M, c.N))
    op = ChannelOperator.from_dd_taps(c, h[None], delays, dopplers)
    expected = zak(op.apply(inverse_zak(x)[None]), c.M, c.N)[0]
    np.testing.assert_allclose((H @ x.ravel()).reshape(c.M, c.N), expected, atol=1e-5)


def test_ci_sized_benchmark_reports_percentiles_and_baseline():
    c = preset("demo")
    data = make_frames(c, 3, snr_db=25.0)
    out = time_receiver(Receiver(c, backend="cpu", quiet=True), data, 6, warmup=1)
    lat = out["latency_us"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert set(out["stages"]) >= {"front_end", "estimate", "equalize", "demap"}
    assert out["frames"] == 6 and out["ber"] < 0.05 and out["deadline_misses"] <= 6
    base = time_sparse_baseline(c, data, 2)
    assert base["latency_us"]["p50"] > 0 and base["cg_iterations"]["mean"] >= 1


def test_bench_results_record_the_command_as_typed(monkeypatch):
    """A bench JSON's ``command`` is what the user typed: the CLI's own line as given, a
    ``python -m bench.x`` run with the interpreter named ``python``, never its path."""
    import sys

    assert run_metadata("zakotfs bench --grid 128x16")["command"] == "zakotfs bench --grid 128x16"
    monkeypatch.setattr(sys, "orig_argv", ["/opt/venv/bin/python3", "-m", "bench.latency_sweep", "--tag", "a b"])
    assert command_line(sys.argv) == command_line() == "python -m bench.latency_sweep --tag 'a b'"
    assert command_line(["bench.x", "--n", "2"]) == "bench.x --n 2"
