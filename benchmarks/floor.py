"""What an epoch cannot go below on this machine (bench_epoch's floor table): peaks measured in
a fresh process (BLAS at the net's product size; minirec's own Adam loops), and the floor of an
epoch built from them."""
import os
import subprocess
import sys

PEAK_PROBE = """
import sys, time, numpy as np, numba
from minirec.fast import numba_adam as na
from minirec.nn.optim import Adam
n_threads = min(int(sys.argv[1]), numba.config.NUMBA_NUM_THREADS)  # what this process may use
numba.set_num_threads(n_threads)
threads = na.compile_time(False, n_threads)[1]  # None for one thread
a = np.random.default_rng(0).random((64, 100), dtype=np.float32)
b = np.random.default_rng(1).random((100, 70), dtype=np.float32)
a @ b
t = time.perf_counter()
for _ in range(20000):
    a @ b
gemm = 20000 * 2 * 64 * 100 * 70 / (time.perf_counter() - t) / 1e9  # the net's product size

def table(n):
    w = np.random.default_rng(0).standard_normal((n, 1)).astype(np.float32)
    return na.table(w, np.zeros_like(w) + 1e-3, np.zeros_like(w), np.zeros_like(w) + 1e-6, 2e-4,
                    np.zeros(n, np.float32))
k = Adam().constants(1, np.float32)

@numba.njit
def repeat(t_, k, reps, threads):  # many steps in one compiled call: no Python in the timing
    for _ in range(reps):
        na.step_table(t_, k, np.empty(0, np.intp), None, threads)

rates = []
for n in (4096, (671 + 9066) * 51):  # in L1: arithmetic alone; the bias model's tables: + memory
    t_ = table(n)
    reps = max(5, 2 * 10 ** 8 // n)
    repeat(t_, k, 2, threads)
    t = time.perf_counter()
    repeat(t_, k, reps, threads)
    rates.append((time.perf_counter() - t) / (reps * n) * 1e9)

@numba.njit
def repeat_rows(t_, batches, k, reps):  # lazy steps: 64 distinct scattered rows a batch
    for r in range(reps):
        na.step_table(t_, k, batches[r % batches.shape[0]], True, None)

rng = np.random.default_rng(2)
w = rng.standard_normal((9066, 50)).astype(np.float32)  # the movie table of the bias model
t_ = na.table(w, np.zeros_like(w) + 1e-3, np.zeros_like(w), np.zeros_like(w) + 1e-6, 2e-4,
              np.zeros(9066, np.float32))
batches = np.array([rng.choice(9066, 64, replace=False) for _ in range(2000)])
repeat_rows(t_, batches, k, 10)
reps = 100000
t = time.perf_counter()
repeat_rows(t_, batches, k, reps)
rates.append((time.perf_counter() - t) / (reps * 64 * 50) * 1e9)
print(n_threads, gemm, *rates)
"""


def usable_threads():
    """How many CPUs this process may run on: ``taskset`` or a container can allow fewer than
    the machine has (Numba starts that many threads, and no more can be asked of it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def machine_peak(threads):
    """(the threads measured: ``threads``, or fewer where the process may use fewer, and the
    peaks). Measured: BLAS GFLOP/s on the net's 64x100 @ 100x70 products
    (one thread: BLAS is not threaded at this size), and the ns per entry of minirec's own dense
    Adam loop on an array that stays in L1 (its arithmetic: one division, one square root) and
    on one the size of the bias model's tables (arithmetic and memory), and of its lazy step
    over 64 scattered rows of the movie table (arithmetic, each row's loop, the cache)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", PEAK_PROBE, str(threads)], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), tuple(float(v) for v in out[1:])


def floor_seconds(kind, lazy, n_ratings, peaks, F=50, H=70, batch=64, rows=(671, 9066)):
    """What an epoch cannot go below: every Adam update at the measured ns per entry (dense: all
    entries every batch, at the table-sized rate; lazy: about 2·batch rows a batch, at the rate
    of lazy steps over scattered rows of the movie table), plus the net's matrix products at the
    measured BLAS rate."""
    gemm, ns_l1, ns_table, ns_rows = peaks
    batches = n_ratings / batch
    width = F + (kind == "bias")
    if lazy:
        updates, ns = batches * 2 * min(batch, rows[0]) * width, ns_rows
    else:
        updates, ns = batches * (rows[0] + rows[1]) * width, ns_table
    seconds = updates * ns * 1e-9
    if kind == "nn":
        seconds += n_ratings * 3 * 2 * 2 * F * H / (gemm * 1e9)
        seconds += batches * (2 * F * H + 2 * H + 1) * ns_l1 * 1e-9  # the dense layers' Adam
    return seconds
