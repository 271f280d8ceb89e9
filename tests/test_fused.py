"""One step of every fused piece against the reference, on tiny shapes with repeated ids.

A failure names the piece that broke: the per-table Adam loops (dense, lazy), each whole-model
kernel, and on a GPU the ``cupy.fuse``-compiled equations. The per-table loops compile the
reference's own update, elementwise: the same bits. A whole-model kernel sums in its own order:
its weights are held to ``tolerances.adam_run`` for the steps taken, its moments and losses to
the rounding of the gradient's sums.
"""
import numpy as np
import pytest

import tolerances as tol
from minirec import Adam, DotProduct, DotProductBias, NeuralNet
from minirec.backend import compiled, cupy_available, to_numpy
from minirec.nn.losses import L2, BalancedL2, touch_counts
from minirec.nn.optim import AdamStep, adam_update
from minirec.train.runners import Batches, FusedRunner, LayerRunner, training_regularisers

USERS = np.array([0, 0, 1, 3, 3, 2, 0, 1])   # repeated ids in one batch, on purpose
MOVIES = np.array([4, 4, 0, 1, 4, 2, 2, 0])
RATINGS = np.array([4.0, 3.5, 1.0, 5.0, 2.5, 3.0, 4.5, 0.5])


def close(piece, name, expected, got, bound):
    """Every entry within ``bound`` (absolute) of the reference."""
    expected, got = to_numpy(expected), to_numpy(got)
    worst = float(np.max(np.abs(expected - got)))
    assert worst <= bound, f"{piece}: {name} differs from the reference by {worst:.2e} (bound {bound:.2e})"


def scaled(a, rho):
    """ρ times the largest entry of ``a``: a relative bound ρ (``tolerances.rounding``) on arrays
    whose largest entries are not sums that cancel (random tiny batches), as ``adam_run`` assumes."""
    return rho * float(np.max(np.abs(to_numpy(a))))


def same(piece, name, expected, got):
    """The same bits: one elementwise formula of correctly rounded operations on both sides
    (Numba fuses no multiply-add without fastmath)."""
    assert np.array_equal(to_numpy(expected), to_numpy(got)), f"{piece}: {name} differs from the reference"


def tables(seed=0):
    rng = np.random.default_rng(seed)
    W, G = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    m, v = 0.1 * rng.standard_normal((5, 3)), rng.random((5, 3))
    return W, G, m, v


def test_per_table_dense_adam():
    numba_adam = pytest.importorskip("minirec.fast.numba_adam", reason="needs numba")
    W, G, m, v = tables()
    opt = Adam(0.01, weight_decay=0.1)
    opt.iterations = 6
    opt.state["W"] = {"m": m.copy(), "v": v.copy()}
    ref = {"W": W.copy()}
    opt.step(ref, {"W": G + L2(0.3).gradient(W)})
    k = Adam(0.01, weight_decay=0.1).constants(7, np.float64)
    t = numba_adam.table(W, G, m, v, *numba_adam.l2_factors(L2(0.3), W))
    numba_adam.adam_dense(t, k)
    same("numba_adam.adam_dense", "W", ref["W"], W)
    same("numba_adam.adam_dense", "m", opt.state["W"]["m"], m)
    same("numba_adam.adam_dense", "v", opt.state["W"]["v"], v)


def test_per_table_lazy_adam_with_the_balanced_l2():
    numba_adam = pytest.importorskip("minirec.fast.numba_adam", reason="needs numba")
    W, G, m, v = tables(1)
    reg = BalancedL2(0.3, touch_counts(MOVIES, 5), len(MOVIES), batch_size=3, dtype=np.float64)
    rows = np.unique(MOVIES[:4])  # 0, 1, 4: rows 2 and 3 must not move
    opt = Adam(0.01, lazy=True)
    opt.iterations = 2
    opt.state["W"] = {"m": m.copy(), "v": v.copy()}
    ref = {"W": W.copy()}
    opt.step(ref, {"W": G + reg.gradient(W)}, rows={"W": rows})
    t = numba_adam.table(W, G, m, v, *numba_adam.l2_factors(reg, W))
    numba_adam.adam_rows(t, rows, len(rows), Adam(0.01).constants(3, np.float64))
    same("numba_adam.adam_rows", "W", ref["W"], W)
    same("numba_adam.adam_rows", "m", opt.state["W"]["m"], m)
    same("numba_adam.adam_rows", "v", opt.state["W"]["v"], v)
    assert np.array_equal(W[[2, 3]], tables(1)[0][[2, 3]]), "numba_adam.adam_rows moved an unseen row"


def terms(cls, kwargs, batch=8, F=3):
    """The roundings behind one gradient entry (``tolerances.gradient_terms``)."""
    if cls is NeuralNet:
        return tol.gradient_terms(batch, 2 * F, kwargs["hidden"], kwargs["hidden"])
    return tol.gradient_terms(batch, F)


