"""The Bayesian hybrid (models/bayes_hybrid.py): a side row's conditional against the regression
worked by hand, the bookkeeping of P and Q with the side sums, NumPy against Numba, the
posterior mean held, saved and loaded, and the bags it refuses."""
import copy

import numpy as np
import pytest

from minirec.models import bayes_hybrid
from minirec.models.bayes_hybrid import BayesHybrid, HybridChain
from minirec.models.bayes_timed import day_keys
from minirec.models.saved import model_from_weights
from test_bayes_flipped import TOL, Means, data, hypers, regression

# Side bags of the tiny problem (7 users, 9 movies): movies 0-7 hold 1-2 of 4 features, movie 8
# none; users hold one of 2 features, user 5 none. Feature 3 of the movies is on one movie only.
MOVIE_SIDE = (np.array([0, 1, 3, 4, 6, 7, 8, 9, 10, 10]), np.array([0, 0, 1, 1, 0, 2, 2, 1, 2, 3]))
USER_SIDE = (np.array([0, 1, 2, 3, 4, 5, 5, 6]), np.array([0, 1, 0, 1, 0, 1]))


def hybrid_chain(sweeps=2, backend="numpy"):
    users, movies, y = data()
    days = 17000 + (np.arange(len(y)) * 7) % 3
    keys, groups = np.unique(day_keys(users, days), return_inverse=True)
    c = HybridChain(users, movies, y, 7, 9, 3, groups, keys, seed=1, backend=backend, user_noise=4.0)
    c.add_side(USER_SIDE, 2, MOVIE_SIDE, 4)
    c.w = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    for _ in range(sweeps):
        c.sweep()
    return c, days


def vectors(c):
    """P and Q recomputed from scratch: row + |bag|^-½ Σ bag rows + mean of the side rows."""
    F = c.F
    P, Q = c.Wu[:, :F].copy(), c.Wm[:, :F].copy()
    for out, W, bags, scale, table, (off, ids) in (
            (P, c.Y, c.user_bags, c.s, c.side["user"][0], USER_SIDE),
            (Q, c.X, c.movie_bags, c.t, c.side["movie"][0], MOVIE_SIDE)):
        for r in range(len(out)):
            out[r] += scale[r] * W[bags[1][bags[0][r]:bags[0][r + 1]]].sum(axis=0)
            if off[r + 1] > off[r]:
                out[r] += table[ids[off[r]:off[r + 1]]].mean(axis=0)
    return P, Q


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_the_side_sums_are_in_p_and_q_and_the_side_rows_move(backend):
    """After sweeps, P and Q are the rows plus the bag sums plus the side means recomputed from
    scratch, and the residuals are y - r̂: the side draws kept the statistics in step. The side
    tables have left zero (a chain that skipped them would pass the first check alone)."""
    if backend == "numba":
        pytest.importorskip("numba")
    c, _ = hybrid_chain(sweeps=4, backend=backend)
    P, Q = vectors(c)
    np.testing.assert_allclose(c.P, P, **TOL)
    np.testing.assert_allclose(c.Q, Q, **TOL)
    np.testing.assert_allclose(c.e, c.y - c.predict(c.users, c.movies), **TOL)
    assert np.abs(c.side["movie"][0]).min() > 0 and np.abs(c.side["user"][0]).min() > 0


def test_a_side_rows_conditional_is_the_regression_worked_by_hand(monkeypatch):
    """v_f given everything else: movie j holding f reads h_j v_f (h_j = 1/|G(j)|), so rating n
    of such a movie is r_n = rest_n + (h_j P_i) · v_f + noise of precision α w_n: a regression
    with design rows h_j P_i. With z = 0 and the hyperparameters fixed, each side row (drawn in
    turn) is its posterior mean given the state it was drawn in."""
    c, _ = hybrid_chain()
    F, hV = c.F, hypers(c.F, 11)
    monkeypatch.setattr(bayes_hybrid, "hyperparameters", lambda table, prior, rng: hV)
    before = copy.deepcopy(c)
    after = copy.deepcopy(c)
    after.rng = Means()                                            # z = 0: the mean
    H, g = after.rows_step(after.Wm, after.Q, after.P, after.by_movie, after.users, after.e, after.w,
                           hypers(F + 1, 12), np.zeros((9, F + 1)), after.alpha)
    after.bags_step(after.X, after.Q, H, g, after.t, after.movie_holders, hypers(F, 13),
                    np.zeros((7, F)), after.alpha)
    state = copy.deepcopy(after)                                   # rows and bag rows drawn
    after.more_bags("movie", H, g)
    V_new, (off, ids) = after.side["movie"][0], MOVIE_SIDE
    for f in range(4):
        state.side["movie"][0][:f] = V_new[:f]                      # drawn already
        _, Q = vectors(state)
        holds = [j for j in range(9) if f in ids[off[j]:off[j + 1]]]
        n = np.flatnonzero(np.isin(before.movies, holds))
        i, j = before.users[n], before.movies[n]
        h = 1.0 / (off[j + 1] - off[j])
        X = h[:, None] * before.P[i]
        rest = (before.mu + before.Wu[i, F] + state.Wm[j, F] + before.b[before.groups[n]]
                + np.einsum("nf,nf->n", before.P[i], Q[j]) - X @ state.side["movie"][0][f])
        mean, _ = regression(X, before.y[n] - rest, before.w[n], before.alpha, *hV)
        np.testing.assert_allclose(V_new[f], mean, **TOL, err_msg=f"movie feature {f}")


