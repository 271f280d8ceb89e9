"""Bayesian SVD++ flipped: SVD++ flipped (``svdpp_flipped.py``) trained by Gibbs sampling, the
bag tables drawn too. The model and its priors (BPMF's, ``bpmf.py``, with the bag tables added):

    r_n ~ N(r̂_n, 1/(α w_n)),   r̂_n = μ + b_i + b_j + P_i · Q_j    (rating n: user i, movie j)
    P_i = u_i + s_i Σ_{k ∈ N(i)} y_k      s_i = |N(i)|^-½   N(i): the movies i rated
    Q_j = m_j + t_j Σ_{l ∈ N(j)} x_l      t_j = |N(j)|^-½   N(j): the users who rated j

    [u_i, b_i] ~ N(μ_U, Λ_U⁻¹)   y_k ~ N(μ_Y, Λ_Y⁻¹)   [m_j, b_j] ~ N(μ_M, Λ_M⁻¹)   x_l ~ N(μ_X, Λ_X⁻¹)
    (μ_T, Λ_T) ~ Normal-Wishart(0, β0, ν0 = d, I)       α ~ Gamma(a0, b0)     μ ~ N(0, 1/τ0)
    w_n = 1, or with ``user_noise`` a: w_n = τ_i, τ_i ~ Gamma(a, a) (mean 1: some users rate
    more steadily than others; Lakshminarayanan, Bouchard & Archambeau 2011, "Robust Bayesian
    matrix factorisation", give each user and movie such a precision)

A user's bias rides in its row as one more coordinate, read by a constant 1 on the movie's side
(r̂ = μ + [u_i, b_i] · [Q_j, 1] + ...), so row and bias are drawn together.

Every table enters r̂ linearly given the others, so every conditional is Gaussian. One sweep
draws the user side, then the movie side; the user side, with e_n = r_n - r̂_n the residuals
and, for user i, the sufficient statistics of its ratings R(i) (features q_n = [Q_j, 1]):

    H_i = Σ_{n ∈ R(i)} w_n q_n q_nᵀ    g_i = Σ_{n ∈ R(i)} w_n q_n e_n      ((F+1) x (F+1), F+1)

1. Row w_i = [u_i, b_i] (rows independent given Q: each rating reads one user):
       Λ = Λ_U + α H_i        m = Λ⁻¹ (Λ_U μ_U + α (g_i + H_i w_i))        w_i ~ N(m, Λ⁻¹)
   (g_i + H_i w_i is Σ q_n × the residual without w_i's share.) Then g_i -= H_i δ for the
   change δ, and P_i += δ[:F]: the statistics follow the new row.
2. Bag row y_k, for k = 0, 1, ... in turn (the y_k of one user are tied through H_i, so they
   are drawn one at a time, each from its conditional given the current others). y_k reaches
   the users B(k) = {i : k ∈ N(i)}, each by s_i y_k · Q_j on each of their ratings:
       Λ = Λ_Y + α Σ_{i ∈ B(k)} s_i² H_i[:F, :F]
       m = Λ⁻¹ (Λ_Y μ_Y + α Σ_{i ∈ B(k)} s_i (g_i[:F] + s_i H_i[:F, :F] y_k))
   then for i ∈ B(k): g_i -= s_i H_i[:, :F] δ and P_i += s_i δ. H_i does not change (it reads
   only Q), so a sweep over bag rows costs O(ratings · F²), never a re-summing of residuals.
3. The movie side is the same with users and movies swapped (features [P_i, 1], rows
   [m_j, b_j], bag rows x_l reaching the movies the user l rated, scales t_j).
4. μ ~ N(α Σ w_n (e_n + μ) / π, 1/π), π = τ0 + α Σ w_n; then α ~ Gamma(a0 + N/2, b0 + Σ w_n e_n²/2).
5. With ``user_noise``: τ_i ~ Gamma(a + |R(i)|/2, a + α Σ_{n ∈ R(i)} e_n²/2) for every user.

The four (μ_T, Λ_T) are drawn at the start of a sweep, each from its Normal-Wishart posterior
given its table's rows (``bpmf.hyperparameters``): nothing they depend on changes before they
are used. A draw w ~ N(Λ⁻¹ b, Λ⁻¹) is w = L⁻ᵀ (L⁻¹ b + z) with Λ = L Lᵀ and z ~ N(0, I).

``half_sweep`` below is the NumPy reference of steps 1-2 for one side (``draw_rows``, then
``draw_bag_rows``); ``fast/numba_gibbs.py`` compiles the same two steps (``tests/test_bayes_flipped.py``
ties them). Step 2 serves any bag table: a table is its rows, the rows of the side whose bags hold
each of them, and each bag's scale. ``Chain`` runs the sweeps;
``BayesFlipped`` holds the posterior mean as one model (``BPMF``'s way: the kept draws' P and Q
side by side, each scaled by 1/√S; the bags are folded into P and Q, which they fix once
training ends).
"""
import time

