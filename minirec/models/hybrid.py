"""The hybrid model: SVD++ flipped with what a movie is and who a user is added on both sides —
built from the layers alone, as a subclass of ``FlippedSVDpp`` that adds four bags and
overrides two steps. No kernel code.

    r̂ = μ + b_i + b_j + c_i + c_j + (m_j + x_j + g_j) · (u_i + y_i + d_i)

    y_i = |N(i)|^-½ Σ_{k ∈ N(i)} y_k        the movies user i rated (SVD++)
    x_j = |N(j)|^-½ Σ_{l ∈ N(j)} x_l        the users who rated movie j (flipped)
    g_j = mean_{f ∈ G(j)} g_f               the movie's side features: genres, year, tags
    d_i = mean_{f ∈ D(i)} d_f               the user's side features: age band, gender, ...
    c_j = mean_{f ∈ G(j)} c_f,  c_i = mean_{f ∈ D(i)} e_f   the same features' biases

G(j) and D(i) come from ``data/side.py``, one bag per movie and per user (``for_data`` builds
them from the data set's files). A feature's vector and bias are shared by every movie (or
user) that has it, so they are learned from all of them.

Cold start. A movie with no training rating has no ratings to learn m_j and b_j from, and
nobody in N(j): ``for_data`` starts its rows at zero, where nothing but the L2 ever moves them,
so its prediction is μ + b_i + c_i + c_j + g_j · (u_i + y_i + d_i) — scored from its genres,
year and tags. A user with no training rating likewise keeps u_i = b_i = 0 and is scored from
their demographics (ml-100k); ``coldstart.fold_in`` adds a new user from a few ratings.
"""
import numpy as np

from .. import inputs
from ..nn.losses import L2
from ..data.side import combine, movie_genres, movie_tags, movie_years, user_demographics
from .registry import register
from .svdpp_flipped import FlippedSVDpp


def empty_bags(n_rows):
    return np.zeros(n_rows + 1, np.int64), np.zeros(0, np.int64)


def side_features(ds):
    """The side features of ``ds`` as (movies, users) ``Features``: a movie's genres, its
    release year in 5-year bins and the tags on at least 5 movies; a user's ml-100k
    demographics (none elsewhere: empty bags)."""
    movies = combine(movie_genres(ds), movie_years(ds), movie_tags(ds, min_movies=5))
    return movies, user_demographics(ds)


