"""MovieLens-25M scale on the CPU: generate, train one epoch, evaluate, and read a 25M-row CSV.

Run:  python benchmarks/bench_scale.py [--ratings 25000095] [--write]

On a synthetic set shaped like ML-25M (162,541 users, 59,047 movies, 25,000,095 ratings) it
times: generating the ratings; one epoch of the bias model with lazy Adam (Numba) at batch 64
and at batch 1,024; a full evaluation pass over all ratings; writing them as a MovieLens
``ratings.csv`` (not a target) and reading that file back through ``load_movielens``. It reports
the process's peak resident memory after each step.

Targets on 2 cores: the batch-1,024 epoch within 12 s, peak resident memory under 2 GB, and
reading the 25M-row ratings.csv within 30 s. The batch-1,024 epoch runs once per thread count
of ``--threads`` (default 1,2) on an otherwise idle machine, then again with the second core
kept busy by a process the benchmark starts and stops itself (a Python loop that never waits;
``--no-busy`` skips these runs): two threads must not be slower than one there (within 10%),
and faster where the core is free. ``--write`` rewrites RESULTS.md's section.
"""
import argparse
import contextlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import minirec
from minirec.data.synthetic import SHAPES, synthetic_movielens, write_release
from results import machine_line, table


def peak_gb():
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


@contextlib.contextmanager
def busy_core(on):
    """A second process that keeps one core busy (a loop that never waits), for the block."""
    if not on:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it start spinning
        yield
    finally:
        spinner.kill()
        spinner.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratings", type=int, default=SHAPES["ml-25m"][2])
    parser.add_argument("--threads", default="1,2", help="thread counts for the batch-1,024 epoch")
    parser.add_argument("--no-busy", action="store_true", help="skip the runs with a busy core")
    parser.add_argument("--skip-csv", action="store_true", help="skip writing and reading ratings.csv")
    parser.add_argument("--write", action="store_true", help="rewrite RESULTS.md's section")
    args = parser.parse_args()
    users, movies, _ = SHAPES["ml-25m"]
    rows = []

    def record(step, seconds, note=""):
        rows.append((step, f"{seconds:.1f}", f"{peak_gb():.2f}", note))
        print(" | ".join(rows[-1]), flush=True)

    start = time.perf_counter()
    ds = synthetic_movielens(users, movies, args.ratings, seed=0)
    record("generate the ratings", time.perf_counter() - start, repr(ds))
    x, y = ds.x, ds.y
    warm = slice(0, 100_000)
    counts = [int(t) for t in args.threads.split(",")]
    runs = ([(1024, t, False) for t in counts] + [(1024, t, True) for t in counts] * (not args.no_busy)
            + [(64, 1, False)])
    for batch, threads, busy in runs:
        model = minirec.DotProductBias(ds.n_users, ds.n_movies, 50, l2=1e-4, seed=0, backend="numba")
        model.threads = threads
        model.compile(minirec.Adam(1e-3, lazy=True))
        model.fit([x[0][warm], x[1][warm]], y[warm], batch_size=batch, verbose=0)  # compile
        with busy_core(busy):
            hist = model.fit(x, y, batch_size=batch, verbose=0)
        record(f"one epoch, bias model, lazy Adam, batch {batch:,}, {threads} thread(s)"
               + (", the other core busy" if busy else ""),
               hist.history["seconds"][0], f"training loss {hist.history['loss'][0]:.4f}")
    start = time.perf_counter()
    mse = model.evaluate(x, y)
    record("evaluate all ratings", time.perf_counter() - start, f"MSE {mse:.4f}")
    folder = Path(tempfile.mkdtemp(prefix="minirec-scale-"))
    try:
        if args.skip_csv:
            raise StopIteration
        start = time.perf_counter()
        write_release(ds, folder)
        size = (folder / "ratings.csv").stat().st_size
        record("write ratings.csv (not a target)", time.perf_counter() - start, f"{size / 1e6:,.0f} MB")
        del ds, x, y, model
        start = time.perf_counter()
        back = minirec.load_movielens(folder)
        record("read ratings.csv with load_movielens", time.perf_counter() - start, repr(back))
    except StopIteration:
        pass
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    text = "\n\n".join([
        "## ML-25M scale on the CPU (bench_scale.py)",
        f"Machine: {machine_line()}. Synthetic ratings shaped like ML-25M; Numba backend "
        "(`model.threads` as stated). Peak memory is the process's peak resident set so far "
        "(it only grows).",
        table(("step", "seconds", "peak GB", "note"), rows),
    ])
    print("\n" + text)
    if args.write:
        from results import write_section
        write_section("bench_scale", text)


if __name__ == "__main__":
    main()
