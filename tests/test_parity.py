"""The fused Numba kernels against the NumPy reference: same seed, same batches, same numbers.

For each model and Adam mode, a few hundred batches on both backends must end with the same
weights (relative difference below 1e-9 in float64, 1e-4 in float32), the same predictions and
the same reported losses.
"""
import numpy as np
import pytest

from minirec import Adam, DotProduct, DotProductBias, NeuralNet, TrainingDiverged

pytest.importorskip("numba", reason="the numba backend needs the numba package")

CASES = [
    (DotProduct, {}),
    (DotProductBias, {}),
    (DotProductBias, {"y_range": (0.0, 5.5)}),
    (NeuralNet, {}),
    (NeuralNet, {"y_range": (0.0, 5.5)}),
]
TOLERANCE = {np.float64: 1e-9, np.float32: 1e-4}


def data(n=4000, U=60, M=90, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, U, n), rng.integers(0, M, n), rng.integers(1, 11, n) / 2


def rel_diff(a, b):
    return float(np.max(np.abs(a - b)) / max(1e-30, float(np.max(np.abs(a)))))


def train(backend, cls, kwargs, dtype, lazy, weight_decay=0.01, one_cycle=False, epochs=2):
    users, movies, y = data()
    model = cls(60, 90, n_factors=6, dtype=dtype, seed=5, backend=backend, **kwargs)
    model.compile(Adam(0.01, lazy=lazy, weight_decay=weight_decay))
    x, val = [users[:3200], movies[:3200]], ([users[3200:], movies[3200:]], y[3200:])
    if one_cycle:
        hist = model.fit_one_cycle(x, y[:3200], 2, 0.01, batch_size=16, validation_data=val, verbose=0)
    else:  # epochs of 200 batches, then a changed learning rate for one more
        hist = model.fit(x, y[:3200], batch_size=16, epochs=epochs, validation_data=val, verbose=0)
        model.optimizer.lr = 0.003
        hist.history["loss"] += model.fit(x, y[:3200], batch_size=16, epochs=1, verbose=0).history["loss"]
    return model, hist


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("lazy", [False, True], ids=["dense", "lazy"])
@pytest.mark.parametrize("cls, kwargs", CASES, ids=lambda c: getattr(c, "__name__", str(c)))
def test_numba_matches_numpy(cls, kwargs, lazy, dtype):
    # 600 batches; 400 for the float32 neural net: a hidden unit whose pre-activation lies
    # within float32 rounding of 0 may fall on the other side of the ReLU on one backend (BLAS
    # and the kernel sum in different orders), and Adam then carries that one different
    # gradient on (one run measured 1.6e-5 after 200 batches, 2e-4 after 400 at lr 0.01).
    epochs = 1 if (cls is NeuralNet and dtype is np.float32) else 2
    ref, ref_hist = train("numpy", cls, kwargs, dtype, lazy, epochs=epochs)
    fast, fast_hist = train("numba", cls, kwargs, dtype, lazy, epochs=epochs)
    tol = TOLERANCE[dtype]
    for name, p in ref.params.items():
        assert fast.params[name].dtype == p.dtype
        assert rel_diff(p, fast.params[name]) < tol, name
    users, movies, _ = data(seed=1)
    assert rel_diff(ref.predict([users, movies]), fast.predict([users, movies])) < tol
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(fast_hist.history[key], ref_hist.history[key], rtol=tol)
    assert fast.optimizer.iterations == ref.optimizer.iterations == 200 * (epochs + 1)


@pytest.mark.parametrize("lazy", [False, True], ids=["dense", "lazy"])
def test_one_cycle_and_weight_decay_match_too(lazy):
    ref, _ = train("numpy", DotProductBias, {"y_range": (0, 5.5)}, np.float64, lazy, 0.1, True)
    fast, _ = train("numba", DotProductBias, {"y_range": (0, 5.5)}, np.float64, lazy, 0.1, True)
    for name, p in ref.params.items():
        assert rel_diff(p, fast.params[name]) < 1e-9, name


def test_balanced_lazy_l2_differs_from_plain_lazy_l2():
    """The balanced penalty must really change training (else it would be a no-op)."""
    users, movies, y = data()
    weights = []
    for lazy_l2 in ("balanced", "seen"):
        model = DotProduct(60, 90, n_factors=6, l2=0.01, seed=5, backend="numba", dtype=np.float64)
        model.compile(Adam(0.01, lazy=True, lazy_l2=lazy_l2))
        model.fit([users, movies], y, batch_size=16, epochs=1, verbose=0)
        weights.append(model.params["movie_embedding.W"].copy())
    # rarely-seen rows are penalised harder, so they end up smaller
    assert np.abs(weights[0]).sum() < np.abs(weights[1]).sum()


def test_numba_stops_on_nan_before_the_update():
    users, movies, y = data(640)
    y = y.astype(np.float64)
    y[200] = np.nan
    model = DotProductBias(60, 90, n_factors=4, seed=0, backend="numba").compile(Adam(0.01))
    with pytest.raises(TrainingDiverged, match=r"epoch 1, batch 4\b"):
        model.fit([users, movies], y, batch_size=64, shuffle=False, verbose=0)
    assert all(np.isfinite(p).all() for p in model.params.values())
    assert model.optimizer.iterations == 3