MODELS = [
    ("numba_mf.train_batches (DotProduct)", DotProduct, {}),
    ("numba_mf.train_batches (DotProductBias)", DotProductBias, {}),
    ("numba_mf.train_batches (DotProductBias, y_range)", DotProductBias, {"y_range": (0, 5.5)}),
    ("numba_nn.train_batches (NeuralNet)", NeuralNet, {"hidden": 4, "dropout": (0.3, 0.5)}),
    ("numba_nn.train_batches (NeuralNet, y_range)", NeuralNet, {"hidden": 4, "y_range": (0, 5.5)}),
]


@pytest.mark.parametrize("lazy", [False, True], ids=["dense", "lazy"])
@pytest.mark.parametrize("piece, cls, kwargs", MODELS, ids=[m[0] for m in MODELS])
def test_one_step_of_each_whole_model_kernel(piece, cls, kwargs, lazy):
    pytest.importorskip("numba", reason="needs numba")
    from minirec.train.runners import FUSED_KERNELS
    after = []
    for backend in ("numpy", "numba"):
        model = cls(4, 5, n_factors=3, l2=0.05, dtype=np.float64, seed=1, backend=backend, **kwargs)
        model.compile(Adam(0.02, lazy=lazy, weight_decay=0.01))
        batches = Batches(USERS, MOVIES, RATINGS, np.arange(8), 8)
        regularisers = training_regularisers(model, USERS, MOVIES, 8)
        runner = (LayerRunner(model, regularisers) if backend == "numpy"
                  else FusedRunner(model, *FUSED_KERNELS[cls]["numba"], regularisers))
        losses, bad = runner.run(batches, np.array([0.02]), 0, 1)
        after.append((model, losses))
    (ref, ref_loss), (fused, fused_loss) = after
    # one step from one start: the loss and the gradient differ by their sums' rounding (ρ);
    # m = (1-β1)g by ρ, v = (1-β2)g² by 2ρ, the weights by one step of adam_run
    rho = tol.rounding(terms(cls, kwargs))
    close(piece, "batch loss", ref_loss, fused_loss, scaled(ref_loss, rho))
    for name, p in ref.params.items():
        close(piece, name, p, fused.params[name], tol.adam_run(np.float64, [0.02], terms(cls, kwargs)))
        for moment, times in (("m", 1), ("v", 2)):
            expected = ref.optimizer.state[name][moment]
            close(piece, f"Adam {moment} of {name}", expected, fused.optimizer.state[name][moment],
                  scaled(expected, times * rho))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("lazy", [False, True], ids=["dense", "lazy"])
@pytest.mark.parametrize("piece, cls, kwargs", MODELS, ids=[m[0] for m in MODELS])
def test_three_batches_of_each_whole_model_kernel(piece, cls, kwargs, lazy, dtype):
    """Three batches in one call: what one step cannot show — a gradient buffer not cleared
    between batches, a row stamp reused, a step count or rate taken from the wrong batch."""
    pytest.importorskip("numba", reason="needs numba")
    from minirec.train.runners import FUSED_KERNELS
    users, movies = np.concatenate([USERS, USERS[::-1], USERS]), np.concatenate([MOVIES, MOVIES, MOVIES[::-1]])
    ratings = np.concatenate([RATINGS, RATINGS[::-1], RATINGS])
    after = []
    for backend in ("numpy", "numba"):
        model = cls(4, 5, n_factors=3, l2=0.05, dtype=dtype, seed=1, backend=backend, **kwargs)
        model.compile(Adam(0.02, lazy=lazy, weight_decay=0.01))
        y = ratings.astype(dtype)
        batches = Batches(users, movies, y, np.arange(24), 8)
        regularisers = training_regularisers(model, users, movies, 8)
        runner = (LayerRunner(model, regularisers) if backend == "numpy"
                  else FusedRunner(model, *FUSED_KERNELS[cls]["numba"], regularisers))
        losses, bad = runner.run(batches, np.array([0.02, 0.01, 0.03]), 0, 3)
        after.append((model, losses))
    (ref, ref_loss), (fused, fused_loss) = after
    bound = tol.adam_run(dtype, [0.02, 0.01, 0.03], terms(cls, kwargs))
    for name, p in ref.params.items():
        close(piece, name, p, fused.params[name], bound)
    # each batch's loss from weights at most `bound` apart (tolerances.loss_apart), the slope
    # Σ|∂r̂/∂w| taken at the reference's first and last weights; dropout scales a kept unit
    keep = np.prod([1 - p for p in kwargs.get("dropout", (0.0, 0.0))])
    start = cls(4, 5, n_factors=3, l2=0.05, dtype=dtype, seed=1, backend="numpy", **kwargs)
    slope = max(tol.prediction_slope(m, users, movies) for m in (start, ref)) / keep
    allowed = tol.loss_apart(ref_loss, slope * bound, 8, dtype)
    assert np.all(np.abs(np.asarray(fused_loss) - ref_loss) <= allowed), f"{piece}: batch losses differ"
    assert fused.optimizer.iterations == ref.optimizer.iterations == 3


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("piece, cls, kwargs", MODELS, ids=[m[0] for m in MODELS])
def test_the_builtin_models_really_train_through_their_registered_kernels(piece, cls, kwargs, dtype):
    """On a clean tree the probe must pass: a wrong kernel fails here, not only warns."""
    pytest.importorskip("numba", reason="needs numba")
    from minirec.train.runners import FusedRunner as Fused, runner_for
    model = cls(4, 5, n_factors=3, dtype=dtype, seed=0, backend="numba", **kwargs).compile(Adam())
    runner = runner_for(model, USERS, MOVIES, 8)
    assert isinstance(runner, Fused), f"{piece} is not used for {cls.__name__} ({dtype.__name__})"


