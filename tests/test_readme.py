"""The commands of README.md and docs/gnuradio.md run as written, small, on the CPU.

Each fenced ``bash`` or ``python`` block is checked by the marker on the line before its
opening fence:

* ``<!-- readme-test: run -->``: the block runs (bash with ``set -e``, then waiting for each
  command it started with ``&``, whose failure fails it; python in a fresh interpreter) in a fresh folder that
  holds links to the repository's top-level entries, as in a fresh clone, with this
  environment's ``zakotfs`` and ``python`` first on PATH; it must exit 0 within
  ``TIMEOUT_S``. ``--frames N`` is cut to ``--frames 4`` (``FRAMES``) to keep it small.
* ``<!-- readme-test: skip REASON -->``: the block is not run (long, a GPU, root, a GUI, the
  test suite itself); the test is skipped with REASON.
* no marker: skipped, saying the block is unmarked.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs/gnuradio.md")
MARKER = re.compile(r"<!--\s*readme-test:\s*(run|skip)\b\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(bash|python)\s*$")
FRAMES = 4
TIMEOUT_S = 300


def blocks(text: str) -> list[tuple[int, str, str | None, str, str]]:
    """(line, language, marker "run"/"skip"/None, the marker's reason, code) of every fenced
    bash or python block in ``text``."""
    lines, found, i = text.splitlines(), [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            marker = MARKER.search(previous)
            found.append((i + 1, fence.group(1), marker and marker.group(1), marker.group(2) if marker else "",
                          "\n".join(lines[i + 1:end])))
            i = end
        i += 1
    return found


def small(code: str) -> str:
    """``code`` with every ``--frames N`` above ``FRAMES`` cut to ``FRAMES``."""
    return re.sub(r"--frames\s+(\d+)", lambda m: f"--frames {min(int(m.group(1)), FRAMES)}", code)


def _cases():
    for name in DOCUMENTS:
        path = ROOT / name
        if path.exists():
            for line, language, marker, reason, code in blocks(path.read_text()):
                yield pytest.param(language, marker, reason, code, id=f"{name}:{line}")


def test_the_markers_are_read():
    text = ("<!-- readme-test: run -->\n```bash\nzakotfs tx --frames 50\n```\n\n"
            "<!-- readme-test: skip needs a GPU -->\n\n```python\nimport cupy\n```\n```bash\nls\n```\n")
    assert [(lang, marker, reason) for _, lang, marker, reason, _ in blocks(text)] == [
        ("bash", "run", ""), ("python", "skip", "needs a GPU"), ("bash", None, "")]
    assert small("zakotfs tx --frames 50 && zakotfs demo --frames 2") == "zakotfs tx --frames 4 && zakotfs demo --frames 2"


@pytest.mark.parametrize("language, marker, reason, code", list(_cases()))
def test_documented_commands_run_as_written(language, marker, reason, code, tmp_path):
    if marker is None:
        pytest.skip("unmarked block: put <!-- readme-test: run --> or <!-- readme-test: skip REASON --> before it")
    if marker == "skip":
        pytest.skip(reason or "marked skip")
    for entry in ROOT.iterdir():
        if entry.name not in (".git", ".venv", ".venv-gr"):
            (tmp_path / entry.name).symlink_to(entry)
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
           "MPLBACKEND": "Agg"}
    command = ([sys.executable, "-c", code] if language == "python"
               else ["bash", "-c", f"set -euo pipefail\n{small(code)}\nfor job in $(jobs -p); do wait $job; done"])
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, f"{code}\n--- exit {done.returncode}; stderr:\n{done.stderr[-4000:]}"
