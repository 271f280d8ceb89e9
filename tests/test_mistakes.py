"""Mistakes that cannot read past a row: each made on a tiny model, on every backend present,
ends in an error or a warning that names the piece — and nothing trains on garbage.

* a gradient of the wrong shape handed to a layer's ``backward``: a ``ModelError`` naming the
  layer and both shapes, before any compiled loop runs; the backends accept the same shapes;
* an epoch in which every gradient of every batch was exactly 0 (a dead ``Clip``): a warning
  naming the model's steps and the flat one;
* a step's backward that forgets ``return``: a ``ModelError`` naming the step;
* a learner's registered class on the command line: ``--model FILE.py:Class``.
"""
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import minirec
from minirec import Adam, DotProduct, DotProductBias, ModelError
from minirec.backend import to_numpy, to_xp
from minirec.data.synthetic import synthetic_movielens, write_release
from minirec.models import registry
from minirec.models.model import Model
from minirec.nn import ops
from minirec.nn.activations import Clip, Dropout, ReLU, SigmoidRange
from minirec.nn.layers import Concat, Dense, Dot, Embedding, EmbeddingBag, Offset
from minirec.tools.cli import main


def data(n=300, U=12, M=15, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, U, n), rng.integers(0, M, n), rng.integers(1, 11, n) / 2


def layer_ops(backend):
    """The operations a model on ``backend`` gives its layers (the compiled twins on numba)."""
    return Model(2, 2, 1, backend=backend).ops


def ids(xp, *values):
    return to_xp(np.array(values, np.intp), xp)


# Each layer: (build it, run its forward on N = 4 examples, the shape its backward needs).
N, F = 4, 3
LAYERS = {
    "Embedding": (lambda xp: Embedding(6, F, rng=np.random.default_rng(0), xp=xp),
                  lambda layer, xp: layer.forward(ids(xp, 0, 5, 5, 2)), (N, F)),
    "Embedding of width 1 (a bias)": (lambda xp: Embedding(6, 1, xp=xp),
                                      lambda layer, xp: layer.forward(ids(xp, 0, 5, 5, 2)), (N, 1)),
    "EmbeddingBag": (lambda xp: EmbeddingBag(5, F, (np.array([0, 2, 3, 5]), np.array([0, 4, 1, 2, 2])), xp=xp),
                     lambda layer, xp: layer.forward(ids(xp, 0, 2, 2, 1)), (N, F)),
    "Offset": (lambda xp: Offset(1.0, xp=xp), lambda layer, xp: layer.forward(xp.zeros(N, np.float32)), (N,)),
    "Dot": (lambda xp: Dot(), lambda layer, xp: layer.forward(xp.ones((N, F)), xp.ones((N, F))), (N,)),
    "Concat": (lambda xp: Concat(), lambda layer, xp: layer.forward(xp.ones((N, F)), xp.ones((N, 2))), (N, F + 2)),
    "Dense": (lambda xp: Dense(F, 2, xp=xp), lambda layer, xp: layer.forward(xp.ones((N, F), np.float32)), (N, 2)),
    "ReLU": (lambda xp: ReLU(), lambda layer, xp: layer.forward(xp.ones((N, F))), (N, F)),
    "Dropout": (lambda xp: Dropout(0.5, rng=np.random.default_rng(0)),
                lambda layer, xp: layer.forward(xp.ones((N, F))), (N, F)),
    "SigmoidRange": (lambda xp: SigmoidRange(0, 5.5), lambda layer, xp: layer.forward(xp.zeros(N)), (N,)),
    "Clip": (lambda xp: Clip(0.5, 5), lambda layer, xp: layer.forward(xp.ones(N)), (N,)),
}


def wrong_shapes(shape):
    """Shapes a learner hands by mistake: the row's width dropped, or added, or one row short."""
    out = [shape[:1], shape + (1,), (shape[0] - 1,) + shape[1:]]
    return [s for s in out if s != shape]


