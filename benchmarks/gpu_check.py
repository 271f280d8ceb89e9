"""The GPU device check: every model on CuPy against Numba on the same machine's CPU.

Run on a machine with CuPy and a CUDA GPU (``benchmarks/gpu_device.sh`` runs the gpu tests
first, then this)::

    python benchmarks/gpu_check.py [--skip-tests] [--budget 170] [--out DIR] [--data DIR]
    python benchmarks/gpu_check.py --make-data DIR     # only generate the synthetic sets

A dry run anywhere: ``--standin`` puts tests/cupy_standin.py in CuPy's place (NumPy on the CPU)
and ``--big-ratings 500000`` shrinks the big set: it proves the script runs, and its "GPU"
column is then the stand-in's, labelled so — never a GPU figure.

The data are synthetic (``minirec.data.synthetic``), generated here or read from ``--data``:
shaped like ml-latest-small (671 users, 9,066 movies, 100,004 ratings) and like ML-25M
(162,541 users, 59,047 movies, 25,000,095 ratings). The table, in the order it runs:

1. the bias model's lazy-Adam epoch on the ML-25M shape at a batch that fills the card
   (below), whole;
2. every registered model on the small shape, Adam as the notebook (dense), at batch 64 (from
   the first 400 batches) and at the batch that fills the card; EASE: its closed-form fit;
   BPMF: one Gibbs sweep;
3. the ML-25M lazy bias epoch at batch 1,024, from its first 4,000 batches.

A batch *fills the card* when its (batch x F) elementwise kernels give every thread the card
can hold at once (SMs x threads per SM) at least 8 entries: the smallest power of two that does,
at F = 50 (65,536 on an H100 or H200). Each timing follows a one-batch warm-up fit at the same
batch (it compiles Numba's and CuPy's kernels and sizes the buffers); where an epoch is long,
its first K batches are timed and scaled to the epoch (the "timed" column says so). Numba runs
on ``MINIREC_THREADS`` threads (default 1). A failed measurement prints its traceback and
leaves NaN; when ``--budget`` runs out the rest is listed as not run.
"""
import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

import minirec
from minirec.backend import cupy_available
from minirec.data.movielens import Ratings
from minirec.data.synthetic import SHAPES, synthetic_movielens
from minirec.models.registry import KINDS
from minirec.train.runners import describe
from results import machine_line, table

HERE = Path(__file__).resolve().parent
F = 50
SETTINGS = {"ease": {}, "bpmf": dict(rank=10, samples=2, burn_in=0, thin=1)}  # else F, l2


class Data:
    """Training ratings and the table sizes (saved to and read from an .npz)."""

    def __init__(self, name, users, movies, ratings, n_users, n_movies):
        self.name, self.train = name, Ratings(users, movies, ratings)
        self.n_users, self.n_movies = int(n_users), int(n_movies)

    def __len__(self):
        return len(self.train)

    def head(self, rows):
        t = self.train
        return [t.user[:rows], t.movie[:rows]], t.rating[:rows]


def make_data(shape, n_ratings, folder):
    """The synthetic set of ``shape`` (``n_ratings`` of them), cached as an .npz in ``folder``."""
    n_users, n_movies, full = SHAPES[shape]
    n_ratings = n_ratings or full
    path = Path(folder) / f"{shape}-{n_ratings}.npz" if folder else None
    if path is not None and path.exists():
        z = np.load(path)
        return Data(shape, z["users"], z["movies"], z["ratings"], n_users, n_movies)
    ds = synthetic_movielens(n_users, n_movies, n_ratings, seed=0)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path.with_suffix(".tmp.npz"), users=ds.user, movies=ds.movie, ratings=ds.rating)
        path.with_suffix(".tmp.npz").replace(path)
    return Data(shape, ds.user, ds.movie, ds.rating, n_users, n_movies)


def sync(backend):
    if backend == "cupy":
        import cupy
        cupy.cuda.Device().synchronize()


def fill_batch():
    """The smallest power of two b with b x F >= 8 x (SMs x threads per SM), and the rule."""
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(0)
    threads = props["multiProcessorCount"] * props["maxThreadsPerMultiProcessor"]
    b = 2 ** math.ceil(math.log2(8 * threads / F))
    return b, f"{props['multiProcessorCount']} SMs x {props['maxThreadsPerMultiProcessor']} threads"


def build(kind, backend, data):
    kwargs = SETTINGS.get(kind, dict(n_factors=F, l2=1e-4))
    return KINDS[kind].for_data(data.n_users, data.n_movies, data.train, seed=0, backend=backend,
                                **kwargs)


def timed_fit(model, data, batch, max_batches):
    """Seconds for one epoch at ``batch`` (from its first ``max_batches`` batches, scaled), the
    epoch loss, and what was timed."""
    n_batches = math.ceil(len(data) / batch)
    k = min(n_batches, max_batches)
    x, y = data.head(min(len(data), k * batch))
    sync(model.backend)
    hist = model.fit(x, y, batch_size=batch, verbose=0)  # the loss comes back: synchronised
    what = "epoch" if k == n_batches else f"{k:,} of {n_batches:,} batches"
    return hist.history["seconds"][0] * n_batches / k, hist.history["loss"][0], what


