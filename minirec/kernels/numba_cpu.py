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

* ``c``: β1, 1-β1, β2, 1-β2, ε, 1, lo, hi-lo, 2λ, 0 (indices below);
* ``steps[b]``: lr_t, ε_t, lr·weight_decay for batch b (computed in float64 in Python,
  then cast, as NumPy casts a Python float).

Every kernel compiles on first use and is cached on disk (``cache=True``), with
``error_model="numpy"``: a division by zero gives inf/NaN as in NumPy instead of raising, and
without that per-division check LLVM can vectorise the loops (about 4x faster dense Adam).
"""
import numpy as np
from numba import njit

from .denormals import flush_denormals, restore_fp_mode

B1, OMB1, B2, OMB2, EPS, ONE, LO, SPAN, L2X2, ZERO = range(10)   # indices into c
LR_T, EPS_T, LRWD = range(3)                               # indices into steps[b]


def constants(dtype, opt, y_range, l2):
    """The array ``c``. Prediction needs no optimiser (``opt=None``: Adam's defaults fill in)."""
    lo, hi = y_range if y_range is not None else (0.0, 1.0)
    b1, b2, eps = (opt.beta_1, opt.beta_2, opt.epsilon) if opt is not None else (0.9, 0.999, 1e-8)
    return np.array([b1, 1 - b1, b2, 1 - b2, eps, 1.0, lo, hi - lo, 2.0 * l2, 0.0], dtype)


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
def adam_rows(W, G, M, V, S, rows, n_rows, c, st, l2x2):
    """Lazy Adam: only rows[0..n_rows-1] of W, each with gradient G[i] + 2λ·S[i]·W[i] (S: the
    row scales of ``Model.balance_lazy_l2``, or ones); then G[i] = 0.

    The bias correction is folded into lr_t and ε_t (see ``step_constants``).
    """
    for k in range(n_rows):
        i = rows[k]
        for f in range(W.shape[1]):
            g = G[i, f] + (l2x2 * S[i, 0]) * W[i, f]
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
def update_table(W, G, M, V, S, rows, n_rows, lazy, c, st, l2x2):
    if lazy:
        adam_rows(W, G, M, V, S, rows, n_rows, c, st, l2x2)
    else:
        adam_all(W, G, M, V, c, st, l2x2)
        for k in range(n_rows):  # only the rows the batch touched hold a gradient: zero them
            G[rows[k]] = 0


@njit(cache=True, error_model="numpy")
def output_head(z, target, two_over_n, has_range, c):
    """From the raw score z to the error and dL/dz for one rating:
    r̂ = z, or r̂ = lo + span·σ(z);  err = r̂ - r;  dz = err·2/N (· span·σ(1-σ) with a range)."""
    if has_range:
        s = c[ONE] / (c[ONE] + np.exp(-z))
        err = (c[LO] + c[SPAN] * s) - target
        return err, (err * two_over_n) * ((c[SPAN] * s) * (c[ONE] - s))
    err = z - target
    return err, err * two_over_n


@njit(cache=True, error_model="numpy")
def update_embeddings(P, Q, GP, GQ, MP, MQ, VP, VQ, SU, SM, rows_u, nu, rows_m, nm, lazy, c, st):
    """Adam on the user and movie tables, each with the notebook's 2λ."""
    update_table(P, GP, MP, VP, SU, rows_u, nu, lazy, c, st, c[L2X2])
    update_table(Q, GQ, MQ, VQ, SM, rows_m, nm, lazy, c, st, c[L2X2])


@njit(cache=True, error_model="numpy")
def record_loss(losses, k, squared_errors, n):
    """Store batch k's MSE; False when it is not finite (the caller then stops, un-updated)."""
    losses[k] = squared_errors / n
    return np.isfinite(losses[k])


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
               has_range, tables, SU, SM, seen_u, seen_m, rows_u, rows_m, scratch, losses):
    """Batches first..last-1 of matrix factorisation (DotProduct and DotProductBias).

        z = P[u]·Q[m] (+ BU[u] + BM[m]);  r̂ = z, or r̂ = lo + (hi-lo)·σ(z) with a y_range

    ``tables`` = (P, Q, BU, BM) and, for each, its gradient G, and Adam's moments M and V:
    P (U, F), Q (M, F), BU (U, 1), BM (M, 1); SU (U, 1), SM (M, 1) the lazy L2 row scales.
    Returns the first batch whose loss was not
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
            err, dz = output_head(z, y[r], two_over_n, has_range, c)
            loss += err * err
            for f in range(F):  # scatter-add: a repeated id accumulates
                GP[u, f] += dz * Q[m, f]
                GQ[m, f] += dz * P[u, f]
            if has_bias:
                GBU[u, 0] += dz
                GBM[m, 0] += dz
            nu = mark_row(u, b, seen_u, rows_u, nu)
            nm = mark_row(m, b, seen_m, rows_m, nm)
        if not record_loss(losses, b - first, loss, stop - start):
            bad = b
            break
        st = steps[b - first]
        update_embeddings(P, Q, GP, GQ, MP, MQ, VP, VQ, SU, SM, rows_u, nu, rows_m, nm, lazy, c, st)
        if has_bias:  # biases carry no L2
            update_table(BU, GBU, MBU, VBU, SU, rows_u, nu, lazy, c, st, c[ZERO])
            update_table(BM, GBM, MBM, VBM, SM, rows_m, nm, lazy, c, st, c[ZERO])
    restore_fp_mode(fp_mode)
    return bad


@njit(cache=True, fastmath=True)
def row_dot(a, b):
    """Σ_j a[j]·b[j]. ``fastmath`` lets LLVM reorder the sum and so vectorise it (a strict
    left-to-right float sum cannot be split into lanes); the result differs only by rounding."""
    total = a[0] * 0
    for j in range(a.shape[0]):
        total += a[j] * b[j]
    return total


@njit(cache=True, error_model="numpy")
def nn_batches(users, movies, y, order, batch_size, first, last, steps, c, lazy, has_range,
               tables, dense, D1, D2, SU, SM, seen_u, seen_m, rows_u, rows_m, scratch, losses):
    """Batches first..last-1 of the neural net, one rating at a time (forward, then backward):

        x  = [P[u], Q[m]] · D1[k]          (2F,)  D1: dropout scale, 0 or 1/(1-p1)
        h  = relu(x @ W1 + b1) · D2[k]      (H,)   D2: dropout scale, 0 or 1/(1-p2)
        z  = h @ W2 + b2;  r̂ = z, or lo + (hi-lo)·σ(z)

    The weights do not change within a batch, so each rating's gradient can be added as soon
    as it is computed. ``tables`` = (P, Q, GP, GQ, MP, MQ, VP, VQ) for the embeddings and
    ``dense`` = (W1, GW1, MW1, VW1, W2, GW2, MW2, VW2, b1, Gb1, Mb1, Vb1, b2, Gb2, Mb2, Vb2),
    with b1 (1, H) and b2 (1, 1); the dense layers are always updated densely, without L2.
    D1 (n, 2F) and D2 (n, H) hold one row per rating of these batches, in batch order.
    """
    P, Q, GP, GQ, MP, MQ, VP, VQ = tables
    W1, GW1, MW1, VW1, W2, GW2, MW2, VW2, b1, Gb1, Mb1, Vb1, b2, Gb2, Mb2, Vb2 = dense
    n, F, H = order.shape[0], P.shape[1], W1.shape[1]
    x = np.empty(2 * F, P.dtype)
    hpre = np.empty(H, P.dtype)
    h = np.empty(H, P.dtype)
    fp_mode = flush_denormals()
    bad = -1
    k0 = first * batch_size  # D1/D2 row of the first rating of batch `first`
    for b in range(first, last):
        start, stop = b * batch_size, min(n, (b + 1) * batch_size)
        scratch[0] = 2.0 / (stop - start)
        two_over_n = scratch[0]
        loss = 0.0
        nu = nm = 0
        for k in range(start, stop):
            r = order[k]
            u, m, d = users[r], movies[r], k - k0
            for f in range(F):                      # concat + dropout 1
                x[f] = P[u, f] * D1[d, f]
                x[F + f] = Q[m, f] * D1[d, F + f]
            for j in range(H):
                hpre[j] = 0
            for i in range(2 * F):                  # x @ W1 (row by row: contiguous in j)
                for j in range(H):
                    hpre[j] += x[i] * W1[i, j]
            z = c[ZERO]
            for j in range(H):                      # + b1, relu, dropout 2, @ W2
                hpre[j] = hpre[j] + b1[0, j]
                h[j] = (hpre[j] if hpre[j] > 0 else c[ZERO]) * D2[d, j]
                z += h[j] * W2[j, 0]
            z = z + b2[0, 0]
            err, dz = output_head(z, y[r], two_over_n, has_range, c)
            loss += err * err
            Gb2[0, 0] += dz                          # backward through dense_2
            for j in range(H):
                GW2[j, 0] += h[j] * dz
                dh = dz * W2[j, 0] * D2[d, j]         # through dropout 2
                h[j] = dh if hpre[j] > 0 else c[ZERO]  # through relu (h now holds dh)
                Gb1[0, j] += h[j]
            for i in range(2 * F):                  # dense_1: dW1 += x ⊗ dh, dx = W1 · dh
                for j in range(H):
                    GW1[i, j] += x[i] * h[j]
                dx = row_dot(W1[i], h)
                if i < F:                            # through dropout 1, then scatter-add
                    GP[u, i] += dx * D1[d, i]
                else:
                    GQ[m, i - F] += dx * D1[d, i]
            nu = mark_row(u, b, seen_u, rows_u, nu)
            nm = mark_row(m, b, seen_m, rows_m, nm)
        if not record_loss(losses, b - first, loss, stop - start):
            bad = b
            break
        st = steps[b - first]
        update_embeddings(P, Q, GP, GQ, MP, MQ, VP, VQ, SU, SM, rows_u, nu, rows_m, nm, lazy, c, st)
        no_l2 = c[ZERO]
        adam_all(W1, GW1, MW1, VW1, c, st, no_l2)
        adam_all(W2, GW2, MW2, VW2, c, st, no_l2)
        adam_all(b1, Gb1, Mb1, Vb1, c, st, no_l2)
        adam_all(b2, Gb2, Mb2, Vb2, c, st, no_l2)
        GW1[:] = 0
        GW2[:] = 0
        Gb1[:] = 0
        Gb2[:] = 0
    restore_fp_mode(fp_mode)
    return bad


@njit(cache=True, error_model="numpy")
def mf_predict(users, movies, P, Q, BU, BM, has_bias, has_range, c, out):
    """r̂ = P[u]·Q[m] (+ BU[u] + BM[m]), squashed into the y_range if there is one."""
    F = P.shape[1]
    for k in range(users.shape[0]):
        u, m = users[k], movies[k]
        z = P[u, 0] * Q[m, 0]
        for f in range(1, F):
            z += P[u, f] * Q[m, f]
        if has_bias:
            z = z + BU[u, 0] + BM[m, 0]
        out[k] = c[LO] + c[SPAN] * (c[ONE] / (c[ONE] + np.exp(-z))) if has_range else z


@njit(cache=True, error_model="numpy")
def nn_predict(users, movies, P, Q, W1, b1, W2, b2, has_range, c, out):
    """The neural net at evaluation time (dropout is the identity): one rating at a time."""
    F, H = P.shape[1], W1.shape[1]
    x = np.empty(2 * F, P.dtype)
    hpre = np.empty(H, P.dtype)
    for k in range(users.shape[0]):
        u, m = users[k], movies[k]
        for f in range(F):
            x[f] = P[u, f]
            x[F + f] = Q[m, f]
        hpre[:] = 0
        for i in range(2 * F):
            for j in range(H):
                hpre[j] += x[i] * W1[i, j]
        z = c[ZERO]
        for j in range(H):
            h = hpre[j] + b1[0, j]
            z += (h if h > 0 else c[ZERO]) * W2[j, 0]
        z = z + b2[0, 0]
        out[k] = c[LO] + c[SPAN] * (c[ONE] / (c[ONE] + np.exp(-z))) if has_range else z


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
        self.ones_user = np.ones((model.n_users, 1), model.dtype)
        self.ones_movie = np.ones((model.n_movies, 1), model.dtype)


def workspace(model):
    ws = getattr(model, "_numba_workspace", None)
    if ws is None or any(ws.grads[k].shape != p.shape for k, p in model.params.items()):
        ws = model._numba_workspace = Workspace(model)
    return ws


def row_scale(model, who, ws):
    scale = model.layers[f"{who}_embedding"].row_scale
    return scale if scale is not None else getattr(ws, f"ones_{who}")


def run_batches(model, users, movies, y, order, batch_size, lrs, first, last):
    """The Numba epoch runner: same contract as ``Model.run_batches``."""
    opt = model.optimizer
    ws = workspace(model)
    ws.seen_u.fill(-1)
    ws.seen_m.fill(-1)
    steps = step_constants(model.dtype, opt, lrs[first:last], opt.iterations)
    losses = np.empty(last - first)
    c = constants(model.dtype, opt, model.y_range, model.l2)
    y_range = model.y_range is not None
    scales = (row_scale(model, "user", ws), row_scale(model, "movie", ws))
    rows = (ws.seen_u, ws.seen_m, ws.rows_u, ws.rows_m, ws.scratch, losses)
    if "dense_1.W" in model.params:
        emb = ["user_embedding.W", "movie_embedding.W"]
        dense = [k for name in ("dense_1.W", "dense_2.W", "dense_1.b", "dense_2.b")
                 for k in state(model, ws, name)]
        D1, D2 = dropout_scales(model, order, batch_size, first, last)
        bad = nn_batches(users, movies, y, order, batch_size, first, last, steps, c, opt.lazy,
                         y_range, table_state(model, ws, emb), tuple(dense), D1, D2, *scales,
                         *rows)
    else:
        names = ["user_embedding.W", "movie_embedding.W", "user_bias.W", "movie_bias.W"]
        bad = mf_batches(users, movies, y, order, batch_size, first, last, steps, c, opt.lazy,
                         "user_bias.W" in model.params, y_range, table_state(model, ws, names),
                         *scales, *rows)
    done = last - first if bad < 0 else bad - first
    opt.iterations += done
    return losses[:done + (bad >= 0)], bad


def as_2d(a):
    """Biases (H,) travel as (1, H) views, so every table the kernels see is 2-D."""
    return a.reshape(1, -1) if a.ndim == 1 else a


def state(model, ws, name):
    """(weights, gradient buffer, Adam m, Adam v) of one parameter, 2-D; dummies if absent."""
    p = model.params.get(name)
    if p is None:
        return (ws.dummy,) * 4
    opt = model.optimizer
    return tuple(as_2d(a) for a in (p, ws.grads[name], opt._slot(name, "m", p), opt._slot(name, "v", p)))


def table_state(model, ws, names):
    """All weights, then all gradients, then all m, then all v (the order the kernels unpack)."""
    parts = [state(model, ws, name) for name in names]
    return tuple(part[i] for i in range(4) for part in parts)


def dropout_scales(model, order, batch_size, first, last):
    """The dropout scales of batches first..last-1, drawn exactly as the layers draw them.

    ``Dropout.forward`` draws ``rng.random((N, 2F))`` then ``rng.random((N, H))`` per batch
    from the model's dropout generator; drawing in the same order here gives the same masks,
    so the kernel and the reference train the same network.
    """
    D1, D2 = [], []
    for b in range(first, last):
        nb = len(order[b * batch_size:(b + 1) * batch_size])
        for layer, width, out in ((model.drop_1, 2 * model.n_factors, D1),
                                  (model.drop_2, model.hidden, D2)):
            if layer.p == 0.0:
                out.append(np.ones((nb, width), model.dtype))
            else:
                keep = layer.rng.random((nb, width)) >= layer.p
                out.append(keep.astype(model.dtype) / model.dtype.type(1.0 - layer.p))
    return np.concatenate(D1), np.concatenate(D2)


def predict(model, users, movies):
    """Predictions of ``model`` (numba backend) for checked index arrays, as a NumPy array."""
    p = model.params
    out = np.empty(len(users), model.dtype)
    c = constants(model.dtype, model.optimizer, model.y_range, model.l2)
    has_range = model.y_range is not None
    if "dense_1.W" in p:
        nn_predict(users, movies, p["user_embedding.W"], p["movie_embedding.W"], p["dense_1.W"],
                   as_2d(p["dense_1.b"]), p["dense_2.W"], as_2d(p["dense_2.b"]), has_range, c, out)
    else:
        dummy = np.zeros((1, 1), model.dtype)
        mf_predict(users, movies, p["user_embedding.W"], p["movie_embedding.W"],
                   p.get("user_bias.W", dummy), p.get("movie_bias.W", dummy),
                   "user_bias.W" in p, has_range, c, out)
    return out
