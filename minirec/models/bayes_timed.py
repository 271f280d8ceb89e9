"""Time, as steps a subclass adds to Bayesian SVD++ flipped (``bayes_flipped.py``): timeSVD++'s
day-specific user bias b_{i,t} (Koren 2009, "Collaborative filtering with temporal dynamics"),

    r̂_n = μ + b_i + b_{i,d(n)} + b_j + P_i · Q_j          d(n): the day rating n was made

a user's mood on one day: every rating user i made on day d shares b_{i,d}. ml-100k's folds
split ratings at random, so nearly every test rating shares its (user, day) with training ratings
(99.2% on fold u2: docs/ml100k-record.md gives the command); a pair never seen in training
reads its prior mean, 0.

The prior and its step in the sweep (after the two halves, before μ and α):

    b_g ~ N(0, 1/λ),  λ ~ Gamma(1, 1)                       g: a (user, day) pair seen in training
    b_g | rest ~ N(α Σ_{n ∈ g} w_n (e_n + b_g) / π_g, 1/π_g),  π_g = λ + α Σ_{n ∈ g} w_n
    λ | b ~ Gamma(1 + G/2, 1 + Σ_g b_g²/2)

(each group's ratings form a regression on a constant; groups are independent given the rest,
so all are drawn at once). Only this step and its term in the residuals are new: the half
sweeps see the day biases through the residuals e_n.

timeSVD++'s other terms were measured too (docs/ml100k-record.md): a movie bias by time bin
did not pay on ml-100k's folds u2–u5, so it is not here.

The day of a rating: ``x = [users, movies, days]`` (days since 1970-01-01, UTC), or
``[users, movies]`` with a calendar of the data set's ratings (``for_data`` builds it from
``ds.timestamp``: the day each (user, movie) pair was rated).
"""
import numpy as np

from .. import inputs
from ..backend import get_array_module, to_numpy, to_xp
from ..nn.layers import Layer
from .bayes_flipped import BayesFlipped, Chain
from .registry import register

DAY = 86400        # seconds
SHIFT = 2 ** 32    # a (user, day) pair as one int64: user · 2³² + day
NO_DAY = -1        # the day of a pair never rated: no (user, day) key of training has it


def day_keys(users, days):
    """Each rating's (user, day) pair as one int64 key."""
    return np.asarray(users, np.int64) * SHIFT + np.asarray(days, np.int64)


class UserDayBias(Layer):
    """b_{i,d}: one bias per (user, day) pair seen in training, looked up by its key; a pair not
    in ``keys`` reads 0 (its prior mean) and gets no gradient.

    keys (G,) sorted int64 (``day_keys``); W (G, 1), starting at 0.
    forward:  k (N,) keys      ->  out (N,),  out[n] = W[g(k_n)] or 0
    backward: dout (N,)        ->  dW[g(k_n)] += dout[n]  (a scatter-add: repeated pairs add up)

    It also keeps the *calendar* its model reads days from when a rating comes without one:
    ``calendar = (pairs, days)``, the sorted keys user · M + movie of a data set's ratings and
    the day each was rated (empty when none was given). Both are saved with the weights.
    """

    def __init__(self, keys, dtype=np.float32, xp=np):
        super().__init__()
        self.keys = np.unique(np.asarray(keys, np.int64))
        self.params["W"] = xp.zeros((len(self.keys), 1), dtype=dtype)
        self.calendar = (np.zeros(0, np.int64), np.zeros(0, np.int64))

    def find(self, k):
        """(row of each key, whether it is there)."""
        return lookup(self.keys, k)

    def forward(self, k):
        self.at, self.found = self.find(k)
        W = to_numpy(self.params["W"])[:, 0]
        out = np.where(self.found, W[self.at] if len(W) else 0.0, 0.0).astype(W.dtype)
        return to_xp(out, get_array_module(self.params["W"]))

    def backward(self, dout):
        dW = np.zeros(self.params["W"].shape, np.float64)
        np.add.at(dW[:, 0], self.at[self.found], to_numpy(dout)[self.found])
        self.grads["W"] = to_xp(dW, get_array_module(self.params["W"]), self.params["W"].dtype)
        return None

    @property
    def buffers(self):
        return {"keys": self.keys, "calendar_pairs": self.calendar[0], "calendar_days": self.calendar[1]}

    def load_buffers(self, buffers):
        keys = np.asarray(buffers["keys"], np.int64)
        pairs, days = (np.asarray(buffers[f"calendar_{b}"], np.int64) for b in ("pairs", "days"))
        if keys.shape != (self.params["W"].shape[0],) or np.any(np.diff(keys) <= 0):
            raise ValueError(f"{len(keys)} keys for {self.params['W'].shape[0]} day biases, or "
                             "keys not sorted and distinct")
        if pairs.shape != days.shape or np.any(np.diff(pairs) <= 0):
            raise ValueError("the calendar's pairs are not sorted and distinct, one day each")
        self.keys, self.calendar = keys, (pairs, days)


