"""The Keras-shaped model surface: counts, seeds, dtypes, saving, bad input, divergence."""
import os

import numpy as np
import pytest

import tolerances as tol

from minirec import SGD, Adam, DotProduct, DotProductBias, NeuralNet, TrainingDiverged

MODELS = [DotProduct, DotProductBias, NeuralNet]


def toy(n=400, U=12, M=15, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, U, n), rng.integers(0, M, n), rng.integers(1, 11, n) / 2


@pytest.mark.parametrize("cls", MODELS)
def test_notebook_parameter_counts(cls, capsys):
    model = cls(671, 9066, backend="numpy", seed=0)
    assert model.params["user_embedding.W"].size == 33_550
    assert model.params["movie_embedding.W"].size == 453_300
    total = model.summary()
    out = capsys.readouterr().out
    assert "33,550" in out and "453,300" in out and f"{total:,}" in out
    assert total == sum(p.size for p in model.params.values())


@pytest.mark.parametrize("cls", MODELS)
def test_same_seed_same_weights_after_training(cls):
    users, movies, y = toy()
    runs = []
    for _ in range(2):
        model = cls(12, 15, n_factors=4, seed=7, backend="numpy").compile(Adam(0.01))
        model.fit([users, movies], y, batch_size=32, epochs=2, verbose=0)
        runs.append(model.params)
    for name in runs[0]:
        np.testing.assert_array_equal(runs[0][name], runs[1][name])
    other = cls(12, 15, n_factors=4, seed=8, backend="numpy")
    assert not np.array_equal(other.params["user_embedding.W"], runs[0]["user_embedding.W"])


@pytest.mark.parametrize("cls", MODELS)
def test_float64_models_compute_in_float64(cls):
    users, movies, y = toy()
    model = cls(12, 15, n_factors=4, seed=0, dtype=np.float64, backend="numpy")
    loss, grads = model.loss_and_grads([users, movies], y)
    assert all(p.dtype == np.float64 for p in model.params.values())
    assert all(g.dtype == np.float64 for g in grads.values())
    assert set(grads) == set(model.params)
    assert model.predict([users, movies]).dtype == np.float64
    assert cls(12, 15, seed=0, backend="numpy").predict([users, movies]).dtype == np.float32


def test_training_lowers_validation_loss_and_history_is_keras_shaped(capsys):
    users, movies, y = toy(2000)
    model = DotProductBias(12, 15, n_factors=4, seed=0, backend="numpy").compile(Adam(0.01))
    hist = model.fit([users[:1600], movies[:1600]], y[:1600], epochs=5,
                     validation_data=([users[1600:], movies[1600:]], y[1600:]))
    assert len(hist.history["loss"]) == len(hist.history["val_loss"]) == 5
    assert hist.history["val_loss"][-1] < hist.history["val_loss"][0]
    out = capsys.readouterr().out
    assert "Epoch 5/5" in out and "1,600 samples" in out and "val_loss" in out
    # val_loss is the plain MSE (no penalty): it equals evaluate()
    assert hist.history["val_loss"][-1] == pytest.approx(
        model.evaluate([users[1600:], movies[1600:]], y[1600:]))


def test_loss_and_grads_includes_the_whole_table_penalty():
    users, movies, y = toy()
    model = DotProduct(12, 15, n_factors=4, l2=0.1, seed=0, dtype=np.float64, backend="numpy")
    loss, _ = model.loss_and_grads([users, movies], y)
    pred = model.predict([users, movies])
    W = model.params
    penalty = 0.1 * ((W["user_embedding.W"] ** 2).sum() + (W["movie_embedding.W"] ** 2).sum())
    # the same squares and squared weights, summed in other orders (all terms positive)
    n = len(y) + W["user_embedding.W"].size + W["movie_embedding.W"].size
    assert loss == pytest.approx(np.mean((pred - y) ** 2) + penalty, rel=tol.rounding(n), abs=0)


