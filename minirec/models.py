"""The three Lesson 4 models, built from the layers, with a Keras-shaped surface.

Notation: U users, M movies, F factors, H hidden units, N ratings in a batch; u_i, m_j are
rows of the user and movie embedding tables, b_i, b_j the biases.

=================  ==========================================================================
DotProduct         r̂ = u_i · m_j
DotProductBias     r̂ = u_i · m_j + b_i + b_j        (optionally squashed into ``y_range``)
NeuralNet          r̂ = W2ᵀ drop(relu(W1ᵀ drop([u_i, m_j]) + c1)) + c2
=================  ==========================================================================

Every model trains on the loss (mean squared error) + Σ λ·ΣW² over its regularised tables
(the user and movie embeddings; biases are not regularised, as in the notebook).

The same model reads like the notebook::

    model = DotProductBias(n_users, n_movies, n_factors=50, l2=1e-4)
    model.compile(Adam(0.001), loss="mse")
    model.fit([users, movies], ratings, batch_size=64, epochs=1,
              validation_data=([val_users, val_movies], val_ratings))

and the maths is reachable without the loop (cs231n style)::

    loss, grads = model.loss_and_grads([users, movies], ratings, training=True)
"""
import json
import os
import tempfile

import numpy as np

from . import training
from .backend import (array_module, get_array_module, numba_available, resolve_backend,
                      seeded_rngs, to_numpy, to_xp)
from .layers import Concat, Dense, Dot, Dropout, Embedding, ReLU
from .losses import mse, mse_of
from .optim import Adam, one_cycle_lr


