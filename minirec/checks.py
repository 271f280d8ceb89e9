"""Inputs checked at the door: every public entry point (``fit``, ``predict``, ``evaluate``, the
model constructors, the CLI) sends what the user gave through here before any kernel sees it.

Each check returns the value in the form the code needs, or raises ``ValueError`` (``KeyError``
for an id the model does not know) with a message that names the bad value.
"""
import math
import numbers

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


def probability(name, value):
    """A drop probability in [0, 1)."""
    if not (isinstance(value, numbers.Real) and 0.0 <= float(value) < 1.0):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def index_array(ids, n, what):
    """A 1-D array of integer indices, each in 0..n-1, as a NumPy intp array.

    Floats that are whole numbers (1.0) are accepted; 1.9 is refused, not rounded down.
    """
    a = np.asarray(to_numpy(ids))
    if a.ndim != 1:
        raise ValueError(f"{what} ids must be a 1-D array, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"{what} ids must be whole-number indices, got dtype {a.dtype}")
        whole = np.isfinite(a) & (a == np.floor(a))
        if not whole.all():
            raise ValueError(f"{what} ids must be whole-number indices, got {float(a[~whole][0])}")
    a = a.astype(np.int64, copy=False)
    bad = (a < 0) | (a >= n)
    if bad.any():
        raise KeyError(f"unknown {what} index {int(a[bad][0])}: this model knows {n} "
                       f"{what}s (indices 0..{n - 1})")
    return a.astype(np.intp, copy=False)


def inputs(x, n_users, n_movies, xp):
    """``x = [users, movies]`` as two index arrays of the same length, on ``xp``."""
    if not isinstance(x, (list, tuple)) or len(x) != 2:
        raise ValueError("inputs must be a pair [users, movies] of index arrays")
    users, movies = index_array(x[0], n_users, "user"), index_array(x[1], n_movies, "movie")
    if len(users) != len(movies):
        raise ValueError(f"{len(users)} users but {len(movies)} movies: the two input arrays "
                         "must have the same length")
    return to_xp(users, xp), to_xp(movies, xp)


def ratings(y, n, xp, dtype):
    """``y`` as a 1-D array of ``n`` finite ratings, on ``xp`` in ``dtype``."""
    a = np.asarray(to_numpy(y))
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
