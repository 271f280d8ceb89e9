"""What a model is trained to do: predict ratings (``MSE``) or rank movies (``BPR``).

An objective turns one batch of training rows into a loss and the gradient of the model's
predictions, through the model's own ``forward`` and ``backward`` — so any model, built-in or a
learner's, trains with either, on every backend, with no kernel code of its own::

    model.compile(Adam(1e-2, lazy=True), loss="bpr")      # or loss=BPR(positive_at=4)

``MSE``: the notebook's objective, r̂ as close to the rating as possible (``losses.mse``).

``BPR`` (Rendle et al. 2009, Bayesian Personalised Ranking): implicit feedback. Each training
pair (user i, movie j) the user chose to rate is a *positive*; for each, a movie k the user did
not rate in training is drawn as a *negative*, and the model is trained to score the positive
above it::

    L = -mean log σ(r̂_ij - r̂_ik)  (+ the L2 penalty)          ``losses.bpr``

It learns an order, not ratings: its r̂ are scores, which ``ranking_metrics`` and ``recommend``
use and an MSE would misread.
"""
import numpy as np

from ..backend import get_array_module, to_numpy, to_xp
from ..nn.losses import bpr, mse


class MSE:
    """Mean squared error against the ratings; predictions are ratings."""
    name, predicts = "mse", "ratings"
    explosion_text = "100x the mean squared rating"

    def prepare(self, users, movies, y, n_movies, rng):
        """The training rows this objective uses (all of them) and what it needs to know."""
        return users, movies, y

    def batch(self, model, users, movies, y, training=True):
        """The batch's loss, after ``model.backward`` has been given d loss / d r̂."""
        loss, dpred = mse(model.forward(users, movies, training), y)
        model.backward(dpred)
        return loss

    def settings(self):
        """What a weights file records of this objective (``from_settings`` reads it back)."""
        return {"name": self.name}

    def explosion(self, y):
        """A batch loss this large means training diverged: 100 times that of predicting 0."""
        return 100.0 * max(float(np.mean(np.square(to_numpy(y), dtype=np.float64))), 1e-12)


class BPR:
    """The BPR loss over sampled (positive, negative) pairs; predictions are scores.

    ``positive_at``: a training rating at or above it is a positive (default: every rating —
    the choice to rate is the signal). ``negatives``: ``"uniform"`` over the movies the user did
    not rate in training, or ``"popularity"`` (drawn ∝ count^0.75, rejected likewise), which
    pushes popular movies the user skipped below the ones they chose.
    """
    name, predicts = "bpr", "scores"
    explosion_text = "100x log 2, the loss of scoring every movie the same"

    def __init__(self, positive_at=None, negatives="uniform"):
        if negatives not in ("uniform", "popularity"):
            raise ValueError(f"negatives must be 'uniform' or 'popularity', got {negatives!r}")
        if positive_at is not None and not np.isfinite(positive_at):
            raise ValueError(f"positive_at must be a rating or None, got {positive_at!r}")
        self.positive_at, self.negatives = positive_at, negatives

    def prepare(self, users, movies, y, n_movies, rng):
        """Keep the positives; remember every (user, movie) pair seen, which no negative may be."""
        if n_movies < 2:
            raise ValueError(f"BPR scores a movie the user chose above one they did not, and there "
                             f"is {n_movies} movie: nothing to rank")
        u, m = to_numpy(users).astype(np.int64), to_numpy(movies).astype(np.int64)
        self.n_movies, self.rng = n_movies, rng
        self.seen = np.unique(u * n_movies + m)
        counts = np.bincount(m, minlength=n_movies).astype(np.float64) ** 0.75
        self.weights = counts / counts.sum() if self.negatives == "popularity" else None
        if self.positive_at is not None:
            keep = to_numpy(y) >= self.positive_at
            if not keep.any():
                raise ValueError(f"no training rating is {self.positive_at:g} or more: BPR has no "
                                 "positive to learn from")
            rows = to_xp(np.flatnonzero(keep), get_array_module(users))
            users, movies, y = users[rows], movies[rows], y[rows]
        return users, movies, y

    def sample(self, users):
        """A negative movie for each user, drawn from the movies the user did not rate: drawn
        freely, then drawn again where the user rated it (most clashes go in a few rounds);
        any left are drawn from the user's unrated movies directly. (A user who rated every
        movie has none, and keeps a rated one.)"""
        u = to_numpy(users).astype(np.int64)
        neg = self.draw(len(u))
        for _ in range(4):
            clash = self.rated(u, neg)
            if not clash.any():
                return neg
            neg[clash] = self.draw(int(clash.sum()))
        for a in np.flatnonzero(self.rated(u, neg)):
            mine = self.seen[np.searchsorted(self.seen, u[a] * self.n_movies):
                             np.searchsorted(self.seen, (u[a] + 1) * self.n_movies)] % self.n_movies
            unrated = np.setdiff1d(np.arange(self.n_movies), mine)
            if len(unrated):
                w = None if self.weights is None else self.weights[unrated] / self.weights[unrated].sum()
                neg[a] = self.rng.choice(unrated, p=w)
        return neg

    def rated(self, u, movies):
        """Which (u[a], movies[a]) pairs are training pairs (binary search in ``seen``)."""
        keys = u * self.n_movies + movies
        at = np.minimum(np.searchsorted(self.seen, keys), len(self.seen) - 1)
        return self.seen[at] == keys

    def draw(self, n):
        if self.weights is None:
            return self.rng.integers(0, self.n_movies, n)
        return self.rng.choice(self.n_movies, size=n, p=self.weights)

    def batch(self, model, users, movies, y, training=True):
        xp = model.xp
        negatives = to_xp(self.sample(users), xp).astype(movies.dtype)
        pred = model.forward(xp.concatenate([users, users]), xp.concatenate([movies, negatives]),
                             training)
        n = len(users)
        loss, dpos, dneg = bpr(pred[:n], pred[n:])
        model.backward(xp.concatenate([dpos, dneg]))
        return loss

    def settings(self):
        return {"name": self.name, "positive_at": self.positive_at, "negatives": self.negatives}

    def explosion(self, y):
        """log 2 is the loss of scoring every movie the same; 100 times that has diverged."""
        return 100.0 * float(np.log(2.0))


