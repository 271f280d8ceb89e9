"""The numbered tutorial in examples/ runs: every ``examples/[0-9][0-9]_*.py`` in its quick mode
(``MINIREC_QUICK=1``: synthetic data on the NumPy backend, no Numba compile), as a learner runs it —
a fresh interpreter with no MovieLens data at all — ending with status 0 and the line that shows
its point. The same scripts on real data are run by hand (their docstrings say how)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import minirec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))
PACKAGE_HOME = Path(minirec.__file__).resolve().parent.parent  # the minirec these tests import

# For each step, a line its quick run must print (a regular expression matched against each line).
EXPECTED = {
    "00_one_batch.py": r"one epoch: every weight and Adam moment equals fit's, bit for bit",
    "01_gradient_check.py": r"\d+ passed, 0 failed",
    "02_lesson4.py": r"validation MSE: dot product \d\.\d{4}, with biases \d\.\d{4}, "
                     r"neural net \d\.\d{4}",
    "03_your_own_model.py": r"loaded back: a GMF with .*the same predictions, bit for bit",
    "04_change_one_step.py": r"  every gradient of the loss is exactly 0: the model never trains",
    "05_svdpp.py": r"SVD\+\+ +validation MSE \d\.\d{4}",
    "06_ranking.py": r"\| EASE \(closed form\) \| \d\.\d{4} \| \d\.\d{4} \| \d\.\d{4} \|",
    "07_ml100k.py": r"\| SVD\+\+ flipped \| \d\.\d{4} \| \d\.\d{4} \|",
    "08_side_information.py": r"validation MSE: bias model \d\.\d{4}, with genres \d\.\d{4}, hybrid \d\.\d{4}",
    "09_multvae.py": r"\| Mult-VAE \| \d\.\d{4} \| \d\.\d{4} \| \d\.\d{4} \|",
    "10_ml100k_record.py": r"\| 4\. \+ day biases \| \d\.\d{4} \| \d\.\d{4} \| \d+\.\d \|",
}


def run_quick(script, tmp_path, *args):
    """Run ``script`` quick, in ``tmp_path``, with no data home and nowhere to download from: a
    script that reached for MovieLens would fail at once, naming it."""
    env = {k: v for k, v in os.environ.items() if k not in ("MINIREC_DATA", "MINIREC_BACKEND")}
    empty = tmp_path / "no-mirror"
    empty.mkdir()
    env.update(MINIREC_QUICK="1", XDG_CACHE_HOME=str(tmp_path / "cache"),
               MINIREC_MIRROR=str(empty), MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_HOME),
                                                        os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_tutorial_is_numbered_from_00_without_a_gap():
    numbers = [int(p.name[:2]) for p in EXAMPLES]
    assert numbers == list(range(len(numbers))) and len(numbers) >= 8, [p.name for p in EXAMPLES]
    assert sorted(EXPECTED) == [p.name for p in EXAMPLES], "each step needs its expected line"


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_each_step_is_a_short_flat_script(script):
    source = script.read_text(encoding="utf-8")
    n_lines = source.count("\n")
    assert n_lines <= 150, f"{script.name} has {n_lines} lines: a step should stay under ~150"
    assert "sys.path" not in source and "subprocess" not in source, (
        f"{script.name}: examples install nothing and edit no sys.path")
    assert source.startswith('"""Step ') and "--quick" in source, (
        f"{script.name}: opens with its step's docstring and has a --quick mode")


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_each_step_runs_quick_without_data(script, tmp_path):
    draws = script.name == "02_lesson4.py" and _has_matplotlib()
    result = run_quick(script, tmp_path, *(["--map", "movie_map.png"] if draws else []))
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{script.name} exited {result.returncode}:\n{output[-3000:]}"
    pattern = re.compile(EXPECTED[script.name])
    assert any(pattern.search(line) for line in result.stdout.splitlines()), (
        f"{script.name} did not print a line matching {pattern.pattern!r}:\n{result.stdout[-3000:]}")
    if draws:
        assert (tmp_path / "movie_map.png").stat().st_size > 0
    if script.name == "04_change_one_step.py":
        clip_trap_never_trains_and_both_fixes_do(result.stdout)


def clip_trap_never_trains_and_both_fixes_do(stdout):
    """04's three curves: the Clip whose inputs start below 0.5 keeps its validation MSE to the
    last digit (every gradient exactly 0); the offset and the sigmoid range lower theirs."""
    curves = [[float(v) for v in line.split(":")[1].split("->")]
              for line in stdout.splitlines() if "validation MSE before training" in line]
    assert len(curves) == 3, stdout
    dead, offset, squashed = curves
    assert len(set(dead)) == 1, dead
    assert offset[-1] < offset[0] and squashed[-1] < squashed[0], (offset, squashed)
    assert stdout.count("exactly 0") == 1  # only the trap


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True