def test_the_hybrid_chain_is_the_same_on_numpy_and_numba():
    """As tests/test_bayes_flipped.py's chain test: float64 sums in another order, κ < 1e3."""
    pytest.importorskip("numba")
    (a, _), (b, _) = hybrid_chain(sweeps=5), hybrid_chain(sweeps=5, backend="numba")
    for name in ("Wu", "Wm", "Y", "X", "P", "Q", "e", "b"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-9, err_msg=name)
    for side in ("user", "movie"):
        np.testing.assert_allclose(a.side[side][0], b.side[side][0], rtol=1e-9, atol=1e-9, err_msg=side)


def test_the_model_is_the_chains_posterior_mean_and_saves_and_loads(tmp_path):
    c, days = hybrid_chain(sweeps=0)
    users, movies, y = c.users, c.movies, c.y
    model = BayesHybrid(7, 9, rank=3, samples=6, burn_in=2, thin=2, user_noise=4.0, seed=1,
                        movie_side=MOVIE_SIDE, user_side=USER_SIDE, movie_features=list("abcd"),
                        user_features=["x", "y"], backend="numpy")
    c.w[:] = 1.0
    model.fit([users, movies, days], y, verbose=0)
    kept = []
    for s in range(6):
        c.sweep()
        if s in (2, 4):
            kept.append(c.predict(users, movies, days))
    # float32 held model: 2F + 4 terms of size < 10 each, rounding below 10 · 10 · 6e-8
    np.testing.assert_allclose(model.predict([users, movies, days]), np.clip(np.mean(kept, axis=0), 1, 5), atol=6e-6)
    path = tmp_path / "hybrid.npz"
    model.save_weights(path)
    loaded = model_from_weights(path)
    assert type(loaded) is BayesHybrid and loaded.config() == model.config()
    np.testing.assert_array_equal(loaded.predict([users, movies, days]), model.predict([users, movies, days]))


def test_it_refuses_to_fit_without_side_bags_or_with_bags_that_do_not_fit():
    users, movies, y = data()
    days = np.full(len(y), 17000)
    with pytest.raises(ValueError, match="needs the side bags"):
        BayesHybrid(7, 9, samples=2, burn_in=0, backend="numpy").fit([users, movies, days], y, verbose=0)
    with pytest.raises(ValueError, match="movie_side: 9 bags for 9 rows, ids in \\[0, 3\\] for 3 features"):
        BayesHybrid(7, 9, samples=2, burn_in=0, movie_side=MOVIE_SIDE, movie_features=list("abc"),
                    user_side=USER_SIDE, user_features=["x", "y"], backend="numpy").fit([users, movies, days], y, verbose=0)
    with pytest.raises(ValueError, match="user_side: 6 bags for 7 rows"):
        BayesHybrid(7, 9, samples=2, burn_in=0, movie_side=MOVIE_SIDE, movie_features=list("abcd"),
                    user_side=(USER_SIDE[0][:-1], USER_SIDE[1][:5]), user_features=["x", "y"],
                    backend="numpy").fit([users, movies, days], y, verbose=0)
    twice = (MOVIE_SIDE[0], np.array([0, 0, 1, 1, 0, 0, 2, 1, 2, 3]))   # movie 3's bag: 0, 0
    with pytest.raises(ValueError, match="movie_side: the bag of row 3 holds feature 0 more than once"):
        BayesHybrid(7, 9, samples=2, burn_in=0, movie_side=twice, movie_features=list("abcd"),
                    user_side=USER_SIDE, user_features=["x", "y"], backend="numpy").fit([users, movies, days], y, verbose=0)
