"""The elementwise layers: ReLU, Dropout, the sigmoid output range and Clip — each a
``forward``/``backward`` pair in the conventions of ``layers.py`` (shapes in the docstring,
``dout`` never modified in place).
"""
import numpy as np

from ..backend import compiled, get_array_module
from .layers import Layer, expect_gradient


class ReLU(Layer):
    """``out = max(0, x)``; backward passes ``dout`` where ``x > 0`` and 0 elsewhere."""

    def forward(self, x):
        self.positive = x > 0
        return x * self.positive

    def backward(self, dout):
        expect_gradient(self, dout, self.positive.shape)
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
        self.shape = x.shape
        if not training or self.p == 0.0:
            self.mask = None
            return x
        self.mask = self.scale(x.shape, x.dtype, get_array_module(x))
        return x * self.mask

    def backward(self, dout):
        expect_gradient(self, dout, self.shape)
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
        expect_gradient(self, dout, self.s.shape)
        return dout * sigmoid_range_grad(self.s, self.span)


class Clip(Layer):
    """Clamp into [lo, hi]:  out = min(max(z, lo), hi).

    forward:  z (N,) or (N, D)  ->  out, the same shape
    backward: dout              ->  dz = dout where lo < z < hi, else 0 (a clamped entry does
                                    not move with z)
    """

    def __init__(self, lo, hi):
        super().__init__()
        if not float(lo) < float(hi):
            raise ValueError(f"Clip needs lo < hi, got ({lo}, {hi})")
        self.lo, self.hi = float(lo), float(hi)

    def forward(self, z):
        self.inside = (z > self.lo) & (z < self.hi)
        return get_array_module(z).clip(z, self.lo, self.hi)

    def backward(self, dout):
        expect_gradient(self, dout, self.inside.shape)
        return dout * self.inside
