"""The whole-model kernel of ``DotProduct`` and ``DotProductBias`` (registered for exactly those
classes in ``models/recommender.py``): a range of batches in one compiled call, no allocation per batch.

For rating k of a batch, user i = users[k], movie j = movies[k], rating r (the reference's names):

    z    = u_i · m_j  (+ b_i + b_j)                   Dot.forward, plus the two bias lookups
    r̂    = z,  or  lo + span·σ(z)                     activations.sigmoid_range (compiled as written)
    err  = r̂ - r                                      losses.mse
    dz   = err · 2/N   (· span·σ(z)(1-σ(z)))          mse's gradient, SigmoidRange.backward
    g(u_i) += dz · m_j;   g(m_j) += dz · u_i          Dot.backward, Embedding.backward (scatter-add)
    g(b_i) += dz;         g(b_j) += dz

After the batch, if its loss is finite: Adam on every table (``numba_adam.step_table``, which
compiles ``optim.adam_update``), then the touched rows of each gradient buffer go back to zero.
A batch whose loss is not finite stops the call before any update. The order of the batches,
the ratings and the sums is the layers' order; ``fetch_ahead`` only asks for rows early, and
two threads split a lazy batch by table (``train_batches_split``), which changes no number,
while that is faster than one thread (``split.Chooser`` times both as the epoch runs).
"""
from typing import NamedTuple

import numpy as np
from numba import prange

from ..nn.activations import sigmoid_range as _sigmoid_range, sigmoid_range_grad as _sigmoid_range_grad
from . import jit, use_threads
from .numba_adam import Table, adam_step_at, adam_steps, compile_time, l2_factors, step_table, table
from .prefetch import prefetch, prefetch_at
from .split import Chooser

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
def zero_rows(g, rows):
    for r in range(rows.shape[0]):
        g[rows[r]] = 0


AHEAD = 8  # ratings between naming a row to the cache (``prefetch``) and reading it

USERS, MOVIES, BOTH = 0, 1, 2  # which tables' gradients a pass over a batch collects


@jit(inline="always")  # a call per rating with four tables by value would cost more than it saves
def fetch_ahead(order, users, movies, ratings, k, u, m, b_i, b_j, side):
    """Prefetch (``prefetch.py``) for rating k + AHEAD its rows of u, m, b_i, b_j and the
    gradient rows of ``side``; for rating k + 2·AHEAD the entries that say which rows those
    are (on a big data set, reading them is itself a trip to memory)."""
    n = order.shape[0]
    if k + 2 * AHEAD < n:
        far = order[k + 2 * AHEAD]
        prefetch_at(users, far)
        prefetch_at(movies, far)
        prefetch_at(ratings, far)
    if k + AHEAD < n:
        near = order[k + AHEAD]
        i, j = users[near], movies[near]
        prefetch(u.w[i])
        prefetch(m.w[j])
        prefetch(b_i.w[min(i, b_i.w.shape[0] - 1)])  # (a model without biases has 1 x 1 ones)
        prefetch(b_j.w[min(j, b_j.w.shape[0] - 1)])
        if side != MOVIES:
            prefetch(u.g[i])
        if side != USERS:
            prefetch(m.g[j])


@jit
def batch_gradients(order, users, movies, ratings, b, size, scale, u, m, b_i, b_j, has_bias,
                    squash, seen, side):
    """Forward and backward over batch b (ratings order[b·size : (b+1)·size]): adds each
    rating's gradient into the user rows (``side`` USERS), the movie rows (MOVIES) or both
    (BOTH), and notes those rows in ``seen``. Returns (the batch's summed squared error,
    rows of u noted, rows of m noted)."""
    start, stop = b * size, min(order.shape[0], (b + 1) * size)
    loss, n_i, n_j = 0.0, np.int64(0), np.int64(0)  # (not 0: Numba would compile ``mark`` for
    #                                                  the constant too, then again for an int64)
    for k in range(start, stop):
        fetch_ahead(order, users, movies, ratings, k, u, m, b_i, b_j, side)
        row = order[k]
        i, j = users[row], movies[row]
        u_i, m_j = u.w[i], m.w[j]
        z = row_dot(u_i, m_j)
        if has_bias:
            z = z + b_i.w[i, 0] + b_j.w[j, 0]
        if squash.on:
            pred, s = sigmoid_range(z, squash.lo, squash.span)
            err = pred - ratings[row]
            dz = err * scale * sigmoid_range_grad(s, squash.span)
        else:
            err = z - ratings[row]
            dz = err * scale
        loss += err * err
        if side != MOVIES:
            gu_i = u.g[i]
            for f in range(u_i.shape[0]):
                gu_i[f] += dz * m_j[f]
            if has_bias:
                b_i.g[i, 0] += dz
            n_i = mark(i, b, seen.stamp_i, seen.rows_i, n_i)
        if side != USERS:
            gm_j = m.g[j]
            for f in range(m_j.shape[0]):
                gm_j[f] += dz * u_i[f]
            if has_bias:
                b_j.g[j, 0] += dz
            n_j = mark(j, b, seen.stamp_j, seen.rows_j, n_j)
    return loss, n_i, n_j


@jit
def step_side(t, bias, has_bias, rows, k, lazy, threads):
    """Adam on one side's tables (u and b_i, or m and b_j), then their gradient ``rows`` (the
    rows the batch saw) to zero. ``lazy`` and ``threads``: ``numba_adam.step_table``."""
    step_table(t, k, rows, lazy, threads)
    zero_rows(t.g, rows)
    if has_bias:
        step_table(bias, k, rows, lazy, threads)
        zero_rows(bias.g, rows)


SPLIT_ABOVE = 1 << 21  # entries of u and m together from which a lazy batch splits by table


