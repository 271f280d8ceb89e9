"""The GPU device check: run the gpu tests, then time CuPy against Numba on the same machine.

Run (on a machine with CuPy and a CUDA GPU):  python benchmarks/gpu_check.py [--skip-tests]

Needs nothing but the working tree: the data are synthetic, generated here, shaped like
ml-latest-small (671 users, 9,066 movies, 100,004 ratings) and like ML-25M (162,541 users,
59,047 movies, 25,000,095 ratings). It prints one table:

* one epoch of each model at batch 64 on the small shape (dense Adam, as the notebook);
* one epoch of the bias model with lazy Adam at batch 1,024 and 65,536 on the ML-25M shape.

Targets on one H100: the ML-25M lazy bias epoch at batch 65,536 under 1 s, and at least 20x
faster than the Numba backend on this machine's CPU for that run. Timings exclude the first
(compiling) epoch of each configuration, which runs on a small slice.
"""
import argparse
import os
import subprocess
import sys
import time

import minirec
from minirec.backend import cupy_available
from minirec.models.registry import KINDS
from minirec.data.synthetic import synthetic_like
from results import machine_line, table


def device_name():
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else name


def epoch_seconds(kind, backend, ds, batch, lazy, warm_rows=200_000):
    """Seconds for one epoch (after a compile/warm-up epoch on the first ``warm_rows``)."""
    model = KINDS[kind](ds.n_users, ds.n_movies, n_factors=50, l2=1e-4, seed=0, backend=backend)
    model.compile(minirec.Adam(1e-3, lazy=lazy))
    x, y = ds.x, ds.y
    warm = slice(0, min(len(y), warm_rows))
    model.fit([x[0][warm], x[1][warm]], y[warm], batch_size=batch, verbose=0)
    if backend == "cupy":
        import cupy
        cupy.cuda.Device().synchronize()
    hist = model.fit(x, y, batch_size=batch, verbose=0)  # the loss comes back: synchronised
    return hist.history["seconds"][0], hist.history["loss"][0]


def timed(func, *args):
    """Run one measurement; a failure prints its traceback and gives NaN, so the table goes on."""
    try:
        return func(*args)
    except Exception:
        import traceback
        traceback.print_exc()
        return float("nan"), float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-tests", action="store_true")
    args = parser.parse_args()
    if not cupy_available():
        sys.exit("gpu_check: CuPy with a CUDA device is needed (none is usable here)")
    here = os.path.dirname(os.path.abspath(__file__))
    if not args.skip_tests:
        env = dict(os.environ, PYTHONPATH=os.path.dirname(here))
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                                os.path.join(os.path.dirname(here), "tests")], env=env)
        print(f"gpu tests: exit code {code}", flush=True)
    rows = []
    start = time.perf_counter()
    small = synthetic_like("ml-latest-small", seed=0)
    for kind in ("dot", "bias", "nn"):
        t_cpu, _ = timed(epoch_seconds, kind, "numba", small, 64, False)
        t_gpu, _ = timed(epoch_seconds, kind, "cupy", small, 64, False)
        rows.append((kind, "small (100k)", "dense", 64, f"{t_cpu:.3f}", f"{t_gpu:.3f}", f"{t_cpu / t_gpu:.1f}x"))
        print(" | ".join(map(str, rows[-1])), flush=True)
    big = synthetic_like("ml-25m", seed=0)
    print(f"generated {big} in {time.perf_counter() - start:.0f} s", flush=True)
    for batch in (65_536, 1024):
        t_cpu, loss_cpu = timed(epoch_seconds, "bias", "numba", big, batch, True)
        t_gpu, loss_gpu = timed(epoch_seconds, "bias", "cupy", big, batch, True)
        rows.append(("bias", "ML-25M shape", "lazy", f"{batch:,}", f"{t_cpu:.3f}", f"{t_gpu:.3f}",
                     f"{t_cpu / t_gpu:.1f}x"))
        print(" | ".join(map(str, rows[-1])), f"(epoch loss numba {loss_cpu:.4f}, cupy {loss_gpu:.4f})", flush=True)
    import cupy
    print(f"\nGPU: {device_name()} (CuPy {cupy.__version__}); CPU: {machine_line()}")
    print(table(("model", "data", "Adam", "batch", "numba s/epoch", "cupy s/epoch", "speed-up"), rows))
    print(f"\ntotal {time.perf_counter() - start:.0f} s after the tests")


if __name__ == "__main__":
    main()
