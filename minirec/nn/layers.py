"""The building blocks: each layer is a small class with a ``forward``/``backward`` pair.

Conventions (as in cs231n's ``layers.py``):

* ``forward(x)`` returns the output and keeps in ``self`` whatever ``backward`` needs.
* ``backward(dout)`` returns the gradient with respect to the layer's input and fills
  ``self.grads``, whose keys match ``self.params``. ``dout`` is never modified in place, and
  must have the shape of forward's output (``expect_gradient`` refuses any other, naming the
  layer, on every backend).
* Shapes use fixed letters: N batch, F factors, H hidden units, D input width.

This module holds the layers with tables and weights (Embedding, EmbeddingBag, Offset, Dense)
and the ones that combine inputs (Dot, Concat); ``activations.py`` holds the elementwise ones
(ReLU, Dropout, SigmoidRange, Clip).

Arrays may be NumPy or CuPy: every layer works on whichever module owns its inputs. The few
operations NumPy does slowly (scatter-add, bag sums) go through ``self.ops`` (``ops.py``).
Regularisation is not a layer's business: the model attaches an ``L2`` to a table
(``losses.py``), and the optimiser adds its gradient.
"""
import numpy as np

from ..backend import get_array_module, to_numpy, to_xp
from .ops import REFERENCE


class ModelError(RuntimeError):
    """A model that would train wrong: the message names the layer or parameter (raised by the
    layers' own checks here and by the guard rails, ``train/guards.py``)."""


class Layer:
    """Base class: a layer with no parameters.

    ``ops``: the operations ``ops.py`` lists — the NumPy/CuPy reference, unless a model on the
    numba backend gave the layer their compiled twins when it registered it.
    ``name``: what the model registered it as (``"user_embedding"``), for error messages.
    ``trainable = False`` keeps a layer's parameters as they are: the optimiser skips them and
    its backward need not fill their gradients.
    """
    ops = REFERENCE
    trainable = True
    name = None

    def __init__(self):
        self.params = {}
        self.grads = {}

    def n_params(self):
        return sum(int(p.size) for p in self.params.values())

    def move(self, xp):
        """Put the parameters on the array module ``xp`` (a model's ``to``); gradients are dropped."""
        self.params, self.grads = {k: to_xp(p, xp) for k, p in self.params.items()}, {}


def expect_gradient(layer, dout, shape):
    """Refuse a ``dout`` that is not the gradient of the layer's last output, whose ``shape``
    it must have — before any loop reads it (a compiled scatter-add handed (N,) where (N, F)
    is due would read past the end of each row)."""
    got = getattr(dout, "shape", None)
    if got is not None and tuple(got) == tuple(shape):
        return
    who = f"layer {layer.name!r} ({type(layer).__name__})" if layer.name else type(layer).__name__
    handed = ("None (did a backward step forget to `return` its gradient?)" if dout is None
              else f"a gradient of shape {tuple(got)}" if got is not None
              else f"a {type(dout).__name__}, not an array")
    raise ModelError(f"{who}: backward was handed {handed}, but the output of its forward has "
                     f"shape {tuple(shape)}; backward takes the gradient of that output, of the "
                     "same shape")


class Table(Layer):
    """A layer whose parameter ``W`` (n, F) is read row by row: the gradient of a batch is
    zero but for the rows it looked up.

    ``zeroed_gradient(rows)`` hands a backward the zero (n, F) array to scatter-add into.
    It is one array, kept from batch to batch: only the rows the previous backward wrote are
    set back to zero (zeroing a whole 9,066 x 50 table at every batch would cost more than the
    rest of a lazy training step). The gradient it holds is overwritten by the next backward.
    """

    def __init__(self, n, n_factors, rng, dtype, xp, scale):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng()
        self.params["W"] = xp.asarray(rng.uniform(-scale, scale, size=(n, n_factors)).astype(dtype))
        self.dW, self.written = None, None

    def zeroed_gradient(self, rows):
        """A zero array of W's shape, for this backward to write ``rows`` of."""
        W, dW = self.params["W"], self.dW
        if dW is None or dW.shape != W.shape or dW.dtype != W.dtype or type(dW) is not type(W):
            self.dW = dW = get_array_module(W).zeros_like(W)
        elif self.written is not None:
            self.ops.zero_rows(dW, self.written)  # dW[written] = 0: the previous batch's rows
        self.written = rows
        return dW

    def move(self, xp):
        super().move(xp)
        self.dW, self.written = None, None


