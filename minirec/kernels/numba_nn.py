"""The whole-model kernel of ``NeuralNet`` (registered for exactly that class in ``models.py``):
a range of batches in one compiled call, the layers' maths batch by batch.

For a batch of N ratings, row a with user i, movie j and rating r, and the dropout scales
D1 (N, 2F) and D2 (N, H) drawn exactly as ``Dropout.forward`` draws them:

    x   = [u_i, m_j] · D1[a]                 Concat, Dropout 1                     (N, 2F)
    h0  = x @ W1 + c1;   h = relu(h0) · D2    Dense 1, ReLU, Dropout 2              (N, H)
    z   = h @ W2 + c2;   r̂ = z, or lo + span·σ(z)   Dense 2, SigmoidRange             (N,)
    dz  = (r̂ - r) · 2/N  (· span·σ(1-σ))      mse's gradient, SigmoidRange.backward
    g(W2) += hᵀ dz;   g(c2) += Σ dz;   dh = dz W2ᵀ · D2 · [h0 > 0]     Dense 2, Dropout 2, ReLU
    g(W1) += xᵀ dh;   g(c1) += Σ dh;   dx = dh W1ᵀ · D1                Dense 1, Dropout 1
    g(u_i) += dx[a, :F];   g(m_j) += dx[a, F:]                         Concat, Embedding (scatter-add)

then, if the batch's loss is finite, Adam on every table (``numba_adam.step_table``; the dense
layers always densely, without L2). The weights are 2-D here: c1 is (1, H), c2 and W2's
column are read as (1, 1) and (H, 1).
"""
import numpy as np

from . import jit
from .numba_adam import adam_step_at, adam_steps, l2_factors, step_table, table
from .numba_mf import Seen, Squash, mark, sigmoid_range, sigmoid_range_grad, zero_rows

MAX_MASK_ROWS = 1 << 16  # dropout scales are drawn for at most this many ratings per call


@jit(fastmath=True)
def row_dot(a, b):
    """Σ_k a[k]·b[k]. ``fastmath`` lets LLVM reorder the sum and so vectorise it (a strict
    left-to-right float sum cannot be split into lanes); the result differs only by rounding."""
    total = a[0] * 0
    for k in range(a.shape[0]):
        total += a[k] * b[k]
    return total


@jit
def train_batches(data, first, last, steps, two_over_n, lazy, u, m, W1, c1, W2, c2, D1, D2,
                  squash, seen, losses):
    """Batches first..last-1 of ``data`` (a ``numba_mf.Batches``). D1/D2 hold one row per rating
    of these batches, in batch order. Returns the first batch whose loss was not finite (nothing
    updated for it), or -1."""
    n, F, H, B = data.order.shape[0], u.w.shape[1], W1.w.shape[1], data.size
    x, dx = np.empty((B, 2 * F), u.w.dtype), np.empty(2 * F, u.w.dtype)
    h0, h, dh = np.empty((B, H), u.w.dtype), np.empty((B, H), u.w.dtype), np.empty((B, H), u.w.dtype)
    dz = np.empty(B, u.w.dtype)
    d0 = first * B  # the D1/D2 row of batch `first`'s first rating
    for b in range(first, last):
        start, stop = b * B, min(n, (b + 1) * B)
        N, scale = stop - start, two_over_n[0] if stop - start == B else two_over_n[1]
        loss, n_i, n_j = 0.0, 0, 0
        for a in range(N):                              # x = [u_i, m_j] · D1;  h0 = x @ W1 + c1
            row, d = data.order[start + a], start + a - d0
            i, j = data.users[row], data.movies[row]
            for f in range(F):
                x[a, f] = u.w[i, f] * D1[d, f]
                x[a, F + f] = m.w[j, f] * D1[d, F + f]
            h0[a, :] = c1.w[0, :]
            for k in range(2 * F):
                for c in range(H):
                    h0[a, c] += x[a, k] * W1.w[k, c]
            z = c2.w[0, 0]                               # h = relu(h0) · D2;  z = h @ W2 + c2
            for c in range(H):
                h[a, c] = (h0[a, c] if h0[a, c] > 0 else 0) * D2[d, c]
                z += h[a, c] * W2.w[c, 0]
            if squash.on:
                pred, s = sigmoid_range(z, squash.lo, squash.span)
                err = pred - data.ratings[row]
                dz[a] = err * scale * sigmoid_range_grad(s, squash.span)
            else:
                err = z - data.ratings[row]
                dz[a] = err * scale
            loss += err * err
            n_i = mark(i, b, seen.stamp_i, seen.rows_i, n_i)
            n_j = mark(j, b, seen.stamp_j, seen.rows_j, n_j)
        losses[b - first] = loss / N
        if not np.isfinite(losses[b - first]):
            return b
        for a in range(N):                              # backward, rating by rating
            row, d = data.order[start + a], start + a - d0
            i, j = data.users[row], data.movies[row]
            c2.g[0, 0] += dz[a]
            for c in range(H):                           # dh = dz W2ᵀ · D2 · [h0 > 0]
                W2.g[c, 0] += h[a, c] * dz[a]
                dh[a, c] = dz[a] * W2.w[c, 0] * D2[d, c] if h0[a, c] > 0 else 0
                c1.g[0, c] += dh[a, c]
            for k in range(2 * F):                       # g(W1) += xᵀ dh;  dx = dh W1ᵀ · D1
                for c in range(H):
                    W1.g[k, c] += x[a, k] * dh[a, c]
                dx[k] = row_dot(W1.w[k], dh[a]) * D1[d, k]
            for f in range(F):
                u.g[i, f] += dx[f]
                m.g[j, f] += dx[F + f]
        k_b = adam_step_at(steps, b - first)
        step_table(u, seen.rows_i, n_i, k_b, lazy)
        step_table(m, seen.rows_j, n_j, k_b, lazy)
        zero_rows(u.g, seen.rows_i, n_i)
        zero_rows(m.g, seen.rows_j, n_j)
        for t in (W1, c1, W2, c2):
            step_table(t, seen.rows_i, 0, k_b, False)
            t.g[...] = 0
    return -1


