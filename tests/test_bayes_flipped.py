"""Bayesian SVD++ flipped (models/bayes_flipped.py): each conditional against the Bayesian linear
regression worked by hand, the draws' moments against the distribution they come from, the
bookkeeping (P, Q, residuals) against a recomputation, NumPy against Numba, and the posterior
mean held as one model that predicts, saves and loads."""
import copy

import numpy as np
import pytest

from minirec.models.bayes_flipped import (BayesFlipped, Chain, draw_bag_rows, draw_rows,
                                          gaussian_draw, half_sweep)
from minirec.models.bpmf import Prior
from minirec.models.saved import model_from_weights


def data(n=240, U=7, M=9, seed=0):
    """Ratings on a tiny problem; user 6 and movie 8 have none (empty bags, prior-only rows)."""
    rng = np.random.default_rng(seed)
    users, movies = rng.integers(0, U - 1, n), rng.integers(0, M - 1, n)
    pairs = np.unique(users * M + movies)          # one rating per (user, movie), as in MovieLens
    users, movies = pairs // M, pairs % M
    return users, movies, rng.integers(1, 6, len(pairs)).astype(np.float64)


def chain(F=3, seed=1, backend="numpy", sweeps=2):
    """A chain a few sweeps in, so every table is away from its start; the ratings' noise
    weights w_n (precision α w_n) are set unequal, so the weighting is tested too."""
    users, movies, y = data()
    c = Chain(users, movies, y, 7, 9, F, seed=seed, backend=backend)
    c.w = np.random.default_rng(seed).uniform(0.5, 2.0, len(y))
    for _ in range(sweeps):
        c.sweep()
    return c


def hypers(d, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d))
    return rng.standard_normal(d) * 0.3, A @ A.T / d + np.eye(d)


def bag_sums(c):
    """P and Q recomputed from the rows and the bag tables: w + s Σ_{k ∈ bag} y_k."""
    F = c.F
    P, Q = c.Wu[:, :F].copy(), c.Wm[:, :F].copy()
    for i in range(c.U):
        P[i] += c.s[i] * c.Y[c.user_bags[1][c.user_bags[0][i]:c.user_bags[0][i + 1]]].sum(axis=0)
    for j in range(c.M):
        Q[j] += c.t[j] * c.X[c.movie_bags[1][c.movie_bags[0][j]:c.movie_bags[0][j + 1]]].sum(axis=0)
    return P, Q


def user_side(c, hyper_W, hyper_Y, z_W, z_Y):
    """The arguments of the user side's half sweep (copies: the caller's chain is kept)."""
    c = copy.deepcopy(c)
    return c, (c.Wu, c.Y, c.P, c.Q, c.s, c.user_holders, c.by_user, c.movies, c.e, c.w,
               hyper_W, hyper_Y, z_W, z_Y, c.alpha)


def rows_step(args):
    """Step 1 alone on the arguments ``user_side`` made."""
    W, Y, P, Q, s, holders, rated, other, e, w, hyper_W, hyper_Y, z_W, z_Y, alpha = args
    return draw_rows(W, P, Q, rated, other, e, w, hyper_W, z_W, alpha)


def regression(X, target, weight, alpha, mu, Lam):
    """Bayesian linear regression target = X β + noise (precision α·weight, one per row), prior
    β ~ N(μ, Λ⁻¹): posterior precision A = Λ + α Xᵀ diag(weight) X, mean A⁻¹ (Λμ + α Xᵀ
    diag(weight) target)."""
    A = Lam + alpha * X.T @ (weight[:, None] * X)
    return np.linalg.solve(A, Lam @ mu + alpha * X.T @ (weight * target)), A


# float64 throughout: a solve of a d x d system with condition number κ loses about κ·1e-16; the
# tiny problems here have κ < 1e3, so 1e-10 leaves a margin of 1e3 over rounding.
TOL = dict(rtol=1e-10, atol=1e-10)


