"""Seconds per epoch for each model x backend x Adam mode, against PyTorch eager, on MovieLens.

Run:  python benchmarks/bench_epoch.py [--data DIR] [--epochs 5] [--threads 2] [--write]

On the 2016 ml-latest-small (80% split, seed 42, batch 64, Adam 1e-3, the notebook's L2), it
times minirec's NumPy reference and Numba kernels and the same models in PyTorch
(torch_reference.py) in dense mode (every row steps, as Keras) and lazy mode (only the rows in
the batch; PyTorch: SparseAdam). Runs alternate — one epoch of each configuration per round —
and the table shows the median of the rounds after one warm-up epoch each. Then:

* time to quality: the improved bias recipe (lazy, Numba) — training seconds until the
  validation MSE first reaches 0.77;
* ratings per second against a floor estimated from the machine's measured peak (a large
  matmul and a large copy) and the work each rating needs.

``--write`` rewrites the bench_epoch section of benchmarks/RESULTS.md.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import minirec
from minirec import lesson4
from results import machine_line, table, write_section

HERE = Path(__file__).resolve().parent


def default_data():
    home = os.environ.get("MINIREC_DATA") or HERE.parent.parent / "shared" / "data"
    return Path(home) / "ml-latest-small-2016"


RUNNERS = {  # key -> (backend, may use a whole-model kernel, name in the table)
    "numpy": ("numpy", False, "minirec numpy (reference)"),
    "layers": ("numba", False, "minirec numba: layers + Adam kernel"),
    "fused": ("numba", True, "minirec numba: fused kernel"),
}


class MinirecRun:
    def __init__(self, key, kind, lazy, ds, train, valid):
        backend, fused, self.name = RUNNERS[key]
        self.model = lesson4.build(kind, ds, seed=42, backend=backend)
        self.model.fused = fused
        self.model.compile(minirec.Adam(1e-3, lazy=lazy))
        self.train, self.valid = train, valid

    def epoch(self):
        return self.model.fit(self.train.x, self.train.y, batch_size=64, verbose=0).history["seconds"][0]

    def val_mse(self):
        return self.model.evaluate(self.valid.x, self.valid.y)


class TorchRun:
    def __init__(self, kind, lazy, ds, train, valid):
        import torch
        import torch_reference as tr
        self.name, self.tr, self.torch = "PyTorch", tr, torch
        torch.manual_seed(42)
        self.model = tr.TorchModel(kind, ds.n_users, ds.n_movies, lazy=lazy)
        self.opts = self.model.optimizers(1e-3)
        t = lambda a, dtype: torch.as_tensor(np.asarray(a), dtype=dtype)
        self.x = (t(train.user, torch.long), t(train.movie, torch.long), t(train.y, torch.float32))
        self.v = (t(valid.user, torch.long), t(valid.movie, torch.long), t(valid.y, torch.float32))
        self.gen = torch.Generator().manual_seed(42)

    def epoch(self):
        start = time.perf_counter()
        self.tr.train_epoch(self.model, self.opts, *self.x, generator=self.gen)
        return time.perf_counter() - start

    def val_mse(self):
        return self.tr.evaluate(self.model, *self.v)


def epoch_table(ds, train, valid, rounds, runners, torch=True):
    rows = []
    for kind in ("dot", "bias", "nn"):
        for lazy in (False, True):
            runs = [MinirecRun(name, kind, lazy, ds, train, valid) for name in runners]
            if torch:
                runs.append(TorchRun(kind, lazy, ds, train, valid))
            for run in runs:  # warm-up: compilation, caches, allocator
                run.epoch()
            times = {run.name: [] for run in runs}
            for _ in range(rounds):
                for run in runs:
                    times[run.name].append(run.epoch())
            torch_median = statistics.median(times["PyTorch"]) if torch else float("nan")
            for run in runs:
                med = statistics.median(times[run.name])
                rows.append((lesson4.TITLES[kind], "lazy" if lazy else "dense", run.name,
                             f"{med:.3f}", f"{len(train) / med:,.0f}", f"{torch_median / med:.1f}x",
                             f"{run.val_mse():.4f}"))
                print(" | ".join(rows[-1]), flush=True)
    return rows


def time_to_quality(ds, train, valid, target=0.77):
    """The improved bias recipe, lazy mode, Numba: seconds of training until val MSE <= target."""
    recipe = lesson4.IMPROVED["bias"]
    rows = []
    for lazy, batch in ((True, 64), (True, 256), (False, 64)):
        model = lesson4.build("bias", ds, seed=42, backend="numba", **recipe["model"])
        model.compile(minirec.Adam(recipe["lr_max"], weight_decay=recipe["weight_decay"], lazy=lazy))
        hist = model.fit_one_cycle(train.x, train.y, recipe["epochs"], recipe["lr_max"],
                                   batch_size=batch, validation_data=(valid.x, valid.y), verbose=0)
        elapsed, reached = 0.0, None
        for seconds, mse in zip(hist.history["seconds"], hist.history["val_loss"]):
            elapsed += seconds
            if reached is None and mse <= target:
                reached = elapsed
        rows.append(("lazy" if lazy else "dense", batch, recipe["epochs"],
                     f"{sum(hist.history['seconds']):.2f}", f"{hist.history['val_loss'][-1]:.4f}",
                     f"{reached:.2f}" if reached is not None else "not reached"))
        print(" | ".join(map(str, rows[-1])), flush=True)
    return rows


PEAK_PROBE = """
import time, numpy as np
from numba import njit
a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
a @ a
t = time.perf_counter()
for _ in range(5):
    a @ a