class Model:
    """What the three models share: parameters, training, prediction, saving.

    Subclasses build their layers in ``__init__`` (in ``self.layers``, name -> layer) and write
    ``forward(users, movies, training)`` and ``backward(dpred)``.
    """

    def __init__(self, n_users, n_movies, n_factors, dtype, seed, backend):
        self.n_users, self.n_movies, self.n_factors = int(n_users), int(n_movies), int(n_factors)
        self.dtype = np.dtype(dtype)
        self.backend = resolve_backend(backend)
        self.xp = array_module(self.backend)
        self.seed = seed
        self.init_rng, self.shuffle_rng, self.dropout_rng = seeded_rngs(seed, 3)
        self.layers = {}
        self.optimizer = None

    # ----- parameters -------------------------------------------------------------------
    @property
    def params(self):
        """All weights, keyed ``"<layer>.<param>"`` (e.g. ``"user_embedding.W"``)."""
        return {f"{ln}.{pn}": p for ln, layer in self.layers.items() for pn, p in layer.params.items()}

    @property
    def grads(self):
        """The gradients from the last ``backward``, keyed like ``params`` (without L2)."""
        return {f"{ln}.{pn}": g for ln, layer in self.layers.items() for pn, g in layer.grads.items()}

    def set_params(self, values):
        """Copy ``values`` (name -> array, any backend) into the weights, in place."""
        for name, p in self.params.items():
            p[...] = to_xp(values[name], self.xp, self.dtype)

    def to(self, device):
        """Move weights, optimiser state and row scales: ``"cpu"`` (Numba, else NumPy),
        ``"gpu"`` (CuPy), or a backend name. Returns the model."""
        backend = {"cpu": "numba" if numba_available() else "numpy", "gpu": "cupy"}.get(device, device)
        self.backend = resolve_backend(backend)
        self.xp = array_module(self.backend)
        for layer in self.layers.values():
            for name in layer.params:
                layer.params[name] = to_xp(layer.params[name], self.xp)
            layer.grads = {}
            if getattr(layer, "row_scale", None) is not None:
                layer.row_scale = to_xp(layer.row_scale, self.xp)
        if self.optimizer is not None:
            for slots in self.optimizer.state.values():
                for key in slots:
                    slots[key] = to_xp(slots[key], self.xp)
        self._numba_workspace = self._cupy_workspace = None  # kernel buffers of the old device
        return self

    def embeddings(self):
        """The embedding layers, name -> layer."""
        return {n: l for n, l in self.layers.items() if isinstance(l, Embedding)}

    def penalty(self):
        """Σ λ·ΣW² over the regularised tables, whole tables (Keras's ``l2``)."""
        return sum(layer.penalty() for layer in self.embeddings().values())

    def count_params(self):
        return sum(layer.n_params() for layer in self.layers.values())

    # ----- the maths ----------------------------------------------------------------------
    def _embedding(self, name, n, l2, width=None):
        """Add an Embedding layer of n rows (``width`` F by default; 1 for a bias)."""
        self.layers[name] = Embedding(n, width or self.n_factors, l2=l2, rng=self.init_rng,
                                      dtype=self.dtype, xp=self.xp)
        return self.layers[name]

    def forward(self, users, movies, training=True):
        raise NotImplementedError

    def backward(self, dpred):
        raise NotImplementedError

    def batch_mse_and_grads(self, users, movies, y, training=True, lazy=False):
        """Forward + backward on one batch: the batch MSE and the gradients of MSE + L2 penalty.

        The L2 gradient 2λW of each regularised table is added to its data gradient here
        (row-scaled for a lazy step when ``balance_lazy_l2`` set scales).
        """
        pred = self.forward(users, movies, training)
        data_loss, dpred = mse(pred, y)
        self.backward(dpred)
        grads = dict(self.grads)
        for name, layer in self.embeddings().items():
            if layer.l2:
                grads[name + ".W"] = grads[name + ".W"] + layer.l2_grad(lazy)
        return data_loss, grads

    def loss_and_grads(self, inputs, y, training=True):
        """The training loss (MSE + whole-table L2 penalty) and its gradients, keyed like ``params``.

        ``inputs`` is ``[users, movies]`` (contiguous indices). With ``training=True``
        dropout is active (its masks come from ``self.dropout_rng``).
        """
        users, movies = self._ids(inputs)
        data_loss, grads = self.batch_mse_and_grads(users, movies, self._y(y), training)
        return data_loss + self.penalty(), grads

    def balance_lazy_l2(self, users, movies, batch_size, on=True):
        """Weigh each row's L2 penalty by 1 / P(row is in a batch), for lazy training.

        Under Keras every row pays λ·|W_k|² at every batch. A lazy step only touches the rows
        in the batch, so a row seen in few batches is barely regularised (PyTorch's SparseAdam
        with the notebook's λ overfits to 1.06 validation MSE on the bias model). With row k
        in a batch with probability p_k = 1 - (1 - c_k/N)^B (c_k ratings of N, batch size B),
        penalising it by λ/p_k whenever it is seen makes the *expected* penalty per batch equal
        to Keras's whole-table one. ``on=False`` removes the weights (plain lazy L2).
        """
        xp = self.xp
        for name, ids, n in (("user", users, self.n_users), ("movie", movies, self.n_movies)):
            for layer_name in (f"{name}_embedding", f"{name}_bias"):
                layer = self.layers.get(layer_name)
                if layer is None or not layer.l2:
                    continue
                if not on:
                    layer.row_scale = None
                    continue
                counts = np.bincount(to_numpy(ids), minlength=n).astype(np.float64)
                p_seen = 1.0 - (1.0 - counts / len(ids)) ** batch_size
                scale = np.where(counts > 0, 1.0 / np.maximum(p_seen, 1e-300), 1.0)
                layer.row_scale = to_xp(scale[:, None], xp, self.dtype)

    def looked_up_rows(self):
        """Embedding table name -> the rows the last batch used (for lazy optimisers)."""
        return {name + ".W": layer.rows() for name, layer in self.embeddings().items()}

    # ----- Keras-shaped surface -----------------------------------------------------------
    def compile(self, optimizer, loss="mse"):
        """Attach an optimiser. Only ``loss="mse"`` exists (as in the notebook)."""
        if loss not in ("mse", "mean_squared_error"):
            raise ValueError(f"only loss='mse' is supported, got {loss!r}")
        self.optimizer = optimizer
        return self

    def fit(self, x, y, batch_size=64, epochs=1, validation_data=None, shuffle=True, verbose=1,
            lr_schedule=None):
        """Train for ``epochs`` epochs; returns a ``History`` (``.history["loss"/"val_loss"]``).

        ``x`` is ``[users, movies]`` (indices); ``validation_data`` is ``([users, movies], y)``.
        """
        users, movies = self._ids(x)
        y = self._y(y)
        if validation_data is not None:
            (vu, vm), vy = validation_data
            vu, vm = self._ids([vu, vm])
            validation_data = ([vu, vm], self._y(vy))
        return training.fit(self, users, movies, y, batch_size, epochs, validation_data,
                            shuffle, verbose, lr_schedule)

    def fit_one_cycle(self, x, y, epochs, lr_max, batch_size=64, validation_data=None, verbose=1,
                      **one_cycle):
        """``fit`` with the one-cycle learning-rate schedule (see ``optim.one_cycle_lr``).

        The optimiser's ``lr`` is restored afterwards.
        """
        def schedule(step, n_steps):
            return one_cycle_lr(step, n_steps, lr_max, **one_cycle)
        return self.fit(x, y, batch_size, epochs, validation_data, verbose=verbose,
                        lr_schedule=schedule)

    def run_batches(self, users, movies, y, order, batch_size, lrs, first, last):
        """Train on batches ``first..last-1`` of ``order``: the fused Numba kernels when the
        backend is ``numba`` and the optimiser is Adam, else the layer-by-layer reference."""
        if self.backend == "numba" and isinstance(self.optimizer, Adam):
            from .kernels import numba_cpu
            return numba_cpu.run_batches(self, users, movies, y, order, batch_size, lrs, first, last)
        if self.backend == "cupy" and isinstance(self.optimizer, Adam):
            from .kernels import cupy_gpu
            return cupy_gpu.run_batches(self, users, movies, y, order, batch_size, lrs, first, last)
        return self.reference_batches(users, movies, y, order, batch_size, lrs, first, last)

    def reference_batches(self, users, movies, y, order, batch_size, lrs, first, last):
        """The reference epoch runner: batches ``first..last-1`` of ``order``, one at a time.

        Returns (batch MSEs, index of the batch whose loss was not finite, or -1). The optimiser
        is not stepped on a batch whose loss is not finite.
        """
        order = to_xp(order, self.xp)
        losses = []
        for b in range(first, last):
            rows = order[b * batch_size:(b + 1) * batch_size]
            loss, grads = self.batch_mse_and_grads(users[rows], movies[rows], y[rows], True,
                                                   lazy=self.optimizer.lazy)
            losses.append(loss)
            if not np.isfinite(loss):
                return np.array(losses), b
            self.optimizer.lr = float(lrs[b])
            self.optimizer.step(self.params, grads, self.looked_up_rows())
        return np.array(losses), -1

    def predict(self, x, batch_size=65536):
        """Predicted ratings r̂ for ``x = [users, movies]``, as a NumPy array (N,)."""
        users, movies = self._ids(x)
        return to_numpy(self.predictions(users, movies, batch_size))

    def evaluate(self, x, y, batch_size=65536):
        """Plain mean squared error on ``(x, y)`` (no penalty)."""
        users, movies = self._ids(x)
        return mse_of(self.predictions(users, movies, batch_size), self._y(y)) if len(users) else 0.0

    def predictions(self, users, movies, batch_size=65536):
        """r̂ for checked index arrays, on this backend: the layers' forward pass (no dropout)
        in chunks of ``batch_size``, or one Numba loop on the numba backend."""
        if self.backend == "numba":
            from .kernels import numba_cpu
            return numba_cpu.predict(self, users, movies)
        out = [self.forward(users[i:i + batch_size], movies[i:i + batch_size], False)
               for i in range(0, len(users), batch_size)]
        return self.xp.concatenate(out) if out else self.xp.empty(0, self.dtype)

    def summary(self, print_fn=print):
        """Print a Keras-style table of layers and parameter counts; returns the total."""
        lines = [f'Model: "{type(self).__name__}"  (backend {self.backend}, {self.dtype})',
                 f"{'Layer':<20}{'Shape':<20}{'Param #':>12}", "=" * 52]
        for name, layer in self.layers.items():
            shapes = ", ".join(str(tuple(p.shape)) for p in layer.params.values()) or "-"
            lines.append(f"{name:<20}{shapes:<20}{layer.n_params():>12,}")
        total = self.count_params()
        lines += ["=" * 52, f"Total params: {total:,}"]
        print_fn("\n".join(lines))
        return total

    def config(self):
        """The constructor arguments that fix the weights' shapes (stored with saved weights)."""
        return {"class": type(self).__name__, "n_users": self.n_users, "n_movies": self.n_movies,
                "n_factors": self.n_factors}

    def save_weights(self, path):
        """Write every weight to a ``.npz`` file, atomically (a crash never leaves half a file)."""
        arrays = {name: to_numpy(p) for name, p in self.params.items()}
        arrays["__config__"] = np.array(json.dumps(self.config()))
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def load_weights(self, path):
        """Read weights saved by ``save_weights`` (from any backend); refuse a mismatch.

        Every name and shape is checked before anything is copied, so a refused file leaves
        the model as it was.
        """
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != "__config__"}
        mine = self.params
        if set(arrays) != set(mine):
            raise ValueError(f"weights file {path} holds {sorted(arrays)}, but this "
                             f"{type(self).__name__} has {sorted(mine)}")
        for name, p in mine.items():
            if tuple(arrays[name].shape) != tuple(p.shape):
                raise ValueError(f"weights file {path}: {name} has shape {tuple(arrays[name].shape)}"
                                 f" but this model's {name} has shape {tuple(p.shape)}")
        self.set_params(arrays)
        return self

    # ----- input checks -------------------------------------------------------------------
    def _ids(self, x):
        """``[users, movies]`` as integer arrays on this backend, every id checked in range."""
        if len(x) != 2:
            raise ValueError("inputs must be [users, movies]")
        out = []
        for ids, n, what in ((x[0], self.n_users, "user"), (x[1], self.n_movies, "movie")):
            a = np.asarray(to_numpy(ids))
            if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
                raise ValueError(f"{what} ids must be a 1-D array of integer indices")
            bad = (a < 0) | (a >= n)
            if bad.any():
                raise KeyError(f"unknown {what} index {int(a[bad][0])}: this model knows {n} "
                               f"{what}s (indices 0..{n - 1})")
            out.append(to_xp(a.astype(np.intp, copy=False), self.xp))
        if len(out[0]) != len(out[1]):
            raise ValueError(f"{len(out[0])} users but {len(out[1])} movies")
        return out

    def _y(self, y):
        return to_xp(np.asarray(to_numpy(y)), self.xp, self.dtype)


