"""Optimisers: SGD and Adam, with two ways of updating embedding tables.

Every optimiser has ``step(params, grads, rows=None)``: ``params`` and ``grads`` are dicts of
arrays with the same keys, and ``rows`` maps the name of an embedding table to the rows the
batch looked up. ``lr`` is read at every step, so ``model.optimizer.lr = 0.01`` between two
``fit`` calls really changes the step size (in Keras it silently did not: the README's
"The notebook, reproduced" gives the source and the evidence).

Dense and lazy updates of an embedding table
--------------------------------------------
**dense** (``lazy=False``, what Keras does): every row of every table takes an Adam step at
every batch. A row no rating in the batch touched still has a gradient — the L2 term
``2λW`` — and still moves its moment estimates. This is what reproduces the notebook, and the
whole-table penalty is what keeps rarely-seen movies near zero.

**lazy** (``lazy=True``, what fast trainers do): only the rows seen in the batch step (with the
L2 gradient of those rows only); the other rows, and their moments, are left untouched. Each
step costs O(batch) instead of O(table), but a row is now shrunk only when it is seen, so the
notebook's λ regularises far less. See ``losses.BalancedL2`` for the remedy.
"""
import math
from typing import NamedTuple

import numpy as np

from ..backend import compiled, get_array_module
from ..inputs import finite_positive

ALL_ROWS = slice(None)  # p[ALL_ROWS] is the whole array: a dense update


class Optimizer:
    """Base class: keeps ``lr``, the step count t and per-parameter state (``self.state``)."""
    lazy = False

    def __init__(self, lr):
        self.lr = finite_positive("the learning rate", lr)
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

    def slot(self, name, key, like):
        """Optimiser state for one parameter (a zero array shaped like it), made on first use."""
        state = self.state.setdefault(name, {})
        if key not in state or state[key].shape != like.shape:
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


class AdamStep(NamedTuple):
    """The numbers of one Adam step t, each in the parameters' dtype (see ``Adam.constants``)."""
    lr: float
    beta_1: float
    one_minus_beta_1: float
    beta_2: float
    one_minus_beta_2: float
    m_correction: float        # 1 / (1 - β1^t)
    v_correction: float        # 1 / (1 - β2^t)
    epsilon: float
    lr_decay: float            # lr · weight_decay


def adam_update(w, g, m, v, k):
    """One Adam step for a weight w with gradient g and moments m, v — one number, or whole arrays
    elementwise. ``k`` holds the step's numbers (``AdamStep``). Returns the new (w, m, v)::

        m  <- β1 m + (1 - β1) g            first moment (running mean of g)
        v  <- β2 v + (1 - β2) g²           second moment (running mean of g²)
        m̂  =  m / (1 - β1^t)               bias correction: m and v start at zero
        v̂  =  v / (1 - β2^t)
        w  <- w - lr · m̂ / (√v̂ + ε)  -  lr · weight_decay · w

    This is the only place the update is written: ``Adam`` calls it on arrays, the Numba kernels
    compile it into their loops, and on the GPU ``cupy.fuse`` compiles it into one kernel.
    The bias corrections arrive as 1/(1 - β^t), worked out once per step, so a weight costs
    a multiplication there instead of a division.
    """
    m = k.beta_1 * m + k.one_minus_beta_1 * g
    v = k.beta_2 * v + k.one_minus_beta_2 * (g * g)
    m_hat = m * k.m_correction
    v_hat = v * k.v_correction
    w = w - k.lr * m_hat / (np.sqrt(v_hat) + k.epsilon) - k.lr_decay * w
    return w, m, v


