"""SVD++ flipped: implicit feedback on both sides — the model built the way a learner builds one,
as a subclass of ``SVDpp`` that adds one layer and overrides one step.

    r̂ = μ + b_i + b_j + (m_j + |N(j)|^-½ Σ_{l ∈ N(j)} x_l) · (u_i + |N(i)|^-½ Σ_{k ∈ N(i)} y_k)

N(i) is the set of movies user i rated in training (SVD++'s), and N(j) the set of users who
rated movie j in training: a movie is known by who chose to watch it, as a user is by what they
chose. ("Flipped" as in Rendle et al. 2019, "On the Difficulty of Evaluating Baselines", who add
the users' side to SVD++ the same way.) The x_l are a table of U rows read through each movie's
bag (``layers.EmbeddingBag``), with SVD++'s ``implicit_l2``. No kernel code.
"""
import numpy as np

from .svdpp import SVDpp, rated_by
from .registry import register


@register("svdpp-flipped", title="SVD++ flipped")
class FlippedSVDpp(SVDpp):
    """SVD++ with the users who rated a movie added to the movie's vector (module docstring).
    ``movie_bags`` is N(j) as CSR, built by ``for_data`` from the training ratings."""
    not_in_config = ("bags", "movie_bags", "global_mean")  # bags are saved as layer buffers

    def __init__(self, n_users, n_movies, n_factors=50, l2=1e-4, y_range=None, bags=None,
                 movie_bags=None, global_mean=0.0, implicit_l2=None, dtype=np.float32, seed=None,
                 backend=None):
        super().__init__(n_users, n_movies, n_factors, l2, y_range, bags, global_mean,
                         implicit_l2, dtype, seed, backend)
        if movie_bags is None:  # every bag empty; a weights file brings the real ones
            movie_bags = (np.zeros(self.n_movies + 1, np.int64), np.zeros(0, np.int64))
        self.watched_by = self.bag("watched_by", self.n_users, self.n_factors, movie_bags,
                                   self.implicit_l2, "movie", "user")

    @classmethod
    def for_data(cls, ds, train, **kwargs):
        """N(i) and N(j) from the training ratings ``train``, μ from their mean (``SVDpp``)."""
        kwargs["movie_bags"] = rated_by(train.movie, train.user, ds.n_movies)
        return super().for_data(ds, train, **kwargs)

    def score(self, users, movies, training=True):
        """z = (m_j + |N(j)|^-½ Σ_{l ∈ N(j)} x_l) · (u_i + |N(i)|^-½ Σ_{k ∈ N(i)} y_k)"""
        p = self.user.forward(users) + self.implicit.forward(users)
        q = self.movie.forward(movies) + self.watched_by.forward(movies)
        z = self.dot.forward(p, q)

        def backward(dz):
            dp, dq = self.dot.backward(dz)
            self.user.backward(dp)
            self.implicit.backward(dp)
            self.movie.backward(dq)
            self.watched_by.backward(dq)
        return z, backward