# ----- 1. a gradient of the wrong shape --------------------------------------------------------

@pytest.mark.parametrize("kind", list(LAYERS))
def test_a_gradient_of_the_wrong_shape_is_refused_by_every_layer(kind, backend):
    make, run_forward, need = LAYERS[kind]
    xp = Model(2, 2, 1, backend=backend).xp
    layer = make(xp)
    layer.ops = layer_ops(backend)
    run_forward(layer, xp)
    for shape in wrong_shapes(need):
        with pytest.raises(ModelError) as refused:
            layer.backward(xp.ones(shape, np.float32))
        message = str(refused.value)
        assert type(layer).__name__ in message and str(need) in message and str(shape) in message
        assert layer.grads == {}, "the refused gradient reached the layer's maths"
    with pytest.raises(ModelError, match="None .*forget to `return`"):
        layer.backward(None)
    layer.backward(xp.ones(need, np.float32))  # the right shape still goes through


class UserGetsDz(DotProduct):
    """The issue's mistake: the user table handed dz (N,), where du (N, F) is due."""

    def score(self, users, movies, training=True):
        z = self.dot.forward(self.user.forward(users), self.movie.forward(movies))

        def backward(dz):
            du, dm = self.dot.backward(dz)
            self.user.backward(dz)  # the mistake
            self.movie.backward(dm)
        return z, backward


def test_a_wide_table_handed_the_score_gradient_is_refused_and_nothing_trains(backend):
    users, movies, y = data()
    model = UserGetsDz(12, 15, n_factors=F, seed=0, backend=backend)
    before = {k: to_numpy(p).copy() for k, p in model.params.items()}
    model.compile(Adam(0.01))
    with pytest.raises(ModelError, match=r"'user_embedding' \(Embedding\).*shape \(32,\).*shape \(32, 3\)"):
        model.fit([users, movies], y, batch_size=32, epochs=1, verbose=0)
    for k, p in model.params.items():
        np.testing.assert_array_equal(to_numpy(p), before[k], err_msg=f"{k} moved")


def test_the_backends_accept_the_same_shapes_for_a_bias_table(backend):
    """(N,) into a 1-wide table is refused everywhere; (N, 1) gives the same dW everywhere."""
    idx, dout = np.array([0, 5, 5, 2]), np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    xp = Model(2, 2, 1, backend=backend).xp
    layer = Embedding(6, 1, xp=xp)
    layer.ops = layer_ops(backend)
    layer.forward(to_xp(idx, xp))
    with pytest.raises(ModelError, match=r"shape \(4,\).*shape \(4, 1\)"):
        layer.backward(to_xp(dout, xp))
    layer.backward(to_xp(dout[:, None], xp))
    np.testing.assert_array_equal(to_numpy(layer.grads["W"])[:, 0], [1, 0, 4, 0, 0, 5])


@pytest.mark.parametrize("twin", ["reference", "numba"])
def test_the_scatters_refuse_values_that_are_not_one_row_per_id(twin):
    """The operations themselves, called directly (as models/bpmf.py does), refuse alike."""
    if twin == "numba":
        pytest.importorskip("numba", reason="the numba backend needs numba")
    ops_set = ops.REFERENCE if twin == "reference" else layer_ops("numba")
    idx, T = np.array([0, 2, 2]), np.zeros((4, 3))
    for values in (np.ones(3), np.ones((3, 1)), np.ones((2, 3)), np.ones((3, 4))):
        with pytest.raises(ValueError, match=r"3 ids into a table of shape \(4, 3\) need values of shape \(3, 3\)"):
            ops_set.scatter_add(T, idx, values)
    assert not T.any()
    bags = (np.array([0, 1, 3]), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="bag_scatter"):
        ops_set.bag_scatter(T, bags, np.array([0, 1]), np.ones(2), np.ones(2))
    assert not T.any()