def bias_correction(beta, t):
    """1 / (1 - β^t) for step t (counting from 1), or for each entry of an array of steps.

    β^t is always Python's scalar power (the C library's ``pow``), one step at a time, on every
    path: ``Adam.step`` on NumPy and CuPy asks for one step, the Numba runners for a whole run of
    steps at once, and both must get the same bits. NumPy's *array* power is not that: it picks a
    SIMD implementation by CPU (on AVX-512 one that is within an ulp, not the same), so β^t from
    an array differs in the last bit at some steps, on some machines — and Adam turns that ulp
    into a visible difference wherever m̂/√v̂ is near zero. The scalar power is the reference
    because it is what the textbook step (one t at a time) computes, and it does not depend on
    the vector width; one call per batch costs nothing beside the batch.
    """
    if np.ndim(t):
        steps = np.asarray(t, np.float64)
        power = np.array([math.pow(beta, s) for s in steps.ravel()]).reshape(steps.shape)
        return 1 / (1 - power)
    return 1 / (1 - math.pow(beta, float(t)))


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), the update of ``adam_update``, with the bias correction written
    out. Defaults are Keras 1's: lr 1e-3, β1 0.9, β2 0.999, ε 1e-8.

    ``weight_decay`` is *decoupled* weight decay (AdamW, Loshchilov & Hutter 2019): the
    parameter shrinks by ``lr * weight_decay * p`` outside the adaptive step, instead of adding
    ``2λp`` to g where Adam's division by sqrt(v̂) would rescale it. With ``lazy=True`` it applies
    to the rows seen in the batch only.

    ``lazy=True`` updates only the embedding rows seen in the batch (t still counts every batch,
    as PyTorch's SparseAdam does); ``lazy=False`` updates every row (Keras).

    ``lazy_l2`` says how a lazy step regularises: ``"balanced"`` (default) weighs each row's
    L2 by how rarely it is seen, so the expected penalty matches Keras's whole-table one (see
    ``losses.BalancedL2``); ``"seen"`` applies the plain λ to the rows seen (PyTorch's
    SparseAdam with the penalty on looked-up rows — it overfits).
    """

    def __init__(self, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=0.0,
                 lazy=False, lazy_l2="balanced"):
        super().__init__(lr)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        if not (0 <= self.beta_1 < 1 and 0 <= self.beta_2 < 1 and self.epsilon > 0):
            raise ValueError("Adam needs 0 <= beta_1, beta_2 < 1 and epsilon > 0")
        self.weight_decay = float(weight_decay)
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
        self.lazy = bool(lazy)
        if lazy_l2 not in ("balanced", "seen"):
            raise ValueError(f"lazy_l2 must be 'balanced' or 'seen', got {lazy_l2!r}")
        self.lazy_l2 = lazy_l2

    def constants(self, t, dtype, lr=None):
        """The ``AdamStep`` of step t (counting from 1) at rate ``lr`` (default ``self.lr``),
        worked out in float64 and then cast to ``dtype`` (as NumPy casts a Python float).
        ``t`` and ``lr`` may be arrays (one step per entry): each field is then an array."""
        lr = self.lr if lr is None else lr
        b1, b2 = self.beta_1, self.beta_2
        cast = np.dtype(dtype).type
        fields = (lr, b1, 1 - b1, b2, 1 - b2, bias_correction(b1, t), bias_correction(b2, t),
                  self.epsilon, lr * self.weight_decay)
        if np.ndim(t) or np.ndim(lr):
            return AdamStep(*(np.asarray(x, np.float64).astype(dtype) for x in fields))
        return AdamStep(*(cast(x) for x in fields))

    def _update(self, name, p, g, r):
        m_all, v_all = self.slot(name, "m", p), self.slot(name, "v", p)
        k = self.constants(self.iterations, p.dtype)
        update = compiled(adam_update, get_array_module(p), AdamStep)  # cupy.fuse on the GPU
        p[r], m_all[r], v_all[r] = update(p[r], g[r], m_all[r], v_all[r], k)


def one_cycle_lr(step, n_steps, lr_max, div=25.0, final_div=1e4, pct_start=0.25):
    """The one-cycle learning rate (Smith 2018, as fastai does it) at batch ``step`` of ``n_steps``.

    Warm up from lr_max/div to lr_max over the first ``pct_start`` of the steps, then anneal
    down to lr_max/(div·final_div); both halves follow a cosine::

        cos_anneal(a, b, x) = b + (a - b) · (1 + cos(π x)) / 2,   x going 0 -> 1
    """
    if not (div > 0 and final_div > 0 and 0 <= pct_start < 1):
        raise ValueError(f"one cycle needs div > 0, final_div > 0 and 0 <= pct_start < 1, got "
                         f"div={div!r}, final_div={final_div!r}, pct_start={pct_start!r}")
    warm = max(1, int(round(pct_start * n_steps)))
    if step < warm:
        a, b, x = lr_max / div, lr_max, step / warm
    else:
        a, b, x = lr_max, lr_max / (div * final_div), (step - warm) / max(1, n_steps - warm)
    return b + (a - b) * (1 + np.cos(np.pi * x)) / 2