import numpy as np

from .. import inputs
from ..backend import to_numpy
from ..train.objectives import mark_trained
from .bpmf import BPMF, Prior, hyperparameters
from .registry import register
from .svdpp import rated_by


def gaussian_draw(precision, b, z):
    """w ~ N(Λ⁻¹ b, Λ⁻¹) as w = L⁻ᵀ (L⁻¹ b + z), Λ = L Lᵀ, for a given standard normal z."""
    L = np.linalg.cholesky(precision)
    return np.linalg.solve(L.T, np.linalg.solve(L, b) + z)


def half_sweep(W, Y, P, Q, s, holders, rated, other, e, w, hyper_W, hyper_Y, z_W, z_Y, alpha):
    """Steps 1-2 (module docstring) for one side, in place: its rows W, then its bag table Y.

    W (R, F+1): rows [w_r, b_r];  Y (K, F): the bag table;  P (R, F): the side's vectors
    P_r = w_r + s_r Σ_{k ∈ bag r} Y_k, kept in step;  Q (O, F): the other side's vectors (read
    only);  s (R,): the bag scales;  holders = (offsets, rows) CSR, bag row k -> the rows whose
    bag holds it, B(k);  rated = (offsets, n) CSR, row -> its ratings;  other (N,): each
    rating's row on the other side;  e (N,): residuals before the sweep (left stale: the caller
    recomputes them);  hyper_* = (μ, Λ);  z_W (R, F+1), z_Y (K, F): standard normals.
    """
    H, g = draw_rows(W, P, Q, rated, other, e, w, hyper_W, z_W, alpha)
    draw_bag_rows(Y, P, H, g, s, holders, hyper_Y, z_Y, alpha)


def draw_rows(W, P, Q, rated, other, e, w, hyper_W, z_W, alpha):
    """Step 1: every row w_r = [w_r, b_r] from its conditional (rows are independent given Q);
    returns the statistics H (R, F+1, F+1) and g (R, F+1), g already following the new rows."""
    R, F = P.shape
    mu_W, Lam_W = hyper_W
    H, g = np.zeros((R, F + 1, F + 1)), np.zeros((R, F + 1))
    for r in range(R):
        n = rated[1][rated[0][r]:rated[0][r + 1]]
        q = np.hstack([Q[other[n]], np.ones((len(n), 1))])       # features [Q, 1] of r's ratings
        H[r], g[r] = q.T @ (w[n, None] * q), q.T @ (w[n] * e[n])
        new = gaussian_draw(Lam_W + alpha * H[r], Lam_W @ mu_W + alpha * (g[r] + H[r] @ W[r]), z_W[r])
        delta = new - W[r]
        g[r] -= H[r] @ delta
        P[r] += delta[:F]
        W[r] = new
    return H, g