def test_the_probe_checks_the_models_own_dtype_too(monkeypatch):
    """A kernel that is wrong only in float32 (here: its result nudged by 1e-3 in float32) is
    caught for a float32 model, and a float64 model still uses it."""
    pytest.importorskip("numba", reason="needs numba")
    from minirec.fast import numba_mf
    from minirec.train.runners import FusedRunner as Fused, runner_for
    run = numba_mf.Trainer.run

    def nudged(self, *args):
        out = run(self, *args)
        if self.model.dtype == np.float32:
            self.model.params["movie_embedding.W"][...] *= np.float32(1.001)
        return out
    monkeypatch.setattr(numba_mf.Trainer, "run", nudged)
    with pytest.warns(RuntimeWarning, match="numba_mf.py does not give the same numbers as "
                                             "DotProduct's layers in float32"):
        runner = runner_for(DotProduct(4, 5, n_factors=3, backend="numba").compile(Adam()), USERS, MOVIES, 8)
    assert isinstance(runner, LayerRunner)
    wide = DotProduct(4, 5, n_factors=3, dtype=np.float64, backend="numba").compile(Adam())
    assert isinstance(runner_for(wide, USERS, MOVIES, 8), Fused)


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device")
def test_the_gpu_compiles_the_same_equations():
    import cupy
    W, G, m, v = tables(2)
    k = Adam(0.01, weight_decay=0.1).constants(4, np.float64)
    ref = adam_update(W, G, m, v, k)
    got = compiled(adam_update, cupy, AdamStep)(*(cupy.asarray(a) for a in (W, G, m, v)), k)
    # the same formula, but a GPU compiler may fuse a multiply and an add (one rounding fewer)
    # and its sqrt, division and exp need not be correctly rounded: a chain of 16 operations,
    # against the magnitudes of each result's terms
    step = 0.01 * np.abs(ref[1] * k.m_correction) / (np.sqrt(ref[2] * k.v_correction) + k.epsilon)
    sizes = {"w": np.abs(W) * (1 + k.lr_decay) + step, "m": 0.9 * np.abs(m) + 0.1 * np.abs(G),
             "v": 0.999 * v + 0.001 * G * G}
    for name, a, b in zip("wmv", ref, got):
        assert np.all(np.abs(a - to_numpy(b)) <= tol.rounding(16) * sizes[name]), \
            f"cupy.fuse(adam_update): {name} differs from the reference"
    from minirec.nn.activations import sigmoid_range
    z = np.linspace(-4, 4, 9)
    for a, b in zip(sigmoid_range(z, 0.5, 4.5), compiled(sigmoid_range, cupy)(cupy.asarray(z), 0.5, 4.5)):
        # exp within a few ulp on each side, then four roundings of positive numbers
        np.testing.assert_allclose(to_numpy(b), a, rtol=tol.rounding(16), atol=0,
                                   err_msg="cupy.fuse(sigmoid_range): r̂, σ")


@pytest.mark.parametrize("n_threads", [2, 3])
def test_the_threaded_dense_step_covers_tables_that_do_not_divide(n_threads):
    """A table of 65,537 + 5 entries cut into 2 or 3 spans: every entry steps, exactly as on
    one thread (a split that drops the remainder leaves the last entries unmoved)."""
    numba_adam = pytest.importorskip("minirec.fast.numba_adam", reason="needs numba")
    n = numba_adam.PARALLEL_ABOVE + 5
    rng = np.random.default_rng(0)
    W, G = rng.standard_normal((n, 1)), rng.standard_normal((n, 1))
    one, many = (W.copy(), np.zeros_like(W), np.zeros_like(W)), (W.copy(), np.zeros_like(W), np.zeros_like(W))
    k = Adam(0.01).constants(1, np.float64)
    numba_adam.adam_dense(numba_adam.table(one[0], G, one[1], one[2], 0.1, np.zeros(n)), k)
    numba_adam.adam_dense_threads(many[0], G, many[1], many[2], 0.1, np.zeros(n), k, n_threads)
    np.testing.assert_array_equal(many[0], one[0])
    assert not np.any(many[0] == W), "an entry was left out of the split"
