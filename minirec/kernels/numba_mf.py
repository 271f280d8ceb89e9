"""The whole-model kernel of ``DotProduct`` and ``DotProductBias`` (registered for exactly those
classes in ``models.py``): a range of batches in one compiled call, no allocation per batch.

For rating k of a batch, user i = users[k], movie j = movies[k], rating r (the reference's names):

    z    = u_i · m_j  (+ b_i + b_j)                   Dot.forward, plus the two bias lookups
    r̂    = z,  or  lo + span·σ(z)                     activations.sigmoid_range (compiled as written)
    err  = r̂ - r                                      losses.mse
    dz   = err · 2/N   (· span·σ(z)(1-σ(z)))          mse's gradient, SigmoidRange.backward
    g(u_i) += dz · m_j;   g(m_j) += dz · u_i          Dot.backward, Embedding.backward (scatter-add)
    g(b_i) += dz;         g(b_j) += dz

After the batch, if its loss is finite: Adam on every table (``numba_adam.step_table``, which
compiles ``optim.adam_update``), then the touched rows of each gradient buffer go back to zero.
A batch whose loss is not finite stops the call before any update.
"""
from typing import NamedTuple

import numpy as np

from ..activations import sigmoid_range as _sigmoid_range, sigmoid_range_grad as _sigmoid_range_grad
from . import jit, use_threads
from .numba_adam import adam_step_at, adam_steps, l2_factors, step_table, table

sigmoid_range, sigmoid_range_grad = jit(_sigmoid_range), jit(_sigmoid_range_grad)


class Squash(NamedTuple):
    """The output range: on (a SigmoidRange), lo and span = hi - lo."""
    on: bool
    lo: float
    span: float


class Seen(NamedTuple):
    """Which rows a batch touched: stamp[i] == b marks row i seen in batch b; rows[0..n) lists them."""
    stamp_i: np.ndarray
    stamp_j: np.ndarray
    rows_i: np.ndarray
    rows_j: np.ndarray


@jit(fastmath={"reassoc"})
def row_dot(a, b):
    """Σ_f a[f]·b[f]. ``reassoc`` lets LLVM split the sum over vector lanes (a strict
    left-to-right float sum cannot be); the result differs from NumPy's only by rounding."""
    total = a[0] * b[0]
    for f in range(1, a.shape[0]):
        total += a[f] * b[f]
    return total


@jit
def mark(row, b, stamp, rows, n):
    """Note ``row`` as seen in batch b (once); returns the number of distinct rows so far."""
    if stamp[row] != b:
        stamp[row] = b
        rows[n] = row
        n += 1
    return n


@jit
def zero_rows(g, rows, n):
    for r in range(n):
        g[rows[r]] = 0


@jit
def train_batches(data, first, last, steps, two_over_n, lazy, u, m, b_i, b_j, has_bias, squash,
                  seen, losses, n_threads):
    """Batches first..last-1 of ``data`` (a ``runners.Batches``); u, m, b_i, b_j are ``Table``s (u (U, F), m (M, F),
    b_i (U, 1), b_j (M, 1); the biases are unused without ``has_bias``). Returns the first batch
    whose loss was not finite (nothing updated for it), or -1. ``n_threads`` share each dense
    Adam step of a big table (the forward and backward passes run on one)."""
    n = data.order.shape[0]
    for b in range(first, last):
        start, stop = b * data.size, min(n, (b + 1) * data.size)
        scale = two_over_n[0] if stop - start == data.size else two_over_n[1]
        loss, n_i, n_j = 0.0, 0, 0
        for k in range(start, stop):
            row = data.order[k]
            i, j = data.users[row], data.movies[row]
            u_i, m_j, gu_i, gm_j = u.w[i], m.w[j], u.g[i], m.g[j]
            z = row_dot(u_i, m_j)
            if has_bias:
                z = z + b_i.w[i, 0] + b_j.w[j, 0]
            if squash.on:
                pred, s = sigmoid_range(z, squash.lo, squash.span)
                err = pred - data.ratings[row]
                dz = err * scale * sigmoid_range_grad(s, squash.span)
            else:
                err = z - data.ratings[row]
                dz = err * scale
            loss += err * err
            for f in range(u_i.shape[0]):
                gu_i[f] += dz * m_j[f]
                gm_j[f] += dz * u_i[f]
            if has_bias:
                b_i.g[i, 0] += dz
                b_j.g[j, 0] += dz
            n_i = mark(i, b, seen.stamp_i, seen.rows_i, n_i)
            n_j = mark(j, b, seen.stamp_j, seen.rows_j, n_j)
        losses[b - first] = loss / (stop - start)
        if not np.isfinite(losses[b - first]):
            return b
        k_b = adam_step_at(steps, b - first)
        step_table(u, seen.rows_i, n_i, k_b, lazy, n_threads)
        step_table(m, seen.rows_j, n_j, k_b, lazy, n_threads)
        zero_rows(u.g, seen.rows_i, n_i)
        zero_rows(m.g, seen.rows_j, n_j)
        if has_bias:
            step_table(b_i, seen.rows_i, n_i, k_b, lazy, n_threads)
            step_table(b_j, seen.rows_j, n_j, k_b, lazy, n_threads)
            zero_rows(b_i.g, seen.rows_i, n_i)
            zero_rows(b_j.g, seen.rows_j, n_j)
    return -1


