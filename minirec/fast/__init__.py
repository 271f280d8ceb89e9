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
"""
import hashlib
import os
import warnings
from pathlib import Path

import numba

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
