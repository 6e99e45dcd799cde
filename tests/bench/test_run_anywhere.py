"""The bench modules run as ``python -m bench.X`` from any folder (``bench`` is an installed
package), and the impairment sweep needs no --json (it writes its default path)."""
import subprocess
import sys

import pytest

MODULES = ["impairment_sweep", "latency_sweep", "ber_curves", "acquisition_bench", "operator_accuracy", "cg_tuning"]


@pytest.mark.parametrize("module", MODULES)
def test_bench_modules_run_outside_the_repository(module, tmp_path):
    done = subprocess.run([sys.executable, "-m", f"bench.{module}", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage" in done.stdout, done.stderr[-2000:]


def test_the_impairment_sweep_needs_no_json_option(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench.impairment_sweep", "cfo", "--preset", "tiny", "--frames", "1",
                           "--points", "0", "--backend", "cpu"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "bench" / "results" / "cfo_sweep_tiny.json").exists()
