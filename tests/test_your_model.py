"""A learner's own model: every mistake learners make ends in an error naming the piece, the
building blocks it needs exist, and it saves, loads by name and trains on every backend."""
from types import SimpleNamespace

import numpy as np
import pytest

import minirec
import tolerances as tol
from minirec import (Adam, DotProduct, DotProductBias, Embedding, EmbeddingBag, FlippedSVDpp, Model, ModelError, Offset, SVDpp, register)
from minirec.nn import gradcheck
from minirec.backend import to_numpy
from minirec.data.movielens import Ratings
from minirec.models.svdpp import rated_by
from minirec.train.runners import describe
from minirec.io.weights import WeightsError
from minirec.models.saved import model_from_weights


def Sizes(n_users, n_movies):
    """What ``for_data`` needs of a data set when there is none: its sizes."""
    return SimpleNamespace(n_users=n_users, n_movies=n_movies)


def data(n=600, U=20, M=25, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, U, n), rng.integers(0, M, n), rng.integers(1, 11, n) / 2


class WithOffset(DotProductBias):
    """The issue's first model: a DotProductBias with a learned global offset."""

    def __init__(self, n_users, n_movies, n_factors=4, dtype=np.float32, seed=None, backend=None):
        super().__init__(n_users, n_movies, n_factors, l2=1e-3, dtype=dtype, seed=seed, backend=backend)
        self.mu = Offset(3.0, self.dtype, self.xp)  # registered by the assignment

    def biases(self, z, users, movies):
        z, back = super().biases(z, users, movies)
        return self.mu.forward(z), lambda dz: back(self.mu.backward(dz))


def test_a_layer_assigned_to_an_attribute_is_registered_and_trains(backend):
    users, movies, y = data()
    model = WithOffset(20, 25, seed=0, backend=backend, dtype=np.float64)
    assert "mu.b" in model.params
    model.compile(Adam(0.05)).fit([users, movies], y, epochs=2, verbose=0)
    assert to_numpy(model.params["mu.b"])[0] != 3.0


class Hidden(DotProduct):
    """A layer kept in a list: the model holds it but never registered it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.extras = [Offset(0.0, self.dtype, self.xp)]

    def score(self, users, movies, training=True):
        z, back = super().score(users, movies, training)
        return self.extras[0].forward(z), lambda dz: back(self.extras[0].backward(dz))


def test_an_unregistered_layer_is_refused_at_compile_fit_and_in_the_gradient_check():
    model = Hidden(5, 6, n_factors=3, dtype=np.float64, backend="numpy")
    with pytest.raises(ModelError, match=r"Offset with parameters at self.extras\[0\].*add_layer"):
        model.compile(Adam())
    model.optimizer = Adam()  # set behind compile's back: fit refuses it too
    users, movies, y = data(40, 5, 6)
    with pytest.raises(ModelError, match=r"self.extras\[0\]"):
        model.fit([users, movies], y, verbose=0)
    with pytest.raises(ModelError, match=r"self.extras\[0\]"):
        gradcheck.check_model(model, "hidden", gradcheck.SMOOTH_BOUND)
    model.add_layer("extra", model.extras[0])
    model.compile(Adam()).fit([users, movies], y, verbose=0)


class SkipsAfterFirst(DotProductBias):
    """Skips the movie bias's backward after the first batch: the stale-gradient bug."""
    calls = 0

    def biases(self, z, users, movies):
        z, back = super().biases(z, users, movies)

        def backward(dz):
            SkipsAfterFirst.calls += 1
            self.user_bias.backward(dz[:, None])
            if SkipsAfterFirst.calls == 1:
                self.movie_bias.backward(dz[:, None])
            return dz
        return z, backward


def test_a_layer_skipped_in_backward_stops_training_naming_it(backend):
    users, movies, y = data()
    model = SkipsAfterFirst(20, 25, n_factors=3, seed=0, backend=backend).compile(Adam(0.01))
    SkipsAfterFirst.calls = 0
    with pytest.raises(ModelError, match=r"movie_bias.W got no gradient.*never called movie_bias.backward"):
        model.fit([users, movies], y, batch_size=64, verbose=0)
    assert SkipsAfterFirst.calls == 2  # the first batch trained; the second was stopped


class NoBackward(Model):
    def __init__(self, n_users, n_movies, n_factors=3, dtype=np.float32, seed=None, backend=None):
        super().__init__(n_users, n_movies, n_factors, dtype, seed, backend)
        self.user = self.embedding("user_embedding", n_users, n_factors, 0.0, "user")

    def forward(self, users, movies, training=True):
        return self.user.forward(users).sum(axis=1)


