"""Numba kernels: a whole range of batches of training in one compiled call.

The reference (``Model.run_batches``) runs each batch through the layers and ``Adam.step``
with NumPy, allocating a full gradient table per batch. The kernels here compute *the same
numbers* in plain loops, without allocations:

    for each batch:
        forward + backward, rating by rating: accumulate gradients into G (a scatter-add)
        if the batch loss is not finite: stop, before any update
        Adam on every row (dense, as Keras) or on the rows this batch saw (lazy); then G = 0

Arithmetic stays in the parameters' dtype (float32 or float64) and follows the NumPy code's
order, so both backends agree to rounding (``tests/test_parity.py``). Numba would compute
``0.9 * m`` in float64 for a float32 ``m``, so every constant arrives already cast:

* ``c``: β1, 1-β1, β2, 1-β2, ε, 1, lo, hi-lo, 2λ (indices below);
* ``steps[b]``: lr_t, ε_t, lr·weight_decay for batch b (computed in float64 in Python,
  then cast, as NumPy casts a Python float).

Every kernel compiles on first use and is cached on disk (``cache=True``), with
``error_model="numpy"``: a division by zero gives inf/NaN as in NumPy instead of raising, and
without that per-division check LLVM can vectorise the loops (about 4x faster dense Adam).
"""
import numpy as np
from numba import njit

from .denormals import flush_denormals, restore_fp_mode

B1, OMB1, B2, OMB2, EPS, ONE, LO, SPAN, L2X2 = range(9)   # indices into c
LR_T, EPS_T, LRWD = range(3)                               # indices into steps[b]


def constants(dtype, opt, y_range, l2):
    lo, hi = y_range if y_range is not None else (0.0, 1.0)
    b1, b2 = opt.beta_1, opt.beta_2
    return np.array([b1, 1 - b1, b2, 1 - b2, opt.epsilon, 1.0, lo, hi - lo, 2.0 * l2], dtype)


def step_constants(dtype, opt, lrs, t0):
    """Per-batch constants for the batches with step numbers t = t0+1, t0+2, ...

    The bias correction is folded into the step size (two divisions fewer per weight):

        lr · m̂ / (√v̂ + ε)  =  lr_t · m / (√v + ε_t),
        lr_t = lr · √(1-β2^t) / (1-β1^t),   ε_t = ε · √(1-β2^t)

    (multiply top and bottom by √(1-β2^t)). It is the same number up to rounding; the NumPy
    reference in ``optim.Adam`` writes m̂ and v̂ out, and the parity tests hold the two together.
    """
    t = t0 + 1 + np.arange(len(lrs))
    lrs = np.asarray(lrs, np.float64)
    root_c2 = np.sqrt(1 - opt.beta_2 ** t)
    return np.stack([lrs * root_c2 / (1 - opt.beta_1 ** t), opt.epsilon * root_c2,
                     lrs * opt.weight_decay], axis=1).astype(dtype)


@njit(cache=True, error_model="numpy")
def adam_rows(W, G, M, V, rows, n_rows, c, st, l2x2):
    """Lazy Adam: only rows[0..n_rows-1] of W, each with gradient G[i] + 2λ·W[i]; then G[i] = 0.

    The bias correction is folded into lr_t and ε_t (see ``step_constants``).
    """
    for k in range(n_rows):
        i = rows[k]
        for f in range(W.shape[1]):
            g = G[i, f] + l2x2 * W[i, f]
            m = c[B1] * M[i, f] + c[OMB1] * g          # m <- β1 m + (1-β1) g
            v = c[B2] * V[i, f] + c[OMB2] * (g * g)    # v <- β2 v + (1-β2) g²
            M[i, f] = m
            V[i, f] = v
            W[i, f] = W[i, f] - (st[LR_T] * m / (np.sqrt(v) + st[EPS_T]) + st[LRWD] * W[i, f])
            G[i, f] = 0


@njit(cache=True, error_model="numpy")
def adam_all(W, G, M, V, c, st, l2x2):
    """Dense Adam: the update of ``adam_rows`` for every entry, as one flat loop.

    The arrays are distinct and nothing here can raise, so LLVM vectorises the loop; it then
    runs at the speed of memory and of the one division and square root per entry, which is
    the whole cost of Keras-style dense updates.
    """
    w, gr, mo, ve = W.reshape(W.size), G.reshape(G.size), M.reshape(M.size), V.reshape(V.size)
    b1, omb1, b2, omb2 = c[B1], c[OMB1], c[B2], c[OMB2]
    lr_t, eps_t, lrwd = st[LR_T], st[EPS_T], st[LRWD]
    for k in range(w.size):
        g = gr[k] + l2x2 * w[k]
        m = b1 * mo[k] + omb1 * g
        v = b2 * ve[k] + omb2 * (g * g)
        mo[k] = m
        ve[k] = v
        w[k] = w[k] - (lr_t * m / (np.sqrt(v) + eps_t) + lrwd * w[k])


@njit(cache=True, error_model="numpy")
def update_table(W, G, M, V, rows, n_rows, lazy, c, st, l2x2):
    if lazy:
        adam_rows(W, G, M, V, rows, n_rows, c, st, l2x2)
    else:
        adam_all(W, G, M, V, c, st, l2x2)
        for k in range(n_rows):  # only the rows the batch touched hold a gradient: zero them
            G[rows[k]] = 0


@njit(cache=True, error_model="numpy")
def mark_row(i, batch, seen, rows, n_rows):
    """Note row i as seen in this batch (once); returns the number of distinct rows so far."""
    if seen[i] != batch:
        seen[i] = batch
        rows[n_rows] = i
        n_rows += 1
    return n_rows