@register("hybrid", title="hybrid (SVD++ flipped + side information)")
class Hybrid(FlippedSVDpp):
    """SVD++ flipped plus side-information bags on both sides (module docstring).

    ``movie_features`` / ``user_features``: the names of the side features (the vocabulary of
    the bags, ``data/side.py``; saved with the weights); ``movie_side`` / ``user_side``: one
    CSR bag of feature ids per movie / per user. Adds movie_side.W (G, F) and user_side.W
    (D, F) with L2 ``side_l2``, and their biases movie_side_bias.W (G, 1), user_side_bias.W
    (D, 1). ``bias_l2`` puts an L2 on the movies' and users' own biases (0: none, as in the
    other models), so the side biases carry what movies of a genre share; ``cold_dropout``
    plays that share of each batch's examples as cold movies (``cold_mask``).
    """
    not_in_config = ("bags", "movie_bags", "movie_side", "user_side", "global_mean")

    def __init__(self, n_users, n_movies, n_factors=50, l2=1e-4, y_range=None, bags=None,
                 movie_bags=None, movie_features=("none",), user_features=("none",),
                 movie_side=None, user_side=None, global_mean=0.0, implicit_l2=None,
                 side_l2=None, bias_l2=0.0, cold_dropout=0.0, dtype=np.float32, seed=None,
                 backend=None):
        super().__init__(n_users, n_movies, n_factors, l2, y_range, bags, movie_bags,
                         global_mean, implicit_l2, dtype, seed, backend)
        self.cold_dropout = inputs.probability("cold_dropout", cold_dropout)
        self.bias_l2 = float(bias_l2)
        if self.bias_l2:  # the movies' and users' own biases regularised, so that the shared
            for name in ("user_bias", "movie_bias"):  # side biases carry what is common
                self.regularisers[f"{name}.W"] = L2(self.bias_l2)
        self.movie_features, self.user_features = list(movie_features), list(user_features)
        if not (self.movie_features and self.user_features):
            raise ValueError("movie_features and user_features need at least one name each "
                             "(a model without side features is FlippedSVDpp)")
        self.side_l2 = float(self.l2 if side_l2 is None else side_l2)
        G, D = len(self.movie_features), len(self.user_features)
        movie_side = empty_bags(self.n_movies) if movie_side is None else movie_side
        user_side = empty_bags(self.n_users) if user_side is None else user_side
        self.movie_side = self.bag("movie_side", G, self.n_factors, movie_side, self.side_l2,
                                   "movie", "movie_feature", mode="mean")
        self.user_side = self.bag("user_side", D, self.n_factors, user_side, self.side_l2,
                                  "user", "user_feature", mode="mean")
        self.movie_side_bias = self.bag("movie_side_bias", G, 1, movie_side, 0.0, "movie",
                                        "movie_feature", mode="mean")
        self.user_side_bias = self.bag("user_side_bias", D, 1, user_side, 0.0, "user",
                                       "user_feature", mode="mean")

    @classmethod
    def for_data(cls, ds, train, **kwargs):
        """The side bags from ``ds``'s files (genres, 5-year bins of the release year, tags on
        at least 5 movies; ml-100k's demographics), N(i), N(j) and μ from the training ratings,
        and the rows of movies and users without a training rating set to zero (cold start)."""
        if "movie_side" not in kwargs or "user_side" not in kwargs:  # read the files only if needed
            movies, users = side_features(ds)
            kwargs.setdefault("movie_side", movies.bags)
            kwargs.setdefault("movie_features", movies.names or ["none"])
            kwargs.setdefault("user_side", users.bags)
            kwargs.setdefault("user_features", users.names or ["none"])
        model = super().for_data(ds, train, **kwargs)
        model.zero_untrained_rows(train)
        return model

    def zero_untrained_rows(self, train):
        """Start the own rows (embedding and bias) of movies and users with no training rating
        at zero: nothing moves them but the L2, so such a movie is scored from its side
        features, and such a user from theirs."""
        for what, ids, n in (("user", train.user, self.n_users), ("movie", train.movie, self.n_movies)):
            untrained = np.flatnonzero(np.bincount(np.asarray(ids), minlength=n) == 0)
            for table in (f"{what}_embedding.W", f"{what}_bias.W"):
                self.params[table][self.xp.asarray(untrained)] = 0

    def cold_mask(self, n, training):
        """k_n = 0 for the examples played as cold this batch (drop probability
        ``cold_dropout``), else 1: such an example sees its movie through the side features
        alone, so they learn to score a movie nobody rated (DropoutNet, Volkovs et al. 2017)."""
        if not (training and self.cold_dropout):
            return None
        keep = self.dropout_rng.random(n) >= self.cold_dropout
        return self.xp.asarray(keep.astype(self.dtype))

    def score(self, users, movies, training=True):
        """z = (k·(m_j + x_j) + g_j) · (u_i + y_i + d_i),  k = 1 but for played-cold examples"""
        p = self.user.forward(users) + self.implicit.forward(users) + self.user_side.forward(users)
        own = self.movie.forward(movies) + self.watched_by.forward(movies)
        self.keep = k = self.cold_mask(len(movies), training)
        q = (own if k is None else own * k[:, None]) + self.movie_side.forward(movies)
        z = self.dot.forward(p, q)

        def backward(dz):
            dp, dq = self.dot.backward(dz)
            for layer in (self.user, self.implicit, self.user_side):
                layer.backward(dp)
            down = dq if k is None else dq * k[:, None]
            self.movie.backward(down)
            self.watched_by.backward(down)
            self.movie_side.backward(dq)
        return z, backward

    def biases(self, z, users, movies):
        """z + μ + b_i + k·b_j + c_i + c_j  (a played-cold movie loses its own bias too)"""
        k = self.keep
        b_j = self.movie_bias.forward(movies)[:, 0]
        z = (self.offset.forward(z) + self.user_bias.forward(users)[:, 0]
             + (b_j if k is None else b_j * k)
             + self.user_side_bias.forward(users)[:, 0] + self.movie_side_bias.forward(movies)[:, 0])

        def backward(dz):
            self.offset.backward(dz)
            self.user_bias.backward(dz[:, None])
            self.movie_bias.backward((dz if k is None else dz * k)[:, None])
            self.user_side_bias.backward(dz[:, None])
            self.movie_side_bias.backward(dz[:, None])
            return dz
        return z, backward
