"""One program on every backend: each model, and models the library has never seen, train to the
same numbers as the NumPy reference on numba and cupy (on a card where present, else on the CPU
stand-in, tests/cupy_standin.py).

``fast_backend`` runs over numba and cupy (each skipped with its reason where missing). Two
backends sum in different orders, so their weights may drift apart by what ``tolerances.adam_run``
allows for the run (the roundings behind a gradient, what Adam makes of them, and their growth
over the run's steps), and their logged losses by what that drift does to the predictions.
Float32 runs take bigger batches (fewer steps), so that float32's ε, times those steps, still
makes a bound tight enough to catch a wrong kernel.
"""
import warnings

import numpy as np
import pytest

import tolerances as tol
from minirec import (Adam, Concat, Dense, DotProduct, DotProductBias, Dot, NeuralNet, ReLU, SigmoidRange, TrainingDiverged)
from minirec.nn import gradcheck
from minirec.backend import to_numpy
from minirec.models.model import Model
from minirec.nn.optim import one_cycle_lr
from minirec.train.runners import describe

CASES = [
    (DotProduct, {}),
    (DotProductBias, {}),
    (DotProductBias, {"y_range": (0.0, 5.5)}),
    (NeuralNet, {}),
    (NeuralNet, {"y_range": (0.0, 5.5), "dropout": (0.0, 0.5)}),
]
ids = lambda c: getattr(c, "__name__", str(c))


def data(n=1200, U=30, M=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, U, n), rng.integers(0, M, n), rng.integers(1, 11, n) / 2


def gap(a, b):
    """The largest difference between two arrays (any backend)."""
    return float(np.max(np.abs(to_numpy(a) - to_numpy(b))))


def train(cls, kwargs, backend, dtype=np.float64, lazy=False, fused=True, epochs=2, batch_size=16,
          **fit):
    users, movies, y = data()
    model = cls(30, 40, n_factors=5, dtype=dtype, seed=5, backend=backend, **kwargs)
    model.fused = fused
    model.compile(Adam(0.01, lazy=lazy, weight_decay=0.01))
    # shuffle=False: the GPU draws its own permutation (see training.epoch_order)
    hist = model.fit([users[:1000], movies[:1000]], y[:1000], batch_size=batch_size, epochs=epochs,
                     shuffle=False, validation_data=([users[1000:], movies[1000:]], y[1000:]),
                     verbose=0, **fit)
    model.optimizer.lr = 0.003  # a changed rate must reach every backend's next step
    hist.history["loss"] += model.fit([users, movies], y, batch_size=batch_size, shuffle=False,
                                      verbose=0).history["loss"]
    return model, hist


