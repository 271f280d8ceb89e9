"""Mult-VAE and its pieces (``nn/variational.py``, ``models/multvae.py``): each piece against its
maths and central differences, the whole model's gradient, the same training on every backend,
saving and loading, and learning something a popularity list cannot. Data-free: tiny arrays and
a synthetic data set of three tastes."""
import numpy as np
import pytest

import minirec
from minirec.backend import to_numpy
from minirec.models.multvae import ELBO, MultVAE
from minirec.models.saved import model_from_weights
from minirec.models.svdpp import rated_by
from minirec.nn import gradcheck
from minirec.nn.layers import Dense
from minirec.nn.variational import (LogSoftmax, Reparameterise, SparseDense, UserRows,
                                    check_variational, kl_to_standard_normal, multinomial_nll)
from minirec.tools.analysis import ranking_metrics

BAGS = (np.array([0, 2, 2, 5, 6, 9]), np.array([2, 5, 0, 1, 2, 3, 0, 4, 5]))  # user 1: none


def tiny(backend="numpy", dtype=np.float64, **kw):
    settings = dict(n_factors=3, hidden=4, dropout=0.3, beta=0.7, l2=1e-2)
    settings.update(kw)
    return MultVAE(5, 6, bags=BAGS, dtype=dtype, seed=0, backend=backend, **settings)


# ----- the pieces -----------------------------------------------------------------------------

@pytest.mark.parametrize("label", list(check_variational()))
def test_every_piece_passes_its_gradient_check(label):
    assert check_variational()[label] < gradcheck.SMOOTH_BOUND


def test_user_rows_are_the_bags_as_zeros_and_ones():
    rows = UserRows(5, 6, BAGS)
    x = rows.forward(np.array([3, 1, 0, 3]))  # a repeated user, and one with no movie
    expected = np.zeros((4, 6))
    expected[0, 3] = expected[3, 3] = 1  # user 3 rated movie 3, user 0 movies 2 and 5
    expected[2, [2, 5]] = 1
    np.testing.assert_array_equal(x, expected)
    with pytest.raises(ValueError, match="one bag per user"):
        UserRows(4, 6, BAGS)


@pytest.mark.parametrize("training", [False, True], ids=["evaluation", "dropout"])
def test_sparse_dense_is_dense_on_the_normalised_dropped_row(training):
    """Liang et al.'s first layer written out whole: x / ||x||, inverted dropout on its entries
    (the mask read back from the kept movies), then Dense. Float64; the sums differ only in
    order (bound 1e-12 relative)."""
    rows = UserRows(5, 6, BAGS, np.float64)
    users = np.array([2, 1, 4, 2, 0])
    sparse = SparseDense(rows, 3, 0.4, np.random.default_rng(0), np.random.default_rng(1), np.float64)
    dense = Dense(6, 3, dtype=np.float64)
    dense.params["W"][...] = sparse.params["W"]
    dense.params["b"][...] = np.arange(3.0)
    sparse.params["b"][...] = np.arange(3.0)
    out = sparse.forward(users, training)
    x = rows.forward(users)
    norm = np.sqrt(x.sum(axis=1, keepdims=True))
    x = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)  # user 1's empty row stays 0
    if training:
        mask = np.zeros_like(x)
        mask[sparse.owner, sparse.movies] = 1 / (1 - 0.4)
        assert 0 < mask.astype(bool).sum() < (x > 0).sum()  # some entries dropped, some kept
        x = x * mask
    np.testing.assert_allclose(out, dense.forward(x), rtol=1e-12, atol=1e-15)


def test_log_softmax_is_a_distribution_and_never_overflows():
    a = np.array([[0.0, 1.0, 2.0], [1000.0, 1000.0, -1000.0]])
    logp = LogSoftmax().forward(a)
    assert np.all(np.isfinite(logp))
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, rtol=1e-15 * 8)
    np.testing.assert_allclose(logp[1], [np.log(0.5), np.log(0.5), -2000 - np.log(2)], rtol=1e-12)


def test_the_multinomial_loss_of_a_uniform_pi_is_log_m_per_rated_movie():
    x = np.array([[1.0, 0, 1, 1], [0, 1, 0, 0]])
    loss, _ = multinomial_nll(LogSoftmax().forward(np.zeros((2, 4))), x)
    assert loss == pytest.approx((3 + 1) / 2 * np.log(4), rel=1e-14)