def lookup(keys, k):
    """(where each of ``k`` is in the sorted ``keys``, whether it is there)."""
    k = np.asarray(to_numpy(k), np.int64)
    if not len(keys):
        return np.zeros(len(k), np.int64), np.zeros(len(k), bool)
    at = np.minimum(np.searchsorted(keys, k), len(keys) - 1)
    return at, keys[at] == k


class TimedChain(Chain):
    """``Chain`` plus the day biases: ``groups`` (N,) each training rating's (user, day) group
    in 0..G-1; the biases ``b`` (G,) and their precision ``lam``."""

    def __init__(self, users, movies, y, n_users, n_movies, rank, groups, keys, **kwargs):
        self.groups, self.keys = np.asarray(groups, np.int64), keys
        self.b, self.lam = np.zeros(len(keys)), 10.0
        super().__init__(users, movies, y, n_users, n_movies, rank, **kwargs)

    def day_bias(self, users, days):
        at, found = lookup(self.keys, day_keys(users, days))
        return np.where(found, self.b[at], 0.0)

    def predict(self, users, movies, days=None):
        """r̂ = μ + b_i + b_{i,d} + b_j + P_i · Q_j (the training ratings' own groups without
        ``days``)."""
        base = super().predict(users, movies)
        if days is None:
            return base + self.b[self.groups]
        return base + self.day_bias(users, days)

    def draw_noise(self):
        """The day biases and λ (module docstring), then μ, α (and τ) as before."""
        rng, a, w, G = self.rng, self.alpha, self.w, len(self.keys)
        e_plus = self.e + self.b[self.groups]
        precision = self.lam + a * np.bincount(self.groups, w, minlength=G)
        new = a * np.bincount(self.groups, w * e_plus, minlength=G) / precision
        new += rng.standard_normal(G) / np.sqrt(precision)
        self.e, self.b = e_plus - new[self.groups], new
        self.lam = float(rng.gamma(1.0 + G / 2, 1 / (1.0 + new @ new / 2)))
        super().draw_noise()

    def draw(self):
        return {**super().draw(), "user_day.W": self.b[:, None].copy()}