def test_a_user_rows_conditional_is_the_regression_worked_by_hand():
    """Row [u_i, b_i] given everything else: rating n of user i is
    r_n = μ + b_j + (s_i Σ_{k ∈ N(i)} y_k) · Q_j + [u_i, b_i] · [Q_j, 1] + noise, so the design
    matrix has rows [Q_j, 1] and the target is r_n minus the rest. With z = 0 the draw is the
    posterior mean."""
    c = chain()
    F, hW, hY = c.F, hypers(c.F + 1, 2), hypers(c.F, 3)
    before = copy.deepcopy(c)
    after, args = user_side(c, hW, hY, np.zeros((7, F + 1)), np.zeros((9, F)))
    rows_step(args)
    for i in range(7):
        n = np.flatnonzero(before.users == i)
        j = before.movies[n]
        X = np.hstack([before.Q[j], np.ones((len(n), 1))])
        implicit = before.P[i] - before.Wu[i, :F]                    # s_i Σ y_k
        target = before.y[n] - before.mu - before.Wm[j, F] - before.Q[j] @ implicit
        mean, _ = regression(X, target, before.w[n], before.alpha, *hW)
        np.testing.assert_allclose(after.Wu[i], mean, **TOL, err_msg=f"user {i}")
    np.testing.assert_allclose(after.Wu[6], hW[0], **TOL)            # no ratings: the prior mean


def test_each_bag_rows_conditional_is_the_regression_worked_by_hand():
    """y_k given everything else (the rows just drawn, the y drawn before it, the old ones after):
    y_k reaches every rating n of every user i whose bag holds k as s_i y_k · Q_j, so the design
    matrix has rows s_i Q_j and the target is r_n minus the rest of the prediction. The bag rows
    are drawn in turn with z = 0, and each is checked against the state it was drawn in."""
    c = chain()
    F, hW, hY = c.F, hypers(c.F + 1, 4), hypers(c.F, 5)
    after, args = user_side(c, hW, hY, np.zeros((7, F + 1)), np.zeros((9, F)))
    half_sweep(*args)
    state = copy.deepcopy(c)
    state.Wu = after.Wu.copy()                                       # the rows after step 1
    for k in range(9):
        state.Y[:k] = after.Y[:k]                                    # drawn already
        P, _ = bag_sums(state)
        holders = np.flatnonzero([k in c.user_bags[1][c.user_bags[0][i]:c.user_bags[0][i + 1]]
                                  for i in range(7)])
        n = np.flatnonzero(np.isin(c.users, holders))
        i, j = c.users[n], c.movies[n]
        X = c.s[i, None] * c.Q[j]
        rest = c.mu + state.Wu[i, F] + c.Wm[j, F] + np.einsum("nf,nf->n", P[i], c.Q[j]) - X @ state.Y[k]
        mean, _ = regression(X, c.y[n] - rest, c.w[n], c.alpha, *hY)
        np.testing.assert_allclose(after.Y[k], mean, **TOL, err_msg=f"bag row {k}")
    np.testing.assert_allclose(after.Y[8], hY[0], **TOL)             # in nobody's bag: the prior