def test_the_kl_term_is_zero_exactly_at_the_prior():
    kl, dmu, dlogvar = kl_to_standard_normal(np.zeros((3, 2)), np.zeros((3, 2)))
    assert kl == 0.0 and not dmu.any() and not dlogvar.any()
    mu, logvar = np.array([[1.0, 0.0]]), np.array([[0.0, np.log(2.0)]])
    # ½(σ² + μ² - 1 - log σ²) per dimension: ½·1 + ½(2 - 1 - log 2)
    assert kl_to_standard_normal(mu, logvar)[0] == pytest.approx(0.5 + 0.5 * (1 - np.log(2)))


def test_reparameterise_repeats_with_the_same_generator_state_and_is_mu_at_evaluation():
    mu, logvar = np.ones((2, 3)), np.zeros((2, 3))
    layer = Reparameterise(np.random.default_rng(5))
    first = layer.forward(mu, logvar)
    layer.rng = np.random.default_rng(5)
    np.testing.assert_array_equal(layer.forward(mu, logvar), first)
    assert not np.array_equal(layer.forward(mu, logvar), first)  # a fresh ε next time
    np.testing.assert_array_equal(layer.forward(mu, logvar, training=False), mu)
    dmu, dlogvar = layer.backward(np.ones((2, 3)))
    assert not dlogvar.any() and np.array_equal(dmu, np.ones((2, 3)))


# ----- the model ------------------------------------------------------------------------------

@pytest.mark.parametrize("anneal_steps", [0, 4], ids=["constant beta", "annealed beta"])
def test_the_whole_model_passes_the_gradient_check(anneal_steps):
    model = tiny(anneal_steps=anneal_steps)
    if anneal_steps:
        model.compile(minirec.Adam())
        model.optimizer.iterations = 3  # β = 0.7 · ... = min(0.7, 3/4): the KL term is on
        assert model.beta_now() == pytest.approx(0.7)
    for label, err in gradcheck.check_model(model, "MultVAE", gradcheck.SMOOTH_BOUND).items():
        assert err < gradcheck.SMOOTH_BOUND, label


def test_beta_grows_with_the_optimisers_steps():
    model = tiny(anneal_steps=10, beta=0.2)
    model.compile(minirec.Adam())
    seen = []
    for t in (0, 1, 2, 5, 50):
        model.optimizer.iterations = t
        seen.append(model.beta_now())
    assert seen == pytest.approx([0.0, 0.1, 0.2, 0.2, 0.2])


def test_the_elbo_objective_has_one_example_per_user_with_a_row():
    objective = ELBO(positive_at=4)
    u, m, y = objective.prepare(np.array([3, 0, 3, 2, 1]), np.array([0, 1, 2, 3, 4]),
                                np.array([5.0, 2.0, 4.0, 4.5, 1.0]), 6, None)
    assert u.tolist() == [2, 3] and len(m) == len(y) == 2
    assert objective.uniform_loss == pytest.approx(1.5 * np.log(6))
    with pytest.raises(ValueError, match="no training rating is 6 or more"):
        ELBO(positive_at=6).prepare(u, m, np.ones(2), 6, None)


def test_fit_makes_the_rows_from_its_training_pairs():
    model = MultVAE(4, 5, n_factors=2, hidden=3, positive_at=4, seed=0, backend="numpy")
    users, movies = np.array([0, 0, 1, 3, 3]), np.array([1, 4, 2, 0, 3])
    model.compile(minirec.Adam(1e-2))
    model.fit([users, movies], np.array([5.0, 4.0, 2.0, 4.0, 1.0]), batch_size=2, epochs=1,
              verbose=0)
    offsets, ids = (to_numpy(a) for a in model.rows.bags)
    assert offsets.tolist() == [0, 2, 2, 2, 3] and ids.tolist() == [1, 4, 0]


def test_it_refuses_other_losses_and_single_predictions_backward():
    model = tiny()
    with pytest.raises(ValueError, match="ELBO"):
        model.compile(minirec.Adam(), loss="mse")
    with pytest.raises(TypeError, match="whole user rows"):
        model.backward(np.ones(3))


def three_tastes():
    """Users of three tastes, each rating mostly movies of its own third (as in
    test_ranking_models.py): who rated what carries a signal popularity cannot see."""
    rng = np.random.default_rng(4)
    U, M, n = 120, 60, 3000
    users = rng.integers(0, U, n)
    own = rng.random(n) < 0.9
    group = np.where(own, users % 3, rng.integers(0, 3, n))
    movies = group * 20 + np.minimum(rng.geometric(0.1, n) - 1, 19)
    ds = minirec.MovieLens("tastes", users + 1, movies + 1, np.where(own, 5.0, 2.0))
    return ds, *ds.split(0.8, seed=0)


