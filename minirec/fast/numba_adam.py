"""Adam for one table at a time, compiled by Numba: the per-table piece every model uses on the
numba backend (``runners.LayerRunner``) and the whole-model kernels call too.

The update itself is ``optim.adam_update``, compiled here as it is written there; what these
loops add is *which* entries it visits and the L2 term of the gradient:

    dense (every entry):           g = G + 2λ·W                       then adam_update
    lazy (the rows a batch saw):   g = G[i] + c_i·W[i]   (c_i: 2λ, or the balanced 2λ/p_i)

Arguments are one ``Table`` per parameter — its weights w, the batch's gradient g, Adam's
moments m and v, all 2-D (a bias (H,) travels as (1, H)) — and the step's ``AdamStep`` k.
"""
from typing import NamedTuple

import numpy as np
from numba import prange

from ..nn.optim import AdamStep, adam_update as _adam_update
from . import jit
from .denormals import flush_denormals, restore_fp_mode
from .prefetch import prefetch

adam_update = jit(_adam_update)


class Table(NamedTuple):
    """One parameter as the kernels see it (all arrays 2-D, C-contiguous, one dtype)."""
    w: np.ndarray       # the weights
    g: np.ndarray       # the gradient of the batch's MSE (a buffer kept at zero in between)
    m: np.ndarray       # Adam's first moment
    v: np.ndarray       # Adam's second moment
    l2: float           # 2λ, for dense steps
    l2_rows: np.ndarray  # (rows,) the L2 factor of each row in lazy steps: 2λ, or 2λ/p_i


@jit
def adam_span(t, lo, hi, k):
    """Entries lo..hi-1 of table t (flattened) take a step, with g = G + 2λ·W: one flat loop,
    which LLVM vectorises; it then runs at the speed of memory and of one division and square
    root per entry — the whole cost of Keras-style dense updates.

    Denormals are flushed to zero meanwhile (``denormals.py``): dense Adam with L2 pulls rows
    no batch touches towards 1e-32, where every vector operation takes a slow microcode path.
    """
    w, g = t.w.reshape(t.w.size)[lo:hi], t.g.reshape(t.g.size)[lo:hi]
    m, v = t.m.reshape(t.m.size)[lo:hi], t.v.reshape(t.v.size)[lo:hi]
    fp_mode = flush_denormals()
    for e in range(w.size):
        w[e], m[e], v[e] = adam_update(w[e], g[e] + t.l2 * w[e], m[e], v[e], k)
    restore_fp_mode(fp_mode)


@jit
def adam_dense(t, k):
    """Every entry of table t takes a step (``adam_span`` over the whole table)."""
    adam_span(t, 0, t.w.size, k)


