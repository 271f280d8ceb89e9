"""Optimisers: SGD and Adam, with two ways of updating embedding tables.

Every optimiser has ``step(params, grads, rows=None)``: ``params`` and ``grads`` are dicts of
arrays with the same keys, and ``rows`` maps the name of an embedding table to the rows the
batch looked up. ``lr`` is read at every step, so ``model.optimizer.lr = 0.01`` between two
``fit`` calls really changes the step size (in Keras 1 it silently did not).

Dense and lazy updates of an embedding table
--------------------------------------------
**dense** (``lazy=False``, what Keras does): every row of every table takes an Adam step at
every batch. A row no rating in the batch touched still has a gradient — the L2 term
``2λW`` — and still moves its moment estimates. This is what reproduces the notebook, and the
whole-table penalty is what keeps rarely-seen movies near zero.

**lazy** (``lazy=True``, what fast trainers do): only the rows seen in the batch step (with the
L2 gradient of those rows only); the other rows, and their moments, are left untouched. Each
step costs O(batch) instead of O(table), but a row is now shrunk only when it is seen, so the
notebook's λ regularises far less. See ``Adam`` and the README for the remedy.
"""
import numpy as np

from .backend import get_array_module


ALL_ROWS = slice(None)  # p[ALL_ROWS] is the whole array: a dense update


class Optimizer:
    """Base class: keeps ``lr``, the step count t and per-parameter state (``self.state``)."""
    lazy = False

    def __init__(self, lr):
        self.lr = float(lr)
        self.iterations = 0  # t: steps taken so far
        self.state = {}

    def step(self, params, grads, rows=None):
        """Update every parameter in place from its gradient.

        In lazy mode an embedding table named in ``rows`` updates only those rows; everything
        else (and every table in dense mode) updates all of its entries.
        """
        self.iterations += 1
        rows = rows or {}
        for name, p in params.items():
            r = rows.get(name, ALL_ROWS) if self.lazy else ALL_ROWS
            self._update(name, p, grads[name], r)

    def _slot(self, name, key, like):
        """Optimiser state for one parameter (a zero array shaped like it), made on first use."""
        state = self.state.setdefault(name, {})
        if key not in state:
            state[key] = get_array_module(like).zeros_like(like)
        return state[key]

    def reset(self):
        """Forget the step count and all moments (as a freshly built optimiser)."""
        self.iterations = 0
        self.state = {}


class SGD(Optimizer):
    """Plain gradient descent: ``p <- p - lr * g``."""

    def __init__(self, lr=0.01, lazy=False):
        super().__init__(lr)
        self.lazy = bool(lazy)

    def _update(self, name, p, g, r):
        p[r] = p[r] - self.lr * g[r]


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with the bias correction written out.

    At step t (counting from 1), for each parameter p with gradient g::

        m  <- β1 m + (1 - β1) g            first moment (running mean of g)
        v  <- β2 v + (1 - β2) g²           second moment (running mean of g²)
        m̂  =  m / (1 - β1**t)              bias correction: m and v start at zero
        v̂  =  v / (1 - β2**t)
        p  <- p - lr * m̂ / (sqrt(v̂) + ε)  -  lr * weight_decay * p

    Defaults are Keras 1's: lr 1e-3, β1 0.9, β2 0.999, ε 1e-8.

    ``weight_decay`` is *decoupled* weight decay (AdamW, Loshchilov & Hutter 2019): the
    parameter shrinks by ``lr * weight_decay * p`` outside the adaptive step, instead of adding
    ``2λp`` to g where Adam's division by sqrt(v̂) would rescale it. With ``lazy=True`` it applies
    to the rows seen in the batch only.

    ``lazy=True`` updates only the embedding rows seen in the batch (t still counts every batch,
    as PyTorch's SparseAdam does); ``lazy=False`` updates every row (Keras).

    ``lazy_l2`` says how a lazy step regularises: ``"balanced"`` (default) weighs each row's
    L2 by how rarely it is seen, so the expected penalty matches Keras's whole-table one (see
    ``Model.balance_lazy_l2``); ``"seen"`` applies the plain λ to the rows seen (PyTorch's
    SparseAdam with the penalty on looked-up rows — it overfits).
    """

    def __init__(self, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=0.0,
                 lazy=False, lazy_l2="balanced"):
        super().__init__(lr)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.weight_decay = float(weight_decay)
        self.lazy = bool(lazy)
        if lazy_l2 not in ("balanced", "seen"):
            raise ValueError(f"lazy_l2 must be 'balanced' or 'seen', got {lazy_l2!r}")
        self.lazy_l2 = lazy_l2

    def _update(self, name, p, g, r):
        b1, b2, t, lr = self.beta_1, self.beta_2, self.iterations, self.lr
        m_all, v_all = self._slot(name, "m", p), self._slot(name, "v", p)
        g = g[r]
        m = b1 * m_all[r] + (1 - b1) * g
        v = b2 * v_all[r] + (1 - b2) * (g * g)
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        xp = get_array_module(p)
        step = lr * m_hat / (xp.sqrt(v_hat) + self.epsilon)
        if self.weight_decay:
            step = step + (lr * self.weight_decay) * p[r]
        m_all[r], v_all[r] = m, v
        p[r] = p[r] - step


def one_cycle_lr(step, n_steps, lr_max, div=25.0, final_div=1e4, pct_start=0.25):
    """The one-cycle learning rate (Smith 2018, as fastai does it) at batch ``step`` of ``n_steps``.

    Warm up from lr_max/div to lr_max over the first ``pct_start`` of the steps, then anneal
    down to lr_max/(div·final_div); both halves follow a cosine::

        cos_anneal(a, b, x) = b + (a - b) · (1 + cos(π x)) / 2,   x going 0 -> 1
    """
    warm = max(1, int(round(pct_start * n_steps)))
    if step < warm:
        a, b, x = lr_max / div, lr_max, step / warm
    else:
        a, b, x = lr_max, lr_max / (div * final_div), (step - warm) / max(1, n_steps - warm)
    return b + (a - b) * (1 + np.cos(np.pi * x)) / 2