@register("bayes-flipped-time", title="Bayesian SVD++ flipped + day biases (Gibbs sampling)")
class BayesTimedFlipped(BayesFlipped):
    """``BayesFlipped`` with timeSVD++'s day-specific user bias (module docstring), held as one
    model: the posterior mean adds the mean day bias b̄_{i,d} before the ``Clip``,

        r̂ = clip( (1/S) Σ_s (μ^s + b_i^s + b_{i,d}^s + b_j^s + P_i^s · Q_j^s),  lo, hi )

    ``n_user_days`` is G, the (user, day) pairs of the training ratings (set by ``fit``)."""
    trained_by = "Gibbs sampling (bayes_timed.TimedChain): no optimiser; fit draws from the posterior"
    chain_class = TimedChain

    def __init__(self, n_users, n_movies, rank=10, samples=200, burn_in=50, thin=2,
                 clip=(1.0, 5.0), beta0=2.0, user_noise=None, n_user_days=0, dtype=np.float32,
                 seed=None, backend=None):
        super().__init__(n_users, n_movies, rank, samples, burn_in, thin, clip, beta0, user_noise,
                         dtype, seed, backend)
        self.n_user_days = inputs.whole_number("n_user_days", n_user_days, 0)
        self.user_day = UserDayBias(np.arange(self.n_user_days), self.dtype, self.xp)
        self.days_in = None

    @classmethod
    def for_data(cls, ds, train, **kwargs):
        """``BayesFlipped.for_data``'s model, with ``ds``'s calendar (``use_calendar``)."""
        return super().for_data(ds, train, **kwargs).use_calendar(ds)

    def use_calendar(self, ds):
        """Read the day of a rating given as ``[users, movies]`` from data set ``ds``: the day
        its (user, movie) pair was rated there (the first, should a pair be rated twice). The
        calendar is saved with the weights."""
        if getattr(ds, "timestamp", None) is None:
            raise ValueError(f"{getattr(ds, 'name', 'the data set')} has no timestamps: {type(self).__name__} needs the day "
                             "of each rating")
        pairs = np.asarray(ds.user, np.int64) * self.n_movies + np.asarray(ds.movie, np.int64)
        pairs, first = np.unique(pairs, return_index=True)
        self.user_day.calendar = (pairs, np.asarray(ds.timestamp, np.int64)[first] // DAY)
        return self

    def inputs_of(self, x, undated_ok=False):
        """(users, movies, days) from ``x = [users, movies, days]``, or ``[users, movies]`` and
        the calendar. A pair the calendar does not hold is refused, naming it, unless
        ``undated_ok`` (``predict``: a movie the user never rated, to recommend, has no day; it
        gets ``NO_DAY``, so its day bias is the prior mean, 0)."""
        days = None
        if isinstance(x, (list, tuple)) and len(x) == 3:
            x, days = list(x[:2]), np.asarray(inputs.as_array(x[2], "days"))
        users, movies = super().inputs_of(x)
        if days is None:
            pairs, day = self.user_day.calendar
            if not len(pairs):
                raise ValueError(f"{type(self).__name__} needs the day of each rating: give x = "
                                 "[users, movies, days] (days since 1970-01-01), or call "
                                 "use_calendar(ds) with the data set the ratings come from")
            at, found = lookup(pairs, users.astype(np.int64) * self.n_movies + movies)
            if not (found.all() or undated_ok):
                n = int(np.argmin(found))
                raise ValueError(f"the calendar has no rating of movie {movies[n]} by user "
                                 f"{users[n]} (input row {n}): give its day in x = [users, movies, days]")
            days = np.where(found, day[at], NO_DAY)
        if days.shape != users.shape or not np.issubdtype(days.dtype, np.number):
            raise ValueError(f"days of shape {days.shape} for {len(users)} ratings: one day (a number) each")
        return users, movies, days.astype(np.int64)

    def remap(self, what, order):
        """The tables move (``saved.remap_tables``), and the (user, day) keys and the calendar
        follow the new rows."""
        from .saved import remap_tables
        remap_tables(self, what, order)
        new_of_old = np.empty(len(order), np.int64)
        new_of_old[np.asarray(order)] = np.arange(len(order))
        layer, M = self.user_day, self.n_movies
        pairs, days = layer.calendar
        user, movie = pairs // M, pairs % M
        user, movie = (new_of_old[user], movie) if what == "user" else (user, new_of_old[movie])
        sort = np.argsort(user * M + movie)
        layer.calendar = ((user * M + movie)[sort], days[sort])
        if what == "user":
            keys = new_of_old[layer.keys // SHIFT] * SHIFT + layer.keys % SHIFT
            sort = np.argsort(keys)
            W = layer.params["W"]
            W[...] = W[self.xp.asarray(sort)]
            layer.keys = keys[sort]

    def chain(self, data, y, prior):
        users, movies, days = data
        keys, groups = np.unique(day_keys(users, days), return_inverse=True)
        self.n_user_days, calendar = len(keys), self.user_day.calendar
        self.user_day = UserDayBias(keys, self.dtype, self.xp)   # replaces the empty one
        self.user_day.calendar = calendar
        return self.chain_class(users, movies, y, self.n_users, self.n_movies, self.rank, groups,
                                keys, prior=prior, seed=self.seed or 0, user_noise=self.user_noise,
                                backend="numba" if self.backend == "numba" else "numpy")

    def set_posterior_mean(self, draws):
        """BPMF's posterior mean of the other tables, and the mean day biases."""
        self.user_day.params["W"][...] = self.xp.asarray(
            np.mean([d["user_day.W"] for d in draws], axis=0).astype(self.dtype))
        super().set_posterior_mean(draws)

    def set_params(self, values):
        """As ``Model.set_params``; the day biases keep their values when ``values`` has none."""
        super().set_params({"user_day.W": self.user_day.params["W"], **values})

    def biases(self, z, users, movies):
        """z + b_i + b_j + b_{i,d}: the days come from ``predict`` (``self.days_in``)."""
        if self.days_in is None or len(self.days_in) != len(users):
            raise ValueError(f"{type(self).__name__}.forward needs the days of its ratings: "
                             "call predict or evaluate with x = [users, movies, days]")
        z, back = super().biases(z, users, movies)
        z = z + self.user_day.forward(day_keys(to_numpy(users), self.days_in))

        def backward(dz):
            self.user_day.backward(dz)
            return back(dz)
        return z, backward

    def predict(self, x, batch_size=65536):
        """r̂ for ``x = [users, movies, days]`` (or ``[users, movies]`` with the calendar)."""
        users, movies, days = self.inputs_of(x, undated_ok=True)
        out = []
        for i in range(0, len(users), batch_size):
            self.days_in = days[i:i + batch_size]
            out.append(super().predict([users[i:i + batch_size], movies[i:i + batch_size]], batch_size))
        self.days_in = None
        return np.concatenate(out) if out else np.empty(0, self.dtype)


def check_user_day_bias(seed=0):
    """The gradient check of ``UserDayBias`` for the catalogue (``tools/check_all.py``): keys
    repeated and one unknown, float64, against central differences."""
    from ..nn.gradcheck import SMOOTH_BOUND, compare, numerical_gradient
    rng = np.random.default_rng(seed)
    layer = UserDayBias(day_keys([0, 0, 3, 4], [10, 11, 10, 12]), dtype=np.float64)
    layer.params["W"][...] = rng.standard_normal(layer.params["W"].shape)
    k = day_keys([0, 3, 0, 3, 2, 4], [11, 10, 11, 10, 10, 12])   # repeats, and (2, 10) unknown
    dout = rng.standard_normal(len(k))
    layer.forward(k)
    layer.backward(dout)
    num = numerical_gradient(lambda: float(layer.forward(k) @ dout), layer.params["W"])
    return {"UserDayBias (dW, repeated and unknown keys)": compare(
        "UserDayBias.W", layer.grads["W"], num, SMOOTH_BOUND)}