class Embedding(Table):
    """A lookup table: row ``idx[n]`` of ``W`` is the vector of item ``idx[n]``.

    ``W`` has shape (n, F), initialised uniform in [-0.05, 0.05] (Keras 1's default).

    forward:  idx (N,) int  ->  out (N, F),  out[n] = W[idx[n]]
    backward: dout (N, F)   ->  dW (n, F),   dW[k] = Σ_{n: idx[n] = k} dout[n]

    The backward pass is a *scatter-add*. Writing ``dW[idx] += dout`` would be wrong: with a
    repeated id in the batch, NumPy's fancy assignment keeps only one of the rows.
    ``ops.scatter_add`` adds every row (``np.add.at``, or its compiled twin).
    """

    def __init__(self, n, n_factors, rng=None, dtype=np.float32, xp=np, scale=0.05):
        super().__init__(n, n_factors, rng, dtype, xp, scale)
        self.idx = None

    def forward(self, idx):
        self.idx = idx
        return self.params["W"][idx]

    def backward(self, dout):
        """dW[k] = Σ_{n: idx[n] = k} dout[n]: each example adds its gradient to its own row."""
        expect_gradient(self, dout, (len(self.idx), self.params["W"].shape[1]))
        dW = self.zeroed_gradient(rows=self.idx)  # zeros (n, F)
        self.ops.scatter_add(dW, self.idx, dout)  # dW[idx[n]] += dout[n] for every n
        self.grads["W"] = dW
        return None  # integer ids have no gradient

    def rows(self):
        """The distinct rows the last batch looked up, sorted (what a lazy optimiser updates)."""
        return self.ops.distinct(self.idx)


class EmbeddingBag(Table):
    """The scaled sum of a *bag* of rows per example: a ragged list of ids for each input row
    (each user's rated movies, say), given once as CSR ``bags = (offsets, ids)``: bag r holds
    ``ids[offsets[r]:offsets[r+1]]``, n_r ids.

    forward:  rows (N,) int  ->  out (N, F),  out[i] = s_r · Σ_{k ∈ bag r} W[k],  r = rows[i]
    backward: dout (N, F)    ->  dW[k] += s_r · dout[i]  for every k in bag r (a scatter-add)

    ``mode`` sets s_r: ``"sqrt"`` 1/√n_r (SVD++'s |N(i)|^-½), ``"mean"`` 1/n_r, ``"sum"`` 1.
    An empty bag gives zeros. W (n, F) starts uniform in [-scale, scale].
    """

    def __init__(self, n, n_factors, bags, mode="sqrt", rng=None, dtype=np.float32, xp=np,
                 scale=0.05):
        super().__init__(n, n_factors, rng, dtype, xp, scale)
        if mode not in ("sqrt", "mean", "sum"):
            raise ValueError(f"mode must be 'sqrt', 'mean' or 'sum', got {mode!r}")
        self.mode, self.n, self.rows_in = mode, n, None
        self.set_bags(bags, xp)

    def set_bags(self, bags, xp=None):
        """Check and keep ``bags = (offsets, ids)``, and work out each bag's scale s_r."""
        offsets, ids = (np.asarray(to_numpy(a)) for a in bags)
        check_bags(offsets, ids, self.n)
        xp = xp or get_array_module(self.params["W"])
        sizes = np.diff(offsets).astype(np.float64)
        with np.errstate(divide="ignore"):
            s = {"sqrt": 1 / np.sqrt(sizes), "mean": 1 / sizes, "sum": np.ones_like(sizes)}[self.mode]
        self.bags = (xp.asarray(offsets.astype(np.intp)), xp.asarray(ids.astype(np.intp)))
        self.scale = xp.asarray(np.where(sizes > 0, s, 0.0).astype(self.params["W"].dtype))

    @property
    def buffers(self):
        """What the layer needs besides its weights (saved with them): the bags."""
        return {"offsets": self.bags[0], "ids": self.bags[1]}

    def load_buffers(self, buffers):
        self.set_bags((buffers["offsets"], buffers["ids"]))

    def reorder(self, owners=None, rows=None):
        """Follow a new order of the data's ids: ``owners[r]`` is the old bag of new row r, or
        ``rows[k]`` the old table row of new row k (the weights move, the bags are renumbered)."""
        offsets, ids = (to_numpy(a) for a in self.bags)
        if owners is not None:
            sizes = np.diff(offsets)[owners]
            ids = np.concatenate([ids[offsets[r]:offsets[r + 1]] for r in owners] or [ids[:0]])
            offsets = np.concatenate([[0], np.cumsum(sizes)])
        if rows is not None:
            W = self.params["W"]
            W[...] = W[get_array_module(W).asarray(rows)]
            new_of_old = np.empty(len(rows), np.intp)
            new_of_old[rows] = np.arange(len(rows))
            ids = new_of_old[ids]
        self.set_bags((offsets, ids))

    def move(self, xp):
        super().move(xp)
        self.bags = tuple(to_xp(a, xp) for a in self.bags)
        self.scale = to_xp(self.scale, xp)

    def forward(self, rows):
        self.rows_in, self.seen = rows, None
        return self.ops.bag_sum(self.params["W"], self.bags, rows, self.scale)

    def backward(self, dout):
        """dW[k] = Σ_n s_r · dout[n] · (how often k is in bag r),  r = rows[n]."""
        expect_gradient(self, dout, (len(self.rows_in), self.params["W"].shape[1]))
        dW = self.zeroed_gradient(rows=self.rows())  # zeros (n, F)
        self.ops.bag_scatter(dW, self.bags, self.rows_in, self.scale, dout)
        self.grads["W"] = dW
        return None  # integer rows have no gradient

    def rows(self):
        """The distinct rows in the last batch's bags (in no particular order)."""
        if self.seen is None:
            self.seen = self.ops.bag_rows(self.bags, self.rows_in, self.n)
        return self.seen