@jit(parallel=True)
def adam_dense_threads(w, g, m, v, l2, l2_rows, k, n_threads):
    """``adam_dense`` with the table cut into ``n_threads`` spans, one per thread. Every entry's
    update is independent of the others, so the result does not depend on the thread count.
    (A parallel loop cannot capture a ``Table``: its arrays come one by one.)"""
    n = w.size
    for part in prange(n_threads):
        adam_span(Table(w, g, m, v, l2, l2_rows), part * n // n_threads,
                  (part + 1) * n // n_threads, k)


AHEAD = 8  # rows between asking for a row's moments (``prefetch.py``) and reading them


@jit
def adam_rows(t, rows, n_rows, k):
    """Only rows[0..n_rows-1] of table t take a step, row i with g = G[i] + c_i·W[i]. The
    moments of the row AHEAD places on are asked for meanwhile: the rows are scattered over
    the table, and a table bigger than the cache would otherwise wait for each in turn."""
    for r in range(n_rows):
        if r + AHEAD < n_rows:
            prefetch(t.m[rows[r + AHEAD]])
            prefetch(t.v[rows[r + AHEAD]])
        i = rows[r]
        c = t.l2_rows[i]
        w, g, m, v = t.w[i], t.g[i], t.m[i], t.v[i]
        for f in range(w.shape[0]):
            w[f], m[f], v[f] = adam_update(w[f], g[f] + c * w[f], m[f], v[f], k)


PARALLEL_ABOVE = 1 << 16  # a dense step over fewer entries than this stays on one thread


@jit
def step_table(t, k, rows, lazy, threads):
    """A table's Adam step at the step constants k: only the rows in ``rows`` (``lazy``), or
    every entry (``lazy`` None), split over ``threads`` threads for a table of
    ``PARALLEL_ABOVE`` entries or more (``threads`` None: on this thread).

    The two switches are None or a value, not False or 1, so that a run compiles only what it
    runs: Numba compiles a function for the types of its arguments, and where an argument is
    None it drops the branch under ``if x is not None`` unread (``compile_time``)."""
    if lazy is not None:
        adam_rows(t, rows, rows.shape[0], k)
    elif threads is not None and t.w.size >= PARALLEL_ABOVE:
        adam_dense_threads(t.w, t.g, t.m, t.v, t.l2, t.l2_rows, k, threads)
    else:
        adam_dense(t, k)


def compile_time(lazy, threads):
    """(``lazy``, ``threads``) as ``step_table`` and the kernels take them: True or None, and a
    count of two or more or None. A dense run on one thread then compiles ``adam_dense`` alone
    (not the lazy loop, not the threaded one with Numba's thread pool), and a lazy run the lazy
    loop alone (its steps run on one thread). With the threaded split of a lazy batch moved to a
    kernel of its own (``numba_mf.train_batches_split``), this took the compile ``minirec
    lesson4`` waits for on a fresh cache from 48-53 CPU seconds to 16-18
    (benchmarks/RESULTS.md, "The first run")."""
    return (True, None) if lazy else (None, threads if threads > 1 else None)


@jit
def step_arrays(w, g, m, v, l2, l2_rows, rows, steps, b, lazy, threads):
    """``step_table`` for one table given as its arrays, at step ``steps[b]`` (what the layers
    runner calls once per table and batch: arrays cross into compiled code faster than a
    ``Table``, and the step's constants are worked out once for many batches)."""
    step_table(Table(w, g, m, v, l2, l2_rows), adam_step_at(steps, b), rows, lazy, threads)


@jit
def adam_step_at(steps, b):
    """Row b of an (n, 9) array of step constants, as an ``AdamStep``."""
    s = steps[b]
    return AdamStep(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8])


def adam_steps(opt, dtype, lrs, t0):
    """The ``AdamStep`` of each of the batches at rates ``lrs``, steps t0+1, t0+2, ..., as rows
    of one array (what ``adam_step_at`` reads): ``Adam.constants`` on arrays of t and lr, whose
    β^t is the scalar power of each step (``optim.bias_correction``), so every row holds the
    same bits as the step ``Adam.step`` takes on NumPy."""
    t = t0 + 1 + np.arange(len(lrs), dtype=np.float64)
    return np.stack(np.broadcast_arrays(*opt.constants(t, np.float64, np.asarray(lrs, np.float64))),
                    axis=1).astype(dtype)


def two_d(a):
    """An array as the kernels take it: 2-D (a bias (H,) as (1, H))."""
    return a.reshape(1, -1) if a.ndim == 1 else a


def table(w, g, m, v, l2, l2_rows):
    """A ``Table``: the arrays as 2-D views, 2λ in their dtype and the rows' L2 factors."""
    w, g, m, v = (two_d(a) for a in (w, g, m, v))
    return Table(w, g, m, v, w.dtype.type(l2), l2_rows)


def l2_factors(regulariser, w):
    """(2λ, the rows' L2 factors) of a table's regulariser; (0, zeros) for a table without one."""
    if regulariser is None:
        rows = w.shape[0] if w.ndim == 2 else 1
        return 0.0, np.zeros(rows, w.dtype)
    return 2.0 * regulariser.l2, regulariser.coefficients(w)
