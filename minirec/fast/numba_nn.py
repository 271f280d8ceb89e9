"""The whole-model kernel of ``NeuralNet`` (registered for exactly that class in ``models/recommender.py``):
a range of batches in one compiled call, the layers' maths batch by batch, with the matrix
products done by BLAS (``np.dot``, which Numba hands to SciPy's BLAS, as NumPy's ``@`` does).

For a batch of N ratings, row a with user i, movie j and rating r, and the dropout scales
D1 (N, 2F) and D2 (N, H) made from the same uniform draws ``Dropout.forward`` makes:

    x   = [u_i, m_j] · D1[a]                 Concat, Dropout 1                     (N, 2F)
    h0  = x @ W1 + c1;   h = relu(h0) · D2    Dense 1, ReLU, Dropout 2              (N, H)
    z   = h @ W2 + c2;   r̂ = z, or lo + span·σ(z)   Dense 2, SigmoidRange             (N,)
    dz  = (r̂ - r) · 2/N  (· span·σ(1-σ))      mse's gradient, SigmoidRange.backward
    g(W2) = hᵀ dz;   g(c2) = Σ dz;   dh = dz W2ᵀ · D2 · [h0 > 0]     Dense 2, Dropout 2, ReLU
    g(W1) = xᵀ dh;   g(c1) = Σ dh;   dx = dh W1ᵀ · D1                Dense 1, Dropout 1
    g(u_i) += dx[a, :F];   g(m_j) += dx[a, F:]                       Concat, Embedding (scatter-add)

then, if the batch's loss is finite, Adam on every table (``numba_adam.step_table``; the dense
layers always densely, without L2). The weights are 2-D here: c1 is (1, H), c2 (1, 1).
"""
import numpy as np

from . import jit, use_threads
from .numba_adam import adam_step_at, adam_steps, compile_time, step_table
from .numba_mf import TableTrainer, mark, sigmoid_range, sigmoid_range_grad, zero_rows

MAX_DRAW_ROWS = 1 << 12  # dropout draws are made for at most this many ratings per call


class Dropouts:
    """What the kernel needs to rebuild the dropout scales: the drop probabilities (float32,
    as NumPy compares the layers' float32 draws with p), and the scale kept entries get
    (1/(1-p), in the dtype, as ``Dropout.scale`` computes it)."""

    def __init__(self, p1, p2, dtype):
        one = np.dtype(dtype).type(1.0)
        self.p = (np.float32(p1), np.float32(p2))
        self.scales = tuple(one / np.dtype(dtype).type(1.0 - p) for p in (p1, p2))


@jit
def dropout_scales(D, draws, pos, p, scale):
    """Fill D (N, width) from draws[pos:]: scale where the draw is >= p (kept), else 0; with
    p = 0 nothing was drawn and D is all ones. Returns the next position in ``draws``."""
    if p == 0.0:
        D[:, :] = 1
        return pos
    for a in range(D.shape[0]):
        for c in range(D.shape[1]):
            D[a, c] = scale if draws[pos] >= p else 0
            pos += 1
    return pos