def check_bags(offsets, ids, n):
    """Refuse CSR bags that are not: offsets 1-D, from 0 to len(ids), never decreasing; ids
    whole numbers in 0..n-1."""
    if offsets.ndim != 1 or len(offsets) < 1 or ids.ndim != 1:
        raise ValueError("bags must be (offsets, ids): two 1-D arrays, offsets of length rows + 1")
    if not (np.issubdtype(offsets.dtype, np.integer) and np.issubdtype(ids.dtype, np.integer)):
        raise ValueError("bags' offsets and ids must be integer arrays")
    if offsets[0] != 0 or offsets[-1] != len(ids) or np.any(np.diff(offsets) < 0):
        raise ValueError(f"bag offsets must rise from 0 to len(ids) = {len(ids)}")
    if len(ids) and (ids.min() < 0 or ids.max() >= n):
        bad = ids[(ids < 0) | (ids >= n)][0]
        raise KeyError(f"bag id {int(bad)} is outside the table's rows 0..{n - 1}")


class Offset(Layer):
    """A learned scalar added to every entry (a global mean rating, say):  out = z + b.

    b (1,) starts at ``value``.
    forward:  z (N,)     ->  out (N,)
    backward: dout (N,)  ->  dz = dout,  db = Σ_n dout[n]
    """

    def __init__(self, value=0.0, dtype=np.float32, xp=np):
        super().__init__()
        self.params["b"] = xp.full(1, value, dtype=dtype)

    def forward(self, z):
        self.shape = z.shape
        return z + self.params["b"]

    def backward(self, dout):
        expect_gradient(self, dout, self.shape)
        self.grads["b"] = dout.sum(keepdims=True)
        return dout


class Dot(Layer):
    """Row-wise dot product of two inputs.

    forward:  a (N, F), b (N, F)  ->  out (N,),  out[n] = Σ_f a[n, f] · b[n, f]
    backward: dout (N,)           ->  da = dout[:, None] · b,  db = dout[:, None] · a
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        return (a * b).sum(axis=1)

    def backward(self, dout):
        expect_gradient(self, dout, (len(self.a),))
        d = dout[:, None]
        return d * self.b, d * self.a


class Concat(Layer):
    """Join inputs side by side along the feature axis.

    forward:  a (N, Fa), b (N, Fb)  ->  out (N, Fa + Fb)
    backward: dout (N, Fa + Fb)     ->  da = dout[:, :Fa], db = dout[:, Fa:]
    """

    def forward(self, a, b):
        self.split, self.shape = a.shape[1], (len(a), a.shape[1] + b.shape[1])
        return get_array_module(a).concatenate([a, b], axis=1)

    def backward(self, dout):
        expect_gradient(self, dout, self.shape)
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
        expect_gradient(self, dout, (len(self.x), self.params["W"].shape[1]))
        self.grads["W"] = self.x.T @ dout
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"].T