def train_rates(epochs=2, batch_size=16):
    """The rates of ``train``'s steps: ``epochs`` epochs of 1,000 ratings at 0.01, one of 1,200
    at 0.003."""
    return [0.01] * (epochs * -(-1000 // batch_size)) + [0.003] * -(-1200 // batch_size)


def gradient_terms(cls, batch_size, n_factors=5):
    """The roundings behind one gradient entry of these models (``tolerances.gradient_terms``):
    a dot product of F, or the net's concatenation (2F) into its hidden layer and out (H, twice:
    forward and backward)."""
    if issubclass(cls, NeuralNet):
        return tol.gradient_terms(batch_size, 2 * n_factors, 70, 70)
    return tol.gradient_terms(batch_size, n_factors)


def weights_apart(cls, dtype, epochs=2, batch_size=16):
    """How far apart rounding alone can put the weights of two ``train`` runs."""
    return tol.adam_run(dtype, train_rates(epochs, batch_size), gradient_terms(cls, batch_size))


def assert_weights_close(ref, other, bound, label=""):
    for name, p in ref.params.items():
        assert other.params[name].dtype == p.dtype, f"{label}: {name} dtype"
        d = gap(p, other.params[name])
        assert d <= bound, f"{label}: {name} differs by {d:.2e}, more than rounding can ({bound:.2e})"


def assert_losses_close(ref_hist, hist, start, ref, bound, dropout=(0.0, 0.0), label=""):
    """Logged losses, against what ``bound`` (the weights' drift) can do to them: predictions
    move by at most the slope Σ|∂r̂/∂w| times it (the larger slope of the reference's first and
    last weights, assumed to bound the slope in between; dropout scales a kept unit by 1/(1-p)),
    the training loss's penalty λΣW² by 2λΣ|W| times it (``tolerances.loss_apart``)."""
    users, movies, _ = data()
    keep = np.prod([1 - p for p in dropout])
    slope = max(tol.prediction_slope(m, users, movies) for m in (start, ref)) / keep
    penalty = sum(2 * reg.l2 * float(np.abs(to_numpy(ref.params[n])).sum())
                  for n, reg in ref.regularisers.items())
    for key in ("loss", "val_loss"):
        n = len(users) if key == "loss" else len(users) - 1000
        allowed = tol.loss_apart(ref_hist.history[key], slope * bound, n, ref.dtype)
        if key == "loss":
            allowed = allowed + penalty * bound
        d = np.abs(np.array(hist.history[key]) - ref_hist.history[key])
        assert np.all(d <= allowed), f"{label}: {key} differs by {d.max():.2e} (allowed {allowed})"


@pytest.mark.parametrize("fused", [True, False], ids=["default", "layers"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("lazy", [False, True], ids=["dense", "lazy"])
@pytest.mark.parametrize("cls, kwargs", CASES, ids=ids)
def test_every_backend_trains_like_the_reference(fast_backend, cls, kwargs, lazy, dtype, fused,
                                                  host_draws):
    batch_size = 16 if dtype == np.float64 else 250  # float32: 13 steps instead of 201
    ref, ref_hist = train(cls, kwargs, "numpy", dtype, lazy, batch_size=batch_size)
    other, hist = train(cls, kwargs, fast_backend, dtype, lazy, fused, batch_size=batch_size)
    label = f"{cls.__name__} on {fast_backend} ({describe(other)})"
    bound = weights_apart(cls, dtype, batch_size=batch_size)
    assert_weights_close(ref, other, bound, label)
    start = cls(30, 40, n_factors=5, dtype=dtype, seed=5, backend="numpy", **kwargs)
    assert_losses_close(ref_hist, hist, start, ref, bound, kwargs.get("dropout", (0.0, 0.0)), label)
    assert other.optimizer.iterations == ref.optimizer.iterations == len(train_rates(2, batch_size))


@pytest.mark.parametrize("cls, kwargs", CASES, ids=ids)
def test_one_cycle_schedules_reach_every_backend(fast_backend, cls, kwargs, host_draws):
    users, movies, y = data()
    models = []
    for backend in ("numpy", fast_backend):
        model = cls(30, 40, n_factors=5, dtype=np.float64, seed=2, backend=backend, **kwargs)
        model.compile(Adam(0.01, lazy=True, weight_decay=0.1))
        model.fit_one_cycle([users, movies], y, 2, 0.02, batch_size=32, verbose=0)
        models.append(model)
    n_steps = 2 * -(-len(y) // 32)
    lrs = [one_cycle_lr(step, n_steps, 0.02) for step in range(n_steps)]
    assert_weights_close(models[0], models[1], tol.adam_run(np.float64, lrs, gradient_terms(cls, 32)))
    assert models[1].optimizer.lr == 0.01  # restored after the schedule


class ScaledBias(DotProductBias):
    """A student's change: the dot product counts double. Its own forward and backward."""

    def forward(self, users, movies, training=True):
        z = (2.0 * self.dot.forward(self.user.forward(users), self.movie.forward(movies))
             + self.user_bias.forward(users)[:, 0] + self.movie_bias.forward(movies)[:, 0])
        return self.squash.forward(z) if self.squash else z

    def backward(self, dpred):
        dz = self.squash.backward(dpred) if self.squash else dpred
        du, dm = self.dot.backward(2.0 * dz)
        self.user.backward(du)
        self.movie.backward(dm)
        self.user_bias.backward(dz[:, None])
        self.movie_bias.backward(dz[:, None])


def test_a_subclass_that_changes_forward_trains_its_own_maths_on_the_default_backend():
    ref, _ = train(ScaledBias, {}, "numpy")
    default, _ = train(ScaledBias, {}, None)  # backend=None: auto, Numba on a CPU machine
    parent, _ = train(DotProductBias, {}, None)
    assert "fused kernel" not in describe(default)
    bound = weights_apart(DotProductBias, np.float64)
    assert_weights_close(ref, default, bound)
    assert gap(ref.params["user_embedding.W"], parent.params["user_embedding.W"]) > bound


class GMFPlusMLP(Model):
    """A fourth model, from the layers alone: generalised matrix factorisation beside a small
    MLP, each with its own embeddings (He et al.'s NeuMF), and a learned output range:

        r̂ = lo + span·σ( w · (p_i * q_j) + W2ᵀ relu(W1ᵀ [a_i, c_j] + c1) + c2 )
    """

    def __init__(self, n_users, n_movies, n_factors=4, hidden=3, l2=1e-3, dtype=np.float32,
                 seed=None, backend=None):
        super().__init__(n_users, n_movies, n_factors, dtype, seed, backend)
        F = self.n_factors
        self.p = self.embedding("gmf_user", n_users, F, l2, "user")
        self.q = self.embedding("gmf_movie", n_movies, F, l2, "movie")
        self.a = self.embedding("mlp_user", n_users, F, l2, "user")
        self.c = self.embedding("mlp_movie", n_movies, F, 0.0, "movie")
        kw = dict(rng=self.init_rng, dtype=self.dtype, xp=self.xp)
        self.layers["gmf_out"] = self.gmf_out = Dense(F, 1, **kw)
        self.layers["hidden"] = self.hidden = Dense(2 * F, hidden, **kw)
        self.layers["mlp_out"] = self.mlp_out = Dense(hidden, 1, **kw)
        self.concat, self.relu, self.squash = Concat(), ReLU(), SigmoidRange(0.0, 5.5)

    def forward(self, users, movies, training=True):
        pu, qm = self.p.forward(users), self.q.forward(movies)
        self.pu, self.qm = pu, qm
        gmf = self.gmf_out.forward(pu * qm)[:, 0]
        h = self.relu.forward(self.hidden.forward(self.concat.forward(self.a.forward(users),
                                                                      self.c.forward(movies))))
        return self.squash.forward(gmf + self.mlp_out.forward(h)[:, 0])

    def backward(self, dpred):
        dz = self.squash.backward(dpred)[:, None]
        dprod = self.gmf_out.backward(dz)
        self.p.backward(dprod * self.qm)
        self.q.backward(dprod * self.pu)
        da, dc = self.concat.backward(self.hidden.backward(self.relu.backward(self.mlp_out.backward(dz))))
        self.a.backward(da)
        self.c.backward(dc)


def test_a_fourth_model_from_the_layers_trains_on_every_backend_without_kernel_code(fast_backend,
                                                                                    host_draws):
    results = []
    for backend in ("numpy", fast_backend):
        users, movies, y = data()
        model = GMFPlusMLP(30, 40, dtype=np.float64, seed=3, backend=backend)
        assert "layers' forward/backward" in describe(model)
        for lazy in (False, True):
            model.compile(Adam(0.01, lazy=lazy))
            hist = model.fit([users, movies], y, batch_size=32, epochs=2, verbose=0)
        results.append((model, hist))
    (ref, ref_hist), (other, hist) = results
    assert ref_hist.history["loss"][-1] < ref_hist.history["loss"][0]
    F, H = 4, 3  # GMF's w·(p*q) sums F; the MLP concatenates 2F into H units, then H into one
    steps = 2 * 2 * -(-len(y) // 32)  # two fits (dense, then lazy) of two epochs
    assert_weights_close(ref, other, tol.adam_run(np.float64, [0.01] * steps,
                                                  tol.gradient_terms(32, F, 2 * F, H, H)))


def test_the_fourth_model_passes_the_gradient_check():
    model = GMFPlusMLP(5, 6, n_factors=3, dtype=np.float64, seed=0, backend="numpy")
    model.layers["hidden"].params["b"][:] = 0.2  # keep the hidden units away from the ReLU kink
    for label, err in gradcheck.check_model(model, "GMF+MLP", gradcheck.RELU_BOUND).items():
        assert err < gradcheck.RELU_BOUND, label


def test_summary_says_which_runner_trains_the_model(capsys):
    pytest.importorskip("numba")
    DotProductBias(5, 6, backend="numba").compile(Adam()).summary()
    assert "Trained by: the fused kernel minirec/fast/numba_mf.py" in capsys.readouterr().out
    ScaledBias(5, 6, backend="numba").compile(Adam()).summary()
    assert "Trained by: the layers' forward/backward on numba, then Adam compiled by Numba" \
        in capsys.readouterr().out
    DotProductBias(5, 6, backend="numpy").compile(Adam()).summary()
    assert "Trained by: the layers' forward/backward on numpy" in capsys.readouterr().out


def test_an_edited_layer_reaches_the_default_backend_too(monkeypatch):
    """Edit the reference in place (here: Dot counts double) without subclassing: the fused
    kernel no longer matches its layers on the probe, says so, and the layers train."""
    pytest.importorskip("numba")
    from minirec.train import runners
    monkeypatch.setattr(runners, "_VERDICTS", {})

    def doubled_forward(self, a, b):
        self.a, self.b = a, b
        return 2.0 * (a * b).sum(axis=1)

    def doubled_backward(self, dout):
        return 2.0 * dout[:, None] * self.b, 2.0 * dout[:, None] * self.a
    monkeypatch.setattr(Dot, "forward", doubled_forward)
    monkeypatch.setattr(Dot, "backward", doubled_backward)
    ref, _ = train(DotProductBias, {}, "numpy")
    with pytest.warns(RuntimeWarning, match="numba_mf.py does not give the same numbers"):
        edited, _ = train(DotProductBias, {}, "numba")
    assert_weights_close(ref, edited, weights_apart(DotProductBias, np.float64))


def test_the_registered_kernels_agree_with_their_layers_unedited():
    pytest.importorskip("numba")
    from minirec.train.runners import registered_kernel, agrees_with_layers
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no disagreement warning for the shipped code
        for cls, kwargs in CASES:
            model, _ = train(cls, kwargs, "numba", epochs=1)
            assert agrees_with_layers(model, *registered_kernel(model)), cls.__name__


def test_a_nan_stops_every_backend_before_the_update(backend):
    users, movies, y = data(640)
    y = y.astype(np.float64)
    y[200] = np.nan
    model = DotProductBias(30, 40, n_factors=4, seed=0, backend=backend).compile(Adam(0.01))
    before = {k: to_numpy(v).copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match="rating 200 is nan"):
        model.fit([users, movies], y, batch_size=64, shuffle=False, verbose=0)
    for name, p in model.params.items():
        np.testing.assert_array_equal(to_numpy(p), before[name])  # refused at the door
    y[200] = 3.0
    model.optimizer.lr = 1e30  # batch 1 moves every weight by ~1e30; batch 2's r̂ overflows float32
    with pytest.raises(TrainingDiverged, match=r"epoch 1, batch 2\b.*weights it had before this fit"):
        model.fit([users, movies], y, batch_size=64, shuffle=False, verbose=0)
    for name, p in model.params.items():
        np.testing.assert_array_equal(to_numpy(p), before[name])
    assert model.optimizer.iterations == 0 and model.optimizer.lr == 1e30


@pytest.mark.gpu
def test_weights_and_optimiser_state_move_between_devices(tmp_path):
    from minirec.backend import cupy_available
    if not cupy_available():
        pytest.skip("needs CuPy and a CUDA device")
    users, movies, y = data()
    model = DotProductBias(30, 40, n_factors=6, seed=1, backend="cupy").compile(Adam(0.01))
    model.fit([users, movies], y, epochs=1, verbose=0)
    on_gpu = model.predict([users, movies])
    model.save_weights(tmp_path / "w.npz")
    cpu = DotProductBias(30, 40, n_factors=6, backend="numpy").load_weights(tmp_path / "w.npz")
    # The same float32 weights: r̂ = u·m + b_u + b_m, 6 products and 2 biases summed on each
    # side in its own order (the GPU may fuse a multiply and an add)
    P = {k: to_numpy(v) for k, v in cpu.params.items()}
    allowed = tol.rounding(6 + 2, np.float32) * (
        np.abs(P["user_embedding.W"][users] * P["movie_embedding.W"][movies]).sum(axis=1)
        + np.abs(P["user_bias.W"][users, 0]) + np.abs(P["movie_bias.W"][movies, 0]))
    assert np.all(np.abs(cpu.predict([users, movies]) - on_gpu) <= allowed)
    model.to("cpu")
    assert isinstance(model.params["user_embedding.W"], np.ndarray)
    assert np.all(np.abs(model.predict([users, movies]) - on_gpu) <= allowed)
    model.fit([users, movies], y, epochs=1, verbose=0)  # the optimiser state moved too
    model.to("gpu")
    assert type(model.params["user_embedding.W"]).__module__.startswith("cupy")


@pytest.mark.parametrize("kind", ["dot", "bias", "nn"])
@pytest.mark.parametrize("lazy", [False, True], ids=["dense", "lazy"])
def test_two_threads_give_the_same_numbers_as_one(kind, lazy, monkeypatch):
    """The threaded pieces (a dense Adam step cut into spans; numba_mf's lazy batch split by
    table) split work whose result does not depend on the split: one and two threads must agree
    bit for bit. The movie table is big enough (2,000 x 40 entries) for the threaded dense step
    to run; the lazy split is made to run at this size."""
    numba = pytest.importorskip("numba")
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has one thread here: there is no second thread to compare")
    from minirec.fast import numba_mf
    monkeypatch.setattr(numba_mf, "SPLIT_ABOVE", 0)
    from minirec.fast.numba_adam import PARALLEL_ABOVE
    from minirec.models.registry import KINDS
    rng = np.random.default_rng(0)
    users, movies = rng.integers(0, 50, 3000), rng.integers(0, 2000, 3000)
    y = rng.integers(1, 11, 3000) / 2
    weights = []
    for threads in (1, 2):
        model = KINDS[kind](50, 2000, n_factors=40, seed=1, backend="numba")
        assert model.params["movie_embedding.W"].size >= PARALLEL_ABOVE
        model.threads = threads
        model.compile(Adam(0.01, lazy=lazy)).fit([users, movies], y, batch_size=128, epochs=2, verbose=0)
        weights.append({k: v.copy() for k, v in model.params.items()})
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name], weights[1][name], err_msg=name)


@pytest.mark.parametrize("kind", ["dot", "bias"])
def test_the_split_and_one_thread_switched_chunk_by_chunk_give_the_one_thread_numbers(kind, monkeypatch):
    """fast/split.Chooser may hand any chunk of batches to either kernel: forced to switch at
    every chunk, with chunks of 1 to 3 batches (across the epochs' boundaries too), the
    weights must be the one-thread weights bit for bit (a chunk that restarted its step
    count, its losses or its batch numbers at zero, or a kernel that read another batch's
    seen rows, would differ)."""
    numba = pytest.importorskip("numba")
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has one thread here: the split cannot run")
    from minirec.fast import numba_mf, split
    from minirec.models.registry import KINDS
    rng = np.random.default_rng(0)
    users, movies = rng.integers(0, 50, 3000), rng.integers(0, 400, 3000)
    y = rng.integers(1, 11, 3000) / 2
    handed = []

    def switching(self):
        n = len(handed)
        handed.append(("split", "single")[n % 2])
        return handed[-1], 1 + n % 3
    weights = []
    for threads, split_above in ((1, 1 << 60), (2, 0)):
        monkeypatch.setattr(numba_mf, "SPLIT_ABOVE", split_above)
        monkeypatch.setattr(split.Chooser, "next", switching)
        model = KINDS[kind](50, 400, n_factors=8, seed=1, backend="numba")
        model.threads = threads
        model.compile(Adam(0.01, lazy=True)).fit([users, movies], y, batch_size=128, epochs=2,
                                                verbose=0)
        weights.append({k: v.copy() for k, v in model.params.items()})
    assert handed.count("split") > 5 and handed.count("single") > 5  # both kernels really ran
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name], weights[1][name], err_msg=name)


def test_what_summary_says_is_what_runs(monkeypatch):
    """describe() before compile, after the probe agreed, after it disagreed, and the threads:
    capped at what Numba has, and one for lazy steps."""
    numba = pytest.importorskip("numba")
    from minirec.train import runners
    model = DotProductBias(30, 40, n_factors=4, seed=0, backend="numba")
    assert "no optimiser yet: this is for Adam" in describe(model)
    assert "if it agrees with the layers on the probe fit runs first" in describe(model)
    users, movies, y = data()
    model.compile(Adam(0.01)).fit([users, movies], y, verbose=0)
    assert describe(model).endswith("it agreed with the layers on its probe")
    model.threads = 999
    n = numba.config.NUMBA_NUM_THREADS
    text = describe(model)
    assert (f"capped from 999 at this machine's {n}" in text) and "999 CPU threads" not in text
    model.compile(Adam(0.01, lazy=True))
    if n > 1:  # numba_mf splits a lazy batch by table over two threads, for big tables only
        assert ("on 1 CPU thread (999 asked for; its tables are too small to split between "
                "threads)") in describe(model)
        from minirec.fast import numba_mf
        monkeypatch.setattr(numba_mf, "SPLIT_ABOVE", model.params["user_embedding.W"].size
                            + model.params["movie_embedding.W"].size)
        assert ("on 2 CPU threads, one for the users' table and one for the movies', capped "
                f"from 999 at this machine's {n}, while that is faster than one thread") \
            in describe(model)
        model.fused = False  # the layers step one table after another
        assert "on 1 CPU thread (999 asked for; lazy steps run on one here)" in describe(model)
        model.fused = True
    monkeypatch.setattr(runners, "_probe", lambda *args: False)  # a probe that fails
    runners._VERDICTS.clear()
    model.compile(Adam(0.01))
    with pytest.warns(RuntimeWarning, match="does not give the same numbers"):
        model.fit([users, movies], y, verbose=0)
    assert describe(model).startswith("the layers' forward/backward on numba")
    assert "numba_mf.py (registered for DotProductBias) disagreed with the layers" in describe(model)
