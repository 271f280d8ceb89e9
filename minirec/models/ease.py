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

from ..backend import get_array_module, to_numpy, to_xp
from ..nn.layers import Layer
from .model import Model
from ..train.objectives import Fitted
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


MAX_SIDE = 20_000  # the solve needs a min(U, M)² matrix: 20,000² float64 is 3.2 GB


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
        if min(self.n_users, self.n_movies) > MAX_SIDE:
            raise ValueError(f"EASE solves a min(users, movies)² system: {self.n_users:,} users and "
                             f"{self.n_movies:,} movies is too large (at most {MAX_SIDE:,} on one side)")
        self.l2, self.positive_at = float(l2), positive_at
        self.objective = Fitted("ease")  # its predictions are scores, judged by ranking
        self.scores = Scores(self.n_users, self.n_movies, self.dtype, self.xp)

    def forward(self, users, movies, training=True):
        return self.scores.forward(users, movies)

    def backward(self, dpred):
        raise TypeError("EASE is fitted in closed form (EASE.fit): it has no backward pass")

    def compile(self, optimizer=None, loss=None):
        """Nothing to choose: kept so that code written for the other models runs."""
        return self

    def fit(self, x, y, validation_data=None, verbose=1):
        """Solve for S from the training pairs ``x`` (ratings ``y`` matter only through
        ``positive_at``). Returns a one-entry ``History`` (with ``val_ndcg@10`` when given
        ``validation_data``)."""
        from .. import inputs
        from ..data.movielens import Ratings
        users, movies = inputs.pairs(x, self.n_users, self.n_movies, self.xp)
        y = inputs.ratings(y, len(users), self.xp, self.dtype)
        start = time.perf_counter()
        keep = np.ones(len(y), bool) if self.positive_at is None else to_numpy(y) >= self.positive_at
        X = np.zeros((self.n_users, self.n_movies))
        X[to_numpy(users)[keep], to_numpy(movies)[keep]] = 1.0
        self.scores.params["S"][...] = to_xp(ease_scores(to_xp(X, self.xp), self.l2), self.xp, self.dtype)
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
