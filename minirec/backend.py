"""Which array module runs the maths, how arrays move between devices, and seeded RNGs.

Every piece of array code in minirec is written once against ``xp``, an array module that is
either NumPy or CuPy (they share an API). The *backend* names how training runs:

=========  ======================  ==========================================================
backend    array module ``xp``     training step (``runners.py`` chooses, in one place)
=========  ======================  ==========================================================
numpy      numpy                   the layers' forward/backward, then ``Adam.step``
numba      numpy                   the layers, then Adam table by table in a Numba loop; a
                                   whole-model Numba kernel for the exact classes that have one
cupy       cupy                    the layers on the GPU, then Adam as one fused GPU kernel
auto       cupy if a GPU works,    —
           else numba
=========  ======================  ==========================================================

``MINIREC_BACKEND`` sets the default for models built without ``backend=``.
Nothing here imports Numba or CuPy at import time: ``import minirec`` stays quick.
"""
import os
import sys
import types
from pathlib import Path

import numpy as np

BACKENDS = ("numpy", "numba", "cupy", "auto")


def cache_home():
    """minirec's own writable folder: ``$XDG_CACHE_HOME/minirec`` or ``~/.cache/minirec``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "minirec"


def default_threads():
    """How many CPU threads the Numba kernels may use: ``$MINIREC_THREADS``, else 1.

    A run is bitwise reproducible for a given seed and thread count; the kernels that use more
    than one thread split work whose result does not depend on the split (a dense Adam step over
    the entries of a table), so today the count changes the speed, not the numbers.
    """
    value = os.environ.get("MINIREC_THREADS", "1")
    try:
        threads = int(value)
    except ValueError:
        raise ValueError(f"MINIREC_THREADS must be a whole number >= 1, got {value!r}") from None
    if threads < 1:
        raise ValueError(f"MINIREC_THREADS must be a whole number >= 1, got {threads}")
    return threads


def cupy_available():
    """True when CuPy imports and sees at least one CUDA device. (minirec's own tests may put a
    CPU stand-in in CuPy's place, ``tests/cupy_standin.py``: it counts here, so that
    ``backend="cupy"`` runs on it, but ``"auto"`` never chooses it.)"""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, or CUDA driver/runtime errors
        return False


def _gpu_for_auto():
    """A real GPU, for ``backend="auto"`` (not the tests' stand-in)."""
    return cupy_available() and not getattr(sys.modules.get("cupy"), "STANDIN", False)


def numba_available():
    try:
        import numba  # noqa: F401
        return True
    except ImportError:
        return False


def resolve_backend(name=None):
    """Turn ``None``/``"auto"``/a name into a concrete backend name, or raise ValueError."""
    name = name or os.environ.get("MINIREC_BACKEND") or "auto"
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "auto":
        if _gpu_for_auto():
            return "cupy"
        return "numba" if numba_available() else "numpy"
    if name == "cupy" and not cupy_available():
        raise RuntimeError("backend='cupy' needs CuPy and a CUDA GPU; none is usable here")
    if name == "numba" and not numba_available():
        raise RuntimeError("backend='numba' needs the numba package (pip install numba)")
    return name


def array_module(backend):
    """The ``xp`` for a concrete backend name."""
    if backend == "cupy":
        import cupy
        return cupy
    return np


def get_array_module(a):
    """The module (numpy or cupy) that owns array ``a``."""
    if type(a).__module__.startswith("cupy"):
        return array_module("cupy")
    return np


def to_numpy(a):
    """``a`` as a NumPy array wherever it lives: a CuPy array comes to the host; a pandas Series
    or column, a list, anything array-like goes through ``np.asarray`` (a no-op for NumPy)."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    if hasattr(a, "to_numpy") and not isinstance(a, np.ndarray):  # pandas
        return a.to_numpy()
    return np.asarray(a)


def to_xp(a, xp, dtype=None):
    """Move ``a`` to the array module ``xp`` (host -> device or back), optionally casting."""
    if xp is np:
        out = to_numpy(a)
    else:
        out = xp.asarray(a)
    return out.astype(dtype, copy=False) if dtype is not None else out


def seeded_rngs(seed, n):
    """``n`` independent NumPy generators from one seed (init, shuffling, dropout, negatives).

    Spawning from one ``SeedSequence`` keeps the streams independent, so drawing more dropout
    masks never changes the shuffling order, and the same seed always gives the same run.
    """
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


_COMPILED = {}


def compiled(fn, xp, record=None):
    """``fn``, a function of numbers written with NumPy's ufuncs (``np.sqrt``, ``np.exp``), ready
    to run elementwise on ``xp``'s arrays.

    On NumPy that is ``fn`` itself. On CuPy it is the *same code* with ``np`` bound to CuPy,
    compiled by ``cupy.fuse`` into one GPU kernel (instead of one kernel per operation). The
    Numba kernels compile the same functions into their loops, so each equation is written once.
    ``record``: the NamedTuple class of ``fn``'s last argument (``optim.AdamStep``), which
    ``cupy.fuse`` cannot take whole; its fields then travel one by one and are put back together
    inside the compiled function.
    """
    if xp is np:
        return fn
    if fn not in _COMPILED:
        rebound = types.FunctionType(fn.__code__, {**fn.__globals__, "np": xp}, fn.__name__,
                                     fn.__defaults__, fn.__closure__)
        if record is None:
            _COMPILED[fn] = xp.fuse(rebound)
        else:
            n_fields = len(record._fields)
            # named: CuPy names the kernel after the function, and "<lambda>" does not compile
            fused = xp.fuse(kernel_name=fn.__name__)(
                lambda *args: rebound(*args[:-n_fields], record(*args[-n_fields:])))
            _COMPILED[fn] = lambda *args: fused(*args[:-1], *args[-1])
    return _COMPILED[fn]
