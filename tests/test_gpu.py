"""CuPy against NumPy: forward, backward, optimiser steps, device moves and analysis.

Marked ``gpu``: these run where CuPy imports and sees a CUDA device, and skip with the reason
everywhere else (CI has no GPU). ``benchmarks/gpu_check.py`` runs them on a lent machine.
"""
import numpy as np
import pytest

from minirec import Adam, DotProduct, DotProductBias, NeuralNet
from minirec.backend import cupy_available, to_numpy

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device")]

CASES = [(DotProduct, {}), (DotProductBias, {}), (DotProductBias, {"y_range": (0.0, 5.5)}),
         (NeuralNet, {"dropout": (0.0, 0.0)}), (NeuralNet, {"y_range": (0.0, 5.5), "dropout": (0.0, 0.0)})]
ids = lambda c: getattr(c, "__name__", str(c))


def data(n=3000, U=50, M=70, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, U, n), rng.integers(0, M, n), rng.integers(1, 11, n) / 2


def rel_diff(a, b):
    a, b = to_numpy(a), to_numpy(b)
    return float(np.max(np.abs(a - b)) / max(1e-30, float(np.max(np.abs(a)))))


@pytest.mark.parametrize("cls, kwargs", CASES, ids=ids)
def test_forward_and_backward_match_numpy(cls, kwargs):
    users, movies, y = data(200)
    cpu = cls(50, 70, n_factors=6, dtype=np.float64, seed=3, backend="numpy", **kwargs)
    gpu = cls(50, 70, n_factors=6, dtype=np.float64, seed=3, backend="cupy", **kwargs)
    loss_c, grads_c = cpu.loss_and_grads([users, movies], y)
    loss_g, grads_g = gpu.loss_and_grads([users, movies], y)
    assert abs(loss_c - loss_g) <= 1e-12 * abs(loss_c)
    for name in grads_c:
        assert type(grads_g[name]).__module__.startswith("cupy")
        assert rel_diff(grads_c[name], grads_g[name]) < 1e-9, name


@pytest.mark.parametrize("lazy", [False, True], ids=["dense", "lazy"])
@pytest.mark.parametrize("cls, kwargs", CASES, ids=ids)
def test_optimiser_steps_match_numpy(cls, kwargs, lazy):
    users, movies, y = data()
    models = []
    for backend in ("numpy", "cupy"):
        model = cls(50, 70, n_factors=6, dtype=np.float64, seed=3, backend=backend, **kwargs)
        model.compile(Adam(0.01, lazy=lazy, weight_decay=0.01))
        # shuffle=False: the GPU draws its own permutation (see training.epoch_order)
        model.fit([users, movies], y, batch_size=32, epochs=2, shuffle=False, verbose=0)
        models.append(model)
    for name, p in models[0].params.items():
        assert rel_diff(p, models[1].params[name]) < 1e-9, name
    assert rel_diff(models[0].predict([users, movies]), models[1].predict([users, movies])) < 1e-9


def test_gpu_training_is_reproducible_and_dropout_drops():
    users, movies, y = data()
    weights = []
    for _ in range(2):  # float64: atomic adds may sum in any order, so not bit for bit
        model = NeuralNet(50, 70, n_factors=6, seed=4, dtype=np.float64, backend="cupy")
        model.compile(Adam(0.01)).fit([users, movies], y, batch_size=32, epochs=1, verbose=0)
        weights.append(to_numpy(model.params["dense_1.W"]))
    assert rel_diff(weights[0], weights[1]) < 1e-9
    import cupy
    out = model.drop_2.forward(cupy.ones((2000, 50)), training=True)
    assert abs(float((out == 0).mean()) - 0.75) < 0.02


def test_a_nan_on_the_gpu_stops_before_the_update():
    from minirec import TrainingDiverged
    users, movies, y = data(640)
    y = y.astype(np.float64)
    y[200] = np.nan
    for lazy in (False, True):
        model = DotProductBias(50, 70, n_factors=4, seed=0, backend="cupy").compile(Adam(0.01, lazy=lazy))
        with pytest.raises(TrainingDiverged, match=r"epoch 1, batch 4\b"):
            model.fit([users, movies], y, batch_size=64, shuffle=False, verbose=0)
        assert all(np.isfinite(to_numpy(p)).all() for p in model.params.values())
        assert model.optimizer.iterations == 3


def test_weights_move_between_devices_and_files(tmp_path):
    users, movies, y = data()
    model = DotProductBias(50, 70, n_factors=6, seed=1, backend="cupy").compile(Adam(0.01))
    model.fit([users, movies], y, epochs=1, verbose=0)
    on_gpu = model.predict([users, movies])
    model.save_weights(tmp_path / "w.npz")
    cpu = DotProductBias(50, 70, n_factors=6, backend="numpy").load_weights(tmp_path / "w.npz")
    np.testing.assert_allclose(cpu.predict([users, movies]), on_gpu, rtol=1e-6)
    model.to("cpu")
    assert isinstance(model.params["user_embedding.W"], np.ndarray)
    np.testing.assert_allclose(model.predict([users, movies]), on_gpu, rtol=1e-6)
    model.fit([users, movies], y, epochs=1, verbose=0)  # the optimiser state moved too
    model.to("gpu")
    assert type(model.params["user_embedding.W"]).__module__.startswith("cupy")


def test_analysis_helpers_on_cupy_arrays():
    from minirec.analysis import pca, similar_movies
    from minirec.synthetic import synthetic_movielens
    import cupy
    X = np.random.default_rng(0).standard_normal((300, 8))
    a, b = pca(X, 3), pca(cupy.asarray(X), 3)
    np.testing.assert_allclose(a.components, b.components, atol=1e-9)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-9)
    ds = synthetic_movielens(40, 60, 2000, seed=1)
    cpu = DotProduct(ds.n_users, ds.n_movies, n_factors=4, seed=2, dtype=np.float64, backend="numpy")
    gpu = DotProduct(ds.n_users, ds.n_movies, n_factors=4, seed=2, dtype=np.float64, backend="cupy")
    assert [j for j, _ in similar_movies(cpu, 0, 5)] == [j for j, _ in similar_movies(gpu, 0, 5)]
