"""Gibbs sampling (models/bpmf.py): each conditional against its closed form, draws against the
distribution they come from, NumPy against Numba, and the refusals that name the piece."""
import numpy as np
import pytest

import tolerances as tol
from minirec import BPMF, DotProductBias, NeuralNet, SVDpp
from minirec.backend import to_numpy
from minirec.data.movielens import Ratings
from minirec.models.bpmf import BiasedMF, hyperparameters, row_posteriors, sample, wishart, Prior
from minirec.models.saved import model_from_weights


def data(n=300, U=8, M=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, U, n), rng.integers(0, M, n), rng.integers(1, 6, n).astype(np.float64)


def test_a_rows_conditional_is_the_bayesian_linear_regression_by_hand():
    """User row i's posterior given the movie tables: ratings r_n = c_n + m_{j_n} · u_i + noise,
    prior N(μ, Λ⁻¹): precision Λ + α Σ m mᵀ, mean (Λ+αΣ m mᵀ)⁻¹(Λμ + α Σ m (r - c)), with
    c_n = μ0 + b_i + b_j — written out here with the movie rows as the design matrix."""
    users, movies, y = data()
    model = BiasedMF(8, 10, 3, 3.0, seed=1, backend="numpy")
    alpha, mu, Lam = 1.7, np.array([0.1, -0.2, 0.05]), np.diag([2.0, 3.0, 4.0])
    precisions, means = row_posteriors(model, "user_embedding", model.user, users, movies, y,
                                       alpha, mu, Lam)
    P = model.params
    for i in range(8):
        rows = users == i
        X = P["movie_embedding.W"][movies[rows]]
        c = 3.0 + P["user_bias.W"][i, 0] + P["movie_bias.W"][movies[rows], 0]
        A = Lam + alpha * X.T @ X
        n = int(rows.sum())
        # A sums n outer products and Λ: n + 2 roundings of |Λ| + α|X|ᵀ|X| (tolerances.py)
        size_A = np.abs(Lam) + alpha * np.abs(X).T @ np.abs(X)
        assert np.all(np.abs(precisions[i] - A) <= tol.rounding(n + 2) * size_A)
        # the mean solves A m = b: within κ(A) times the relative errors of A (its sums and the
        # solve's backward error) and of b (n + 3 roundings of its terms' magnitudes)
        b = Lam @ mu + alpha * X.T @ (y[rows] - c)
        size_b = np.abs(Lam) @ np.abs(mu) + alpha * np.abs(X).T @ np.abs(y[rows] - c)
        expected = np.linalg.solve(A, b)
        rel = np.linalg.cond(A) * (tol.rounding(n + 2) * np.linalg.norm(size_A, 2) / np.linalg.norm(A, 2)
                                   + 2 * tol.backward_stable(3, 3)
                                   + tol.rounding(n + 3) * np.linalg.norm(size_b) / np.linalg.norm(b))
        assert np.linalg.norm(means[i] - expected) <= 2 * rel * np.linalg.norm(expected)


def test_draws_follow_their_distributions():
    rng = np.random.default_rng(0)
    scale = np.array([[1.0, 0.3], [0.3, 0.5]])
    draws = np.array([wishart(rng, 7, scale) for _ in range(20_000)])
    # E[W] = df · scale; Var W_ij = df (s_ij² + s_ii s_jj): over 20,000 draws 0.03 is at least
    # 4.4 standard errors of each entry's mean (the off-diagonal's)
    np.testing.assert_allclose(draws.mean(axis=0), 7 * scale, rtol=0.03)
    W = rng.standard_normal((500, 2)) @ np.array([[1.0, 0.0], [0.5, 0.7]]) + [2.0, -1.0]
    mus = np.array([hyperparameters(W, Prior(), rng)[0] for _ in range(2000)])
    np.testing.assert_allclose(mus.mean(axis=0), W.mean(axis=0) * 500 / 502, atol=0.02)


def test_the_chain_is_the_same_on_every_backend(fast_backend):
    users, movies, y = data()
    kept = []
    for backend in ("numpy", fast_backend):
        model = BiasedMF(8, 10, 3, 3.0, seed=2, backend=backend)
        kept.append(sample(model, [users, movies], y, samples=6, burn_in=2, seed=5))
    # Exact: the backends share every line of the chain but ops.scatter_add, and numba_ops'
    # loop adds in index order, as np.add.at does — the same sums in the same order
    for a, b in zip(*kept):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("make, fragment", [
    (lambda: DotProductBias(8, 10, n_factors=2, y_range=(0, 5.5), dtype=np.float64, backend="numpy"),
     "not linear in user_embedding's"),
    (lambda: NeuralNet(8, 10, n_factors=2, hidden=3, dtype=np.float64, backend="numpy"),
     "layer 'dense_1' is a Dense"),
    (lambda: SVDpp(8, 10, n_factors=2, dtype=np.float64, backend="numpy"), "layer 'implicit' is a EmbeddingBag"),
])
def test_models_gibbs_cannot_draw_are_refused_by_name(make, fragment):
    users, movies, y = data()
    with pytest.raises(ValueError, match=fragment):
        sample(make(), [users, movies], y, samples=2, burn_in=0)


def test_bpmf_is_the_posterior_mean_saves_and_loads(tmp_path):
    users, movies, y = data(600)
    train = Ratings(users[:500], movies[:500], y[:500])
    model = BPMF(8, 10, rank=2, samples=12, burn_in=4, thin=2, seed=3, backend="numpy")
    model.fit(train.x, train.y, verbose=0)
    assert model.n_factors == 2 * 4  # four draws kept (sweeps 4, 6, 8, 10), side by side
    chain = BiasedMF(8, 10, 2, float(np.mean(train.y)), seed=3, backend="numpy")
    draws = sample(chain, train.x, train.y, samples=12, burn_in=4, thin=2, seed=3)
    expected = []
    for d in draws:
        chain.set_params(d)
        expected.append(chain.predict([users, movies]))
    # BPMF holds the draws in float32 (one rounding each, the scale 1/√4 exact) and sums their
    # 2·4 products and two biases there; the mean of the float64 draws is far closer. Clipping
    # moves no two numbers further apart. Against each prediction's Σ|terms|:
    P = {k: to_numpy(v).astype(np.float64) for k, v in model.params.items()}
    size = (np.abs(P["user_embedding.W"][users] * P["movie_embedding.W"][movies]).sum(axis=1)
            + np.abs(P["user_bias.W"][users, 0]) + np.abs(P["movie_bias.W"][movies, 0]))
    allowed = tol.rounding(3 + 2 * 4 + 4, np.float32) * size
    assert np.all(np.abs(model.predict([users, movies]) - np.clip(np.mean(expected, axis=0), 1, 5))
                  <= allowed)
    model.save_weights(tmp_path / "b.npz")
    back = model_from_weights(tmp_path / "b.npz", backend="numpy")
    np.testing.assert_array_equal(back.predict([users, movies]), model.predict([users, movies]))
