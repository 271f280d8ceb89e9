"""``Model``: what every model shares — its layers and weights, the loss and its gradients, and
the Keras-shaped surface (compile, fit, predict, evaluate, summary, save and load).

A model builds its layers in ``__init__`` and writes ``forward(users, movies, training)`` and
``backward(dpred)``; that is all a new model needs to train on every backend (``runners.py``).
A layer is registered by assigning it to an attribute (``self.offset = Offset()``, as in
PyTorch), and ``guards.py`` checks the rest: every step starts from cleared gradients, every
parameter must get a fresh gradient, and a layer held but not registered is refused.
"""
import numpy as np

from .. import inputs
from ..backend import array_module, default_threads, numba_available, resolve_backend, seeded_rngs, to_numpy, to_xp
from ..io.weights import load_weights, model_config, save_weights
from ..nn.layers import Embedding, EmbeddingBag, Layer
from ..nn.losses import L2, mse_of
from ..nn.ops import ops_for
from ..train import guards
from ..train.loop import fit, fit_one_cycle
from ..train.lr_find import lr_find
from ..train.objectives import MSE, from_settings, objective
from ..train.runners import describe


class Model:
    """Base class. ``params``/``grads`` are keyed ``"<layer>.<param>"`` (``"user_embedding.W"``).

    ``regularisers`` maps a parameter to its ``L2``; ``lookups`` maps each embedding table to
    the input it reads (``"user"`` or ``"movie"``): lazy training and ``saved.align`` need it.
    ``fused = False`` keeps a registered whole-model kernel from being used (``runners.py``);
    ``threads`` is how many CPU threads the Numba kernels may use (``$MINIREC_THREADS``, else 1).
    """
    not_in_config = ()  # constructor arguments kept elsewhere (SVD++'s bags: layer buffers)

    def __init__(self, n_users, n_movies, n_factors, dtype=np.float32, seed=None, backend=None):
        object.__setattr__(self, "layers", {})  # first: assigning a layer registers it here
        self.n_users = inputs.whole_number("n_users", n_users, 1)
        self.n_movies = inputs.whole_number("n_movies", n_movies, 1)
        self.n_factors = inputs.whole_number("n_factors", n_factors, 1)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.use_backend(backend)
        self.seed = seed
        self.init_rng, self.shuffle_rng, self.dropout_rng, self.negative_rng = seeded_rngs(seed, 4)
        self.regularisers, self.lookups = {}, {}
        self.optimizer, self.fused, self.threads = None, True, default_threads()
        self.objective = MSE()  # what compile(loss=...) chooses: MSE or BPR (objectives.py)

    @classmethod
    def for_data(cls, ds, train, **kwargs):
        """The model for data set ``ds`` (a ``MovieLens``: its sizes, ids and side files) with
        training ratings ``train`` (``Ratings``). Most models need only the sizes; one that
        reads the training data (SVD++'s N(i)) or the side files (``Hybrid``) overrides this,
        so the CLI, lesson4, the recipes and the benchmarks build every kind the same way."""
        return cls(ds.n_users, ds.n_movies, **kwargs)

    # ----- layers and weights -------------------------------------------------------------
    def __setattr__(self, name, value):
        """``self.name = layer`` registers the layer as ``name`` (unless it is already
        registered under another name), so a layer cannot be forgotten."""
        if isinstance(value, Layer):
            if "layers" not in self.__dict__:
                raise TypeError(f"{type(self).__name__}: call super().__init__(...) before "
                                f"adding layers (self.{name} = ...)")
            if not any(layer is value for layer in self.layers.values()):
                self.add_layer(name, value)
        object.__setattr__(self, name, value)

    def add_layer(self, name, layer):
        """Register ``layer`` as ``name``: its parameters train as ``"<name>.<param>"``."""
        self.layers[name], layer.name, layer.ops = layer, name, self.ops
        return layer

    def embedding(self, name, n_rows, width, l2, reads):
        """An ``Embedding`` (n_rows, width) looked up by the ``reads`` input ("user" or
        "movie"), with Keras's L2 of ``l2`` on the whole table."""
        return self.table(name, Embedding(n_rows, width, rng=self.init_rng, dtype=self.dtype,
                                          xp=self.xp), l2, reads)

    def bag(self, name, n_rows, width, bags, l2, reads, rows_are, mode="sqrt"):
        """An ``EmbeddingBag`` (n_rows, width): a bag per row of the ``reads`` input, holding
        rows that are ``rows_are`` (SVD++: each user's bag of movies), L2 ``l2``."""
        layer = EmbeddingBag(n_rows, width, bags, mode, rng=self.init_rng, dtype=self.dtype, xp=self.xp)
        layer.bag_owner, layer.row_kind = reads, rows_are
        return self.table(name, layer, l2, (reads, layer))

    def table(self, name, layer, l2, reads):
        """Register a table, with the input that reads it (``lookups``) and its L2, if any."""
        self.lookups[name + ".W"] = reads
        if l2:
            self.regularisers[name + ".W"] = L2(l2)
        return self.add_layer(name, layer)

    @property
    def params(self):
        return {f"{ln}.{pn}": p for ln, layer in self.layers.items() for pn, p in layer.params.items()}

    @property
    def grads(self):
        """The gradients of the last ``backward`` (of the loss only; the L2 is added later).
        They are the layers' own arrays, overwritten by the next backward: copy to keep them."""
        return {f"{ln}.{pn}": g for ln, layer in self.layers.items() for pn, g in layer.grads.items()}

    def set_params(self, values):
        """Copy ``values`` (name -> array, any backend) into the weights, in place."""
        for name, p in self.params.items():
            p[...] = to_xp(values[name], self.xp, self.dtype)

    def count_params(self):
        return sum(layer.n_params() for layer in self.layers.values())  # as Keras's count_params

    # ----- the maths ----------------------------------------------------------------------
    def forward(self, users, movies, training=True):
        raise NotImplementedError(f"{type(self).__name__} must define forward(users, movies, training)")

    def backward(self, dpred):
        raise NotImplementedError(f"{type(self).__name__} must define backward(dpred), passing "
                                  "each layer the forward used the gradient of its output")

    def penalty(self):
        """Σ λ·ΣW² over the regularised tables, whole tables (Keras's ``l2``)."""
        return sum(reg.penalty(self.params[name]) for name, reg in self.regularisers.items())

    def batch_loss(self, users, movies, y, training=True):
        """One step's maths on checked arrays: cleared gradients, the objective's loss through
        forward and backward, and the check that every parameter got its gradient (``guards.py``)."""
        guards.clear_gradients(self)
        loss = self.objective.batch(self, users, movies, y, training)
        guards.check_gradients(self)
        return loss, self.grads

    def loss_and_grads(self, x, y, training=True):
        """The training objective (MSE unless compiled with another) + whole-table L2 penalty,
        and its exact gradients, keyed like ``params``. With ``training=True`` dropout is on
        (masks from ``dropout_rng``; BPR's negatives from ``negative_rng``)."""
        guards.unregistered_layers(self)
        users, movies = inputs.pairs(x, self.n_users, self.n_movies, self.xp)
        y = inputs.ratings(y, len(users), self.xp, self.dtype)
        users, movies, y = self.objective.prepare(users, movies, y, self.n_movies, self.negative_rng)
        loss, grads = self.batch_loss(users, movies, y, training)
        grads = dict(grads)
        for name, reg in self.regularisers.items():
            grads[name] = grads[name] + reg.gradient(self.params[name])
        return loss + self.penalty(), grads

    # ----- Keras-shaped surface -----------------------------------------------------------
    def compile(self, optimizer, loss="mse"):
        """Attach an optimiser and choose the objective: ``"mse"`` (the notebook's), ``"bpr"``
        (learn to rank from implicit feedback), or an objective such as ``BPR(positive_at=4)``."""
        self.objective = objective(loss)
        guards.unregistered_layers(self)
        guards.check_lookups(self, optimizer)
        self.optimizer = optimizer
        return self

    def fit(self, x, y, batch_size=64, epochs=1, validation_data=None, shuffle=True, verbose=1,
            lr_schedule=None, nb_epoch=None):
        """Train on ``x = [users, movies]`` and ratings ``y`` (``loop.fit``); returns a ``History``."""
        return fit(self, x, y, batch_size, epochs, validation_data, shuffle, verbose, lr_schedule,
                   nb_epoch)

    def fit_one_cycle(self, x, y, epochs, lr_max, batch_size=64, validation_data=None, verbose=1,
                      **one_cycle):
        """``fit`` with the one-cycle schedule (``loop.fit_one_cycle``)."""
        return fit_one_cycle(self, x, y, epochs, lr_max, batch_size, validation_data, verbose,
                             **one_cycle)

    def lr_find(self, x, y, **options):
        """The LR range test (``lr_find.py``); the model is left as it was."""
        return lr_find(self, x, y, **options)

    def predict(self, x, batch_size=65536):
        """r̂ for ``x = [users, movies]`` (the forward pass without dropout, in chunks), as NumPy."""
        users, movies = inputs.pairs(x, self.n_users, self.n_movies, self.xp)
        batch_size = inputs.batch_size(batch_size, len(users))  # -1 refused, not an empty answer
        out = [self.forward(users[i:i + batch_size], movies[i:i + batch_size], False)
               for i in range(0, len(users), batch_size)]
        return to_numpy(self.xp.concatenate(out)) if out else np.empty(0, self.dtype)

    def evaluate(self, x, y, batch_size=65536):
        """Plain mean squared error on ``(x, y)`` (no penalty); refuses an empty set, and a
        model trained to rank, whose predictions are scores, not ratings."""
        if self.objective.predicts != "ratings":
            raise ValueError(f"this {type(self).__name__} was trained with {self.objective.name}: "
                             "its predictions are scores, not ratings, so an MSE would mean "
                             "nothing; judge it with ranking_metrics (evaluate --ranking)")
        pred = self.predict(x, batch_size)
        y = inputs.ratings(y, len(pred), np, self.dtype)
        if len(y) == 0:
            raise ValueError("evaluate needs at least one rating (the set is empty)")
        return mse_of(pred, y)

    def summary(self, print_fn=print):
        """Print a Keras-style table of layers and parameter counts, and what will train the
        model; returns the total."""
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
        """The constructor arguments that rebuild this model (``weights.model_config``)."""
        return model_config(self)

    def save_weights(self, path, data=None, seed=None, train_fraction=0.8):  # see weights.py
        return save_weights(self, path, data, seed, train_fraction)

    def load_weights(self, path):  # and the objective the file records (weights.py)
        return load_weights(self, path, objective_from=from_settings)

    def use_backend(self, backend):
        """Work on ``backend`` with its array operations (on numba, the compiled twins, which
        register themselves in ``nn.ops.TWINS`` when imported)."""
        self.backend = resolve_backend(backend)
        if self.backend == "numba":
            from ..fast import numba_ops  # noqa: F401
        self.xp, self.ops = array_module(self.backend), ops_for(self.backend)

    def to(self, device):
        """Move weights and optimiser state to ``"cpu"`` (Numba, else NumPy), ``"gpu"`` (CuPy)
        or a backend; returns the model."""
        self.use_backend({"cpu": "numba" if numba_available() else "numpy", "gpu": "cupy"}.get(device, device))
        for layer in self.layers.values():
            layer.move(self.xp)
            layer.ops = self.ops
        for slots in (self.optimizer.state.values() if self.optimizer else ()):
            slots.update({key: to_xp(a, self.xp) for key, a in slots.items()})
        return self