# ----- 2. an epoch in which no gradient moved anything ----------------------------------------

class DeadClip(DotProductBias):
    """r̂ = Clip(0.5, 5)(u_i · m_j + b_i + b_j): every input starts near 0, below the floor, so
    every gradient is exactly 0 (the issue's dead Clip)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.clip = Clip(0.5, 5)

    def output(self, z):
        return self.clip.forward(z), self.clip.backward


def fit_warnings(model, users, movies, y, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit([users, movies], y, verbose=0, **options)
    return history, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def test_an_epoch_of_zero_gradients_warns_naming_the_steps(backend):
    users, movies, y = data()
    model = DeadClip(12, 15, n_factors=F, seed=0, backend=backend).compile(Adam(0.01))
    history, said = fit_warnings(model, users, movies, y, epochs=2, batch_size=32,
                                 validation_data=([users, movies], y))
    assert len(said) == 2 and said[0].startswith("epoch 1: every gradient of every batch was exactly 0")
    for step in ("DotProduct.score", "DotProductBias.biases", "DeadClip.output"):
        assert step in said[0]
    assert "DeadClip.output already hands back nothing but zeros" in said[0]
    assert said[1].startswith("epoch 2: again every gradient was exactly 0")
    assert history.history["val_loss"][0] == pytest.approx(history.history["val_loss"][1], abs=1e-3)


def test_one_batch_with_a_gradient_is_enough_to_stay_silent(backend):
    """User 0's bias lifts its ratings above the floor, and user 0 is only in the 5th of 10
    batches: the tally looks at every batch, neither the first nor the last alone."""
    users, movies, y = data()
    users = np.where(users == 0, 1, users)
    users[4 * 32 + 3] = 0
    model = DeadClip(12, 15, n_factors=F, seed=0, backend=backend).compile(Adam(0.01))
    model.params["user_bias.W"][0] = 1.0
    _, said = fit_warnings(model, users, movies, y, epochs=1, batch_size=32, shuffle=False)
    assert said == []


def test_a_healthy_model_trains_without_the_warning(backend):
    users, movies, y = data()
    for fused in (True, False):
        model = DotProductBias(12, 15, n_factors=F, seed=0, backend=backend).compile(Adam(0.01))
        model.fused = fused
        _, said = fit_warnings(model, users, movies, y, epochs=1, batch_size=32)
        assert said == []


# ----- 3. a step's backward that forgets `return` ---------------------------------------------

class ForgetsReturn(DotProductBias):
    def biases(self, z, users, movies):
        z, back = super().biases(z, users, movies)

        def backward(dz):
            back(dz)  # the mistake: no `return`
        return z, backward


class ReturnsAColumn(DotProductBias):
    def output(self, z):
        return z, lambda dz: dz[:, None]  # the mistake: (N, 1) where (N,) is due


@pytest.mark.parametrize("cls, fragment", [
    (ForgetsReturn, r"ForgetsReturn.biases returned None .*`return dz`.*score needs the gradient"),
    (ReturnsAColumn, r"ReturnsAColumn.output returned a gradient of shape \(32, 1\).*shape \(32,\)"),
])
def test_a_step_that_returns_the_wrong_gradient_is_named(cls, fragment, backend):
    users, movies, y = data()
    model = cls(12, 15, n_factors=F, seed=0, backend=backend).compile(Adam(0.01))
    with pytest.raises(ModelError, match=fragment):
        model.fit([users, movies], y, batch_size=32, epochs=1, verbose=0)


# ----- 4. a learner's class on the command line -----------------------------------------------

LEARNER = '''
import numpy as np
import minirec
from minirec.nn.layers import Dot, Offset


@minirec.register("{kind}", title="a learner's GMF")
class {cls}(minirec.Model):
    """r̂ = μ + p_i · q_j"""

    def __init__(self, n_users, n_movies, n_factors=8, l2=1e-4, dtype=np.float32, seed=None,
                 backend=None):
        super().__init__(n_users, n_movies, n_factors, dtype, seed, backend)
        self.l2 = l2
        self.p = self.embedding("p", n_users, n_factors, l2, "user")
        self.q = self.embedding("q", n_movies, n_factors, l2, "movie")
        self.dot, self.mu = Dot(), Offset(3.0, self.dtype, self.xp)

    def forward(self, users, movies, training=True):
        return self.mu.forward(self.dot.forward(self.p.forward(users), self.q.forward(movies)))

    def backward(self, dpred):
        dp, dq = self.dot.backward(self.mu.backward(dpred))
        self.p.backward(dp)
        self.q.backward(dq)


class NotRegistered(minirec.Model):
    pass
'''


@pytest.fixture
def learner_file(tmp_path, backend):
    """A file of the learner's that registers a class; the registry is left as it was."""
    kind, cls = f"learner-{backend}", f"LearnerGMF{backend.title()}"
    path = tmp_path / f"learner_{backend}.py"
    path.write_text(textwrap.dedent(LEARNER.format(kind=kind, cls=cls)))
    kinds, titles, modules, sys_path = dict(registry.KINDS), dict(registry.TITLES), set(sys.modules), list(sys.path)
    yield path, kind, cls
    registry.KINDS.clear(), registry.KINDS.update(kinds)
    registry.TITLES.clear(), registry.TITLES.update(titles)
    for name in set(sys.modules) - modules:
        if name.startswith(("learner_", "minirec_learner_")):
            del sys.modules[name]
    sys.path[:] = sys_path