def test_a_forgotten_backward_is_named():
    users, movies, y = data(40, 5, 6)
    model = NoBackward(5, 6, backend="numpy").compile(Adam())
    with pytest.raises(NotImplementedError, match="NoBackward must define backward"):
        model.fit([users, movies], y, verbose=0)

    class EmptyBackward(NoBackward):
        def backward(self, dpred):
            pass
    with pytest.raises(ModelError, match="user_embedding.W got no gradient from EmptyBackward.backward"):
        EmptyBackward(5, 6, backend="numpy").compile(Adam()).fit([users, movies], y, verbose=0)
    with pytest.raises(ModelError, match="user_embedding.W got no gradient"):
        gradcheck.check_model(EmptyBackward(5, 6, dtype=np.float64, backend="numpy"), "e", 1e-7)


class WrongShape(NoBackward):
    def backward(self, dpred):  # a learner's gradient of the wrong width and dtype
        self.user.grads["W"] = np.zeros((self.n_users, 1))


def test_a_gradient_of_the_wrong_shape_or_dtype_is_named():
    users, movies, y = data(40, 5, 6)
    with pytest.raises(ModelError, match=r"user_embedding.W: backward gave a gradient of shape \(5, 1\), float64"):
        WrongShape(5, 6, backend="numpy").compile(Adam()).fit([users, movies], y, verbose=0)


class UndeclaredTable(DotProduct):
    """A regularised table added by hand, without saying which input it reads."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.implicit = Embedding(self.n_users, self.n_factors, rng=self.init_rng, dtype=self.dtype)
        self.regularisers["implicit.W"] = minirec.L2(1e-3)

    def score(self, users, movies, training=True):
        z, back = super().score(users, movies, training)
        z = z + self.implicit.forward(users).sum(axis=1)

        def backward(dz):
            self.implicit.backward(np.repeat(dz[:, None], self.n_factors, axis=1))
            return back(dz)
        return z, backward


def test_lazy_adam_asks_for_an_undeclared_lookup_by_name():
    model = UndeclaredTable(5, 6, n_factors=3, backend="numpy")
    with pytest.raises(ModelError, match=r"implicit.W.*self.lookups\['implicit.W'\] = 'user'"):
        model.compile(Adam(lazy=True))
    model.compile(Adam(lazy=False))  # dense Adam needs no lookup
    model.lookups["implicit.W"] = "user"
    users, movies, y = data(60, 5, 6)
    model.compile(Adam(lazy=True)).fit([users, movies], y, verbose=0)


def test_layers_must_come_after_super_init():
    class Early(Model):
        def __init__(self):
            self.offset = Offset()
    with pytest.raises(TypeError, match=r"call super\(\).__init__\(...\) before adding layers"):
        Early()


def test_a_frozen_layer_keeps_its_weights_and_needs_no_gradient(backend):
    users, movies, y = data()
    model = DotProductBias(20, 25, n_factors=3, seed=0, backend=backend)
    model.user_bias.trainable = False
    before = to_numpy(model.params["user_bias.W"]).copy()
    model.compile(Adam(0.05)).fit([users, movies], y, epochs=2, verbose=0)
    np.testing.assert_array_equal(to_numpy(model.params["user_bias.W"]), before)
    assert not np.array_equal(to_numpy(model.params["movie_bias.W"]), np.zeros((25, 1)))


class Doubled(DotProductBias):
    """The models/recommender.py docstring's example: one step overridden in one method."""

    def score(self, users, movies, training=True):
        z, backward = super().score(users, movies, training)
        return 2 * z, lambda dz: backward(2 * dz)


def test_overriding_one_step_changes_the_model_and_its_gradient():
    model = Doubled(5, 6, n_factors=3, l2=1e-2, dtype=np.float64, seed=0, backend="numpy")
    for label, err in gradcheck.check_model(model, "Doubled", gradcheck.SMOOTH_BOUND).items():
        assert err < gradcheck.SMOOTH_BOUND, label
    plain = DotProductBias(5, 6, n_factors=3, dtype=np.float64, seed=0, backend="numpy")
    users, movies, _ = data(10, 5, 6)
    # (2z + b) - (z + b) against z: each prediction sums F products and two biases (F + 2
    # roundings of Doubled's terms, at most its size), the difference rounds once more
    allowed = tol.rounding(2 * (3 + 2) + 1) * tol.prediction_size(model, users, movies)
    assert np.all(np.abs(model.predict([users, movies]) - plain.predict([users, movies])
                         - plain.score(users, movies)[0]) <= allowed)