def test_the_noise_is_added_through_the_cholesky_factor():
    """w = L⁻ᵀ (L⁻¹ b + z): the mean Λ⁻¹ b plus L⁻ᵀ z, whose covariance is (L Lᵀ)⁻¹ = Λ⁻¹."""
    rng = np.random.default_rng(0)
    mu, Lam = hypers(4, 6)
    b, z = rng.standard_normal(4), rng.standard_normal(4)
    L = np.linalg.cholesky(Lam)
    np.testing.assert_allclose(gaussian_draw(Lam, b, z), np.linalg.solve(Lam, b) + np.linalg.solve(L.T, z), **TOL)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_bag_rows_draws_have_the_conditionals_moments(backend):
    """Drawn again and again from one state (fresh z for y_0 only), y_0's draws have the mean and
    covariance of its conditional worked by hand. With 4,000 draws of a 3-vector, the sample
    mean's standard error is σ/√4000 ≈ 0.016σ per coordinate; bound 5 standard errors (a false
    alarm about 1 in 10⁵ per coordinate). The sample covariance's entries have standard error
    about √(2/4000) ≈ 0.022 relative to the scale; bound 0.12 relative to the largest variance."""
    if backend == "numba":
        pytest.importorskip("numba")
        from minirec.fast.numba_gibbs import half_sweep as sweep
    else:
        sweep = half_sweep
    c = chain()
    F, hW, hY = c.F, hypers(c.F + 1, 7), hypers(c.F, 8)
    zW = np.zeros((7, F + 1))
    after, args = user_side(c, hW, hY, zW, np.zeros((9, F)))
    rows_step(args)                                   # the state y_0 is drawn in
    P, _ = bag_sums(after)
    holders = np.flatnonzero([0 in c.user_bags[1][c.user_bags[0][i]:c.user_bags[0][i + 1]] for i in range(7)])
    n = np.flatnonzero(np.isin(c.users, holders))
    i, j = c.users[n], c.movies[n]
    X = c.s[i, None] * c.Q[j]
    rest = c.mu + after.Wu[i, F] + c.Wm[j, F] + np.einsum("nf,nf->n", P[i], c.Q[j]) - X @ c.Y[0]
    mean, precision = regression(X, c.y[n] - rest, c.w[n], c.alpha, *hY)
    cov = np.linalg.inv(precision)
    rng, S = np.random.default_rng(9), 4000
    draws = np.empty((S, F))
    for s in range(S):
        _, args = user_side(c, hW, hY, zW, np.vstack([rng.standard_normal((1, F)), np.zeros((8, F))]))
        sweep(*args)
        draws[s] = args[1][0]
    se = np.sqrt(np.diag(cov) / S)
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 5 * se), (draws.mean(axis=0), mean, se)
    assert np.max(np.abs(np.cov(draws.T) - cov)) < 0.12 * np.max(np.diag(cov))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_the_bookkeeping_follows_the_draws(backend):
    """After sweeps, P and Q equal the rows plus their bag sums recomputed from scratch, and the
    residuals equal y - r̂ (the statistics were updated, never recomputed, inside a sweep)."""
    if backend == "numba":
        pytest.importorskip("numba")
    c = chain(backend=backend, sweeps=4)
    P, Q = bag_sums(c)
    np.testing.assert_allclose(c.P, P, **TOL)
    np.testing.assert_allclose(c.Q, Q, **TOL)
    F = c.F
    r_hat = c.mu + c.Wu[c.users, F] + c.Wm[c.movies, F] + np.einsum("nf,nf->n", P[c.users], Q[c.movies])
    np.testing.assert_allclose(c.e, c.y - r_hat, **TOL)


def test_the_chain_is_the_same_on_numpy_and_numba():
    """Same seed, same normals: the compiled loops and the reference differ only in the order of
    their float64 sums (about 1e-16 relative per operation); over 5 sweeps of solves with
    κ < 1e3 that stays under 1e-9."""
    pytest.importorskip("numba")
    a, b = chain(sweeps=5), chain(backend="numba", sweeps=5)
    for name in ("Wu", "Wm", "Y", "X", "P", "Q", "e"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-9, err_msg=name)
    assert abs(a.alpha - b.alpha) < 1e-9 * a.alpha and abs(a.mu - b.mu) < 1e-9