def trained(backend, dtype, epochs=3):
    ds, train, _ = three_tastes()
    model = MultVAE(ds.n_users, ds.n_movies, n_factors=4, hidden=8, dtype=dtype, seed=1,
                    backend=backend)
    model.compile(minirec.Adam(1e-2))
    model.fit(train.x, train.y, batch_size=16, epochs=epochs, verbose=0)
    return model


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_training_is_the_same_on_every_backend(fast_backend, dtype):
    """The layers are the same array code on every backend; the numba backend compiles the Adam
    step, the GPU its dropout and ε draws (other masks: compared only without dropout there).
    Bounds, relative to each weight array's largest entry after 3 epochs (24 Adam steps):
    float64 1e-9, only sums reordered; float32 1e-4 (ε 1.2e-7 times some hundred operations
    that may round differently per step), far below one Adam step of 1e-2."""
    if fast_backend == "cupy":
        pytest.skip("the GPU draws its own dropout masks and ε (so other numbers, draw for draw); "
                    "test_one_step_without_draws_is_the_same_on_every_backend covers its maths")
    reference, fast = trained("numpy", dtype), trained(fast_backend, dtype)
    tol = 1e-9 if dtype == np.float64 else 1e-4
    for name, p in reference.params.items():
        q = to_numpy(fast.params[name])
        assert np.max(np.abs(q - p)) <= tol * np.max(np.abs(p)), name


def test_one_step_without_draws_is_the_same_on_every_backend(fast_backend):
    """Loss and every gradient of one batch, no dropout and z = μ (nothing drawn), in float64:
    the same array code on every backend, so only the order of sums may differ (bound 1e-9)."""
    out = []
    for backend in ("numpy", fast_backend):
        model = tiny(backend)
        users = model.xp.asarray(np.array([0, 2, 3, 4]))
        loss = model.elbo(users, training=False)
        out.append((loss, {k: to_numpy(g) for k, g in model.grads.items()}))
    assert out[1][0] == pytest.approx(out[0][0], rel=1e-9)
    for name, g in out[0][1].items():
        assert np.max(np.abs(out[1][1][name] - g)) <= 1e-9 * np.max(np.abs(g)), name


def test_it_learns_the_tastes_better_than_popularity():
    ds, train, valid = three_tastes()
    model = trained("numpy", np.float64, epochs=40)
    mine = ranking_metrics(model, train, valid, ds.n_movies, k=10)["ndcg"]
    popular = ranking_metrics(None, train, valid, ds.n_movies, k=10)["ndcg"]
    assert mine > popular + 0.1, (mine, popular)


def test_save_and_load_give_the_same_scores_and_rows(tmp_path):
    ds, train, _ = three_tastes()
    model = trained("numpy", np.float32, epochs=2)
    path = model.save_weights(tmp_path / "vae.npz", data=ds, seed=0)
    back = model_from_weights(path, ds)
    assert isinstance(back, MultVAE) and back.objective.predicts == "scores"
    users = np.arange(ds.n_users)
    np.testing.assert_array_equal(back.score_rows(users), model.score_rows(users))
    pairs = [np.array([0, 5, 5]), np.array([3, 0, 7])]
    np.testing.assert_array_equal(back.predict(pairs), model.predict(pairs))


def test_remap_follows_a_new_order_of_users_and_movies():
    model = tiny(dtype=np.float64)
    before = model.score_rows(np.arange(5))
    users, movies = np.array([4, 2, 0, 1, 3]), np.array([5, 3, 1, 0, 2, 4])
    model.remap("user", users)
    model.remap("movie", movies)
    np.testing.assert_allclose(model.score_rows(np.arange(5)), before[users][:, movies], rtol=1e-12)


def test_rows_come_back_sorted_per_user():
    offsets, ids = rated_by(np.array([1, 0, 1, 1]), np.array([4, 2, 0, 4]), 3)
    assert offsets.tolist() == [0, 1, 3, 3] and ids.tolist() == [2, 0, 4]


def test_the_cli_trains_saves_and_evaluates_it(tmp_path, capsys):
    from minirec.data.synthetic import synthetic_movielens, write_release
    from minirec.tools.cli import main
    release = write_release(synthetic_movielens(40, 60, 3000, seed=2), tmp_path / "tiny")
    weights = tmp_path / "vae.npz"
    assert main(["train", "--model", "multvae", "--data", str(release), "--epochs", "2", "-q",
                 "--backend", "numpy", "--save", str(weights)]) == 0
    assert "multvae (elbo): validation NDCG@10" in capsys.readouterr().out
    assert main(["evaluate", "--weights", str(weights), "--data", str(release)]) == 0
    assert "MultVAE from" in capsys.readouterr().out
    assert main(["train", "--model", "multvae", "--loss", "bpr", "--data", str(release)]) == 2
    assert "drop --loss" in capsys.readouterr().err