class TableTrainer:
    """What a whole-model kernel's ``Trainer`` keeps between calls, for the tables its adapter
    names (role -> parameter name, e.g. {"u": "user_emb", ...}): a gradient buffer per table,
    kept at zero between batches, and each table's L2 factors."""

    def __init__(self, model, names, squash, regularisers):
        self.model, self.names = model, names
        self.squash = Squash(squash is not None, *((squash.lo, squash.span) if squash else (0.0, 1.0)))
        self.grads = {role: np.zeros_like(model.params[name]) for role, name in names.items()}
        self.l2 = {role: l2_factors(regularisers.get(name), model.params[name])
                   for role, name in names.items()}

    def tables(self):
        """{role: ``Table``} over the model's current weights and Adam moments."""
        model, opt = self.model, self.model.optimizer
        return {role: table(model.params[name], self.grads[role], opt.slot(name, "m", model.params[name]),
                            opt.slot(name, "v", model.params[name]), *self.l2[role])
                for role, name in self.names.items()}

    def batch_state(self, batches):
        """(2/N for a full batch and for the last one, fresh ``Seen`` stamps) for a
        ``runners.Batches``, which the kernels take as it is."""
        model, B, n = self.model, batches.size, len(batches.order)
        two_over_n = np.array([2.0 / B, 2.0 / (n - (n - 1) // B * B)], model.dtype)
        seen = Seen(np.full(model.n_users, -1, np.int64), np.full(model.n_movies, -1, np.int64),
                    np.empty(B, np.int64), np.empty(B, np.int64))
        return two_over_n, seen

    def forget_gradients(self):
        """After a batch that was not finite: leave no partial gradient for the next call."""
        for g in self.grads.values():
            g[...] = 0


class Trainer(TableTrainer):
    """Drives ``train_batches`` for one model through its adapter (``models.dot_adapter`` or
    ``bias_adapter``); a model without biases passes 1 x 1 stand-ins for b_i and b_j."""

    def __init__(self, model, adapter, regularisers):
        super().__init__(model, *adapter(model), regularisers)
        dummy = np.zeros((1, 1), model.dtype)
        self.absent = table(dummy, dummy, dummy, dummy, *l2_factors(None, dummy))

    def run(self, batches, lrs, first, last):
        model, opt = self.model, self.model.optimizer
        two_over_n, seen = self.batch_state(batches)
        losses = np.empty(last - first)
        t = self.tables()
        bad = train_batches(batches, first, last, adam_steps(opt, model.dtype, lrs[first:last], opt.iterations),
                            two_over_n, opt.lazy, t["u"], t["m"], t.get("b_i", self.absent),
                            t.get("b_j", self.absent), "b_i" in self.names, self.squash, seen,
                            losses, use_threads(model.threads))
        done = last - first if bad < 0 else bad - first
        opt.iterations += done
        if bad >= 0:
            self.forget_gradients()
        return losses[:done + (bad >= 0)], bad