gflops = 5 * 2 * 2048 ** 3 / (time.perf_counter() - t) / 1e9

@njit(cache=False, error_model="numpy")
def stream(w, g, m, v):  # Adam's memory traffic with almost no arithmetic
    for k in range(w.size):
        m[k] = m[k] + g[k]
        v[k] = v[k] + g[k]
        w[k] = w[k] + m[k]

rates = []
for n in (453_300, 16 * 2 ** 20):  # the movie table (stays in cache), and 64 MB arrays
    w, g, m, v = (np.zeros(n, np.float32) for _ in range(4))
    stream(w, g, m, v)
    reps = max(3, 2 * 10 ** 8 // n)
    t = time.perf_counter()
    for _ in range(reps):
        stream(w, g, m, v)
    rates.append(reps * 28 * n / (time.perf_counter() - t) / 1e9)  # read 4 arrays, write 3
print(gflops, *rates)
"""


def machine_peak():
    """One core's practical peaks: float32 matmul GFLOP/s, and the bandwidth of Adam's memory
    traffic (read W, G, m, v; write W, m, v) with the arithmetic taken out, for a table that
    stays in cache (the movie table, 453,300 weights) and for one that does not (16M weights).

    Measured in a child process with one BLAS thread (and OpenBLAS's core-type override off,
    which would select an older, slower kernel), so the figures are one core's, like the kernels.
    """
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    out = subprocess.run([sys.executable, "-c", PEAK_PROBE], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return tuple(float(v) for v in out)


def work_per_rating(kind, lazy, F=50, H=70, batch=64, table_rows=671 + 9066):
    """Rough floating-point operations and bytes one rating costs (see RESULTS.md)."""
    adam_flops, adam_bytes = 12, 7 * 4  # per weight: ~12 flops; read W,G,m,v, write W,m,v (f32)
    width = F + (kind == "bias")
    flops = 6 * F + (12 * F * H if kind == "nn" else 0)         # forward + backward
    if lazy:
        touched = 2 * width                                     # at most two rows per rating
        flops += touched * adam_flops
        bytes_ = touched * adam_bytes
    else:
        per_batch = table_rows * width + (2 * F * H + 2 * H if kind == "nn" else 0)
        flops += per_batch * adam_flops / batch
        bytes_ = per_batch * adam_bytes / batch
    return flops, bytes_


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--epochs", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch intra-op threads")
    parser.add_argument("--runners", default=",".join(RUNNERS),
                        help="comma-separated, from: " + ", ".join(RUNNERS))
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch (no comparison)")
    parser.add_argument("--write", action="store_true", help="rewrite RESULTS.md's section")
    args = parser.parse_args()
    torch_note = "no PyTorch"
    if not args.no_torch:
        import torch
        torch.set_num_threads(args.threads)
        torch_note = f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)"
    ds = minirec.load_movielens(args.data)
    train, valid = ds.split(0.8, seed=42)
    print(f"{ds}; {torch_note}; minirec's kernels run on 1 thread")
    rows = epoch_table(ds, train, valid, args.epochs, args.runners.split(","), not args.no_torch)
    ttq = time_to_quality(ds, train, valid)
    gflops, gbs, gbs_dram = machine_peak()
    floor_rows = []
    for kind in ("dot", "bias", "nn"):
        for lazy in (False, True):
            flops, bytes_ = work_per_rating(kind, lazy)
            floor = len(train) * max(flops / (gflops * 1e9), bytes_ / (gbs * 1e9))
            numba = [r for r in rows if r[0] == lesson4.TITLES[kind] and r[1] == ("lazy" if lazy else "dense")
                     and r[2] == RUNNERS["fused"][2]]
            got = float(numba[0][3]) if numba else float("nan")
            floor_rows.append((lesson4.TITLES[kind], "lazy" if lazy else "dense", f"{flops:,.0f}",
                               f"{bytes_:,.0f}", f"{floor:.3f}", f"{got:.3f}", f"{got / floor:.1f}x"))
    text = "\n\n".join([
        "## Seconds per epoch (bench_epoch.py)",
        f"Machine: {machine_line([torch_note])}. "
        f"Data: {ds.name}, {len(train):,} training ratings, batch 64, Adam 1e-3, L2 1e-4. "
        f"Median of {args.epochs} alternating epochs after one warm-up epoch; minirec's kernels "
        "use one thread. `val MSE` is after the warm-up and timed epochs at lr 1e-3 (the "
        "notebook's λ: PyTorch's lazy mode penalises only looked-up rows, minirec's lazy mode "
        "balances the penalty by row frequency).",
        table(("model", "mode", "implementation", "s/epoch", "ratings/s", "vs PyTorch", "val MSE"), rows),
        "## Time to quality",
        "The improved bias recipe (y_range, one cycle of 5 epochs, peak lr 5e-3), Numba: "
        "training seconds (validation excluded) until the validation MSE first reaches 0.77.",
        table(("mode", "batch", "epochs", "train s", "final val MSE", "s to 0.77"), ttq),
        "## Distance from the machine's limit",
        f"Measured once on one core: float32 matmul {gflops:.0f} GFLOP/s; Adam's memory traffic "
        f"alone (a loop reading W, G, m, v and writing W, m, v, no arithmetic) {gbs:.1f} GB/s on "
        f"the movie table, which stays in cache, and {gbs_dram:.1f} GB/s on 64 MB arrays. The "
        "floor uses the in-cache figure. "
        "Work per rating is estimated from the loops: forward and backward 6F flops (+12FH for "
        "the neural net); each Adam-updated weight ~12 flops and 28 bytes (read W, G, m, v; "
        "write W, m, v in float32) — every row per batch in dense mode (shared by 64 ratings), "
        "at most two rows per rating in lazy mode. Floor = ratings x max(flops / peak flops, "
        "bytes / peak bandwidth); the matmul peak uses fused multiply-adds that Adam's "
        "divisions and square roots cannot, so the real floor is higher than this one.",
        table(("model", "mode", "flops/rating", "bytes/rating", "floor s/epoch", "numba s/epoch", "gap"), floor_rows),
    ])
    print("\n" + text)
    if args.write:
        write_section("bench_epoch", text)


if __name__ == "__main__":
    main()