@njit(cache=True, error_model="numpy")
def mf_batches(users, movies, y, order, batch_size, first, last, steps, c, lazy, has_bias,
               has_range, tables, seen_u, seen_m, rows_u, rows_m, scratch, losses):
    """Batches first..last-1 of matrix factorisation (DotProduct and DotProductBias).

        z = P[u]·Q[m] (+ BU[u] + BM[m]);  r̂ = z, or r̂ = lo + (hi-lo)·σ(z) with a y_range

    ``tables`` = (P, Q, BU, BM) and, for each, its gradient G, and Adam's moments M and V:
    P (U, F), Q (M, F), BU (U, 1), BM (M, 1). Returns the first batch whose loss was not
    finite (nothing updated for it), or -1.
    """
    P, Q, BU, BM, GP, GQ, GBU, GBM, MP, MQ, MBU, MBM, VP, VQ, VBU, VBM = tables
    n, F = order.shape[0], P.shape[1]
    fp_mode = flush_denormals()  # see denormals.py: dense Adam drives unseen rows to ~1e-32
    bad = -1
    for b in range(first, last):
        start, stop = b * batch_size, min(n, (b + 1) * batch_size)
        scratch[0] = 2.0 / (stop - start)  # d(MSE)/d(r̂) = (r̂ - r) · 2/N, cast to the dtype
        two_over_n = scratch[0]
        loss = 0.0
        nu = nm = 0
        for k in range(start, stop):
            r = order[k]
            u, m = users[r], movies[r]
            z = P[u, 0] * Q[m, 0]
            for f in range(1, F):
                z += P[u, f] * Q[m, f]
            if has_bias:
                z = z + BU[u, 0] + BM[m, 0]
            pred = z
            if has_range:
                s = c[ONE] / (c[ONE] + np.exp(-z))
                pred = c[LO] + c[SPAN] * s
            err = pred - y[r]
            loss += err * err
            dz = err * two_over_n
            if has_range:
                dz = dz * ((c[SPAN] * s) * (c[ONE] - s))   # dσ/dz = σ(1-σ)
            for f in range(F):  # scatter-add: a repeated id accumulates
                GP[u, f] += dz * Q[m, f]
                GQ[m, f] += dz * P[u, f]
            if has_bias:
                GBU[u, 0] += dz
                GBM[m, 0] += dz
            nu = mark_row(u, b, seen_u, rows_u, nu)
            nm = mark_row(m, b, seen_m, rows_m, nm)
        losses[b - first] = loss / (stop - start)
        if not np.isfinite(losses[b - first]):
            bad = b
            break
        st = steps[b - first]
        update_table(P, GP, MP, VP, rows_u, nu, lazy, c, st, c[L2X2])
        update_table(Q, GQ, MQ, VQ, rows_m, nm, lazy, c, st, c[L2X2])
        if has_bias:  # biases carry no L2
            update_table(BU, GBU, MBU, VBU, rows_u, nu, lazy, c, st, c[L2X2] * 0)
            update_table(BM, GBM, MBM, VBM, rows_m, nm, lazy, c, st, c[L2X2] * 0)
    restore_fp_mode(fp_mode)
    return bad


# ----- the driver: from a model and its optimiser to the kernel's arguments --------------------

class Workspace:
    """Buffers the kernels reuse across calls: zeroed gradient tables and row bookkeeping."""

    def __init__(self, model):
        self.grads = {name: np.zeros_like(p) for name, p in model.params.items()}
        self.seen_u = np.empty(model.n_users, np.int64)
        self.seen_m = np.empty(model.n_movies, np.int64)
        self.rows_u = np.empty(model.n_users, np.int64)
        self.rows_m = np.empty(model.n_movies, np.int64)
        self.scratch = np.empty(1, model.dtype)
        self.dummy = np.zeros((1, 1), model.dtype)


def workspace(model):
    ws = getattr(model, "_numba_workspace", None)
    if ws is None or any(ws.grads[k].shape != p.shape for k, p in model.params.items()):
        ws = model._numba_workspace = Workspace(model)
    return ws


def run_batches(model, users, movies, y, order, batch_size, lrs, first, last):
    """The Numba epoch runner: same contract as ``Model.run_batches``."""
    opt = model.optimizer
    ws = workspace(model)
    ws.seen_u.fill(-1)
    ws.seen_m.fill(-1)
    steps = step_constants(model.dtype, opt, lrs[first:last], opt.iterations)
    losses = np.empty(last - first)
    params = model.params
    names = ["user_embedding.W", "movie_embedding.W", "user_bias.W", "movie_bias.W"]
    if "dense_1.W" in params:
        raise NotImplementedError
    W = [params.get(k, ws.dummy) for k in names]
    G = [ws.grads.get(k, ws.dummy) for k in names]
    M = [opt._slot(k, "m", params[k]) if k in params else ws.dummy for k in names]
    V = [opt._slot(k, "v", params[k]) if k in params else ws.dummy for k in names]
    c = constants(model.dtype, opt, getattr(model, "y_range", None), model.l2)
    bad = mf_batches(users, movies, y, order, batch_size, first, last, steps, c, opt.lazy,
                     "user_bias.W" in params, getattr(model, "y_range", None) is not None,
                     tuple(W + G + M + V), ws.seen_u, ws.seen_m, ws.rows_u, ws.rows_m,
                     ws.scratch, losses)
    done = last - first if bad < 0 else bad - first
    opt.iterations += done
    return losses[:done + (bad >= 0)], bad
