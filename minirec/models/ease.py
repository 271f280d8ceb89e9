"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"): ranking from implicit feedback in
closed form — no gradient, no epochs, one linear solve.

With X (U, M) the training interactions (1 where user i rated movie j, at or above
``positive_at`` if given), EASE learns item-item weights B (M, M):

    B = argmin ||X - X B||² + λ ||B||²   subject to  diag(B) = 0     (no movie explains itself)
      = I - P · diag(1 / diag(P)),        P = (XᵀX + λI)⁻¹

and scores movie j for user i as S = X B: a weighted vote of the movies the user rated.

When there are fewer users than movies (ml-100k, ml-latest-small), the same S comes without the
M × M matrix, through the users' side (the Woodbury identity): with K = X Xᵀ (U, U),

    X P = (K + λI)⁻¹ X =: A,     diag(P)_j = (1 - Σ_i X_ij A_ij) / λ,     S = X - A · diag(1/diag P)

— O(U²·M) work instead of O(M³). ``tests/test_ease.py`` checks both against each other and
the optimality conditions of the problem above.

``EASE`` keeps S, the scores of every training user for every movie, as its one (frozen) table,
so it saves, loads, predicts and recommends like the other models; its predictions are scores,
not ratings. ``fit`` solves; there is nothing to compile or schedule.
"""
import time

import numpy as np

from .. import inputs
from ..backend import get_array_module, to_numpy, to_xp
from ..nn.layers import Layer
from .model import Model
from ..train.objectives import Fitted, mark_trained
from .registry import register
from ..train.loop import History, validate


class Scores(Layer):
    """A frozen (U, M) table of scores: forward(users, movies) -> S[users, movies]."""
    trainable = False

    def __init__(self, n_users, n_movies, dtype, xp):
        super().__init__()
        self.params["S"] = xp.zeros((n_users, n_movies), dtype=dtype)

    def forward(self, users, movies):
        return self.params["S"][users, movies]


def ease_scores(X, l2):
    """S = X B for EASE's B (see the module docstring), by whichever side is smaller."""
    xp = get_array_module(X)
    U, M = X.shape
    if M <= U:  # the items' side: P = (XᵀX + λI)⁻¹, B = I - P diag(1/diag P)
        P = xp.linalg.inv(X.T @ X + l2 * xp.eye(M))
        B = -P / xp.diag(P)
        B[xp.arange(M), xp.arange(M)] = 0.0
        return X @ B
    A = xp.linalg.solve(X @ X.T + l2 * xp.eye(U), X)  # the users' side: A = (K + λI)⁻¹ X = X P
    diag_P = (1.0 - (X * A).sum(axis=0)) / l2
    return X - A / diag_P


@register("ease", title="EASE (closed form)")
class EASE(Model):
    """EASE, fitted in closed form (module docstring): ``l2`` is λ, ``positive_at`` the rating
    from which a training pair counts (default: every rated pair)."""
    trained_by = "its closed form, solved by EASE.fit (no optimiser, no epochs)"

    def __init__(self, n_users, n_movies, l2=300.0, positive_at=None, dtype=np.float32, seed=None,
                 backend=None):
        super().__init__(n_users, n_movies, 1, dtype, seed, backend)
        if not (np.isfinite(l2) and l2 > 0):
            raise ValueError(f"EASE's l2 (λ) must be a finite number > 0, got {l2!r}")
        if positive_at is not None and not np.isfinite(positive_at):
            raise ValueError(f"EASE's positive_at must be a rating or None, got {positive_at!r}")
        self.l2, self.positive_at = float(l2), positive_at
        self.objective = Fitted("ease")  # its predictions are scores, judged by ranking
        inputs.memory(f"EASE's scores for {self.n_users:,} users x {self.n_movies:,} movies",
                      self.weights_implied(self.n_users, self.n_movies) * self.dtype.itemsize, self.xp)
        self.scores = Scores(self.n_users, self.n_movies, self.dtype, self.xp)

    @staticmethod
    def weights_implied(n_users, n_movies, **settings):
        """The numbers EASE holds: S, one score per user and movie (U·M)."""
        return n_users * n_movies

    def fit_memory(self):
        """Bytes ``fit`` needs at its peak (on either side of the solve): S in the model's dtype,
        and in float64 X, the solution A (or X B) and two U x M temporaries, and three
        min(U, M)² matrices (the Gram matrix plus λI, its inverse or factors)."""
        U, M = self.n_users, self.n_movies
        return (4 * 8 + self.dtype.itemsize) * U * M + 3 * 8 * min(U, M) ** 2

    def forward(self, users, movies, training=True):
        return self.scores.forward(users, movies)

    def backward(self, dpred):
        raise TypeError("EASE is fitted in closed form (EASE.fit): it has no backward pass")

    def compile(self, optimizer=None, loss=None):
        """Nothing to choose: kept so that code written for the other models runs."""
        return self

    def fit(self, x, y, validation_data=None, verbose=1):
        """Solve for S from the training pairs ``x`` (ratings ``y`` matter only through
        ``positive_at``), after checking there is a positive to learn from, a second movie to
        rank, and the memory the solve needs (``fit_memory``). Returns a one-entry ``History``
        (with ``val_ndcg@10`` when given ``validation_data``)."""
        from ..data.movielens import Ratings
        users, movies = inputs.pairs(x, self.n_users, self.n_movies, self.xp)
        y = inputs.ratings(y, len(users), self.xp, self.dtype)
        start = time.perf_counter()
        keep = np.ones(len(y), bool) if self.positive_at is None else to_numpy(y) >= self.positive_at
        if not keep.any():  # nothing to learn from: S would be all zeros
            raise ValueError("EASE has no training pair to learn from: " + (
                "fit was given no ratings" if len(y) == 0 else
                f"no training rating is {self.positive_at:g} or more (positive_at), and the "
                f"highest is {float(to_numpy(y).max()):g}"))
        if self.n_movies < 2:
            raise ValueError(f"EASE scores each movie by the others the user chose, and there is "
                             f"{self.n_movies} movie: nothing to rank")
        inputs.memory(f"EASE's fit for {self.n_users:,} users x {self.n_movies:,} movies (S, the "
                      "U x M interactions and solution in float64, the solve's matrices)",
                      self.fit_memory(), self.xp)
        X = np.zeros((self.n_users, self.n_movies))
        X[to_numpy(users)[keep], to_numpy(movies)[keep]] = 1.0
        self.scores.params["S"][...] = to_xp(ease_scores(to_xp(X, self.xp), self.l2), self.xp, self.dtype)
        mark_trained(self, to_numpy(users)[keep], to_numpy(movies)[keep])  # who had a positive
        seconds = time.perf_counter() - start
        history = History()
        val = None
        if validation_data is not None:
            val_data = inputs.validation_data(validation_data, self.n_users, self.n_movies,
                                              self.xp, self.dtype)
            val = validate(self, Ratings(users, movies, y), val_data, None, 1)
        history.append(1, loss=None, seconds=seconds, lr=None, **{"val_ndcg@10": val})
        if verbose:
            print(f"EASE: solved for {self.n_users:,} users x {self.n_movies:,} movies in "
                  f"{seconds:.2f}s" + (f" - val_ndcg@10: {val:.4f}" if val is not None else ""))
        return history

    def remap(self, what, order):
        """Follow a new order of the data's ids: S's rows are users, its columns movies."""
        S = self.scores.params["S"]
        index = self.xp.asarray(order)
        S[...] = S[index] if what == "user" else S[:, index]