class DotProduct(Model):
    """r̂ = u_i · m_j: one F-vector per user and per movie (the notebook's first model).

    Parameters: user_embedding.W (U, F), movie_embedding.W (M, F), both with ``l2``.
    """

    def __init__(self, n_users, n_movies, n_factors=50, l2=1e-4, dtype=np.float32, seed=None,
                 backend=None):
        super().__init__(n_users, n_movies, n_factors, dtype, seed, backend)
        self.l2 = float(l2)
        self.y_range = None
        self.user = self._embedding("user_embedding", n_users, l2)
        self.movie = self._embedding("movie_embedding", n_movies, l2)
        self.dot = Dot()

    def forward(self, users, movies, training=True):
        return self.dot.forward(self.user.forward(users), self.movie.forward(movies))

    def backward(self, dpred):
        du, dm = self.dot.backward(dpred)
        self.user.backward(du)
        self.movie.backward(dm)

    def config(self):
        return {**super().config(), "l2": self.l2}


class YRange:
    """Squash a raw score z into (lo, hi):  r̂ = lo + (hi - lo) · σ(z),  σ(z) = 1 / (1 + e^-z).

    backward: dz = dr̂ · (hi - lo) · σ(z) · (1 - σ(z)).
    """

    def __init__(self, y_range):
        self.lo, self.hi = (float(v) for v in y_range)

    def forward(self, z):
        self.s = 1.0 / (1.0 + get_array_module(z).exp(-z))
        return self.lo + (self.hi - self.lo) * self.s

    def backward(self, dout):
        return dout * ((self.hi - self.lo) * self.s * (1.0 - self.s))