def test_the_model_is_the_posterior_mean_and_saves_and_loads(tmp_path):
    users, movies, y = data()
    model = BayesFlipped(7, 9, rank=2, samples=10, burn_in=4, thin=3, seed=3, backend="numpy")
    model.fit([users, movies], y, verbose=0)
    assert model.n_factors == 2 * 2                       # sweeps 4 and 7 kept, side by side
    c = Chain(users, movies, y, 7, 9, 2, Prior(beta0=model.beta0), seed=3)
    kept = []
    for s in range(10):
        c.sweep()
        if s in (4, 7):
            kept.append(c.predict(users, movies))
    expected = np.clip(np.mean(kept, axis=0), 1.0, 5.0)
    # the held model is float32: each prediction is a sum of 2F + 3 terms of size < 10, so its
    # rounding is below (2F + 3) · 10 · 6e-8 ≈ 5e-6
    np.testing.assert_allclose(model.predict([users, movies]), expected, atol=5e-6)
    path = tmp_path / "bayes.npz"
    model.save_weights(path)
    loaded = model_from_weights(path)
    assert type(loaded) is BayesFlipped and loaded.config() == model.config()
    np.testing.assert_array_equal(loaded.predict([users, movies]), model.predict([users, movies]))


# ----- time: the day-specific user bias (models/bayes_timed.py) ------------------------------------

class Means:
    """A stand-in generator whose draws are their distributions' means: a step run with it
    returns its conditional's mean, to be checked against the closed form."""

    def standard_normal(self, size=None):
        return np.zeros(size) if size is not None else 0.0

    def gamma(self, shape, scale=1.0):
        return np.asarray(shape) * np.asarray(scale)


def timed_chain(sweeps=2, backend="numpy"):
    from minirec.models.bayes_timed import TimedChain, day_keys
    users, movies, y = data()
    days = 17000 + (np.arange(len(y)) * 7) % 3                     # three days, each user on several
    keys, groups = np.unique(day_keys(users, days), return_inverse=True)
    c = TimedChain(users, movies, y, 7, 9, 3, groups, keys, seed=1, backend=backend, user_noise=4.0)
    for _ in range(sweeps):
        c.sweep()
    return c, days


def test_the_day_biases_conditional_is_the_regression_worked_by_hand():
    """b_g given the rest: the ratings of group g are r_n = (r̂_n without b_g) + b_g + noise of
    precision α w_n, prior N(0, 1/λ): precision λ + α Σ w_n, mean α Σ w_n (r_n - rest_n) / that.
    Then λ | b ~ Gamma(1 + G/2, rate 1 + Σ b²/2), whose mean is checked the same way."""
    c, _ = timed_chain()
    before = copy.deepcopy(c)
    c.rng = Means()
    c.draw_noise()
    rest = before.predict(before.users, before.movies) - before.b[before.groups]
    for g in range(len(before.keys)):
        n = before.groups == g
        precision = before.lam + before.alpha * before.w[n].sum()
        mean = before.alpha * before.w[n] @ (before.y[n] - rest[n]) / precision
        np.testing.assert_allclose(c.b[g], mean, **TOL, err_msg=f"group {g}")
    G = len(before.keys)
    np.testing.assert_allclose(c.lam, (1 + G / 2) / (1 + c.b @ c.b / 2), **TOL)
    np.testing.assert_allclose(c.e, c.y - c.predict(c.users, c.movies), **TOL)


def test_the_timed_chain_is_the_same_on_numpy_and_numba():
    pytest.importorskip("numba")
    (a, _), (b, _) = timed_chain(4), timed_chain(4, "numba")
    for name in ("Wu", "Wm", "Y", "X", "b", "tau", "e"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-9, err_msg=name)


def test_the_day_bias_layers_gradient():
    """UserDayBias: forward looks each key up (an unknown key reads 0); backward scatter-adds,
    repeated keys adding up, checked against central differences (smooth: bound 1e-7)."""
    from minirec.models.bayes_timed import UserDayBias
    from minirec.nn.gradcheck import SMOOTH_BOUND, compare, numerical_gradient
    from minirec.models.bayes_timed import check_user_day_bias
    layer = UserDayBias(np.array([5, 9, 40]), dtype=np.float64)
    layer.params["W"][:, 0] = [0.5, -1.0, 2.0]
    k = np.array([9, 9, 7, 40, 5])                                   # a repeat and an unknown key
    np.testing.assert_array_equal(layer.forward(k), [-1.0, -1.0, 0.0, 2.0, 0.5])
    dout = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    layer.backward(dout)
    np.testing.assert_allclose(layer.grads["W"][:, 0], [0.5, 0.3, 0.4], rtol=1e-15)
    num = numerical_gradient(lambda: float(layer.forward(k) @ dout), layer.params["W"])
    assert compare("UserDayBias.W", layer.grads["W"], num, SMOOTH_BOUND) < SMOOTH_BOUND
    assert all(err < SMOOTH_BOUND for err in check_user_day_bias().values())


