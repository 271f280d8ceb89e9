"""The notebook's models, each composed of small steps over the layers, and registered by name
(SVD++ is in ``svdpp.py``, built the same way on ``DotProductBias``).

Notation: U users, M movies, F factors, H hidden units, N ratings in a batch; u_i, m_j are
rows of the user and movie embedding tables, b_i, b_j the biases, μ a learned offset.

=================  ==========================================================================
dot    DotProduct      r̂ = u_i · m_j
bias   DotProductBias  r̂ = u_i · m_j + b_i + b_j        (optionally squashed into ``y_range``)
nn     NeuralNet       r̂ = W2ᵀ drop(relu(W1ᵀ drop([u_i, m_j]) + c1)) + c2
svdpp  SVDpp           r̂ = μ + b_i + b_j + m_j · (u_i + |N(i)|^-½ Σ_{k ∈ N(i)} y_k)
=================  ==========================================================================

Every model trains on the loss (mean squared error) + Σ λ·ΣW² over its regularised tables
(the embeddings; biases are not regularised, as in the notebook).

Each is a ``Recommender``: r̂ = output(biases(score(i, j))), and each step is one method that
returns its value and its own backward, so a subclass changes one step in one place::

    class Doubled(DotProductBias):
        def score(self, users, movies, training=True):
            z, backward = super().score(users, movies, training)
            return 2 * z, lambda dz: backward(2 * dz)

A whole-model kernel is registered for an *exact* class with ``runners.fused_kernel`` (below
each class): a subclass never inherits it, and ``runners.py`` checks it against the layers first.
"""
import numpy as np

from .. import inputs
from ..nn.activations import Dropout, ReLU, SigmoidRange
from ..nn.layers import Concat, Dense, Dot, ModelError
from .model import Model
from .registry import register
from ..train.runners import fused_kernel


def unchanged(d):
    return d


class Recommender(Model):
    """The built-in models' shape, three steps, each a method returning (value, backward) —
    the backward a closure made beside the forward it undoes, as in micrograd:

        z = score(users, movies)       u_i · m_j, or the neural net's output
        z = biases(z, users, movies)   z + b_i + b_j, or z as it is
        r̂ = output(z)                  lo + span·σ(z) under a ``y_range``, else z

    ``forward`` runs them in order and keeps their backwards; ``backward`` runs those in reverse,
    each handing the next the gradient of its input: a step whose backward returns None, or a
    gradient of another shape than its input's, is a ``ModelError`` naming the step.
    """
    squash = None  # a SigmoidRange, where the model has a y_range
    steps = ("score", "biases", "output")

    def forward(self, users, movies, training=True):
        z, back_score = self.score(users, movies, training)
        z2, back_biases = self.biases(z, users, movies)
        pred, back_output = self.output(z2)
        # each step's backward, with the shape of the input whose gradient it returns
        self.backward_steps = (("output", back_output, z2.shape), ("biases", back_biases, z.shape),
                               ("score", back_score, None))
        return pred

    def backward(self, dpred):
        d = dpred
        for k, (step, backward, shape) in enumerate(self.backward_steps):
            d = backward(d)
            if shape is not None and tuple(getattr(d, "shape", ())) != tuple(shape):
                raise ModelError(self.wrong_gradient(step, self.backward_steps[k + 1][0], d, shape))

    def wrong_gradient(self, step, needs_it, d, shape):
        got = ("None (does the closure end without `return dz`?)" if d is None else
               f"a gradient of shape {tuple(d.shape)}" if hasattr(d, "shape") else
               f"a {type(d).__name__}, not an array")
        return (f"the backward made by {getattr(type(self), step).__qualname__} returned {got}, "
                f"but {needs_it} needs the gradient of {step}'s input z, shape {tuple(shape)}")

    def step_names(self):
        """The steps in the order forward runs them, each with the class that defines it."""
        return [f"{step} ({getattr(type(self), step).__qualname__})" for step in self.steps]

    def flat_step(self, users, movies):
        """Where the gradient dies: the first step, going backward from a gradient of ones at
        r̂, that hands back nothing but zeros (None if every step passes some of it on)."""
        d = self.xp.ones_like(self.forward(users, movies, training=False))
        for step, backward, shape in self.backward_steps[:-1]:
            d = backward(d)
            if d is None or not bool((d != 0).any()):
                return step
        return None

    def score(self, users, movies, training=True):
        raise NotImplementedError(f"{type(self).__name__} must define score(users, movies, training)")

    def biases(self, z, users, movies):
        """No biases: z as it is."""
        return z, unchanged

    def output(self, z):
        """r̂ = lo + span·σ(z) (``activations.SigmoidRange``) with a y_range, else r̂ = z."""
        if self.squash is None:
            return z, unchanged
        return self.squash.forward(z), self.squash.backward


def y_range_of(model, y_range):
    """Keep ``y_range`` as a tuple and give the model its SigmoidRange (or none)."""
    model.y_range = tuple(float(v) for v in y_range) if y_range is not None else None
    model.squash = SigmoidRange(*model.y_range) if y_range is not None else None


