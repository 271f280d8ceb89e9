"""The tools fastai and Keras users reach for: loss curves, the learning-rate finder, and
recommendations judged by ranking metrics."""
import numpy as np
import pytest

import tolerances as tol

from minirec import Adam, DotProduct, DotProductBias
from minirec.backend import to_numpy
from minirec.tools.analysis import ranking_metrics
from minirec.data.movielens import Ratings
from minirec.data.synthetic import synthetic_movielens


def toy(n=3000, seed=0):
    ds = synthetic_movielens(60, 80, n, seed=seed)
    return ds, *ds.split(0.8, seed=1)


# ----- loss curves -------------------------------------------------------------------------------

def test_histories_of_several_fits_join_with_their_rates():
    ds, train, valid = toy()
    model = DotProductBias(ds.n_users, ds.n_movies, n_factors=4, seed=0, backend="numpy")
    model.compile(Adam(0.01))
    history = model.fit(train.x, train.y, epochs=2, validation_data=(valid.x, valid.y), verbose=0)
    assert history.batch_lr == []  # no schedule ran
    cycle = model.fit_one_cycle(train.x, train.y, 3, 0.01, validation_data=(valid.x, valid.y), verbose=0)
    n_batches = -(-len(train) // 64)
    assert len(cycle.batch_lr) == 3 * n_batches and max(cycle.batch_lr) == pytest.approx(0.01)
    history.extend(cycle)
    assert history.epoch == [1, 2, 3, 4, 5] and history.stage_ends == [2, 5]
    assert len(history.history["val_loss"]) == 5 and history.history["val_loss"][2:] == cycle.history["val_loss"]


def test_history_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need matplotlib (the plot extra)")
    ds, train, valid = toy()
    model = DotProduct(ds.n_users, ds.n_movies, n_factors=3, seed=0, backend="numpy").compile(Adam(0.01))
    history = model.fit_one_cycle(train.x, train.y, 2, 0.01, validation_data=(valid.x, valid.y), verbose=0)
    path = history.plot(tmp_path / "loss.png")
    data = (tmp_path / "loss.png").read_bytes()
    assert path.endswith("loss.png") and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


# ----- the learning-rate finder ----------------------------------------------------------------------

def test_lr_find_sweeps_exponentially_stops_on_blow_up_and_leaves_the_model_alone(backend):
    ds, train, _ = toy(6000)
    model = DotProductBias(ds.n_users, ds.n_movies, n_factors=4, seed=0, backend=backend)
    model.compile(Adam(0.003)).fit(train.x, train.y, epochs=1, verbose=0)
    before = {k: to_numpy(v).copy() for k, v in model.params.items()}
    state = {k: {s: to_numpy(a).copy() for s, a in v.items()} for k, v in model.optimizer.state.items()}
    steps, shuffle = model.optimizer.iterations, model.shuffle_rng.bit_generator.state
    finder = model.lr_find(train.x, train.y, num_it=60, batch_size=32)
    ratios = np.array(finder.lrs[1:]) / np.array(finder.lrs[:-1])
    # exponential growth: a rate is start·x^(i/59) with x = 1e8; its exponent's rounding comes
    # out multiplied by ln x (about 18), the power is within a few ulp; two rates per ratio,
    # and the expected ratio's own power
    np.testing.assert_allclose(ratios, (10 / 1e-7) ** (1 / 59), rtol=tol.rounding(3 * (19 + 6)), atol=0)
    assert finder.lrs[0] == pytest.approx(1e-7) and len(finder.lrs) < 60  # it blew up and stopped
    assert finder.losses[-1] > 4 * min(finder.losses) or not np.isfinite(finder.raw_losses[-1])
    assert finder.suggestion == pytest.approx(finder.lrs[int(np.argmin(finder.losses))] / 10)
    for k, v in before.items():
        np.testing.assert_array_equal(to_numpy(model.params[k]), v)
    for k, v in state.items():
        for s, a in v.items():
            np.testing.assert_array_equal(to_numpy(model.optimizer.state[k][s]), a)
    assert model.optimizer.iterations == steps and model.optimizer.lr == 0.003
    assert model.shuffle_rng.bit_generator.state == shuffle


def test_lr_find_smooths_with_a_bias_corrected_moving_average():
    ds, train, _ = toy()
    model = DotProduct(ds.n_users, ds.n_movies, n_factors=3, seed=0, backend="numpy").compile(Adam())
    finder = model.lr_find(train.x, train.y, num_it=30, end_lr=1e-3)
    average, expected = 0.0, []
    for i, loss in enumerate(finder.raw_losses):
        average = 0.98 * average + 0.02 * loss
        expected.append(average / (1 - 0.98 ** (i + 1)))
    # the same average written with 0.02 for 1 - 0.98 (an ulp apart): each step's difference
    # of rounding(4) of the loss, damped by β, adds up to at most rounding(4)·max loss/(1 - β)
    allowed = tol.rounding(4) * max(finder.raw_losses) / (1 - 0.98)
    assert np.all(np.abs(np.array(finder.losses) - expected) <= allowed)
    assert finder.losses[0] == pytest.approx(finder.raw_losses[0])


def test_lr_find_plot(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need matplotlib (the plot extra)")
    ds, train, _ = toy()
    model = DotProduct(ds.n_users, ds.n_movies, n_factors=3, seed=0, backend="numpy").compile(Adam())
    assert model.lr_find(train.x, train.y, num_it=40).plot(tmp_path / "lr.png").endswith("lr.png")


# ----- recommendations judged as recommendations -------------------------------------------------------

def fixed_scores(n_users, n_movies, scores):
    """A bias-only model whose predictions for every user are ``scores`` (by movie)."""
    model = DotProductBias(n_users, n_movies, n_factors=1, dtype=np.float64, backend="numpy")
    model.params["user_embedding.W"][:] = 0
    model.params["user_bias.W"][:] = 0
    model.params["movie_bias.W"][:, 0] = scores
    return model


def test_ranking_metrics_by_hand():
    """5 movies scored 5 > 4 > 3 > 2 > 1 for everyone. User 0 rated movie 0 in training (so the
    list starts at movie 1) and holds out movies 1 (rating 5), 3 (4) and 4 (2): relevant are 1
    and 3. At k = 2 the list is [1, 2]: precision 1/2, recall 1/2, NDCG = 1 / (1 + 1/log2(3)).
    User 1 holds out only movie 2 at 3 stars: nothing relevant, so user 1 is not counted."""
    train = Ratings(np.array([0, 1]), np.array([0, 0]), np.array([3.0, 3.0]))
    test = Ratings(np.array([0, 0, 0, 1]), np.array([1, 3, 4, 2]), np.array([5.0, 4.0, 2.0, 3.0]))
    model = fixed_scores(2, 5, [5, 4, 3, 2, 1])
    r = ranking_metrics(model, train, test, 5, k=2)
    assert r["users"] == 1
    assert r["precision"] == pytest.approx(0.5) and r["recall"] == pytest.approx(0.5)
    assert r["ndcg"] == pytest.approx(1 / (1 + 1 / np.log2(3)))
    r3 = ranking_metrics(model, train, test, 5, k=3)  # [1, 2, 3]: both relevant found
    assert r3["recall"] == pytest.approx(1.0) and r3["precision"] == pytest.approx(2 / 3)
    assert r3["ndcg"] == pytest.approx((1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3)))


def test_the_popularity_baseline_ranks_by_training_counts():
    """Movie 4 is the most rated in training, then movie 3; user 2 rated neither."""
    train = Ratings(np.array([0, 1, 0, 1, 3]), np.array([4, 4, 3, 3, 4]), np.ones(5))
    test = Ratings(np.array([2, 2]), np.array([3, 0]), np.array([5.0, 5.0]))
    r = ranking_metrics(None, train, test, 5, k=1)
    assert r["users"] == 1 and r["precision"] == 0.0  # the top pick is movie 4, not relevant
    assert ranking_metrics(None, train, test, 5, k=2)["precision"] == pytest.approx(0.5)