def lazy_threads(model, adapter, threads):
    """The threads lazy steps of ``model`` use here (of ``threads`` available): two, one per
    table, once u and m together hold ``SPLIT_ABOVE`` entries (8 MB an array in float32: tables
    that no longer sit in the cache, where a thread's share of the waiting on memory is worth a
    fork and join per batch); below, one (on tables that fit in the cache the fork and join
    cost more than the second thread saves: benchmarks/RESULTS.md, "History of measurements")."""
    names = adapter(model)[0]
    entries = model.params[names["u"]].size + model.params[names["m"]].size
    return 2 if threads > 1 and entries >= SPLIT_ABOVE else 1


@jit
def train_batches(data, first, last, steps, two_over_n, u, m, b_i, b_j, has_bias, squash, seen,
                  losses, lazy, threads):
    """Batches first..last-1 of ``data`` (a ``runners.Batches``); u, m, b_i, b_j are ``Table``s
    (u (U, F), m (M, F), b_i (U, 1), b_j (M, 1); the biases are unused without ``has_bias``).
    Returns the first batch whose loss was not finite (nothing updated for it), or -1.
    ``lazy`` and ``threads`` (``numba_adam.compile_time``): lazy steps, or dense ones with a
    big table's step shared by ``threads`` threads."""
    order, users, movies, ratings, size = data.order, data.users, data.movies, data.ratings, data.size
    n = order.shape[0]
    for b in range(first, last):
        start, stop = b * size, min(n, (b + 1) * size)
        scale = two_over_n[0] if stop - start == size else two_over_n[1]
        loss, n_i, n_j = batch_gradients(order, users, movies, ratings, b, size, scale, u, m, b_i,
                                         b_j, has_bias, squash, seen, BOTH)
        losses[b - first] = loss / (stop - start)
        if not np.isfinite(losses[b - first]):
            return b
        k_b = adam_step_at(steps, b - first)
        step_side(u, b_i, has_bias, seen.rows_i[:n_i], k_b, lazy, threads)
        step_side(m, b_j, has_bias, seen.rows_j[:n_j], k_b, lazy, threads)
    return -1


@jit(parallel=True)
def train_batches_split(data, first, last, steps, two_over_n, u, m, b_i, b_j, has_bias, squash,
                        seen, losses):
    """``train_batches`` with lazy steps and each batch split by table over two threads (where
    ``lazy_threads`` says two): one runs forward and backward and collects the users'
    gradients, then steps the users' rows; the other does the same for the movies. Both read
    the weights as the batch found them and compute every rating's error the same way, so the
    numbers are the one-thread numbers, bit for bit. (A kernel of its own: Numba's threaded
    loops cost seconds to compile, which a run that never splits should not wait for.)"""
    order, users, movies, ratings, size = data.order, data.users, data.movies, data.ratings, data.size
    n = order.shape[0]
    part_loss, part_rows = np.zeros(2), np.zeros(2, np.int64)
    # Numba cannot hand a named tuple to the body of a threaded loop: plain tuples go in,
    # and are named again inside.
    t_u, t_m, t_bi, t_bj, t_squash, t_seen = u[:], m[:], b_i[:], b_j[:], squash[:], seen[:]
    for b in range(first, last):
        start, stop = b * size, min(n, (b + 1) * size)
        scale = two_over_n[0] if stop - start == size else two_over_n[1]
        for side in prange(2):  # USERS, MOVIES
            side_loss, side_i, side_j = batch_gradients(
                order, users, movies, ratings, b, size, scale, Table(*t_u), Table(*t_m),
                Table(*t_bi), Table(*t_bj), has_bias, Squash(*t_squash), Seen(*t_seen), side)
            part_loss[side] = side_loss
            part_rows[side] = side_i if side == USERS else side_j
        losses[b - first] = part_loss[USERS] / (stop - start)
        if not np.isfinite(losses[b - first]):
            return b
        n_i, n_j = part_rows[USERS], part_rows[MOVIES]
        for side in prange(2):
            k_side = adam_step_at(steps, b - first)
            if side == USERS:
                step_side(Table(*t_u), Table(*t_bi), has_bias, seen.rows_i[:n_i], k_side, True, None)
            else:
                step_side(Table(*t_m), Table(*t_bj), has_bias, seen.rows_j[:n_j], k_side, True, None)
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
        self.adapter = adapter
        dummy = np.zeros((1, 1), model.dtype)
        self.absent = table(dummy, dummy, dummy, dummy, *l2_factors(None, dummy))

    def run(self, batches, lrs, first, last):
        model, opt = self.model, self.model.optimizer
        two_over_n, seen = self.batch_state(batches)
        losses = np.empty(last - first)
        t = self.tables()
        threads = use_threads(model.threads)
        steps = adam_steps(opt, model.dtype, lrs[first:last], opt.iterations)
        rest = (two_over_n, t["u"], t["m"], t.get("b_i", self.absent), t.get("b_j", self.absent),
                "b_i" in self.names, self.squash, seen)
        if opt.lazy and lazy_threads(model, self.adapter, threads) == 2:
            # the split and one thread give the same numbers; split.Chooser runs the faster
            def chunk(kernel, *on_one_thread):
                return lambda a, b: kernel(batches, a, b, steps[a - first:], *rest,
                                           losses[a - first:], *on_one_thread)
            self.chooser = getattr(self, "chooser", None) or Chooser()
            bad = self.chooser.run({"split": chunk(train_batches_split),
                                    "single": chunk(train_batches, True, None)}, first, last)
        else:
            bad = train_batches(batches, first, last, steps, *rest, losses,
                                *compile_time(opt.lazy, threads))
        done = last - first if bad < 0 else bad - first
        opt.iterations += done
        if bad >= 0:
            self.forget_gradients()
        return losses[:done + (bad >= 0)], bad
