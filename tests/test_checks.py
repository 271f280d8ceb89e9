"""Inputs are checked at the door, on every backend: each bad value gets an error that names it,
and nothing reaches a kernel that could crash the process or read out of bounds."""
import numpy as np
import pytest

from minirec import Adam, DotProduct, DotProductBias, NeuralNet


def model(backend, **kw):
    return DotProductBias(4, 5, n_factors=2, seed=0, backend=backend, **kw).compile(Adam())


X = [np.array([0, 1, 2]), np.array([0, 1, 4])]
Y = np.array([1.0, 2.0, 3.0])


@pytest.mark.parametrize("x, y, message", [
    ([np.array([0, 1]), np.array([0, 1, 4])], Y, "2 users but 3 movies"),
    (X, np.array([1.0, 2.0]), "3 .* pairs but 2 ratings"),
    (X, np.ones((3, 1)), "1-D"),
    (X, np.array([1.0, np.nan, 3.0]), "rating 1 is nan"),
    (X, np.array([1.0, np.inf, 3.0]), "rating 1 is inf"),
    ([np.array([0, 1, 4]), X[1]], Y, "unknown user index 4"),
    ([X[0], np.array([0, -1, 0])], Y, "unknown movie index -1"),
    ([np.array([0.0, 1.9, 2.0]), X[1]], Y, "whole-number indices, got 1.9"),
    ([X[0]], Y, "pair"),
])
def test_fit_refuses_bad_data_naming_it(backend, x, y, message):
    m = model(backend)
    with pytest.raises((ValueError, KeyError), match=message):
        m.fit(x, y, verbose=0)
    assert m.optimizer.iterations == 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "batch_size must be >= 1, got 0"),
    (dict(batch_size=2.5), "batch_size must be a whole number, got 2.5"),
    (dict(batch_size=True), "batch_size must be a whole number"),
    (dict(epochs=-3), "epochs must be >= 0, got -3"),
    (dict(epochs=1.5), "epochs must be a whole number"),
])
def test_fit_refuses_bad_settings_naming_them(backend, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model(backend).fit(X, Y, verbose=0, **kwargs)


@pytest.mark.parametrize("lr", [0, -1e-3, float("nan"), float("inf")])
def test_a_learning_rate_set_between_fits_is_checked_too(backend, lr):
    m = model(backend)
    m.optimizer.lr = lr
    with pytest.raises(ValueError, match="learning rate"):
        m.fit(X, Y, verbose=0)
    with pytest.raises(ValueError, match="lr_max"):
        m.fit_one_cycle(X, Y, 1, lr)


@pytest.mark.parametrize("make, message", [
    (lambda b: DotProduct(3, 3, n_factors=0, backend=b), "n_factors must be >= 1, got 0"),
    (lambda b: DotProduct(0, 3, backend=b), "n_users must be >= 1"),
    (lambda b: DotProduct(3, 3, n_factors=2.5, backend=b), "n_factors must be a whole number"),
    (lambda b: DotProduct(3, 3, l2=-1, backend=b), "l2 must be"),
    (lambda b: DotProductBias(3, 3, y_range=(5, 0), backend=b), "lo < hi"),
    (lambda b: NeuralNet(3, 3, hidden=0, backend=b), "hidden must be >= 1"),
    (lambda b: NeuralNet(3, 3, dropout=(1.0, 0.1), backend=b), r"dropout must be a number in \[0, 1\)"),
    (lambda b: DotProduct(3, 3, dtype=np.int32, backend=b), "float32 or float64"),
])
def test_constructors_refuse_bad_shapes_naming_them(backend, make, message):
    with pytest.raises(ValueError, match=message):
        make(backend)


def test_predict_and_evaluate_check_their_inputs(backend):
    m = model(backend)
    with pytest.raises(KeyError, match="unknown movie index 5"):
        m.predict([np.array([0]), np.array([5])])
    with pytest.raises(ValueError, match="2 users but 1 movies"):
        m.predict([np.array([0, 1]), np.array([1])])
    with pytest.raises(ValueError, match="empty"):
        m.evaluate([np.array([], int), np.array([], int)], np.array([]))
    assert m.evaluate(X, Y) > 0


def test_many_more_ratings_than_pairs_train_safely(backend):
    """2 users x 2 movies, 5,000 ratings: every id repeats hundreds of times in an epoch and
    dozens of times in a batch (this once crashed the Numba kernel)."""
    rng = np.random.default_rng(0)
    users, movies = rng.integers(0, 2, 5000), rng.integers(0, 2, 5000)
    for lazy in (False, True):
        m = DotProductBias(2, 2, n_factors=1, seed=0, backend=backend).compile(Adam(0.01, lazy=lazy))
        hist = m.fit([users, movies], rng.integers(1, 6, 5000).astype(float), batch_size=500,
                     epochs=2, verbose=0)
        assert np.isfinite(hist.history["loss"]).all()