def draw_bag_rows(Y, P, H, g, s, holders, hyper_Y, z_Y, alpha):
    """Step 2: each bag row y_k in turn from its conditional given the current others; keeps
    g and P following each new y_k."""
    F = Y.shape[1]
    mu_Y, Lam_Y = hyper_Y
    for k in range(Y.shape[0]):
        rs = holders[1][holders[0][k]:holders[0][k + 1]]         # B(k): the rows whose bag holds k
        sk, Hk = s[rs], H[rs][:, :F, :F]
        precision = Lam_Y + alpha * np.einsum("r,rab->ab", sk ** 2, Hk)
        pull = sk @ g[rs, :F] + np.einsum("r,rab,b->a", sk ** 2, Hk, Y[k])
        new = gaussian_draw(precision, Lam_Y @ mu_Y + alpha * pull, z_Y[k])
        delta = new - Y[k]
        g[rs] -= sk[:, None] * (H[rs][:, :, :F] @ delta)
        P[rs] += sk[:, None] * delta
        Y[k] = new


def csr(rows, n_rows, values):
    """(offsets, values sorted by row): the CSR grouping of ``values`` by ``rows``."""
    order = np.argsort(rows, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])
    return offsets.astype(np.int64), np.asarray(values)[order].astype(np.int64)


def scales(offsets):
    """|bag|^-½ for each bag, 0 for an empty one."""
    sizes = np.diff(offsets).astype(np.float64)
    return np.where(sizes > 0, 1 / np.sqrt(np.maximum(sizes, 1)), 0.0)


