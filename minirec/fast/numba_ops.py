"""The layers' slow NumPy operations (``ops.py``) as Numba loops, for models on the numba backend.

Each function is the loop its reference in ``ops.py`` stands for; ``tests/test_ops.py`` holds
every one to its reference on tiny shapes with repeated ids and empty bags. Tables are 2-D
(an (n,) array travels as (n, 1)).

The bag sums group a batch's examples by row first (argsort), so a row that appears several
times in the batch has its bag summed once and its gradient scattered once:

    bag_sum:      S = Σ_{k ∈ bag r} W[k] once per distinct r;  out[n] = scale[r] · S
    bag_scatter:  D = Σ_{n: rows[n] = r} dout[n] once per r;   dW[k] += scale[r] · D,  k ∈ bag r
"""
import types

import numpy as np

from ..nn import ops
from . import jit


@jit
def _scatter_add(target, idx, values):
    for n in range(idx.shape[0]):
        row, value = target[idx[n]], values[n]
        for f in range(row.shape[0]):
            row[f] += value[f]


@jit
def _zero_rows(target, rows):
    for r in range(rows.shape[0]):
        target[rows[r]] = 0


@jit
def _distinct(idx):
    return np.unique(idx)


@jit
def _bag_sum(W, offsets, ids, rows, scale, out):
    order = np.argsort(rows)
    a = 0
    while a < order.shape[0]:
        r = rows[order[a]]
        first = out[order[a]]
        first[:] = 0
        for p in range(offsets[r], offsets[r + 1]):
            w = W[ids[p]]
            for f in range(w.shape[0]):
                first[f] += w[f]
        for f in range(first.shape[0]):
            first[f] *= scale[r]
        b = a + 1
        while b < order.shape[0] and rows[order[b]] == r:  # the same row again: copy
            out[order[b]] = first
            b += 1
        a = b


@jit
def _bag_scatter(dW, offsets, ids, rows, scale, dout):
    order = np.argsort(rows)
    D = np.empty(dout.shape[1], dout.dtype)
    a = 0
    while a < order.shape[0]:
        r = rows[order[a]]
        D[:] = 0
        b = a
        while b < order.shape[0] and rows[order[b]] == r:  # Σ dout over the row's examples
            for f in range(D.shape[0]):
                D[f] += dout[order[b], f]
            b += 1
        for f in range(D.shape[0]):
            D[f] *= scale[r]
        for p in range(offsets[r], offsets[r + 1]):
            g = dW[ids[p]]
            for f in range(g.shape[0]):
                g[f] += D[f]
        a = b


@jit
def _bag_rows(offsets, ids, rows, seen):
    """The distinct ids in the bags of ``rows``, in the order first met (a lazy step and the
    clearing of a gradient need the set, not its order); ``seen`` (one flag per table row, all
    False) marks them meanwhile and is left all False again."""
    n = 0
    for a in range(rows.shape[0]):
        r = rows[a]
        n += offsets[r + 1] - offsets[r]
    found = np.empty(n, np.intp)
    n = 0
    for a in range(rows.shape[0]):
        r = rows[a]
        for p in range(offsets[r], offsets[r + 1]):
            k = ids[p]
            if not seen[k]:
                seen[k] = True
                found[n] = k
                n += 1
    found = found[:n]
    for k in found:
        seen[k] = False
    return found


def two_d(a):
    return a.reshape(a.shape[0], -1) if a.ndim == 1 else a


def scatter_add(target, idx, values):
    ops.one_row_per_id(target, idx, values)  # the loop below would read past a short row
    _scatter_add(two_d(target), idx, two_d(values))


def zero_rows(target, rows):
    _zero_rows(two_d(target), rows)


def bag_sum(W, bags, rows, scale):
    out = np.empty((len(rows), W.shape[1]), W.dtype)
    _bag_sum(W, bags[0], bags[1], rows, scale, out)
    return out


def bag_scatter(dW, bags, rows, scale, dout):
    ops.one_row_per_id(dW, rows, dout, "bag_scatter")
    _bag_scatter(dW, bags[0], bags[1], rows, scale, np.ascontiguousarray(dout))


_SEEN = {}


def bag_rows(bags, rows, n):
    seen = _SEEN.get(n)
    if seen is None:
        seen = _SEEN[n] = np.zeros(n, np.bool_)  # all False between calls
    return _bag_rows(bags[0], bags[1], rows, seen)


NUMBA = types.SimpleNamespace(name="numba", scatter_add=scatter_add, distinct=_distinct,
                              zero_rows=zero_rows, bag_sum=bag_sum, bag_scatter=bag_scatter,
                              bag_rows=bag_rows)
ops.TWINS["numba"] = NUMBA  # the layers of a model on the numba backend now use these