class Trainer:
    """Drives ``train_batches`` for a ``NeuralNet`` through ``models.nn_adapter``: gradient
    buffers kept from call to call, dropout scales drawn from the model's own dropout layers."""

    def __init__(self, model, adapter, regularisers):
        self.model = model
        self.names, squash, self.drop_1, self.drop_2 = adapter(model)
        self.squash = Squash(squash is not None, *((squash.lo, squash.span) if squash else (0.0, 1.0)))
        self.grads = {role: np.zeros_like(model.params[name]) for role, name in self.names.items()}
        self.l2 = {role: l2_factors(regularisers.get(name), model.params[name])
                   for role, name in self.names.items()}

    def scales(self, layer, rows, width):
        """What ``layer.forward`` would multiply by: a fresh mask, or ones when p = 0 (the
        layer then draws nothing, and neither may we)."""
        if layer.p == 0.0:
            return np.ones((rows, width), self.model.dtype)
        return layer.scale((rows, width), self.model.dtype)

    def run(self, batches, lrs, first, last):
        from .numba_mf import Batches
        model, opt = self.model, self.model.optimizer
        B, n = batches.size, len(batches.order)
        data = Batches(batches.users, batches.movies, batches.ratings, batches.order, B)
        two_over_n = np.array([2.0 / B, 2.0 / (n - (n - 1) // B * B)], model.dtype)
        seen = Seen(np.full(model.n_users, -1, np.int64), np.full(model.n_movies, -1, np.int64),
                    np.empty(B, np.int64), np.empty(B, np.int64))
        losses, bad = np.empty(last - first), -1
        per_call = max(1, MAX_MASK_ROWS // B)
        for lo in range(first, last, per_call):
            hi = min(last, lo + per_call)
            D1, D2 = [], []
            for b in range(lo, hi):  # in the layers' order: dropout 1, then dropout 2, per batch
                rows = min(n, (b + 1) * B) - b * B
                D1.append(self.scales(self.drop_1, rows, 2 * model.n_factors))
                D2.append(self.scales(self.drop_2, rows, model.hidden))
            t = {role: table(model.params[name], self.grads[role], opt.slot(name, "m", model.params[name]),
                             opt.slot(name, "v", model.params[name]), *self.l2[role])
                 for role, name in self.names.items()}
            bad = train_batches(data, lo, hi, adam_steps(opt, model.dtype, lrs[lo:hi], opt.iterations),
                                two_over_n, opt.lazy, t["u"], t["m"], t["W1"], t["c1"], t["W2"],
                                t["c2"], np.concatenate(D1), np.concatenate(D2), self.squash, seen,
                                losses[lo - first:])
            opt.iterations += (hi - lo) if bad < 0 else bad - lo
            if bad >= 0:
                for g in self.grads.values():
                    g[...] = 0
                return losses[:bad - first + 1], bad
        return losses, -1