def test_the_timed_model_is_its_posterior_mean_and_wants_its_days(tmp_path):
    from minirec.models.bayes_timed import BayesTimedFlipped
    c, days = timed_chain(0)
    users, movies, y = c.users, c.movies, c.y
    model = BayesTimedFlipped(7, 9, rank=3, samples=6, burn_in=2, thin=2, user_noise=4.0, seed=1,
                              backend="numpy")
    model.fit([users, movies, days], y, verbose=0)
    kept, without_day = [], []
    for s in range(6):
        c.sweep()
        if s in (2, 4):
            kept.append(c.predict(users, movies, days))
            without_day.append(kept[-1] - c.b[c.groups])
    # float32 held model: 2F + 4 terms of size < 10 each, rounding below 10 · 10 · 6e-8
    np.testing.assert_allclose(model.predict([users, movies, days]), np.clip(np.mean(kept, axis=0), 1, 5), atol=6e-6)
    unseen = model.predict([users[:3], movies[:3], days[:3] + 100])  # days no rating was made on
    np.testing.assert_allclose(unseen, np.clip(np.mean(without_day, axis=0)[:3], 1, 5), atol=6e-6)
    with pytest.raises(ValueError, match="needs the day of each rating"):
        model.predict([users, movies])
    path = tmp_path / "timed.npz"
    model.save_weights(path)
    loaded = model_from_weights(path)
    assert loaded.n_user_days == model.n_user_days == len(c.keys)
    np.testing.assert_array_equal(loaded.predict([users, movies, days]), model.predict([users, movies, days]))


def test_the_noise_steps_conditionals_worked_by_hand():
    """μ, α and each user's τ_i given the rest, with the draws replaced by their means:
    μ: r_n - rest_n = μ + noise (precision α w_n), prior N(0, 1/τ0) -> mean α Σ w (e + μ) / π,
    π = τ0 + α Σ w;  α: Gamma(a0 + N/2, rate b0 + Σ w e²/2);  τ_i: Gamma(a + n_i/2, rate
    a + α Σ_{n ∈ R(i)} e²/2) (w's other factors are 1 here), each read with the residuals the
    step before left."""
    users, movies, y = data()
    c = Chain(users, movies, y, 7, 9, 3, seed=1, user_noise=3.0)
    for _ in range(2):
        c.sweep()
    before, p = copy.deepcopy(c), c.prior
    c.rng = Means()
    c.draw_noise()
    w, e = before.w, before.e
    precision = p.offset_precision + before.alpha * w.sum()
    np.testing.assert_allclose(c.mu, before.alpha * w @ (e + before.mu) / precision, **TOL)
    e_new = y - (before.predict(users, movies) - before.mu + c.mu)
    np.testing.assert_allclose(c.alpha, (p.a0 + len(y) / 2) / (p.b0 + e_new @ (w * e_new) / 2), **TOL)
    for i in range(7):
        n = users == i
        np.testing.assert_allclose(c.tau[i], (3.0 + n.sum() / 2) / (3.0 + c.alpha * e_new[n] @ e_new[n] / 2), **TOL)
    np.testing.assert_allclose(c.w, c.tau[users], **TOL)


