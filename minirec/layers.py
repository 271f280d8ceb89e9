"""The building blocks: each layer is a small class with a ``forward``/``backward`` pair.

Conventions (as in cs231n's ``layers.py``):

* ``forward(x)`` returns the output and keeps in ``self`` whatever ``backward`` needs.
* ``backward(dout)`` returns the gradient with respect to the layer's input and fills
  ``self.grads``, whose keys match ``self.params``. ``dout`` is never modified in place.
* Shapes use fixed letters: N batch, F factors, H hidden units, D input width.

Arrays may be NumPy or CuPy: every layer works on whichever module owns its inputs.
Regularisation is not a layer's business: the model attaches an ``L2`` to a table
(``losses.py``), and the optimiser adds its gradient.
"""
import numpy as np

from .backend import compiled, get_array_module


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
    ``np.add.at`` (``cupy.add.at`` on the GPU) adds every row.
    """

    def __init__(self, n, n_factors, rng=None, dtype=np.float32, xp=np, scale=0.05):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng()
        W = rng.uniform(-scale, scale, size=(n, n_factors)).astype(dtype)
        self.params["W"] = xp.asarray(W)
        self.idx = None

    def forward(self, idx):
        self.idx = idx
        return self.params["W"][idx]

    def backward(self, dout):
        W = self.params["W"]
        dW = get_array_module(W).zeros_like(W)
        scatter_add(dW, self.idx, dout)
        self.grads["W"] = dW
        return None  # integer ids have no gradient

    def rows(self):
        """The distinct rows the last batch looked up, sorted (what a lazy optimiser updates)."""
        return get_array_module(self.params["W"]).unique(self.idx)


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
        return get_array_module(a).concatenate([a, b], axis=1)

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
        self.device_rng = None

    def scale(self, shape, dtype, xp=np):
        """A fresh mask, already scaled: keep / (1 - p), entries 0 or 1/(1-p), shape ``shape``.
        The draws are float32 uniforms (half the generator's work of float64 ones)."""
        if xp is np:
            keep = self.rng.random(shape, dtype=np.float32) >= self.p
        else:
            if self.device_rng is None:
                self.device_rng = xp.random.default_rng(int(self.rng.integers(2**63)))
            keep = self.device_rng.random(shape) >= self.p
        return keep.astype(dtype) / np.dtype(dtype).type(1.0 - self.p)

    def forward(self, x, training=True):
        if not training or self.p == 0.0:
            self.mask = None
            return x
        self.mask = self.scale(x.shape, x.dtype, get_array_module(x))
        return x * self.mask

    def backward(self, dout):
        return dout if self.mask is None else dout * self.mask


def sigmoid_range(z, lo, span):
    """r̂ = lo + span·σ(z) with σ(z) = 1 / (1 + e^-z); returns (r̂, σ(z)).

    Written once, for one number or for whole arrays: the ``SigmoidRange`` layer calls it on
    arrays, the Numba kernels compile it into their loops, and on the GPU it is compiled into
    one elementwise kernel (``backend.compiled``).
    """
    s = 1.0 / (1.0 + np.exp(-z))
    return lo + span * s, s


def sigmoid_range_grad(s, span):
    """dr̂/dz = span·σ(z)·(1 - σ(z)), from s = σ(z)."""
    return span * s * (1.0 - s)


class SigmoidRange(Layer):
    """Squash a raw score into (lo, hi):  r̂ = lo + (hi - lo)·σ(z)  (fastai's ``y_range``).

    forward:  z (N,)     ->  r̂ (N,)
    backward: dout (N,)  ->  dz = dout · (hi - lo) · σ(z) · (1 - σ(z))
    """

    def __init__(self, lo, hi):
        super().__init__()
        if not float(lo) < float(hi):
            raise ValueError(f"y_range must be (lo, hi) with lo < hi, got ({lo}, {hi})")
        self.lo, self.span = float(lo), float(hi) - float(lo)

    def forward(self, z):
        pred, self.s = compiled(sigmoid_range, get_array_module(z))(z, self.lo, self.span)
        return pred

    def backward(self, dout):
        return dout * sigmoid_range_grad(self.s, self.span)