class Chain:
    """The sampler's state and its sweeps (module docstring), all in float64.

    ``users``, ``movies``, ``y``: the training ratings (N,); ``rank``: F. Holds the rows
    ``Wu`` (U, F+1), ``Y`` (M, F), ``Wm`` (M, F+1), ``X`` (U, F), the vectors ``P`` (U, F) and
    ``Q`` (M, F), ``mu``, ``alpha`` and the residuals ``e``. ``backend`` "numba" runs the half
    sweeps compiled (``fast/numba_gibbs.py``), "numpy" the reference; the draws are the same.
    """

    def __init__(self, users, movies, y, n_users, n_movies, rank, prior=None, seed=0,
                 backend="numpy", init_scale=0.1, user_noise=None):
        self.users, self.movies = np.asarray(users, np.int64), np.asarray(movies, np.int64)
        self.y = np.asarray(y, np.float64)
        self.U, self.M, self.F = n_users, n_movies, rank
        self.prior, self.rng = prior or Prior(), np.random.default_rng(seed)
        n = np.arange(len(self.y))
        self.user_bags = rated_by(self.users, self.movies, n_users)      # N(i): movies
        self.movie_bags = rated_by(self.movies, self.users, n_movies)    # N(j): users
        self.user_holders = csr(self.user_bags[1], n_movies, np.repeat(np.arange(n_users), np.diff(self.user_bags[0])))
        self.movie_holders = csr(self.movie_bags[1], n_users, np.repeat(np.arange(n_movies), np.diff(self.movie_bags[0])))
        self.by_user, self.by_movie = csr(self.users, n_users, n), csr(self.movies, n_movies, n)
        self.s, self.t = scales(self.user_bags[0]), scales(self.movie_bags[0])
        start = self.rng.standard_normal
        self.Wu = np.hstack([init_scale * start((n_users, rank)), np.zeros((n_users, 1))])
        self.Wm = np.hstack([init_scale * start((n_movies, rank)), np.zeros((n_movies, 1))])
        self.Y, self.X = np.zeros((n_movies, rank)), np.zeros((n_users, rank))
        self.mu, self.alpha = float(self.y.mean()), 2.0
        self.w = np.ones(len(self.y))                         # each rating's precision is α w_n
        self.user_noise, self.tau = user_noise, np.ones(n_users)
        self.P, self.Q = self.Wu[:, :rank].copy(), self.Wm[:, :rank].copy()
        self.rows_step, self.bags_step = draw_rows, draw_bag_rows       # steps 1 and 2
        if backend == "numba":
            from ..fast import numba_gibbs
            self.rows_step, self.bags_step = numba_gibbs.draw_rows, numba_gibbs.draw_bag_rows
        self.e = self.residuals()

    def predict(self, users, movies):
        """r̂ = μ + b_i + b_j + P_i · Q_j at the current draw."""
        users, movies = np.asarray(users, np.int64), np.asarray(movies, np.int64)
        F = self.F
        return (self.mu + self.Wu[users, F] + self.Wm[movies, F]
                + np.einsum("nf,nf->n", self.P[users], self.Q[movies]))

    def residuals(self):
        return self.y - self.predict(self.users, self.movies)

    def sweep(self):
        """One Gibbs sweep: hyperparameters, the user side, the movie side, μ, α."""
        rng, prior, a = self.rng, self.prior, self.alpha
        hypers = [hyperparameters(T, prior, rng) for T in (self.Wu, self.Y, self.Wm, self.X)]
        z = [rng.standard_normal(T.shape) for T in (self.Wu, self.Y, self.Wm, self.X)]
        H, g = self.rows_step(self.Wu, self.P, self.Q, self.by_user, self.movies, self.e, self.w,
                              hypers[0], z[0], a)
        self.bags_step(self.Y, self.P, H, g, self.s, self.user_holders, hypers[1], z[1], a)
        self.more_bags("user", H, g)
        self.e = self.residuals()
        H, g = self.rows_step(self.Wm, self.Q, self.P, self.by_movie, self.users, self.e, self.w,
                              hypers[2], z[2], a)
        self.bags_step(self.X, self.Q, H, g, self.t, self.movie_holders, hypers[3], z[3], a)
        self.more_bags("movie", H, g)
        self.e = self.residuals()
        self.draw_noise()

    def more_bags(self, side, H, g):
        """Step 2 for bag tables a subclass adds on ``side`` ("user" or "movie"), given that
        side's statistics H, g: none here (``bayes_hybrid.py`` adds the side information)."""

    def draw_noise(self):
        """μ given the rest, then α (step 4), each rating weighted by w_n."""
        rng, prior, w, e = self.rng, self.prior, self.w, self.e
        precision = prior.offset_precision + self.alpha * w.sum()
        new = self.alpha * (w @ e + w.sum() * self.mu) / precision + rng.standard_normal() / np.sqrt(precision)
        e -= new - self.mu
        self.mu = float(new)
        self.alpha = float(rng.gamma(prior.a0 + len(e) / 2, 1 / (prior.b0 + e @ (w * e) / 2)))
        if self.user_noise:                                  # step 5: each user's τ_i
            a, U = self.user_noise, self.U
            other = w / self.tau[self.users]                 # w's other factors (1 here; a
            self.tau = rng.gamma(a + np.bincount(self.users, minlength=U) / 2,   # subclass may
                                 1 / (a + self.alpha * np.bincount(self.users, other * e * e, minlength=U) / 2))
            self.w = self.tau[self.users] * other            # add some)

    def draw(self):
        """The current draw as the tables of the held model (``BPMF.set_posterior_mean``)."""
        F = self.F
        return {"user_embedding.W": self.P.copy(), "movie_embedding.W": self.Q.copy(),
                "user_bias.W": self.Wu[:, F:].copy(), "movie_bias.W": self.Wm[:, F:].copy(),
                "offset.b": np.array([self.mu])}


