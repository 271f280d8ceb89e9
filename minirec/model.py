"""``Model``: what every model shares — its layers and weights, the loss and its gradients, and
the Keras-shaped surface (compile, fit, predict, evaluate, summary, save and load).

A model builds its layers in ``__init__`` and writes ``forward(users, movies, training)`` and
``backward(dpred)``; that is all a new model needs to train on every backend (``runners.py``).
"""
import numpy as np

from . import checks
from .backend import (array_module, default_threads, numba_available, resolve_backend, seeded_rngs,
                      to_numpy, to_xp)
from .layers import Embedding
from .losses import L2, mse, mse_of


class Model:
    """Base class. ``params``/``grads`` are keyed ``"<layer>.<param>"`` (``"user_embedding.W"``).

    ``regularisers`` maps a parameter to its ``L2``; ``lookups`` maps each embedding table to
    the input it reads (``"user"`` or ``"movie"``), which lazy training needs to know.
    ``fused = False`` keeps a registered whole-model kernel from being used (``runners.py``);
    ``threads`` is how many CPU threads the Numba kernels may use (``$MINIREC_THREADS``, else 1).
    """

    def __init__(self, n_users, n_movies, n_factors, dtype=np.float32, seed=None, backend=None):
        self.n_users = checks.whole_number("n_users", n_users, 1)
        self.n_movies = checks.whole_number("n_movies", n_movies, 1)
        self.n_factors = checks.whole_number("n_factors", n_factors, 1)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.backend = resolve_backend(backend)
        self.xp = array_module(self.backend)
        self.seed = seed
        self.init_rng, self.shuffle_rng, self.dropout_rng = seeded_rngs(seed, 3)
        self.layers, self.regularisers, self.lookups = {}, {}, {}
        self.optimizer, self.fused, self.threads = None, True, default_threads()

    # ----- weights ------------------------------------------------------------------------
    @property
    def params(self):
        return {f"{ln}.{pn}": p for ln, layer in self.layers.items() for pn, p in layer.params.items()}

    @property
    def grads(self):
        """The gradients of the last ``backward`` (of the MSE only; the L2 is added later)."""
        return {f"{ln}.{pn}": g for ln, layer in self.layers.items() for pn, g in layer.grads.items()}

    def set_params(self, values):
        """Copy ``values`` (name -> array, any backend) into the weights, in place."""
        for name, p in self.params.items():
            p[...] = to_xp(values[name], self.xp, self.dtype)

    def count_params(self):
        return sum(layer.n_params() for layer in self.layers.values())  # as Keras's count_params

    def embedding(self, name, n_rows, width, l2, reads):
        """Add an embedding table of ``n_rows`` x ``width`` that looks up the ``reads`` input
        (``"user"`` or ``"movie"``), with Keras's L2 of ``l2`` on the whole table."""
        self.layers[name] = layer = Embedding(n_rows, width, rng=self.init_rng, dtype=self.dtype,
                                              xp=self.xp)
        self.lookups[name + ".W"] = reads
        if l2:
            self.regularisers[name + ".W"] = L2(l2)
        return layer

    def penalty(self):
        """Σ λ·ΣW² over the regularised tables, whole tables (Keras's ``l2``)."""
        return sum(reg.penalty(self.params[name]) for name, reg in self.regularisers.items())

    # ----- the maths ----------------------------------------------------------------------
    def forward(self, users, movies, training=True):
        raise NotImplementedError

    def backward(self, dpred):
        raise NotImplementedError

    def mse_and_grads(self, users, movies, y, training=True):
        """Forward and backward on checked arrays: the batch MSE and its gradients (no L2)."""
        loss, dpred = mse(self.forward(users, movies, training), y)
        self.backward(dpred)
        return loss, self.grads

    def loss_and_grads(self, inputs, y, training=True):
        """The training objective, MSE + whole-table L2 penalty, and its exact gradients, keyed
        like ``params``. With ``training=True`` dropout is on (masks from ``dropout_rng``)."""
        users, movies = checks.inputs(inputs, self.n_users, self.n_movies, self.xp)
        y = checks.ratings(y, len(users), self.xp, self.dtype)
        loss, grads = self.mse_and_grads(users, movies, y, training)
        grads = dict(grads)
        for name, reg in self.regularisers.items():
            grads[name] = grads[name] + reg.gradient(self.params[name])
        return loss + self.penalty(), grads

    # ----- Keras-shaped surface -----------------------------------------------------------
    def compile(self, optimizer, loss="mse"):
        """Attach an optimiser. Only ``loss="mse"`` exists (as in the notebook)."""
        if loss not in ("mse", "mean_squared_error"):
            raise ValueError(f"only loss='mse' is supported, got {loss!r}")
        self.optimizer = optimizer
        return self

    def fit(self, x, y, batch_size=64, epochs=1, validation_data=None, shuffle=True, verbose=1,
            lr_schedule=None):
        """Train; returns a ``History`` (``.history["loss"/"val_loss"/"lr"]``). ``x`` is
        ``[users, movies]`` (indices); ``validation_data`` is ``([users, movies], y)``."""
        from .training import fit
        return fit(self, x, y, batch_size, epochs, validation_data, shuffle, verbose, lr_schedule)

    def fit_one_cycle(self, x, y, epochs, lr_max, batch_size=64, validation_data=None, verbose=1,
                      **one_cycle):
        """``fit`` with the one-cycle schedule (``optim.one_cycle_lr``); ``lr`` is restored after."""
        from .optim import one_cycle_lr
        lr_max = checks.finite_positive("lr_max", lr_max)
        return self.fit(x, y, batch_size, epochs, validation_data, verbose=verbose,
                        lr_schedule=lambda step, n: one_cycle_lr(step, n, lr_max, **one_cycle))

    def lr_find(self, x, y, **options):
        """The LR range test (``lr_find.py``): an ``LRFinder`` with ``.suggestion`` and ``.plot()``;
        the model is left as it was."""
        from .lr_find import lr_find
        return lr_find(self, x, y, **options)

    def predict(self, x, batch_size=65536):
        """r̂ for ``x = [users, movies]`` (the forward pass without dropout, in chunks), as NumPy."""
        users, movies = checks.inputs(x, self.n_users, self.n_movies, self.xp)
        out = [self.forward(users[i:i + batch_size], movies[i:i + batch_size], False)
               for i in range(0, len(users), batch_size)]
        return to_numpy(self.xp.concatenate(out)) if out else np.empty(0, self.dtype)

    def evaluate(self, x, y, batch_size=65536):
        """Plain mean squared error on ``(x, y)`` (no penalty); refuses an empty set."""
        pred = self.predict(x, batch_size)
        y = checks.ratings(y, len(pred), np, self.dtype)
        if len(y) == 0:
            raise ValueError("evaluate needs at least one rating (the set is empty)")
        return mse_of(pred, y)

    def summary(self, print_fn=print):
        """Print a Keras-style table of layers and parameter counts, and which runner trains
        the model; returns the total."""
        from .runners import describe
        lines = [f'Model: "{type(self).__name__}"  (backend {self.backend}, {self.dtype})',
                 f"{'Layer':<20}{'Shape':<20}{'Param #':>12}", "=" * 52]
        for name, layer in self.layers.items():
            shapes = ", ".join(str(tuple(p.shape)) for p in layer.params.values()) or "-"
            lines.append(f"{name:<20}{shapes:<20}{layer.n_params():>12,}")
        total = self.count_params()
        lines += ["=" * 52, f"Total params: {total:,}", f"Trained by: {describe(self)}"]
        print_fn("\n".join(lines))
        return total

    def config(self):
        """The constructor arguments that rebuild this model (stored with saved weights)."""
        return {"class": type(self).__name__, "n_users": self.n_users, "n_movies": self.n_movies,
                "n_factors": self.n_factors}

    def save_weights(self, path, **metadata):  # see weights.py
        from .weights import save_weights
        return save_weights(self, path, **metadata)

    def load_weights(self, path):
        from .weights import load_weights
        return load_weights(self, path)

    def to(self, device):
        """Move weights and optimiser state to ``"cpu"`` (Numba, else NumPy), ``"gpu"`` (CuPy)
        or a backend; returns the model."""
        backend = {"cpu": "numba" if numba_available() else "numpy", "gpu": "cupy"}.get(device, device)
        self.backend = resolve_backend(backend)
        self.xp = array_module(self.backend)
        for layer in self.layers.values():
            layer.params, layer.grads = {k: to_xp(p, self.xp) for k, p in layer.params.items()}, {}
        for slots in (self.optimizer.state.values() if self.optimizer else ()):
            slots.update({key: to_xp(a, self.xp) for key, a in slots.items()})
        return self