class DotProductBias(DotProduct):
    """r̂ = u_i · m_j + b_i + b_j, optionally squashed into ``y_range`` (see ``YRange``).

    Adds user_bias.W (U, 1) and movie_bias.W (M, 1), not regularised (as in the notebook).
    ``y_range=(0, 5.5)`` is fastai's trick: predictions can never leave the rating scale.
    """

    def __init__(self, n_users, n_movies, n_factors=50, l2=1e-4, y_range=None, dtype=np.float32,
                 seed=None, backend=None):
        super().__init__(n_users, n_movies, n_factors, l2, dtype, seed, backend)
        self.user_bias = self._embedding("user_bias", n_users, 0.0, width=1)
        self.movie_bias = self._embedding("movie_bias", n_movies, 0.0, width=1)
        self.y_range = tuple(y_range) if y_range is not None else None
        self.squash = YRange(y_range) if y_range is not None else None

    def forward(self, users, movies, training=True):
        z = (super().forward(users, movies, training)
             + self.user_bias.forward(users)[:, 0] + self.movie_bias.forward(movies)[:, 0])
        return self.squash.forward(z) if self.squash else z

    def config(self):
        return {**super().config(), "y_range": self.y_range}

    def backward(self, dpred):
        dz = self.squash.backward(dpred) if self.squash else dpred
        super().backward(dz)
        self.user_bias.backward(dz[:, None])
        self.movie_bias.backward(dz[:, None])


