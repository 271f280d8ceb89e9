"""Gibbs sampling (models/bpmf.py): each conditional against its closed form, draws against the
distribution they come from, NumPy against Numba, and the refusals that name the piece."""
import numpy as np
import pytest

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
        np.testing.assert_allclose(precisions[i], A, rtol=1e-12)
        np.testing.assert_allclose(means[i], np.linalg.solve(A, Lam @ mu + alpha * X.T @ (y[rows] - c)),
                                   rtol=1e-10, atol=1e-12)


def test_draws_follow_their_distributions():
    rng = np.random.default_rng(0)
    scale = np.array([[1.0, 0.3], [0.3, 0.5]])
    draws = np.array([wishart(rng, 7, scale) for _ in range(20_000)])
    np.testing.assert_allclose(draws.mean(axis=0), 7 * scale, rtol=0.03)  # E[W] = df · scale
    W = rng.standard_normal((500, 2)) @ np.array([[1.0, 0.0], [0.5, 0.7]]) + [2.0, -1.0]
    mus = np.array([hyperparameters(W, Prior(), rng)[0] for _ in range(2000)])
    np.testing.assert_allclose(mus.mean(axis=0), W.mean(axis=0) * 500 / 502, atol=0.02)


def test_the_chain_is_the_same_on_every_backend(fast_backend):
    users, movies, y = data()
    kept = []
    for backend in ("numpy", fast_backend):
        model = BiasedMF(8, 10, 3, 3.0, seed=2, backend=backend)
        kept.append(sample(model, [users, movies], y, samples=6, burn_in=2, seed=5))
    for a, b in zip(*kept):
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-9, atol=1e-12, err_msg=name)


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
    np.testing.assert_allclose(model.predict([users, movies]),
                               np.clip(np.mean(expected, axis=0), 1, 5), rtol=1e-5, atol=1e-6)
    model.save_weights(tmp_path / "b.npz")
    back = model_from_weights(tmp_path / "b.npz", backend="numpy")
    np.testing.assert_array_equal(back.predict([users, movies]), model.predict([users, movies]))