def run_kind(kind, backend, data, batches, lazy, max_batches, log):
    """{batch: (seconds per epoch, loss, what was timed)} for one model on one backend."""
    model = build(kind, backend, data)
    if getattr(model, "trained_by", None):  # fitted another way (EASE, BPMF): time its fit
        x, y = data.head(len(data))
        start = time.perf_counter()
        model.fit(x, y, verbose=0)
        sync(backend)
        sweeps = getattr(model, "samples", None)
        seconds = (time.perf_counter() - start) / (sweeps or 1)
        return {None: (seconds, math.nan, f"s per Gibbs sweep ({sweeps})" if sweeps else "s per fit")}
    model.compile(minirec.Adam(1e-3, lazy=lazy))
    out = {}
    for batch in batches:
        # warm-up, one batch: compiles the kernels, sizes the buffers for this batch
        model.fit(*data.head(min(len(data), batch)), batch_size=batch, verbose=0)
        out[batch] = timed_fit(model, data, batch, max_batches.get(batch, 1 << 30))
    log(f"  {kind} on {backend}: {describe(model)}")
    return out


def attempt(func, *args):
    """Run one measurement; a failure prints its traceback and gives None, so the table goes on."""
    try:
        return func(*args)
    except Exception:
        traceback.print_exc()
        sys.stdout.flush()
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-tests", action="store_true", help="do not run the gpu tests first")
    parser.add_argument("--budget", type=float, default=170.0,
                        help="seconds for the timings; what is left when they run out is skipped")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for the table (default $OUT)")
    parser.add_argument("--data", help="folder caching the synthetic sets (.npz)")
    parser.add_argument("--make-data", metavar="DIR", help="only generate the sets into DIR, then stop")
    parser.add_argument("--big-ratings", type=int, default=0, help="ratings in the big set (default ML-25M's)")
    parser.add_argument("--fill-batch", type=int, default=0, help="override the batch that fills the card")
    parser.add_argument("--kinds", default=",".join(KINDS), help="registered kinds to time")
    parser.add_argument("--standin", action="store_true",
                        help="dry run on tests/cupy_standin.py (NumPy on the CPU): no GPU figure")
    args = parser.parse_args()
    if args.make_data:
        for shape, n in (("ml-latest-small", 0), ("ml-25m", args.big_ratings)):
            start = time.perf_counter()
            print(f"{make_data(shape, n, args.make_data).name}: {time.perf_counter() - start:.0f} s", flush=True)
        return
    if args.standin:
        spec = importlib.util.spec_from_file_location("cupy_standin", HERE.parent / "tests" / "cupy_standin.py")
        standin = sys.modules["cupy_standin"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(standin)
        standin.install()
    if not cupy_available():
        sys.exit("gpu_check: CuPy with a CUDA device is needed (none is usable here); "
                 "--standin dry-runs the script on the CPU")
    import cupy
    out = Path(args.out) if args.out else None
    if not args.skip_tests:
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                                str(HERE.parent / "tests")], env=dict(os.environ, PYTHONPATH=str(HERE.parent)))
        print(f"gpu tests: exit code {code}", flush=True)
    gpu = "cupy-standin (CPU)" if args.standin else "cupy"
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    fill, rule = fill_batch()
    fill = args.fill_batch or fill
    header = [f"GPU: {name} (CuPy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, "
              f"driver {cupy.cuda.runtime.driverGetVersion()}); batch that fills it: {fill:,} ({rule})",
              f"CPU: {machine_line()}; Numba threads: {os.environ.get('MINIREC_THREADS', '1')}"]
    if args.standin:
        header.insert(0, "DRY RUN on the CuPy stand-in: the 'GPU' figures are NumPy's on the CPU.")
    rows, logs, start = [], [], time.perf_counter()
    deadline = start + args.budget

    def log(line):
        logs.append(line)
        print(line, flush=True)

    def add(row):
        rows.append(row)
        print(" | ".join(map(str, row)), flush=True)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            text = "\n".join(header) + "\n\n" + table(HEAD, rows) + "\n"
            (out / "gpu_check.md").write_text(text)
            (out / "gpu_check.json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))

    def compare(kind, data, batches, lazy, max_batches, label):
        if time.perf_counter() > deadline:
            add((kind, label, "-", "-", "not run: out of --budget", "", "", "", ""))
            return
        cpu = attempt(run_kind, kind, "numba", data, batches, lazy, max_batches, log) or {}
        dev = attempt(run_kind, kind, "cupy", data, batches, lazy, max_batches, log) or {}
        for batch in (batches if None not in cpu and None not in dev else [None]):
            c, g = cpu.get(batch, (math.nan, math.nan, "failed")), dev.get(batch, (math.nan, math.nan, "failed"))
            add((kind, label, "lazy" if lazy else ("dense" if batch else "-"), f"{batch:,}" if batch else "-",
                 g[2] if g[2] != "failed" else c[2], f"{c[0]:.3f}", f"{g[0]:.3f}",
                 f"{c[0] / g[0]:.1f}x", f"{c[1]:.4f} / {g[1]:.4f}"))

    HEAD = ("model", "data", "Adam", "batch", "timed", "numba s/epoch", f"{gpu} s/epoch", "speed-up",
            "epoch loss numba / GPU")
    for line in header:
        log(line)
    t = time.perf_counter()
    big = make_data("ml-25m", args.big_ratings, args.data)
    log(f"big set: {len(big):,} ratings ({time.perf_counter() - t:.0f} s to load or generate)")
    label = f"ML-25M shape ({len(big) / 1e6:.1f}M)"
    compare("bias", big, [fill], True, {}, label)  # first: the figure that matters most
    small = make_data("ml-latest-small", 0, args.data)
    for kind in args.kinds.split(","):
        compare(kind, small, [64, fill], False, {64: 400}, "small (100k)")
    if fill != 1024:
        compare("bias", big, [1024], True, {1024: 4000}, label)
    log(f"\n{chr(10).join(header)}\n\n{table(HEAD, rows)}\n\ntimings took {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