@jit
def train_batches(data, first, last, steps, two_over_n, u, m, W1, c1, W2, c2, draws, p, scales,
                  squash, seen, losses, lazy, threads):
    """Batches first..last-1 of ``data`` (a ``runners.Batches``); ``draws`` holds the uniform
    draws the two dropout layers make for these batches, in the layers' order. Returns the first
    batch whose loss was not finite (nothing updated for it), or -1. ``lazy`` and ``threads``
    (``numba_adam.compile_time``): how u and m step; the dense layers always step densely."""
    n, F, H, B = data.order.shape[0], u.w.shape[1], W1.w.shape[1], data.size
    dt = u.w.dtype
    X, D1, dX = np.empty((B, 2 * F), dt), np.empty((B, 2 * F), dt), np.empty((B, 2 * F), dt)
    H0, Hd, D2, dH = (np.empty((B, H), dt), np.empty((B, H), dt), np.empty((B, H), dt),
                      np.empty((B, H), dt))
    Z, dZ = np.empty((B, 1), dt), np.empty((B, 1), dt)
    pos = np.int64(0)  # (not 0: Numba would compile dropout_scales for the constant too)
    for b in range(first, last):
        start, stop = b * B, min(n, (b + 1) * B)
        N, scale = stop - start, two_over_n[0] if stop - start == B else two_over_n[1]
        x, d1, dx, h0, h, d2, dh = X[:N], D1[:N], dX[:N], H0[:N], Hd[:N], D2[:N], dH[:N]
        pos = dropout_scales(d1, draws, pos, p[0], scales[0])
        pos = dropout_scales(d2, draws, pos, p[1], scales[1])
        loss, n_i, n_j = 0.0, np.int64(0), np.int64(0)  # (and mark here)
        for a in range(N):                               # x = [u_i, m_j] · D1
            row = data.order[start + a]
            i, j = data.users[row], data.movies[row]
            for f in range(F):
                x[a, f] = u.w[i, f] * d1[a, f]
                x[a, F + f] = m.w[j, f] * d1[a, F + f]
        np.dot(x, W1.w, h0)                              # h0 = x @ W1 + c1; h = relu(h0) · D2
        for a in range(N):
            for c in range(H):
                h0[a, c] += c1.w[0, c]
                h[a, c] = (h0[a, c] if h0[a, c] > 0 else 0) * d2[a, c]
        np.dot(h, W2.w, Z[:N])                           # z = h @ W2 + c2
        for a in range(N):
            row = data.order[start + a]
            z = Z[a, 0] + c2.w[0, 0]
            if squash.on:
                pred, s = sigmoid_range(z, squash.lo, squash.span)
                err = pred - data.ratings[row]
                dZ[a, 0] = err * scale * sigmoid_range_grad(s, squash.span)
            else:
                err = z - data.ratings[row]
                dZ[a, 0] = err * scale
            loss += err * err
            n_i = mark(data.users[row], b, seen.stamp_i, seen.rows_i, n_i)
            n_j = mark(data.movies[row], b, seen.stamp_j, seen.rows_j, n_j)
        losses[b - first] = loss / N
        if not np.isfinite(losses[b - first]):
            return b
        dz = dZ[:N]
        np.dot(h.T, dz, W2.g)                            # g(W2) = hᵀ dz;  g(c2) = Σ dz
        c2.g[0, 0] = dz.sum()
        for a in range(N):                               # dh = dz W2ᵀ · D2 · [h0 > 0]
            for c in range(H):
                dh[a, c] = dz[a, 0] * W2.w[c, 0] * d2[a, c] if h0[a, c] > 0 else 0
        np.dot(x.T, dh, W1.g)                            # g(W1) = xᵀ dh;  g(c1) = Σ dh
        for c in range(H):
            c1.g[0, c] = dh[:, c].sum()
        np.dot(dh, W1.w.T, dx)                           # dx = dh W1ᵀ · D1, then scatter-add
        for a in range(N):
            row = data.order[start + a]
            i, j = data.users[row], data.movies[row]
            for f in range(F):
                u.g[i, f] += dx[a, f] * d1[a, f]
                m.g[j, f] += dx[a, F + f] * d1[a, F + f]
        k_b = adam_step_at(steps, b - first)
        rows_i, rows_j = seen.rows_i[:n_i], seen.rows_j[:n_j]
        step_table(u, k_b, rows_i, lazy, threads)
        step_table(m, k_b, rows_j, lazy, threads)
        zero_rows(u.g, rows_i)
        zero_rows(m.g, rows_j)
        for t in (W1, c1, W2, c2):                       # every entry of these is overwritten
            step_table(t, k_b, rows_i, None, None)       # by the next batch's gradient: dense
    return -1


class Trainer(TableTrainer):
    """Drives ``train_batches`` for a ``NeuralNet`` through ``models.nn_adapter``, with the
    dropout draws made from the model's dropout generator."""

    def __init__(self, model, adapter, regularisers):
        names, squash, drop_1, drop_2 = adapter(model)
        super().__init__(model, names, squash, regularisers)
        if drop_1.rng is not drop_2.rng:
            raise ValueError("the NeuralNet kernel needs both dropout layers on one generator")
        self.rng, self.dropouts = drop_1.rng, Dropouts(drop_1.p, drop_2.p, model.dtype)
        widths = (2 * model.n_factors, model.hidden)
        self.per_rating = sum(w for w, p in zip(widths, self.dropouts.p) if p > 0)
        self.buffer = np.empty(MAX_DRAW_ROWS * self.per_rating, np.float32)  # reused across calls

    def draws(self, rows):
        """The uniform draws the two dropout layers would make for ``rows`` ratings, in their
        order: one generator, so (N, 2F) then (N, H) per batch is one stream of float32 draws."""
        return self.rng.random(out=self.buffer[:rows * self.per_rating], dtype=np.float32)

    def run(self, batches, lrs, first, last):
        model, opt, d = self.model, self.model.optimizer, self.dropouts
        two_over_n, seen = self.batch_state(batches)
        B, n = batches.size, len(batches.order)
        losses, switches = np.empty(last - first), compile_time(opt.lazy, use_threads(model.threads))
        per_call = max(1, MAX_DRAW_ROWS // B)
        if per_call * B > MAX_DRAW_ROWS:  # one batch bigger than the buffer
            self.buffer = np.empty(B * self.per_rating, np.float32)
        for lo in range(first, last, per_call):
            hi = min(last, lo + per_call)
            draws = self.draws(min(n, hi * B) - lo * B)
            t = self.tables()
            bad = train_batches(batches, lo, hi, adam_steps(opt, model.dtype, lrs[lo:hi], opt.iterations),
                                two_over_n, t["u"], t["m"], t["W1"], t["c1"], t["W2"], t["c2"],
                                draws, d.p, d.scales, self.squash, seen, losses[lo - first:],
                                *switches)
            opt.iterations += (hi - lo) if bad < 0 else bad - lo
            if bad >= 0:
                self.forget_gradients()
                return losses[:bad - first + 1], bad
        return losses, -1
