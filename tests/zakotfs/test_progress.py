"""Progress: a tqdm bar on a terminal, plain lines in a log that appear only when the count
moves; the commands say their setup phases."""
import io
import re

from zakotfs.cli import main
from zakotfs.cli.summary import ProgressBar


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_a_plain_line_only_when_the_count_has_moved():
    log = io.StringIO()
    bar = ProgressBar(100, "frames", "zakotfs rx", file=log, interval_s=0.0)
    for n in (0, 0, 5, 5, 9):
        bar.update(n, lost=0)
    bar.close()
    lines = log.getvalue().splitlines()
    assert [re.match(r"zakotfs rx: (\d+)/100 frames, [\d.]+ frames/s, lost 0$", line).group(1) for line in lines] == [
        "5", "9"]
    assert "\r" not in log.getvalue()


def test_a_terminal_gets_a_bar():
    terminal = _Terminal()
    bar = ProgressBar(10, "frames", "zakotfs rx", file=terminal)
    bar.update(10, BER="-")
    bar.close()
    assert "10/10" in terminal.getvalue() and "BER=-" in terminal.getvalue()


def test_rx_says_what_it_is_doing(tmp_path, capsys):
    tx = str(tmp_path / "tx.h5")
    assert main(["tx", "--preset", "tiny", "--out", tx, "--frames", "3"]) == 0
    assert main(["rx", "--in", tx, "--backend", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "zakotfs rx: tiny" in err and "building the receiver" in err and f"decoding {tx}" in err
    assert re.search(r"zakotfs rx: 3 frames, [\d.]+ frames/s, lost 0, BER 0.00e\+00", err)