def test_the_cli_trains_and_evaluates_a_learners_registered_class(learner_file, tmp_path, backend, capsys):
    path, kind, cls = learner_file
    release = write_release(synthetic_movielens(30, 40, 1500, seed=3), tmp_path / "tiny")
    weights = tmp_path / "mine.npz"
    assert main(["train", "--model", f"{path}:{cls}", "--data", str(release), "--epochs", "2",
                 "--backend", backend, "-q", "--save", str(weights)]) == 0
    out = capsys.readouterr().out
    assert f"{kind}: validation MSE" in out
    val = float(out.split("validation MSE ")[1].split()[0])
    assert main(["train", "--model", str(path), "--data", str(release), "--epochs", "1",
                 "--backend", backend, "-q"]) == 0  # the file alone: the one kind it registers
    # A fresh process, as on the command line: the saved class loads once --import runs its file.
    standin = backend == "cupy" and getattr(sys.modules.get("cupy"), "STANDIN", False)
    evaluate = [sys.executable, "-m", "minirec.tools.cli", "evaluate", "--weights", str(weights),
                "--data", str(release), "--backend", "numpy" if standin else backend]  # the
    # stand-in lives in this test process only: a fresh process evaluates on NumPy
    p = subprocess.run(evaluate, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert p.returncode == 2 and "--import path/to/file.py" in p.stderr, p.stderr
    p = subprocess.run(evaluate + ["--import", str(path)], capture_output=True, text=True,
                       cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr
    assert f"{cls} from {weights}" in p.stdout and f"validation MSE {val:.4f}" in p.stdout


@pytest.mark.parametrize("model, fragment", [
    ("{path}:Nope", "defines no class Nope (its classes: {cls}, NotRegistered)"),
    ("{path}:NotRegistered", "NotRegistered is not registered; decorate it with @minirec.register"),
    ("learner", "--model learner: not a model kind ("),
    ("{path}.missing.py:X", "no such file"),
])
def test_the_cli_names_what_is_wrong_with_a_learners_class(learner_file, model, fragment, capsys):
    path, kind, cls = learner_file
    assert main(["train", "--model", model.format(path=path), "--data", "nowhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("minirec: error:")
    assert fragment.format(cls=cls) in err, err
