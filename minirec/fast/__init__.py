"""Compiled pieces of training: the same maths as the layers and ``optim.adam_update``, in loops.

``numba_ops`` holds the layers' slow operations (scatter-add, bag sums) as loops;
``numba_adam`` holds Adam for one table at a time (every row, or the rows a batch saw), used
for any model on the numba backend. ``numba_mf`` and ``numba_nn`` are whole-model kernels, each
registered for one exact class in ``models/recommender.py`` and checked against that class's layers before
use (``runners.py``). Nothing here is imported by ``import minirec``: kernels compile on first
use. The GPU needs no module of its own: the layers run on CuPy and ``cupy.fuse`` compiles
``adam_update`` and ``sigmoid_range`` (``backend.compiled``).

``jit`` compiles a kernel with Numba and caches the machine code on disk. Numba's cache only
notices edits to the kernel's own file; these kernels also compile functions from ``optim.py``
and ``layers.py`` into their loops, so the cache lives in a folder named after a hash of all of
those files: edit ``adam_update`` and every kernel recompiles with your version.

Compiling takes seconds a kernel, so a run that compiles says so (``CompileNotes``): what is
being compiled, that it happens once, about how long, and a line every few seconds until it is
done; ``compile_seconds()`` counts the time, so that no one mistakes it for training.
"""
import hashlib
import os
import sys
import threading
import time
import warnings
from pathlib import Path

import numba
from numba.core import event

PACKAGE = Path(__file__).resolve().parent.parent
SOURCES = [PACKAGE / "nn" / "optim.py", PACKAGE / "nn" / "layers.py", PACKAGE / "nn" / "activations.py",
           PACKAGE / "nn" / "ops.py", *sorted(Path(__file__).parent.glob("*.py"))]


def cache_dir():
    """``$NUMBA_CACHE_DIR`` (or minirec's cache folder) / a hash of the kernels' sources, or None
    when no such folder can be written (then kernels compile in every process)."""
    from ..backend import cache_home
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in SOURCES)).hexdigest()[:16]
    base = os.environ.get("NUMBA_CACHE_DIR") or cache_home() / "numba"
    folder = Path(base) / f"minirec-{digest}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return folder
    except OSError as e:
        warnings.warn(f"minirec cannot write its Numba cache under {base} ({e.strerror}); kernels "
                      "will compile in every process. Set NUMBA_CACHE_DIR to a writable folder, "
                      "or use backend='numpy'.", stacklevel=3)
        return None


CACHE = cache_dir()


def jit(fn=None, **options):
    """``numba.njit`` with ``error_model="numpy"`` and the on-disk cache of ``cache_dir()``.

    ``error_model="numpy"``: a division by zero gives inf/NaN as in NumPy instead of raising,
    and without that per-division check LLVM can vectorise the loops.
    """
    if fn is None:
        return lambda f: jit(f, **options)
    options.setdefault("error_model", "numpy")
    if CACHE is None:
        return numba.njit(**options)(fn)
    saved = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = str(CACHE)  # read once, when the dispatcher picks its cache folder
    try:
        return numba.njit(cache=True, **options)(fn)
    finally:
        numba.config.CACHE_DIR = saved


def use_threads(n):
    """Let parallel kernels use ``n`` threads (at most as many as Numba started); returns the count."""
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    return n


def available_threads():
    """The most threads the parallel kernels can use: the threads Numba started with."""
    return numba.config.NUMBA_NUM_THREADS


# ----- saying what compiles, while it compiles ---------------------------------------------------
# Seconds to compile each module's kernels for one dtype on a fresh cache (the "about" of the
# notes): the CPU seconds of those compiles in benchmarks/first_run.py (RESULTS.md, "The first
# run"; numba_mf 9.2 and 10.6 for two dtypes, numba_nn 7.0 and 7.8), which is what they take
# on an idle machine: Numba compiles on one thread. The layers' loops: 1.4, for a
# DotProductBias with ``fused = False``.
SECONDS_PER_DTYPE = {"numba_mf": 5, "numba_nn": 4, "layers": 2}
TICK = 3.0  # seconds without a line after which the notes say the compile is still going


class CompileNotes:
    """While active (``with notes:``), says what Numba compiles: ``heading`` before the first
    compile (a sentence saying what and for what; the notes add that it happens once, where it
    is kept, and about how long: ``seconds``), then a line as each kernel starts and ends, and
    one every ``TICK`` seconds in between. Numba announces a compile only when the machine code
    is not in the cache, so with a warm cache the notes print nothing."""

    def __init__(self, heading, seconds, out=None):
        self.heading, self.seconds, self.out = heading, seconds, out
        self.said_heading, self.last_line = False, 0.0
        self.lock = threading.Lock()

    def say(self, line):
        with self.lock:
            print(line, file=self.out or sys.stdout, flush=True)
            self.last_line = time.perf_counter()

    def started(self, name):
        if not self.said_heading:
            self.said_heading = True
            when = (f"once (Numba keeps the machine code in {CACHE}, so later runs start at "
                    "once)" if CACHE is not None else "in every process (no cache folder could "
                    "be written: set NUMBA_CACHE_DIR)")
            self.say(f"{self.heading}: {when}; about {self.seconds:.0f} s on an idle machine, "
                     "longer on a busy one.")
        self.say(f"  compiling {name} ...")
        self.ticking = threading.Event()
        threading.Thread(target=self.tick, args=(name, self.ticking), daemon=True).start()

    def tick(self, name, done):
        start = time.perf_counter()
        while not done.wait(0.25):
            if time.perf_counter() - self.last_line >= TICK:
                self.say(f"  ... still compiling {name} ({time.perf_counter() - start:.0f} s)")

    def ended(self, name, seconds):
        self.ticking.set()
        self.say(f"  compiled {name} in {seconds:.1f} s")

    def __enter__(self):
        WATCH.notes.append(self)
        return self

    def __exit__(self, *exc):
        WATCH.notes.remove(self)


class CompileWatch(event.Listener):
    """Numba's compile events, outermost only (a kernel's callees compile inside it): their
    seconds add up in ``seconds``, and the innermost active ``CompileNotes`` hears of them."""

    def __init__(self):
        self.depth, self.seconds, self.notes, self.started = 0, 0.0, [], 0.0

    def on_start(self, ev):
        self.depth += 1
        if self.depth == 1:
            self.started = time.perf_counter()
            if self.notes:
                self.notes[-1].started(kernel_name(ev.data))

    def on_end(self, ev):
        self.depth -= 1
        if self.depth == 0:
            seconds = time.perf_counter() - self.started
            self.seconds += seconds
            if self.notes:
                self.notes[-1].ended(kernel_name(ev.data), seconds)


def kernel_name(data):
    """"numba_mf.train_batches (float32)": a compile event's function and the dtype of its first
    float array argument."""
    fn = data["dispatcher"].py_func
    floats = [a.dtype for a in data["args"] if isinstance(a, numba.types.Array)
              and isinstance(a.dtype, numba.types.Float)]
    return f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}" + (f" ({floats[0]})" if floats else "")


WATCH = CompileWatch()
event.register("numba:compile", WATCH)


def compile_seconds():
    """Seconds this process has spent compiling with Numba since minirec.fast was imported."""
    return WATCH.seconds
