"""The GNU Radio blocks (gr_zakotfs) in GNU Radio's own Python: the example flowgraph
(transmitter -> channels.channel_model -> receiver) decodes the bits ``zakotfs rx`` decodes
from the same samples, and the transmitter block sends the samples of ``zakotfs tx``.

GNU Radio is a system package (Debian's ``gnuradio``, for /usr/bin/python3), so these tests
run the flowgraphs in a Python that imports both it and zakotfs's dependencies:
``$ZAKOTFS_GR_PYTHON``, else ``.venv-gr/bin/python`` (``make gr-venv``), else
/usr/bin/python3; they skip, saying why, where none does."""
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from zakotfs import preset, random_bits
from zakotfs.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "gr_zakotfs" / "examples" / "tx_channel_rx.py"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _gnuradio_python() -> tuple[str | None, str]:
    """(a Python that imports gnuradio and zakotfs, None where none does; why not)."""
    candidates = [os.environ.get("ZAKOTFS_GR_PYTHON"), str(ROOT / ".venv-gr" / "bin" / "python"), "/usr/bin/python3"]
    why = "no candidate Python exists"
    for python in filter(None, candidates):
        if not Path(python).exists():
            continue
        probe = subprocess.run([python, "-c", "from gnuradio import gr, channels, blocks; import gr_zakotfs"],
                               env=ENV, capture_output=True, text=True, timeout=120)
        if probe.returncode == 0:
            return python, ""
        why = f"{python}: {(probe.stderr.strip().splitlines() or ['?'])[-1]}"
    return None, why


GR_PYTHON, WHY = _gnuradio_python()
pytestmark = pytest.mark.skipif(GR_PYTHON is None, reason=f"GNU Radio with zakotfs not importable ({WHY}); "
                                                         "apt-get install gnuradio, then make gr-venv")


def _run(*args) -> subprocess.CompletedProcess:
    done = subprocess.run([GR_PYTHON, *args], env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_example_flowgraph_decodes_what_zakotfs_rx_decodes(tmp_path):
    samples, bits_file, out = tmp_path / "channel.cfile", tmp_path / "bits.u8", tmp_path / "rx.h5"
    frames, config = 6, preset("tiny")
    run = _run(str(EXAMPLE), "--preset", "tiny", "--frames", str(frames), "--backend", "cpu",
               "--samples", str(samples), "--bits", str(bits_file))
    assert "sinr_db" in run.stdout                                  # the PDUs' metadata, printed
    block_bits = np.fromfile(bits_file, np.uint8).reshape(-1, config.bits_per_frame)
    assert main(["rx", "--in", str(samples), "--preset", "tiny", "--backend", "cpu", "--out", str(out),
                 "--json"]) == 0
    with h5py.File(out) as f:
        cli_bits = f["bits"][()]
    assert len(block_bits) == len(cli_bits) >= frames - 2          # the last frame output like the others
    np.testing.assert_array_equal(block_bits, cli_bits)
    truth = random_bits(config, frames, np.random.default_rng(0))
    errors = [np.count_nonzero(truth != row, axis=1).min() for row in block_bits]
    assert max(errors) < 0.01 * config.bits_per_frame


def test_the_transmitter_block_sends_the_samples_of_zakotfs_tx(tmp_path):
    script = (f"import numpy as np\nfrom gnuradio import gr, blocks\nfrom gr_zakotfs import zakotfs_tx\n"
              f"tb = gr.top_block(); tx = zakotfs_tx('tiny', frames=3, seed=5); sink = blocks.vector_sink_c()\n"
              f"tb.connect(tx, sink); tb.run()\n"
              f"np.save({str(tmp_path / 'block.npy')!r}, np.array(sink.data(), np.complex64))\n"
              f"print(sorted(t.offset for t in sink.tags()))\n")
    run = _run("-c", script)
    assert main(["tx", "--preset", "tiny", "--frames", "3", "--seed", "5", "--out", str(tmp_path / "tx.cfile")]) == 0
    sent = np.fromfile(tmp_path / "tx.cfile", np.complex64)
    np.testing.assert_array_equal(np.load(tmp_path / "block.npy"), sent)
    L = preset("tiny").samples_per_frame
    assert run.stdout.strip() == str([0, L, 2 * L])                  # a zakotfs_seq tag a frame


def test_the_receiver_block_outputs_the_last_frame_on_the_stream(tmp_path):
    """tx's 3 frames through the receiver block, the stream ending with the last frame: all
    3 come out on the byte stream, each right (the last once the input has been idle the
    block's idle timeout), none left to ``tail_bits``."""
    assert main(["tx", "--preset", "tiny", "--frames", "3", "--seed", "6", "--out", str(tmp_path / "tx.cfile")]) == 0
    script = (f"import numpy as np\nfrom gnuradio import gr, blocks\nfrom gr_zakotfs import zakotfs_rx\n"
              f"tb = gr.top_block(); src = blocks.file_source(gr.sizeof_gr_complex, {str(tmp_path / 'tx.cfile')!r})\n"
              f"rx = zakotfs_rx('tiny', backend='cpu'); sink = blocks.vector_sink_b()\n"
              f"tb.connect(src, rx, sink); tb.run()\n"
              f"np.save({str(tmp_path / 'bits.npy')!r}, np.array(sink.data(), np.uint8))\n"
              f"print(rx.frames, len(rx.tail_bits), len(sink.tags()))\n")
    run = _run("-c", script)
    config = preset("tiny")
    bits = np.load(tmp_path / "bits.npy").reshape(-1, config.bits_per_frame)
    np.testing.assert_array_equal(bits, random_bits(config, 3, np.random.default_rng(6)))
    assert run.stdout.split() == ["3", "0", "3"]