@register("bayes-flipped", title="Bayesian SVD++ flipped (Gibbs sampling)")
class BayesFlipped(BPMF):
    """SVD++ flipped trained by Gibbs sampling (``Chain``, module docstring): the posterior mean

        r̂ = clip( (1/S) Σ_s (μ^s + b_i^s + b_j^s + P_i^s · Q_j^s),  lo, hi )

    held as BPMF holds its own (a ``DotProductBias`` with the S kept draws' P and Q side by
    side, each scaled by 1/√S, the biases averaged with μ joining b_i, a ``Clip`` as output).
    The bags N(i), N(j) come from the ratings given to ``fit``. ``rank`` is F of one draw;
    ``samples`` sweeps, the first ``burn_in`` discarded, then every ``thin``-th kept;
    ``beta0`` the Normal-Wishart prior's β0 (its scale matrix is I, ν0 = d); ``user_noise``
    a > 0 gives each user a noise precision α τ_i, τ_i ~ Gamma(a, a) (None: one α for all).
    """
    trained_by = "Gibbs sampling (bayes_flipped.Chain): no optimiser; fit draws from the posterior"

    def __init__(self, n_users, n_movies, rank=10, samples=200, burn_in=50, thin=2,
                 clip=(1.0, 5.0), beta0=2.0, user_noise=None, dtype=np.float32, seed=None,
                 backend=None):
        super().__init__(n_users, n_movies, rank, samples, burn_in, thin, clip, dtype, seed, backend)
        self.beta0 = inputs.finite_positive("beta0", beta0)
        self.user_noise = None if user_noise is None else inputs.finite_positive("user_noise", user_noise)

    @classmethod
    def for_data(cls, ds, train, **kwargs):
        """The model for ``ds``, its output clipped to the training ratings' range unless
        ``clip`` is given (ml-100k: 1 to 5; ml-latest-small: 0.5 to 5)."""
        kwargs.setdefault("clip", (float(np.min(train.y)), float(np.max(train.y))))
        return cls(ds.n_users, ds.n_movies, **kwargs)

    def fit(self, x, y, validation_data=None, verbose=1, prior=None):
        """Run the chain on training ratings ``x``, ``y`` and set the posterior mean. With
        ``validation_data`` and ``verbose``, prints the running posterior mean's validation RMSE
        every 25 sweeps. Returns a one-entry ``History``."""
        from ..train.loop import History
        start = time.perf_counter()
        data = self.inputs_of(x)
        y = to_numpy(inputs.ratings(y, len(data[0]), np, np.float64))
        chain = self.chain(data, y, prior or Prior(beta0=self.beta0))
        watch = self.watch(validation_data) if (validation_data is not None and verbose) else None
        draws = []
        for s in range(self.samples):
            chain.sweep()
            if s >= self.burn_in and (s - self.burn_in) % self.thin == 0:
                draws.append(chain.draw())
            if watch is not None:
                watch(s, chain)
        self.set_posterior_mean(draws)
        mark_trained(self, *data[:2])  # rows without a rating hold prior draws: not served
        history = History()
        val = self.evaluate(*validation_data) if validation_data is not None else None
        history.append(1, loss=None, lr=None, seconds=time.perf_counter() - start, val_loss=val)
        return history

    def inputs_of(self, x):
        """``x = [users, movies]`` checked, as NumPy arrays: what ``Chain.predict`` reads."""
        return tuple(to_numpy(a) for a in inputs.pairs(x, self.n_users, self.n_movies, np))

    def chain(self, data, y, prior):
        """The sampler for training ratings ``data = (users, movies)``, ``y``."""
        return Chain(*data, y, self.n_users, self.n_movies, self.rank, prior, self.seed or 0,
                     "numba" if self.backend == "numba" else "numpy", user_noise=self.user_noise)

    def watch(self, validation_data):
        """A callback printing the running posterior mean's validation RMSE every 25 sweeps."""
        vx, vy = validation_data
        data, vy = self.inputs_of(vx), to_numpy(vy).astype(np.float64)
        total, count = np.zeros(len(vy)), [0]

        def rmse(pred):
            return np.sqrt(np.mean((np.clip(pred, *self.clip) - vy) ** 2))

        def watch(s, chain):
            now = chain.predict(*data)
            if s >= self.burn_in and (s - self.burn_in) % self.thin == 0:
                total[...] += now
                count[0] += 1
            if (s + 1) % 25 == 0:
                mean = f"{rmse(total / count[0]):.4f}" if count[0] else "-"
                print(f"sweep {s + 1}/{self.samples}: validation RMSE of this draw {rmse(now):.4f}, "
                      f"of the posterior mean {mean} ({count[0]} draws)", flush=True)
        return watch
