"""``Model``: what every model shares — its layers and weights, the loss and its gradients, and
the Keras-shaped surface (compile, fit, predict, evaluate, summary, save and load).

A model builds its layers in ``__init__`` and writes ``forward(users, movies, training)`` and
``backward(dpred)``; that is all a new model needs to train on every backend (``runners.py``).
A layer is registered by assigning it to an attribute (``self.offset = Offset()``, as in
PyTorch), and ``guards.py`` checks the rest: every step starts from cleared gradients, every
parameter must get a fresh gradient, and a layer held but not registered is refused.
"""
import inspect

import numpy as np

from .. import inputs
from ..train import guards
from ..backend import array_module, default_threads, numba_available, resolve_backend, seeded_rngs, to_numpy, to_xp
from ..nn.layers import Embedding, EmbeddingBag, Layer
from ..nn.losses import L2, mse_of
from ..train.objectives import MSE, from_settings, objective
from ..train.lr_find import lr_find
from ..nn.ops import ops_for
from ..nn.optim import one_cycle_lr
from ..train.runners import describe
from ..train.loop import fit
from ..io.weights import load_weights, save_weights


class Model:
    """Base class. ``params``/``grads`` are keyed ``"<layer>.<param>"`` (``"user_embedding.W"``).

    ``regularisers`` maps a parameter to its ``L2``; ``lookups`` maps each embedding table to
    the input it reads (``"user"`` or ``"movie"``), which lazy training needs to know.
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
        self.backend = resolve_backend(backend)
        self.xp, self.ops = array_module(self.backend), ops_on(self.backend)
        self.seed = seed
        self.init_rng, self.shuffle_rng, self.dropout_rng, self.negative_rng = seeded_rngs(seed, 4)
        self.regularisers, self.lookups = {}, {}
        self.optimizer, self.fused, self.threads = None, True, default_threads()
        self.objective = MSE()  # what compile(loss=...) chooses: MSE or BPR (objectives.py)

    @classmethod
    def for_data(cls, n_users, n_movies, train, **kwargs):
        """The model for a data set with training ratings ``train`` (``datasets.Ratings``). Most
        models need only the sizes; one that reads the training data (SVD++'s N(i)) overrides
        this, so the CLI, lesson4 and the benchmarks build every kind the same way."""
        return cls(n_users, n_movies, **kwargs)

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
        self.layers[name] = layer
        layer.ops = self.ops
        return layer

    # ----- weights ------------------------------------------------------------------------
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

    def embedding(self, name, n_rows, width, l2, reads):
        """Add an embedding table of ``n_rows`` x ``width`` that looks up the ``reads`` input
        (``"user"`` or ``"movie"``), with Keras's L2 of ``l2`` on the whole table."""
        layer = self.add_layer(name, Embedding(n_rows, width, rng=self.init_rng, dtype=self.dtype,
                                               xp=self.xp))
        return self.table(name, l2, reads, layer)

    def bag(self, name, n_rows, width, bags, l2, reads, rows_are, mode="sqrt"):
        """Add an ``EmbeddingBag`` of ``n_rows`` x ``width``: one bag per row of the ``reads``
        input, holding rows that are ``rows_are`` (SVD++: each user's bag of movies), L2 ``l2``."""
        layer = self.add_layer(name, EmbeddingBag(n_rows, width, bags, mode, rng=self.init_rng,
                                                  dtype=self.dtype, xp=self.xp))
        layer.bag_owner, layer.row_kind = reads, rows_are
        return self.table(name, l2, (reads, layer), layer)

    def table(self, name, l2, reads, layer):
        self.lookups[name + ".W"] = reads
        if l2:
            self.regularisers[name + ".W"] = L2(l2)
        return layer

    def penalty(self):
        """Σ λ·ΣW² over the regularised tables, whole tables (Keras's ``l2``)."""
        return sum(reg.penalty(self.params[name]) for name, reg in self.regularisers.items())

    # ----- the maths ----------------------------------------------------------------------
    def forward(self, users, movies, training=True):
        raise NotImplementedError(f"{type(self).__name__} must define forward(users, movies, training)")

    def backward(self, dpred):
        raise NotImplementedError(f"{type(self).__name__} must define backward(dpred), passing "
                                  "each layer the forward used the gradient of its output")

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
        """Train; returns a ``History`` (``.history["loss"/"val_loss"/"lr"]``). ``x`` is
        ``[users, movies]`` (indices: arrays, lists or pandas columns); ``validation_data`` is
        ``([users, movies], y)``. ``nb_epoch`` is Keras 1's name for ``epochs``, so the
        notebook's own ``model.fit(..., nb_epoch=1, ...)`` runs as written."""
        if nb_epoch is not None:
            if epochs not in (1, nb_epoch):
                raise ValueError(f"epochs={epochs} and nb_epoch={nb_epoch}: give one of them")
            epochs = nb_epoch
        return fit(self, x, y, batch_size, epochs, validation_data, shuffle, verbose, lr_schedule)

    def fit_one_cycle(self, x, y, epochs, lr_max, batch_size=64, validation_data=None, verbose=1,
                      **one_cycle):
        """``fit`` with the one-cycle schedule (``optim.one_cycle_lr``); ``lr`` is restored after."""
        lr_max = inputs.finite_positive("lr_max", lr_max)
        one_cycle_lr(0, 1, lr_max, **one_cycle)  # refuse bad settings now, not at batch 1
        return self.fit(x, y, batch_size, epochs, validation_data, verbose=verbose,
                        lr_schedule=lambda step, n: one_cycle_lr(step, n, lr_max, **one_cycle))

    def lr_find(self, x, y, **options):
        """The LR range test (``lr_find.py``): an ``LRFinder`` with ``.suggestion`` and ``.plot()``;
        the model is left as it was."""
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
        """The constructor arguments that rebuild this model (stored with saved weights): each
        argument of ``__init__`` but dtype, seed and backend, read from the attribute of the
        same name. A model that keeps an argument under another name overrides this."""
        record = {"class": type(self).__name__}
        for arg in list(inspect.signature(type(self).__init__).parameters)[1:]:
            if arg in ("dtype", "seed", "backend", "args", "kwargs", *self.not_in_config):
                continue
            if not hasattr(self, arg):
                raise AttributeError(f"{type(self).__name__}.config() cannot find self.{arg}: keep "
                                     f"each constructor argument as an attribute of the same name, "
                                     "or override config()")
            value = getattr(self, arg)
            record[arg] = list(value) if isinstance(value, tuple) else value
        return record

    def save_weights(self, path, data=None, seed=None, train_fraction=0.8):  # see weights.py
        return save_weights(self, path, data, seed, train_fraction)

    def load_weights(self, path):  # and the objective the file records (weights.py)
        return load_weights(self, path, objective_from=from_settings)

    def remap(self, what, order):
        """Follow a new order of the data's ids (``weights.align``): ``order[k]`` is the old row
        of new row k, for the ``what`` input ("user" or "movie"). Tables looked up by that input
        move their rows; a bag layer renumbers its bags or moves its rows."""
        for name, reads in self.lookups.items():
            if reads == what:
                p = self.params[name]
                p[...] = p[self.xp.asarray(order)]
        for layer in self.layers.values():
            if getattr(layer, "bag_owner", None) == what:
                layer.reorder(owners=order)
            if getattr(layer, "row_kind", None) == what:
                layer.reorder(rows=order)

    def to(self, device):
        """Move weights and optimiser state to ``"cpu"`` (Numba, else NumPy), ``"gpu"`` (CuPy)
        or a backend; returns the model."""
        backend = {"cpu": "numba" if numba_available() else "numpy", "gpu": "cupy"}.get(device, device)
        self.backend = resolve_backend(backend)
        self.xp, self.ops = array_module(self.backend), ops_on(self.backend)
        for layer in self.layers.values():
            layer.params, layer.grads = {k: to_xp(p, self.xp) for k, p in layer.params.items()}, {}
            layer.ops = self.ops
            if hasattr(layer, "move"):
                layer.move(self.xp)
        for slots in (self.optimizer.state.values() if self.optimizer else ()):
            slots.update({key: to_xp(a, self.xp) for key, a in slots.items()})
        return self


def ops_on(backend):
    """The array operations for a model on ``backend``; on numba, importing the compiled twins
    registers them with ``nn/ops.py`` first."""
    if backend == "numba":
        from ..fast import numba_ops  # noqa: F401  (registers itself in nn.ops.TWINS)
    return ops_for(backend)