@register("dot", title="dot product")
class DotProduct(Recommender):
    """r̂ = u_i · m_j: one F-vector per user and per movie (the notebook's first model).

    Parameters: user_embedding.W (U, F), movie_embedding.W (M, F), both with L2 ``l2``.
    """

    def __init__(self, n_users, n_movies, n_factors=50, l2=1e-4, dtype=np.float32, seed=None,
                 backend=None):
        super().__init__(n_users, n_movies, n_factors, dtype, seed, backend)
        self.l2 = float(l2)
        self.user = self.embedding("user_embedding", self.n_users, self.n_factors, l2, "user")
        self.movie = self.embedding("movie_embedding", self.n_movies, self.n_factors, l2, "movie")
        self.dot = Dot()

    def score(self, users, movies, training=True):
        """z = u_i · m_j"""
        z = self.dot.forward(self.user.forward(users), self.movie.forward(movies))

        def backward(dz):
            du, dm = self.dot.backward(dz)
            self.user.backward(du)
            self.movie.backward(dm)
        return z, backward


def dot_adapter(model):
    """DotProduct -> the parameters ``fast/numba_mf.py`` calls u and m (no biases, no squash)."""
    return {"u": "user_embedding.W", "m": "movie_embedding.W"}, None


fused_kernel(DotProduct, "numba", "numba_mf", dot_adapter)


@register("bias", title="dot product + biases")
class DotProductBias(DotProduct):
    """r̂ = u_i · m_j + b_i + b_j, optionally squashed into ``y_range`` (``SigmoidRange``).

    Adds user_bias.W (U, 1) and movie_bias.W (M, 1), not regularised (as in the notebook).
    ``y_range=(0, 5.5)`` is fastai's trick: predictions can never leave the rating scale.
    """

    def __init__(self, n_users, n_movies, n_factors=50, l2=1e-4, y_range=None, dtype=np.float32,
                 seed=None, backend=None):
        super().__init__(n_users, n_movies, n_factors, l2, dtype, seed, backend)
        self.user_bias = self.embedding("user_bias", self.n_users, 1, 0.0, "user")
        self.movie_bias = self.embedding("movie_bias", self.n_movies, 1, 0.0, "movie")
        y_range_of(self, y_range)

    def biases(self, z, users, movies):
        """z + b_i + b_j"""
        z = z + self.user_bias.forward(users)[:, 0] + self.movie_bias.forward(movies)[:, 0]

        def backward(dz):
            self.user_bias.backward(dz[:, None])
            self.movie_bias.backward(dz[:, None])
            return dz
        return z, backward


def bias_adapter(model):
    """DotProductBias -> the parameters ``fast/numba_mf.py`` calls u, m, b_i, b_j, and the squash."""
    return {"u": "user_embedding.W", "m": "movie_embedding.W", "b_i": "user_bias.W",
            "b_j": "movie_bias.W"}, model.squash


fused_kernel(DotProductBias, "numba", "numba_mf", bias_adapter)


@register("nn", title="neural net")
class NeuralNet(Recommender):
    """r̂ = W2ᵀ · drop₂(relu(W1ᵀ · drop₁([u_i, m_j]) + c1)) + c2   (the notebook's third model).

    Shapes: [u_i, m_j] (N, 2F) -> dense_1 (2F, H) -> relu -> dense_2 (H, 1) -> r̂ (N,).
    ``dropout=(p1, p2)`` are the *drop* probabilities before dense_1 and before dense_2
    (the notebook: 0.3 and 0.75). Embeddings carry ``l2``; the dense layers do not.
    """

    def __init__(self, n_users, n_movies, n_factors=50, hidden=70, dropout=(0.3, 0.75), l2=1e-4,
                 y_range=None, dtype=np.float32, seed=None, backend=None):
        super().__init__(n_users, n_movies, n_factors, dtype, seed, backend)
        self.hidden = inputs.whole_number("hidden", hidden, 1)
        self.dropout = tuple(inputs.probability("dropout", p) for p in dropout)
        self.l2 = float(l2)
        self.user = self.embedding("user_embedding", self.n_users, self.n_factors, l2, "user")
        self.movie = self.embedding("movie_embedding", self.n_movies, self.n_factors, l2, "movie")
        kw = dict(rng=self.init_rng, dtype=self.dtype, xp=self.xp)
        self.dense_1 = Dense(2 * self.n_factors, self.hidden, **kw)
        self.dense_2 = Dense(self.hidden, 1, **kw)
        self.concat, self.relu = Concat(), ReLU()
        self.drop_1 = Dropout(self.dropout[0], rng=self.dropout_rng)
        self.drop_2 = Dropout(self.dropout[1], rng=self.dropout_rng)
        y_range_of(self, y_range)

    def score(self, users, movies, training=True):
        """z = W2ᵀ · drop₂(relu(W1ᵀ · drop₁([u_i, m_j]) + c1)) + c2"""
        x = self.concat.forward(self.user.forward(users), self.movie.forward(movies))
        x = self.drop_1.forward(x, training)
        h = self.relu.forward(self.dense_1.forward(x))
        h = self.drop_2.forward(h, training)
        z = self.dense_2.forward(h)[:, 0]

        def backward(dz):
            dh = self.dense_2.backward(dz[:, None])
            dh = self.relu.backward(self.drop_2.backward(dh))
            dx = self.drop_1.backward(self.dense_1.backward(dh))
            du, dm = self.concat.backward(dx)
            self.user.backward(du)
            self.movie.backward(dm)
        return z, backward


def nn_adapter(model):
    """NeuralNet -> the parts ``fast/numba_nn.py`` names: tables u, m, W1, c1, W2, c2, the two
    dropout layers and the output squash."""
    names = {"u": "user_embedding.W", "m": "movie_embedding.W", "W1": "dense_1.W",
             "c1": "dense_1.b", "W2": "dense_2.W", "c2": "dense_2.b"}
    return names, model.squash, model.drop_1, model.drop_2


fused_kernel(NeuralNet, "numba", "numba_nn", nn_adapter)