def test_verbose_zero_prints_nothing(capsys):
    users, movies, y = toy()
    DotProduct(12, 15, n_factors=4, seed=0, backend="numpy").compile(Adam()).fit(
        [users, movies], y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("cls", MODELS)
def test_save_and_load_weights_round_trip(cls, tmp_path):
    users, movies, y = toy()
    a = cls(12, 15, n_factors=4, seed=1, backend="numpy").compile(Adam(0.01))
    a.fit([users, movies], y, epochs=1, verbose=0)
    path = tmp_path / "w.npz"
    a.save_weights(path)
    b = cls(12, 15, n_factors=4, seed=2, backend="numpy").load_weights(path)
    np.testing.assert_array_equal(a.predict([users, movies]), b.predict([users, movies]))
    assert os.listdir(tmp_path) == ["w.npz"]  # no temporary file left behind


def test_weights_of_another_shape_are_refused_naming_both_shapes(tmp_path):
    path = tmp_path / "w.npz"
    DotProduct(12, 15, n_factors=4, seed=0, backend="numpy").save_weights(path)
    model = DotProduct(12, 16, n_factors=4, seed=0, backend="numpy")
    before = model.params["user_embedding.W"].copy()
    with pytest.raises(ValueError, match=r"\(15, 4\).*\(16, 4\)"):
        model.load_weights(path)
    np.testing.assert_array_equal(model.params["user_embedding.W"], before)  # nothing copied
    with pytest.raises(ValueError, match="user_bias"):
        DotProductBias(12, 15, n_factors=4, backend="numpy").load_weights(path)


def test_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    model = DotProduct(12, 15, n_factors=4, seed=0, backend="numpy")
    model.save_weights(path)
    old = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save_weights(path)
    assert path.read_bytes() == old and os.listdir(tmp_path) == ["w.npz"]


def test_unknown_ids_at_predict_time_are_named():
    model = DotProduct(12, 15, n_factors=4, backend="numpy")
    with pytest.raises(KeyError, match="unknown user index 12"):
        model.predict([np.array([0, 12]), np.array([0, 0])])
    with pytest.raises(KeyError, match="unknown movie index -1"):
        model.predict([np.array([0]), np.array([-1])])


def test_fit_needs_compile_and_mse():
    model = DotProduct(3, 3, n_factors=2, backend="numpy")
    with pytest.raises(RuntimeError, match="compile"):
        model.fit([np.array([0]), np.array([0])], np.array([1.0]), verbose=0)
    with pytest.raises(ValueError, match="mse"):
        model.compile(Adam(), loss="mae")


def test_to_moves_a_model_between_cpu_backends():
    pytest.importorskip("numba")
    users, movies, y = toy()
    model = DotProductBias(12, 15, n_factors=4, seed=0, backend="numpy").compile(Adam(0.01))
    model.fit([users, movies], y, epochs=1, verbose=0)
    before = model.predict([users, movies])
    assert model.to("numba").backend == "numba" and model.to("cpu").backend == "numba"
    np.testing.assert_array_equal(model.predict([users, movies]), before)
    model.fit([users, movies], y, epochs=1, verbose=0)  # the Adam state is still there
    assert model.optimizer.iterations == 2 * 7


def test_lazy_training_leaves_the_objective_and_its_gradient_alone():
    """A lazy, balanced fit reweights the L2 of its *steps* only: afterwards loss_and_grads is
    still the Keras objective and its exact gradient (a gradient check proves it)."""
    from minirec.nn import gradcheck
    rng = np.random.default_rng(0)
    model = DotProductBias(5, 6, n_factors=3, l2=0.01, seed=0, dtype=np.float64, backend="numpy")
    model.compile(Adam(0.01, lazy=True)).fit([rng.integers(0, 5, 60), rng.integers(0, 6, 60)],
                                              rng.integers(1, 11, 60) / 2, batch_size=8, verbose=0)
    for label, err in gradcheck.check_model(model, "lazily trained", gradcheck.SMOOTH_BOUND).items():
        assert err < gradcheck.SMOOTH_BOUND, label
    W = model.params
    expected = 0.01 * ((W["user_embedding.W"] ** 2).sum() + (W["movie_embedding.W"] ** 2).sum())
    assert model.penalty() == pytest.approx(expected)


def test_weights_keep_their_dtype_through_a_file(tmp_path):
    from minirec.models.saved import model_from_weights
    model = NeuralNet(12, 15, n_factors=4, hidden=3, dtype=np.float64, y_range=(0, 5.5),
                      dropout=(0.1, 0.2), seed=0, backend="numpy")
    model.save_weights(tmp_path / "w.npz")
    back = model_from_weights(tmp_path / "w.npz", backend="numpy")
    assert back.dtype == np.float64 and back.config() == model.config()
    assert all(p.dtype == np.float64 for p in back.params.values())


def test_saved_files_get_ordinary_permissions(tmp_path):
    import stat
    old = os.umask(0o022)
    try:
        DotProduct(3, 3, n_factors=2, backend="numpy").save_weights(tmp_path / "w.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "w.npz").stat().st_mode) == 0o644


def test_import_compiles_nothing():
    """``import minirec`` loads neither Numba nor CuPy: kernels compile on first use."""
    import subprocess
    import sys
    code = "import sys, minirec; print(sorted(m for m in ('numba', 'cupy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
