"""The three Lesson 4 models, built from the layers, and the registry of model kinds.

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

A whole-model kernel may be registered for an *exact* class with ``fused_kernel`` (below each
class): a subclass never inherits it, and ``runners.py`` checks it against the layers first.
"""
import numpy as np

from . import checks
from .layers import Concat, Dense, Dot, Dropout, ReLU, SigmoidRange
from .model import Model

FUSED_KERNELS = {}  # exact class -> {backend: (kernel module, adapter)}


def fused_kernel(cls, backend, module, adapter):
    """Register a whole-model kernel for ``cls`` and no other class: ``module`` (imported on first
    use) trains it; ``adapter(model)`` names the parameters the kernel's maths calls u, m, ..."""
    FUSED_KERNELS.setdefault(cls, {})[backend] = (module, adapter)


def squash_layer(y_range):
    return SigmoidRange(*y_range) if y_range is not None else None


class DotProduct(Model):
    """r̂ = u_i · m_j: one F-vector per user and per movie (the notebook's first model).

    Parameters: user_embedding.W (U, F), movie_embedding.W (M, F), both with L2 ``l2``.
    """

    def __init__(self, n_users, n_movies, n_factors=50, l2=1e-4, dtype=np.float32, seed=None,
                 backend=None):
        super().__init__(n_users, n_movies, n_factors, dtype, seed, backend)
        self.l2, self.y_range, self.squash = float(l2), None, None
        self.user = self.embedding("user_embedding", self.n_users, self.n_factors, l2, "user")
        self.movie = self.embedding("movie_embedding", self.n_movies, self.n_factors, l2, "movie")
        self.dot = Dot()

    def forward(self, users, movies, training=True):
        return self.dot.forward(self.user.forward(users), self.movie.forward(movies))

    def backward(self, dpred):
        du, dm = self.dot.backward(dpred)
        self.user.backward(du)
        self.movie.backward(dm)

    def config(self):
        return {**super().config(), "l2": self.l2}


def dot_adapter(model):
    """DotProduct -> the parameters ``kernels/numba_mf.py`` calls u and m (no biases, no squash)."""
    return {"u": "user_embedding.W", "m": "movie_embedding.W"}, None


fused_kernel(DotProduct, "numba", "numba_mf", dot_adapter)


class DotProductBias(DotProduct):
    """r̂ = u_i · m_j + b_i + b_j, optionally squashed into ``y_range`` (``layers.SigmoidRange``).

    Adds user_bias.W (U, 1) and movie_bias.W (M, 1), not regularised (as in the notebook).
    ``y_range=(0, 5.5)`` is fastai's trick: predictions can never leave the rating scale.
    """

    def __init__(self, n_users, n_movies, n_factors=50, l2=1e-4, y_range=None, dtype=np.float32,
                 seed=None, backend=None):
        super().__init__(n_users, n_movies, n_factors, l2, dtype, seed, backend)
        self.user_bias = self.embedding("user_bias", self.n_users, 1, 0.0, "user")
        self.movie_bias = self.embedding("movie_bias", self.n_movies, 1, 0.0, "movie")
        self.squash = squash_layer(y_range)
        self.y_range = tuple(float(v) for v in y_range) if y_range is not None else None

    def forward(self, users, movies, training=True):
        z = (self.dot.forward(self.user.forward(users), self.movie.forward(movies))
             + self.user_bias.forward(users)[:, 0] + self.movie_bias.forward(movies)[:, 0])
        return self.squash.forward(z) if self.squash else z

    def backward(self, dpred):
        dz = self.squash.backward(dpred) if self.squash else dpred
        super().backward(dz)
        self.user_bias.backward(dz[:, None])
        self.movie_bias.backward(dz[:, None])

    def config(self):
        return {**super().config(), "y_range": self.y_range}


def bias_adapter(model):
    """DotProductBias -> the parameters ``kernels/numba_mf.py`` calls u, m, b_i, b_j, and the squash."""
    return {"u": "user_embedding.W", "m": "movie_embedding.W", "b_i": "user_bias.W",
            "b_j": "movie_bias.W"}, model.squash


fused_kernel(DotProductBias, "numba", "numba_mf", bias_adapter)


class NeuralNet(Model):
    """r̂ = W2ᵀ · drop₂(relu(W1ᵀ · drop₁([u_i, m_j]) + c1)) + c2   (the notebook's third model).

    Shapes: [u_i, m_j] (N, 2F) -> dense_1 (2F, H) -> relu -> dense_2 (H, 1) -> r̂ (N,).
    ``dropout=(p1, p2)`` are the *drop* probabilities before dense_1 and before dense_2
    (the notebook: 0.3 and 0.75). Embeddings carry ``l2``; the dense layers do not.
    """

    def __init__(self, n_users, n_movies, n_factors=50, hidden=70, dropout=(0.3, 0.75), l2=1e-4,
                 y_range=None, dtype=np.float32, seed=None, backend=None):
        super().__init__(n_users, n_movies, n_factors, dtype, seed, backend)
        self.hidden = checks.whole_number("hidden", hidden, 1)
        self.dropout = tuple(checks.probability("dropout", p) for p in dropout)
        self.l2 = float(l2)
        self.user = self.embedding("user_embedding", self.n_users, self.n_factors, l2, "user")
        self.movie = self.embedding("movie_embedding", self.n_movies, self.n_factors, l2, "movie")
        kw = dict(rng=self.init_rng, dtype=self.dtype, xp=self.xp)
        self.layers["dense_1"] = self.dense_1 = Dense(2 * self.n_factors, self.hidden, **kw)
        self.layers["dense_2"] = self.dense_2 = Dense(self.hidden, 1, **kw)
        self.concat, self.relu = Concat(), ReLU()
        self.drop_1 = Dropout(self.dropout[0], rng=self.dropout_rng)
        self.drop_2 = Dropout(self.dropout[1], rng=self.dropout_rng)
        self.squash = squash_layer(y_range)
        self.y_range = tuple(float(v) for v in y_range) if y_range is not None else None

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


def nn_adapter(model):
    """NeuralNet -> the parts ``kernels/numba_nn.py`` names: tables u, m, W1, c1, W2, c2, the two
    dropout layers and the output squash."""
    names = {"u": "user_embedding.W", "m": "movie_embedding.W", "W1": "dense_1.W",
             "c1": "dense_1.b", "W2": "dense_2.W", "c2": "dense_2.b"}
    return names, model.squash, model.drop_1, model.drop_2


fused_kernel(NeuralNet, "numba", "numba_nn", nn_adapter)

# The model kinds, by the short names the CLI, lesson4, the benchmarks and saved weights use.
KINDS = {"dot": DotProduct, "bias": DotProductBias, "nn": NeuralNet}
TITLES = {"dot": "dot product", "bias": "dot product + biases", "nn": "neural net"}
CLASSES = {cls.__name__: cls for cls in KINDS.values()}
