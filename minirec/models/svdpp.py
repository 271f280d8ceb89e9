"""SVD++ (Koren 2008): the bias model plus what a user's choice of movies says about their taste,
read through a bag of embeddings (``nn/layers.py``'s ``EmbeddingBag``). Built from the layers
alone, as a subclass of ``DotProductBias`` that adds two layers and overrides two steps.
"""
import numpy as np

from ..nn.layers import EmbeddingBag, Offset
from .recommender import DotProductBias
from .registry import register


def rated_by(users, movies, n_users):
    """Each user's bag of the movies they rated, as CSR ``(offsets, movie ids)`` (N(i) of
    SVD++), from training ratings' user and movie indices."""
    users, movies = np.asarray(users, np.int64), np.asarray(movies, np.int64)
    width = int(movies.max(initial=0)) + 1
    pairs = np.unique(users * width + movies)  # each (user, movie) once, sorted by user
    u, m = pairs // width, pairs % width
    offsets = np.concatenate([[0], np.cumsum(np.bincount(u, minlength=n_users))])
    return offsets.astype(np.int64), m.astype(np.int64)


@register("svdpp", title="SVD++")
class SVDpp(DotProductBias):
    """SVD++ (Koren 2008): r̂ = μ + b_i + b_j + m_j · (u_i + |N(i)|^-½ Σ_{k ∈ N(i)} y_k),
    where N(i) is the set of movies user i rated in training: *which* movies a user chose to
    rate says something about their taste, whatever the ratings were.

    Adds implicit.W (M, F), the y_k, read through each user's bag (``layers.EmbeddingBag``,
    ``mode="sqrt"``) with L2 ``l2``, and offset.b, the learned μ (starting at ``global_mean``).
    ``bags`` is N(i) as CSR (``rated_by``); ``SVDpp.for_data`` builds it from training ratings.
    Built from the layers alone: no kernel code.
    """
    not_in_config = ("bags", "global_mean")  # the bags are saved as the implicit layer's
    # buffers, and global_mean only starts offset.b, which the weights hold

    def __init__(self, n_users, n_movies, n_factors=50, l2=1e-4, y_range=None, bags=None,
                 global_mean=0.0, implicit_l2=None, dtype=np.float32, seed=None, backend=None):
        super().__init__(n_users, n_movies, n_factors, l2, y_range, dtype, seed, backend)
        if bags is None:  # everyone's bag empty; a weights file brings the real ones
            bags = (np.zeros(self.n_users + 1, np.int64), np.zeros(0, np.int64))
        if len(bags[0]) != self.n_users + 1:
            raise ValueError(f"SVD++ needs one bag per user ({self.n_users}), got {len(bags[0]) - 1}")
        self.implicit_l2 = float(l2 if implicit_l2 is None else implicit_l2)
        self.implicit = self.bag("implicit", self.n_movies, self.n_factors, bags, self.implicit_l2,
                                 "user", "movie")
        self.global_mean = float(global_mean)
        self.offset = Offset(self.global_mean, self.dtype, self.xp)

    @classmethod
    def for_data(cls, ds, train, **kwargs):
        """SVD++ for training ratings ``train``: N(i) from them, μ starting at their mean (under
        a ``y_range``, at the score whose squashed value is the mean: the logit of its place in
        the range)."""
        mean, y_range = float(np.mean(train.y)), kwargs.get("y_range")
        if y_range is not None:
            lo, hi = (float(v) for v in y_range)
            share = min(max((mean - lo) / (hi - lo), 1e-6), 1 - 1e-6)
            mean = float(np.log(share / (1 - share)))
        kwargs.setdefault("global_mean", mean)
        return cls(ds.n_users, ds.n_movies, bags=rated_by(train.user, train.movie, ds.n_users), **kwargs)

    def fit(self, x, y, *args, **kwargs):
        """``Model.fit``, once the bags are known to hold something (``check_bags``)."""
        self.check_bags()
        return super().fit(x, y, *args, **kwargs)

    def lr_find(self, x, y, **options):
        self.check_bags()
        return super().lr_find(x, y, **options)

    def check_bags(self):
        """Refuse to train with every bag empty: an SVD++ built without its bags (``SVDpp(U, M)``
        rather than ``SVDpp.for_data``) has no N(i) to learn from and trains as the bias model."""
        name = type(self).__name__
        for ln, layer in self.layers.items():
            implicit = getattr(layer, "row_kind", None) in ("user", "movie")  # N(i), N(j)
            if isinstance(layer, EmbeddingBag) and implicit and len(layer.bags[1]) == 0:
                raise ValueError(f"every bag of {name}'s {ln} layer is empty, so it has nothing "
                                 f"to learn from and would train as the bias model: build it with "
                                 f"{name}.for_data(ds, train), which fills the bags "
                                 "from the training ratings")

    def score(self, users, movies, training=True):
        """z = m_j · (u_i + |N(i)|^-½ Σ_{k ∈ N(i)} y_k)"""
        p = self.user.forward(users) + self.implicit.forward(users)
        z = self.dot.forward(p, self.movie.forward(movies))

        def backward(dz):
            dp, dm = self.dot.backward(dz)
            self.user.backward(dp)
            self.implicit.backward(dp)
            self.movie.backward(dm)
        return z, backward

    def biases(self, z, users, movies):
        """z + b_i + b_j + μ"""
        z, back_biases = super().biases(z, users, movies)
        return self.offset.forward(z), lambda dz: back_biases(self.offset.backward(dz))