class Fitted:
    """The objective of a model solved another way (EASE's closed form): its name, and that its
    predictions are scores; it has no batches to train on."""
    predicts = "scores"

    def __init__(self, name):
        self.name = name

    def settings(self):
        return {"name": self.name}


FITTED = ("ease", "elbo")  # objectives a loaded model keeps only as "its outputs are scores":
# EASE's closed form, and Mult-VAE's ELBO (models/multvae.py; its compile sets the ELBO again)


def from_settings(record):
    """The objective a weights file recorded (MSE for files from before objectives); a name
    minirec does not know is refused, not read as some other objective."""
    if record is None or record["name"] == "mse":
        return MSE()
    if record["name"] == "bpr":
        return BPR(record.get("positive_at"), record.get("negatives", "uniform"))
    if record["name"] in FITTED:
        return Fitted(record["name"])
    raise ValueError(f"unknown objective {record['name']!r} (minirec knows mse, bpr, "
                     f"{', '.join(FITTED)})")


def mark_trained(model, users, movies):
    """Remember which rows training used, from the rows the objective kept (``prepare``):
    ``model.trained_rows`` = {"user": (U,) bool, "movie": (M,) bool}, joined over fits. A user
    whose every rating fell below BPR's ``positive_at``, or a movie whose every rating was held
    out, never trained: ``recommend`` and ``similar`` refuse it instead of serving its random
    start (``tools/analysis.py``), and saved weights keep the masks."""
    masks = getattr(model, "trained_rows", None) or {
        "user": np.zeros(model.n_users, bool), "movie": np.zeros(model.n_movies, bool)}
    masks["user"][to_numpy(users)] = True
    masks["movie"][to_numpy(movies)] = True
    model.trained_rows = masks


def objective(loss):
    """An objective from ``compile``'s ``loss``: "mse", "bpr", or an objective object."""
    if isinstance(loss, (MSE, BPR)):
        return loss
    named = {"mse": MSE, "mean_squared_error": MSE, "bpr": BPR}
    if loss not in named:
        raise ValueError(f"loss must be 'mse', 'bpr' or an objective (minirec.BPR(...)), got {loss!r}")
    return named[loss]()
