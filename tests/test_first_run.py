"""The first run speaks: a Numba compile is announced before it starts and ticks while it lasts,
a warm cache prints nothing, a run compiles only the Adam path it takes, and lesson4's table
keeps the compile out of the training seconds. Data-free."""
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

numba = pytest.importorskip("numba", reason="needs numba")
from numba.core import event  # noqa: E402

from minirec import fast  # noqa: E402
from minirec.fast import CompileNotes, numba_adam  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def fresh_function():
    """A jitted function no process has compiled (no cache): calling it compiles."""
    @numba.njit
    def triple_sum(a):
        total = 0.0
        for x in a:
            total += 3 * x
        return total
    return triple_sum


class Snapshot(event.Listener):
    """What the notes had printed when Numba started compiling."""
    def __init__(self, out):
        self.out, self.at_start = out, None

    def on_start(self, ev):
        if self.at_start is None:
            self.at_start = self.out.getvalue()

    def on_end(self, ev):
        pass


def test_the_heading_is_printed_before_the_compile_and_each_kernel_is_named():
    out, f = io.StringIO(), fresh_function()
    snapshot = Snapshot(out)
    with event.install_listener("numba:compile", snapshot):  # registered after minirec's own
        with CompileNotes("Numba is compiling a test kernel", 7, out=out):
            assert f(np.ones(4)) == 12.0
    assert snapshot.at_start is not None, "nothing was compiled"
    assert snapshot.at_start.startswith("Numba is compiling a test kernel: once ("), \
        snapshot.at_start
    assert "about 7 s" in snapshot.at_start
    assert "  compiling test_first_run.triple_sum (float64) ..." in snapshot.at_start
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("  compiled test_first_run.triple_sum (float64) in "), lines


def test_a_compiled_function_prints_nothing():
    f = fresh_function()
    f(np.ones(2))
    out = io.StringIO()
    with CompileNotes("Numba is compiling a test kernel", 7, out=out):
        f(np.ones(3))
    assert out.getvalue() == ""


def test_a_long_compile_ticks_and_the_seconds_are_counted(monkeypatch):
    """A compile longer than TICK prints a line per TICK (here 0.1 s, over 0.6 s: the ticker
    polls every 0.25 s, so at least two lines even if a poll is late)."""
    monkeypatch.setattr(fast, "TICK", 0.1)
    out = io.StringIO()
    notes = CompileNotes("heading", 1, out=out)
    notes.started("a kernel")
    time.sleep(0.6)
    notes.ended("a kernel", 0.6)
    assert out.getvalue().count("... still compiling a kernel (") >= 2, out.getvalue()
    before = fast.compile_seconds()
    fresh_function()(np.ones(2))
    assert fast.compile_seconds() > before


def test_the_switches_as_the_kernels_take_them():
    assert numba_adam.compile_time(True, 4) == (True, None)   # lazy steps run on one thread
    assert numba_adam.compile_time(False, 1) == (None, None)
    assert numba_adam.compile_time(False, 2) == (None, 2)


def run_fresh(code, tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_dense_step_on_one_thread_compiles_neither_the_lazy_nor_the_threaded_loop(tmp_path):
    """On an empty cache, in a new process: what each step compiled, by Numba's own record of
    the signatures each function was compiled for."""
    out = run_fresh("""
import numpy as np
from minirec.fast import numba_adam as na
from minirec.nn.optim import Adam
w = np.ones((3, 2))
t = na.table(w, w.copy(), np.zeros_like(w), np.zeros_like(w), 0.1, np.zeros(3))
k = Adam().constants(1, np.float64)
na.step_table(t, k, np.array([0, 2]), *na.compile_time(False, 1))
print(len(na.adam_dense.signatures), len(na.adam_rows.signatures), len(na.adam_dense_threads.signatures))
na.step_table(t, k, np.array([0, 2]), *na.compile_time(True, 1))
print(len(na.adam_dense.signatures), len(na.adam_rows.signatures), len(na.adam_dense_threads.signatures))
""", tmp_path)
    assert out.split("\n")[:2] == ["1 0 0", "1 1 0"], out


def test_lesson4s_table_keeps_the_compile_apart(capsys):
    from minirec.tools.lesson4 import print_table

    class Data:
        name = "tiny"
    results = {"dot": dict(val_mse=1.0, train_mse=0.5, epochs=10, seconds=3.2,
                           compile_seconds=11.4),
               "bias": dict(val_mse=0.9, train_mse=0.4, epochs=25, seconds=6.9,
                            compile_seconds=0.0)}
    print_table(results, Data(), "notebook schedule")
    text = capsys.readouterr().out
    assert "seconds  compile" in text
    assert "      3.2     11.4" in text and "      6.9      0.0" in text
    assert "seconds: training alone; compile: Numba compiling" in text


@pytest.mark.slow
def test_fit_announces_its_compile_before_the_first_epoch_and_not_once_cached(tmp_path):
    """A tiny DotProduct fitted on an empty cache, in a new process: the heading comes before
    any compile line and the epoch; run again on the same cache, no compile line at all."""
    code = """
import numpy as np
from minirec import Adam, DotProduct
rng = np.random.default_rng(0)
users, movies, y = rng.integers(0, 20, 200), rng.integers(0, 30, 200), rng.integers(1, 6, 200) * 1.0
DotProduct(20, 30, n_factors=4, backend="numba").compile(Adam()).fit([users, movies], y, epochs=1)
"""
    lines = run_fresh(code, tmp_path).splitlines()
    def where(start):
        return [i for i, line in enumerate(lines) if line.startswith(start)]
    heading = where("Numba is compiling the fused kernel minirec/fast/numba_mf.py for DotProduct "
                    "in float32 and float64")
    compiled, epoch = where("  compiled numba_mf.train_batches"), where("Epoch 1/1")
    assert heading and epoch and len(compiled) == 2, lines
    assert heading[0] < min(compiled) < epoch[0]
    again = run_fresh(code, tmp_path).splitlines()
    assert not any("compil" in line for line in again), again
