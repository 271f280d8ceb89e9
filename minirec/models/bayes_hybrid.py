"""The Bayesian hybrid: Bayesian SVD++ flipped with day biases (``bayes_timed.py``) plus the side
information of the hybrid model (``hybrid.py``) on both sides, every table drawn by Gibbs sampling.

    r̂ = μ + b_i + b_{i,d} + b_j + P_i · Q_j
    P_i = u_i + s_i Σ_{k ∈ N(i)} y_k + d_i Σ_{f ∈ D(i)} c_f      D(i): user i's demographics
    Q_j = m_j + t_j Σ_{l ∈ N(j)} x_l + h_j Σ_{f ∈ G(j)} v_f      G(j): movie j's genres, year, tags

with d_i = 1/|D(i)| and h_j = 1/|G(j)| (a mean, as in ``hybrid.py``; 0 for an empty bag). A side
table enters r̂ exactly as a bag table does — the feature row v_f reaches every rating of every
movie whose bag holds f, scaled by h_j — so step 2 of ``bayes_flipped.py`` draws it as it is,
with its own Normal-Wishart prior: only the bags and the scales differ. The side rows are drawn
after the side's own rows and bag rows, from the same statistics H, g (``Chain.more_bags``).
Nothing else in the sweep changes.

The held model is the posterior mean, as for every Gibbs model here: the side features are
folded into P and Q, which they fix once training ends. So it predicts for the users and
movies it was trained with (a movie nobody rated keeps its prior draws: use ``hybrid`` for
cold start).
"""
import numpy as np

from .bayes_flipped import csr
from .bayes_timed import BayesTimedFlipped, TimedChain
from .bpmf import hyperparameters
from .hybrid import side_features
from .registry import register


class HybridChain(TimedChain):
    """``TimedChain`` plus a side table per side (module docstring): ``add_side`` gives them."""

    side = None

    def add_side(self, user_side, n_user_features, movie_side, n_movie_features):
        """The side bags, (offsets, ids) CSR with one bag per user / movie, and how many features
        each side has. The tables start at zero, so P and Q do not change here."""
        self.side = {}
        for name, (offsets, ids), n_rows, n_features in (
                ("user", user_side, self.U, n_user_features), ("movie", movie_side, self.M, n_movie_features)):
            sizes = np.diff(np.asarray(offsets, np.int64))
            scale = np.where(sizes > 0, 1 / np.maximum(sizes, 1), 0.0)       # a mean
            holders = csr(np.asarray(ids, np.int64), n_features, np.repeat(np.arange(n_rows), sizes))
            self.side[name] = (np.zeros((n_features, self.F)), scale, holders)
        return self

    def more_bags(self, side, H, g):
        """Step 2 for the side table of ``side``, given that side's statistics."""
        table, scale, holders = self.side[side]
        if not len(table):
            return
        hyper = hyperparameters(table, self.prior, self.rng)
        z = self.rng.standard_normal(table.shape)
        vectors = self.P if side == "user" else self.Q
        self.bags_step(table, vectors, H, g, scale, holders, hyper, z, self.alpha)


@register("bayes-hybrid", title="Bayesian hybrid: SVD++ flipped + day biases + side information (Gibbs sampling)")
class BayesHybrid(BayesTimedFlipped):
    """``BayesTimedFlipped`` with side tables (module docstring). ``movie_side`` / ``user_side``:
    one CSR bag of feature ids per movie / per user, each id once in a bag;
    ``movie_features`` / ``user_features`` the features' names, as in ``Hybrid`` (saved with
    the weights; ``for_data`` reads all of them from the data set's files). A loaded model needs
    no bags: they are folded into its P and Q."""
    trained_by = "Gibbs sampling (bayes_hybrid.HybridChain): no optimiser; fit draws from the posterior"
    chain_class = HybridChain
    not_in_config = ("movie_side", "user_side")

    def __init__(self, n_users, n_movies, rank=10, samples=200, burn_in=50, thin=2,
                 clip=(1.0, 5.0), beta0=2.0, user_noise=None, n_user_days=0, movie_side=None,
                 user_side=None, movie_features=(), user_features=(), dtype=np.float32,
                 seed=None, backend=None):
        super().__init__(n_users, n_movies, rank, samples, burn_in, thin, clip, beta0,
                         user_noise, n_user_days, dtype, seed, backend)
        self.movie_side, self.user_side = movie_side, user_side
        self.movie_features, self.user_features = list(movie_features), list(user_features)

    @classmethod
    def for_data(cls, ds, train, **kwargs):
        """``BayesTimedFlipped.for_data``'s model, with ``ds``'s side features."""
        movies, users = side_features(ds)
        kwargs.setdefault("movie_side", movies.bags)
        kwargs.setdefault("movie_features", movies.names)
        kwargs.setdefault("user_side", users.bags)
        kwargs.setdefault("user_features", users.names)
        return super().for_data(ds, train, **kwargs)

    def chain(self, data, y, prior):
        if self.movie_side is None or self.user_side is None:
            raise ValueError(f"{type(self).__name__}.fit needs the side bags: build it with "
                             "BayesHybrid.for_data(ds, train), or give movie_side and user_side "
                             "(CSR bags of feature ids, one per movie and per user)")
        for name, (offsets, ids), rows, n in (
                ("movie_side", self.movie_side, self.n_movies, len(self.movie_features)),
                ("user_side", self.user_side, self.n_users, len(self.user_features))):
            offsets, ids = np.asarray(offsets, np.int64), np.asarray(ids, np.int64)
            if len(offsets) != rows + 1 or (len(ids) and not 0 <= np.min(ids) <= np.max(ids) < n):
                raise ValueError(f"{name}: {len(offsets) - 1} bags for {rows} rows, ids in "
                                 f"[{np.min(ids) if len(ids) else '-'}, {np.max(ids) if len(ids) else '-'}]"
                                 f" for {n} features: one bag per row, ids below the count")
            row = np.repeat(np.arange(rows), np.diff(offsets))
            pairs, count = np.unique(row * max(n, 1) + ids, return_counts=True)
            if (count > 1).any():  # step 2 would read it twice in one sum and once in an update
                r, f = divmod(int(pairs[np.argmax(count > 1)]), max(n, 1))
                raise ValueError(f"{name}: the bag of row {r} holds feature {f} more than once: "
                                 "each feature at most once a bag")
        return super().chain(data, y, prior).add_side(
            self.user_side, len(self.user_features), self.movie_side, len(self.movie_features))
