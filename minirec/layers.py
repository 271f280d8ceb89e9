"""The building blocks: each layer is a small class with a ``forward``/``backward`` pair.

Conventions (as in cs231n's ``layers.py``):

* ``forward(x)`` returns the output and keeps in ``self`` whatever ``backward`` needs.
* ``backward(dout)`` returns the gradient with respect to the layer's input and fills
  ``self.grads``, whose keys match ``self.params``. ``dout`` is never modified in place.
* Shapes use fixed letters: N batch, F factors, H hidden units, D input width.

Arrays may be NumPy or CuPy: every layer works on whichever module owns its parameters.
"""
import numpy as np

from .backend import get_array_module
from .losses import l2_penalty


class Layer:
    """Base class: a layer with no parameters."""

    def __init__(self):
        self.params = {}
        self.grads = {}

    def n_params(self):
        return sum(int(p.size) for p in self.params.values())


class Embedding(Layer):
    """A lookup table: row ``idx[i]`` of ``W`` is the vector of item ``idx[i]``.

    ``W`` has shape (n, F), initialised uniform in [-0.05, 0.05] (Keras 1's default).

    forward:  idx (N,) int  ->  out (N, F),  out[i] = W[idx[i]]
    backward: dout (N, F)   ->  dW (n, F),   dW[k] = sum of dout[i] over all i with idx[i] == k

    The backward pass is a *scatter-add*. Writing ``dW[idx] += dout`` would be wrong: with a
    repeated id in the batch, NumPy's fancy assignment keeps only one of the rows.
    ``np.add.at`` (``cupyx.scatter_add`` on the GPU) adds every row.

    ``l2`` is the Keras regulariser: it adds ``l2 * sum(W**2)`` over the *whole* table to the
    training loss (see ``penalty``); ``l2_grad()`` is its gradient ``2 * l2 * W``.

    ``row_scale`` (n, 1), when set, weighs row k's L2 gradient in *lazy* steps by
    ``row_scale[k]`` (``l2_grad(lazy=True)``; see ``Model.balance_lazy_l2``): a row seen in few
    batches is penalised more each time it is seen, so that in expectation it is regularised
    as much as under Keras. The objective itself (``penalty``) stays Keras's.
    """

    def __init__(self, n, n_factors, l2=0.0, rng=None, dtype=np.float32, xp=np, scale=0.05):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng()
        W = rng.uniform(-scale, scale, size=(n, n_factors)).astype(dtype)
        self.params["W"] = xp.asarray(W)
        self.l2 = float(l2)
        self.row_scale = None
        self.idx = None

    def forward(self, idx):
        self.idx = idx
        return self.params["W"][idx]

    def backward(self, dout):
        W = self.params["W"]
        xp = get_array_module(W)
        dW = xp.zeros_like(W)
        scatter_add(dW, self.idx, dout)
        self.grads["W"] = dW
        return None  # integer ids have no gradient

    def rows(self):
        """The distinct rows the last batch looked up (what a lazy optimiser updates)."""
        xp = get_array_module(self.params["W"])
        return xp.unique(self.idx)

    def penalty(self):
        """``l2 * sum(W**2)`` over the whole table (``losses.l2_penalty``; 0 when l2 is 0)."""
        return l2_penalty(self.params["W"], self.l2)[0] if self.l2 else 0.0

    def l2_grad(self, lazy=False):
        """The gradient of ``penalty``, ``2 * l2 * W``; for a lazy step with ``row_scale`` set,
        each row's times its scale."""
        W = self.params["W"]
        if lazy and self.row_scale is not None:
            return ((2.0 * self.l2) * self.row_scale) * W
        return l2_penalty(W, self.l2)[1]


def scatter_add(target, idx, values):
    """``target[idx[i]] += values[i]`` for every i, repeated ids included (in place).

    ``np.add.at`` on the CPU; on the GPU ``cupy.add.at`` (atomic adds), or
    ``cupyx.scatter_add`` on CuPy versions older than 13.
    """
    xp = get_array_module(target)
    if hasattr(xp.add, "at"):
        xp.add.at(target, idx, values)
    else:
        import cupyx
        cupyx.scatter_add(target, idx, values)


class Dot(Layer):
    """Row-wise dot product of two inputs.

    forward:  a (N, F), b (N, F)  ->  out (N,),  out[i] = sum_f a[i, f] * b[i, f]
    backward: dout (N,)           ->  da = dout[:, None] * b,  db = dout[:, None] * a
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        return (a * b).sum(axis=1)

    def backward(self, dout):
        d = dout[:, None]
        return d * self.b, d * self.a


class Concat(Layer):
    """Join inputs side by side along the feature axis.

    forward:  a (N, Fa), b (N, Fb)  ->  out (N, Fa + Fb)
    backward: dout (N, Fa + Fb)     ->  da = dout[:, :Fa], db = dout[:, Fa:]
    """

    def forward(self, a, b):
        self.split = a.shape[1]
        xp = get_array_module(a)
        return xp.concatenate([a, b], axis=1)

    def backward(self, dout):
        return dout[:, :self.split], dout[:, self.split:]


class Dense(Layer):
    """Fully connected layer ``out = x @ W + b``.

    W (D, H) is Glorot-uniform, limit sqrt(6 / (D + H)); b (H,) starts at zero.

    forward:  x (N, D)      ->  out (N, H)
    backward: dout (N, H)   ->  dx = dout @ W.T,  dW = x.T @ dout,  db = dout summed over N
    """

    def __init__(self, n_in, n_out, rng=None, dtype=np.float32, xp=np):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng()
        limit = np.sqrt(6.0 / (n_in + n_out))
        self.params["W"] = xp.asarray(rng.uniform(-limit, limit, size=(n_in, n_out)).astype(dtype))
        self.params["b"] = xp.zeros(n_out, dtype=dtype)

    def forward(self, x):
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        self.grads["W"] = self.x.T @ dout
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"].T


class ReLU(Layer):
    """``out = max(0, x)``; backward passes ``dout`` where ``x > 0`` and 0 elsewhere."""

    def forward(self, x):
        self.positive = x > 0
        return x * self.positive

    def backward(self, dout):
        return dout * self.positive


class Dropout(Layer):
    """Inverted dropout with *drop* probability ``p``.

    Training: each entry is kept with probability 1 - p and kept entries are scaled by
    1 / (1 - p), so the expected output equals the input:  out = x * keep / (1 - p).
    Evaluation (``training=False``): the identity, nothing to rescale.

    The mask is drawn from ``self.rng`` (a NumPy Generator), so setting the same generator
    state before two forward passes gives the same mask — which is how gradient checks and
    backend parity tests repeat a dropout network exactly. On the GPU the mask is drawn on
    the device, from a CuPy generator seeded once from ``self.rng``: as reproducible, but
    not the same masks as on the CPU (and no host-to-device copy per batch).
    """

    def __init__(self, p, rng=None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p (the drop probability) must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = rng if rng is not None else np.random.default_rng()

    def forward(self, x, training=True):
        if not training or self.p == 0.0:
            self.scale = None
            return x
        xp = get_array_module(x)
        if xp is np:
            keep = self.rng.random(x.shape) >= self.p
        else:
            if getattr(self, "device_rng", None) is None:
                self.device_rng = xp.random.default_rng(int(self.rng.integers(2**63)))
            keep = self.device_rng.random(x.shape) >= self.p
        self.scale = keep.astype(x.dtype) / x.dtype.type(1.0 - self.p)
        return x * self.scale

    def backward(self, dout):
        return dout if self.scale is None else dout * self.scale