class NeuralNet(Model):
    """r̂ = W2ᵀ · drop₂(relu(W1ᵀ · drop₁([u_i, m_j]) + c1)) + c2   (the notebook's third model).

    Shapes: [u_i, m_j] (N, 2F) -> dense_1 (2F, H) -> relu -> dense_2 (H, 1) -> r̂ (N,).
    ``dropout=(p1, p2)`` are the *drop* probabilities before dense_1 and before dense_2
    (the notebook: 0.3 and 0.75). Embeddings carry ``l2``; the dense layers do not.
    """

    def __init__(self, n_users, n_movies, n_factors=50, hidden=70, dropout=(0.3, 0.75), l2=1e-4,
                 y_range=None, dtype=np.float32, seed=None, backend=None):
        super().__init__(n_users, n_movies, n_factors, dtype, seed, backend)
        self.l2, self.hidden, self.dropout = float(l2), int(hidden), tuple(dropout)
        self.user = self._embedding("user_embedding", n_users, l2)
        self.movie = self._embedding("movie_embedding", n_movies, l2)
        kw = dict(rng=self.init_rng, dtype=self.dtype, xp=self.xp)
        self.layers["dense_1"] = self.dense_1 = Dense(2 * n_factors, hidden, **kw)
        self.layers["dense_2"] = self.dense_2 = Dense(hidden, 1, **kw)
        self.concat, self.relu = Concat(), ReLU()
        self.drop_1 = Dropout(dropout[0], rng=self.dropout_rng)
        self.drop_2 = Dropout(dropout[1], rng=self.dropout_rng)
        self.y_range = tuple(y_range) if y_range is not None else None
        self.squash = YRange(y_range) if y_range is not None else None

    def forward(self, users, movies, training=True):
        x = self.concat.forward(self.user.forward(users), self.movie.forward(movies))
        x = self.drop_1.forward(x, training)
        h = self.relu.forward(self.dense_1.forward(x))
        h = self.drop_2.forward(h, training)
        z = self.dense_2.forward(h)[:, 0]
        return self.squash.forward(z) if self.squash else z

    def backward(self, dpred):
        dz = self.squash.backward(dpred) if self.squash else dpred
        dh = self.dense_2.backward(dz[:, None])
        dh = self.relu.backward(self.drop_2.backward(dh))
        dx = self.drop_1.backward(self.dense_1.backward(dh))
        du, dm = self.concat.backward(dx)
        self.user.backward(du)
        self.movie.backward(dm)

    def config(self):
        return {**super().config(), "hidden": self.hidden, "l2": self.l2,
                "dropout": list(self.dropout), "y_range": self.y_range}


MODELS = {cls.__name__: cls for cls in (DotProduct, DotProductBias, NeuralNet)}


def model_from_weights(path, ds=None, backend=None):
    """Build the model a ``save_weights`` file describes and load it.

    With a data set ``ds``, its user and movie counts must match the file's.
    """
    with np.load(path, allow_pickle=False) as data:
        if "__config__" not in data.files:
            raise ValueError(f"{path} was not written by minirec's save_weights (no config)")
        config = json.loads(str(data["__config__"]))
    kwargs = {k: v for k, v in config.items() if k != "class"}
    if ds is not None and (ds.n_users, ds.n_movies) != (kwargs["n_users"], kwargs["n_movies"]):
        raise ValueError(f"{path} was trained on {kwargs['n_users']} users and "
                         f"{kwargs['n_movies']} movies, but {ds.name} has {ds.n_users} and "
                         f"{ds.n_movies}")
    model = MODELS[config["class"]](backend=backend, **kwargs)
    return model.load_weights(path)