def test_the_timed_model_follows_a_new_order_of_users_and_movies():
    """remap (a data set with the same ids in another order): the day biases' keys and the
    calendar move with the users and movies, so every rating is predicted as before."""
    from types import SimpleNamespace
    from minirec.models.bayes_timed import BayesTimedFlipped
    c, days = timed_chain(0)
    users, movies, y = c.users, c.movies, c.y
    model = BayesTimedFlipped(7, 9, rank=2, samples=4, burn_in=1, thin=1, user_noise=4.0, seed=1,
                              backend="numpy")
    model.use_calendar(SimpleNamespace(name="tiny", user=users, movie=movies, timestamp=days * 86400 + 5))
    model.fit([users, movies], y, verbose=0)
    before = model.predict([users, movies])
    np.testing.assert_array_equal(before, model.predict([users, movies, days]))
    rng = np.random.default_rng(0)
    for what, n in (("user", 7), ("movie", 9)):
        order = rng.permutation(n)                    # order[k]: the old row of new row k
        new_of_old = np.argsort(order)
        model.remap(what, order)
        if what == "user":
            users = new_of_old[users]
        else:
            movies = new_of_old[movies]
        np.testing.assert_array_equal(model.predict([users, movies, days]), before, err_msg=what)
        np.testing.assert_array_equal(model.predict([users, movies]), before, err_msg=what)


def test_minirec_train_fits_the_bayesian_kinds_saves_and_evaluates(tmp_path, capsys, monkeypatch):
    """``minirec train --model bayes-flipped[-time]`` with its recipe (fewer sweeps here), then
    ``evaluate`` of the saved file prints the same validation MSE (the timed model's calendar
    travels in the file)."""
    from minirec.data.synthetic import synthetic_movielens, write_release
    from minirec.models import recipes
    from minirec.tools.cli import main
    release = write_release(synthetic_movielens(40, 60, 3000, seed=2), tmp_path / "tiny")
    for kind in ("bayes-flipped", "bayes-flipped-time"):
        monkeypatch.setitem(recipes.FITTED, kind, dict(model=dict(
            recipes.FITTED[kind]["model"], samples=6, burn_in=2)))
        path = tmp_path / f"{kind}.npz"
        assert main(["train", "--data", str(release), "--model", kind, "-q", "--save", str(path),
                     "--backend", "numpy"]) == 0
        val = float(capsys.readouterr().out.split("validation MSE ")[1].split()[0])
        assert main(["evaluate", "--weights", str(path), "--data", str(release), "--backend", "numpy"]) == 0
        assert f"validation MSE {val:.4f}" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["bayes-flipped", "bayes-flipped-time", "bayes-hybrid"])
def test_a_movie_with_no_training_rating_is_not_served(kind):
    """Movie 8 and user 6 have no ratings in the tiny data: their rows are prior draws, so the
    fitted model says they were scored from nothing, and ``recommend`` leaves movie 8 out (a
    Gibbs model that marked no rows used to count every row as trained)."""
    from types import SimpleNamespace
    from minirec.models import bayes_hybrid, bayes_timed  # noqa: F401  (the kinds)
    from minirec.models import recipes
    from minirec.models.coldstart import scored_from
    from minirec.tools.analysis import recommend
    users, movies, y = data()
    ds = SimpleNamespace(n_users=7, n_movies=9, user=users, movie=movies,
                         timestamp=np.full(len(y), 17000 * 86400))
    train = SimpleNamespace(user=users, movie=movies, y=y, x=[users, movies])
    model = recipes.build(kind, ds, 0, "numpy", train, rank=2, samples=4, burn_in=1, thin=1)
    model.fit(train.x, y, verbose=0)
    assert list(scored_from(model, "movie")) == ["trained"] * 8 + ["nothing"]
    assert scored_from(model, "user")[6] == "nothing"
    ds.user_ids, ds.movie_ids = np.arange(7) + 1, np.arange(9) + 1
    picks = [movie for movie, _ in recommend(model, ds, 0, k=9, exclude_seen=False)]
    assert len(picks) == 8 and 8 not in picks      # every movie but the untrained one
