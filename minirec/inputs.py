"""Inputs checked at the door: every public entry point (``fit``, ``predict``, ``evaluate``, the
model constructors, the CLI) sends what the user gave through here before any kernel sees it.

Each check returns the value in the form the code needs, or raises ``ValueError`` (``KeyError``
for an id the model does not know) with a message that names the bad value.
"""
import math
import numbers
import os

import numpy as np

from .backend import to_numpy, to_xp


def whole_number(name, value, minimum):
    """``value`` as an int >= ``minimum``; refuses 1.9, True, "3" and numbers below the minimum."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def batch_size(value, n):
    """The one batch-size door (``fit``, ``predict``, ``evaluate``, ``lr_find``): a whole number
    >= 1, clamped to the ``n`` rows there are. A batch larger than the data is the data: buffers
    sized by the number asked for would be allocated for rows that do not exist."""
    return min(whole_number("batch_size", value, 1), max(1, int(n)))


class NotEnoughMemory(ValueError):
    """Work refused before it allocates: the message says how much it needs and how much there is."""


def size_text(n_bytes):
    """A number of bytes as people read it: 183 KiB, 10.8 GiB."""
    for unit, scale in (("TiB", 2 ** 40), ("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{int(n_bytes)} bytes"


def available_memory(xp=np):
    """Bytes the machine can give now: the GPU's free memory for CuPy; else Linux's
    MemAvailable, or the physical memory elsewhere; None where it cannot be told."""
    if xp is not np:
        return int(xp.cuda.runtime.memGetInfo()[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory(what, n_bytes, xp=np, have=None, where=None):
    """The one memory check, made before allocating: refuse ``what`` when its estimate
    ``n_bytes`` is more than there is — ``have`` bytes (``where`` says whose: "the file holds"),
    or by default what the machine has available now. Returns ``n_bytes``."""
    if have is None:
        have, where = available_memory(xp), "available " + ("on the GPU" if xp is not np else
                                                             "on this machine")
    if have is not None and n_bytes > have:
        raise NotEnoughMemory(f"{what} needs about {size_text(n_bytes)}, more than the "
                              f"{size_text(have)} {where}")
    return n_bytes


def probability(name, value):
    """A drop probability in [0, 1)."""
    if not (isinstance(value, numbers.Real) and 0.0 <= float(value) < 1.0):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def as_array(value, what):
    """The one door for array-likes: a NumPy array, a CuPy array, a pandas Series or column
    (``trn.userId``), a list — as a NumPy array, or a ``ValueError`` naming ``what``."""
    try:
        a = to_numpy(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be an array of numbers, got {type(value).__name__} ({e})") from None
    if a.dtype == object:
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be numbers, got {next(iter(a.ravel()), None)!r} "
                             f"({type(value).__name__} of Python objects)") from None
    return a


def index_array(ids, n, what):
    """A 1-D array of integer indices, each in 0..n-1, as a NumPy intp array.

    Floats that are whole numbers (1.0) are accepted; 1.9 is refused, not rounded down.
    """
    a = as_array(ids, f"{what} ids")
    if a.ndim != 1:
        raise ValueError(f"{what} ids must be a 1-D array, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"{what} ids must be whole-number indices, got dtype {a.dtype}")
        whole = np.isfinite(a) & (a == np.floor(a))
        if not whole.all():
            raise ValueError(f"{what} ids must be whole-number indices, got {float(a[~whole][0])}")
    bad = (a < 0) | (a >= n)  # in the ids' own dtype: a uint64 2^63 is not -2^63
    if bad.any():
        raise KeyError(f"unknown {what} index {int(a[bad][0])}: this model knows {n} "
                       f"{what}s (indices 0..{n - 1})")
    return a.astype(np.intp, copy=False)


def pairs(x, n_users, n_movies, xp):
    """``x = [users, movies]`` as two index arrays of the same length, on ``xp``."""
    if not isinstance(x, (list, tuple)) or len(x) != 2:
        raise ValueError(f"inputs must be a pair [users, movies] of index arrays, got "
                         f"{type(x).__name__}" + (f" of {len(x)}" if isinstance(x, (list, tuple)) else ""))
    users, movies = index_array(x[0], n_users, "user"), index_array(x[1], n_movies, "movie")
    if len(users) != len(movies):
        raise ValueError(f"{len(users)} users but {len(movies)} movies: the two input arrays "
                         "must have the same length")
    return to_xp(users, xp), to_xp(movies, xp)


def ratings(y, n, xp, dtype):
    """``y`` as a 1-D array of ``n`` finite ratings, on ``xp`` in ``dtype``."""
    a = as_array(y, "ratings y")
    if a.ndim != 1:
        raise ValueError(f"ratings y must be a 1-D array, got shape {a.shape}")
    if len(a) != n:
        raise ValueError(f"{n} (user, movie) pairs but {len(a)} ratings: x and y must have the "
                         "same length")
    if a.size and not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"ratings must be numbers, got dtype {a.dtype}")
    finite = np.isfinite(a.astype(np.float64))
    if not finite.all():
        k = int(np.argmin(finite))
        raise ValueError(f"rating {k} is {a[k]}: ratings must be finite numbers")
    return to_xp(a, xp, dtype)


def finite_positive(name, value):
    """A finite number > 0 (a learning rate, say)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def validation_data(data, n_users, n_movies, xp, dtype):
    """``validation_data=([users, movies], ratings)`` checked like ``fit``'s own data, or a
    ``ValueError`` that shows the expected shape."""
    shape = "validation_data must be ([users, movies], ratings)"
    if not isinstance(data, (list, tuple)) or len(data) != 2:
        raise ValueError(f"{shape}, got {type(data).__name__}"
                         + (f" of {len(data)} items" if isinstance(data, (list, tuple)) else ""))
    x, y = data
    if not isinstance(x, (list, tuple)) or len(x) != 2:
        raise ValueError(f"{shape}: its first item must be the pair [users, movies]")
    users, movies = pairs(x, n_users, n_movies, xp)
    return [users, movies], ratings(y, len(users), xp, dtype)