@register("gmf-offset", title="a learner's model")
class LearnerModel(Model):
    """r̂ = μ + w · (p_i * q_j), a learner's model from the layers, registered by name."""

    def __init__(self, n_users, n_movies, n_factors=3, l2=1e-3, start=3.0, dtype=np.float32,
                 seed=None, backend=None):
        super().__init__(n_users, n_movies, n_factors, dtype, seed, backend)
        self.l2, self.start = l2, start
        self.p = self.embedding("p", n_users, n_factors, l2, "user")
        self.q = self.embedding("q", n_movies, n_factors, l2, "movie")
        self.w = minirec.Dense(n_factors, 1, rng=self.init_rng, dtype=self.dtype, xp=self.xp)
        self.mu = Offset(start, self.dtype, self.xp)

    def forward(self, users, movies, training=True):
        self.pu, self.qm = self.p.forward(users), self.q.forward(movies)
        return self.mu.forward(self.w.forward(self.pu * self.qm)[:, 0])

    def backward(self, dpred):
        dprod = self.w.backward(self.mu.backward(dpred)[:, None])
        self.p.backward(dprod * self.qm)
        self.q.backward(dprod * self.pu)


def test_a_registered_learners_model_saves_loads_by_name_and_trains_everywhere(tmp_path, fast_backend,
                                                                               host_draws):
    users, movies, y = data()
    results = []
    for backend in ("numpy", fast_backend):
        model = LearnerModel(20, 25, dtype=np.float64, seed=4, backend=backend)
        for lazy in (False, True):
            model.compile(Adam(0.01, lazy=lazy)).fit([users, movies], y, batch_size=32, verbose=0)
        results.append(model)
    # two fits (dense, lazy) of one epoch at batch 32; w·(p*q) sums F = 3 (tolerances.py)
    bound = tol.adam_run(np.float64, [0.01] * 2 * -(-len(y) // 32), tol.gradient_terms(32, 3))
    for name, p in results[0].params.items():
        d = float(np.max(np.abs(to_numpy(results[1].params[name]) - p)))
        assert d <= bound, f"{name} differs by {d:.2e}, more than rounding can ({bound:.2e})"
    path = tmp_path / "mine.npz"
    results[0].save_weights(path)
    back = model_from_weights(path, backend="numpy")
    assert type(back) is LearnerModel and back.config() == results[0].config()
    np.testing.assert_array_equal(back.predict([users, movies]), results[0].predict([users, movies]))
    assert minirec.models.registry.KINDS["gmf-offset"] is LearnerModel


def test_two_registered_classes_may_not_share_a_name():
    with pytest.raises(ValueError, match="already"):
        register("bias")(type("Other", (DotProduct,), {}))
    with pytest.raises(ValueError, match="a model class named DotProduct is already registered"):
        register("dot2")(type("DotProduct", (Model,), {}))


def test_an_unregistered_class_in_a_weights_file_says_how_to_register_it(tmp_path):
    class Unlisted(DotProduct):
        pass
    Unlisted(3, 3, n_factors=2, backend="numpy").save_weights(tmp_path / "u.npz")
    with pytest.raises(WeightsError, match=r"'Unlisted' that is not registered.*@minirec.register"):
        model_from_weights(tmp_path / "u.npz")


# ----- SVD++: a fourth built-in model from the layers alone ---------------------------------------

def svdpp_train(seed=0):
    users, movies, y = data(900, 20, 25, seed)
    return Ratings(users, movies, y)


@pytest.mark.parametrize("cls", [SVDpp, FlippedSVDpp], ids=["SVDpp", "FlippedSVDpp"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("lazy", [False, True], ids=["dense", "lazy"])
def test_svdpp_trains_through_its_layers_like_the_reference(fast_backend, lazy, dtype, cls):
    train = svdpp_train()
    batch_size = 16 if dtype == np.float64 else 300  # float32: 6 steps, so its bound stays tight
    models = []
    for backend in ("numpy", fast_backend):
        model = cls.for_data(Sizes(20, 25), train, n_factors=4, l2=1e-3, dtype=dtype, seed=2, backend=backend)
        assert "fused kernel" not in describe(model)
        model.compile(Adam(0.01, lazy=lazy, weight_decay=0.01))
        model.fit(train.x, train.y, batch_size=batch_size, epochs=2, shuffle=False, verbose=0)
        models.append(model)
    # a bag holds at most 25 rows (every movie), summed before the dot product of F = 4
    steps = 2 * -(-len(train.y) // batch_size)
    bound = tol.adam_run(dtype, [0.01] * steps, tol.gradient_terms(batch_size, 25, 4))
    for name, p in models[0].params.items():
        d = float(np.max(np.abs(to_numpy(models[1].params[name]) - p)))
        assert d <= bound, f"{name} differs by {d:.2e}, more than rounding can ({bound:.2e})"


def test_svdpp_bags_are_each_users_rated_movies_and_its_mean_starts_at_the_training_mean():
    train = Ratings(np.array([2, 0, 2, 2, 0]), np.array([4, 1, 0, 4, 3]), np.array([1., 2, 3, 4, 5]))
    offsets, ids = rated_by(train.user, train.movie, 4)
    assert offsets.tolist() == [0, 2, 2, 4, 4] and ids.tolist() == [1, 3, 0, 4]  # once each
    model = SVDpp.for_data(Sizes(4, 5), train, n_factors=2, backend="numpy")
    assert to_numpy(model.params["offset.b"]).tolist() == [3.0]


@pytest.mark.parametrize("cls", [SVDpp, FlippedSVDpp], ids=["SVDpp", "FlippedSVDpp"])
def test_svdpp_saves_its_bags_and_loads_back_the_same_predictions(tmp_path, cls):
    train = svdpp_train()
    model = cls.for_data(Sizes(20, 25), train, n_factors=4, seed=1, backend="numpy").compile(Adam(0.01))
    model.fit(train.x, train.y, verbose=0)
    model.save_weights(tmp_path / "s.npz")
    back = model_from_weights(tmp_path / "s.npz", backend="numpy")
    np.testing.assert_array_equal(back.predict(train.x), model.predict(train.x))
    fresh = cls(20, 25, n_factors=4, backend="numpy").load_weights(tmp_path / "s.npz")
    np.testing.assert_array_equal(fresh.predict(train.x), model.predict(train.x))


@pytest.mark.parametrize("cls", [SVDpp, FlippedSVDpp], ids=["SVDpp", "FlippedSVDpp"])
def test_svdpp_follows_the_data_when_its_ids_come_in_another_order(tmp_path, cls):
    from minirec.data.synthetic import synthetic_movielens
    ds = synthetic_movielens(30, 40, 1500, seed=3)
    train, _ = ds.split(0.8, seed=0)
    model = cls.for_data(ds, train, n_factors=3, seed=0, backend="numpy")
    model.compile(Adam(0.02)).fit(train.x, train.y, epochs=2, verbose=0)
    model.save_weights(tmp_path / "s.npz", data=ds)
    reversed_ds = minirec.MovieLens("synthetic", ds.user_ids[ds.user][::-1], ds.movie_ids[ds.movie][::-1],
                                    ds.rating[::-1], ds.titles)
    back = model_from_weights(tmp_path / "s.npz", reversed_ds, backend="numpy")
    u_ids, m_ids = ds.user_ids[ds.user[:50]], ds.movie_ids[ds.movie[:50]]
    mine = model.predict([ds.user[:50], ds.movie[:50]])
    theirs = back.predict([np.array([reversed_ds.userid2idx[i] for i in u_ids]),
                           np.array([reversed_ds.movieid2idx[j] for j in m_ids])])
    # the same float32 weights, a bag (at most 40 rows) summed in another order, then F = 3
    # products and the biases: against Σ|terms| (tolerances.prediction_size)
    allowed = tol.rounding(40 + 3 + 4, np.float32) * tol.prediction_size(model, ds.user[:50], ds.movie[:50])
    assert np.all(np.abs(theirs - mine) <= allowed)


class WrongDtype(NoBackward):
    def backward(self, dpred):  # the right shape, float64 for a float32 table
        self.user.grads["W"] = np.zeros((self.n_users, self.n_factors))


def test_a_gradient_of_the_right_shape_but_the_wrong_dtype_is_named():
    users, movies, y = data(40, 5, 6)
    with pytest.raises(ModelError, match=r"shape \(5, 3\), float64, but the parameter is \(5, 3\), float32"):
        WrongDtype(5, 6, backend="numpy").compile(Adam()).fit([users, movies], y, verbose=0)


def test_lazy_steps_balance_the_l2_for_the_batch_size_fit_uses():
    """p_k = 1 - (1 - c_k/N)^B with B the fit's batch size: row k's lazy L2 factor is 2λ/p_k."""
    from minirec.train.runners import training_regularisers
    users, movies, y = data(200, 5, 6)
    model = DotProduct(5, 6, n_factors=2, l2=0.1, dtype=np.float64, backend="numpy")
    model.compile(Adam(lazy=True))
    for batch in (8, 32):
        reg = training_regularisers(model, users, movies, batch)["movie_embedding.W"]
        c = np.bincount(movies, minlength=6)
        q = (1 - c / len(movies)) ** batch
        expected = 2 * 0.1 / (1 - q)
        allowed = 2 * tol.one_minus_power(q, batch)  # each side within it of the exact factor
        got = reg.coefficients(model.params["movie_embedding.W"])
        assert np.all(np.abs(got - expected) <= allowed * expected), (got, expected)
