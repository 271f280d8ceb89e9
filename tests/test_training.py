"""The training loop: what it reports, the order it visits ratings in, and when it stops."""
import numpy as np
import pytest

import tolerances as tol
from minirec import SGD, Adam, DotProduct, DotProductBias, TrainingDiverged
from minirec.backend import to_numpy
from minirec.train.loop import epoch_order


def toy(n=400, U=12, M=15, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, U, n), rng.integers(0, M, n), rng.integers(1, 11, n) / 2


def textbook_dot_product_epoch(P, Q, users, movies, y, batch, lr, l2):
    """An independent DotProduct epoch, written from the equations in plain loops: for each
    batch the MSE of r̂ = p_u · q_m before the step, then Keras's dense Adam on both tables
    with g = dMSE/dW + 2λW. Returns (the batch MSEs, P, Q)."""
    P, Q = P.copy(), Q.copy()
    state = {name: [np.zeros_like(W), np.zeros_like(W)] for name, W in (("P", P), ("Q", Q))}
    mses = []
    for t, start in enumerate(range(0, len(y), batch), start=1):
        u, m, r = users[start:start + batch], movies[start:start + batch], y[start:start + batch]
        err = np.array([P[a] @ Q[b] for a, b in zip(u, m)]) - r
        mses.append(np.mean(err ** 2))
        gP, gQ = 2 * l2 * P, 2 * l2 * Q
        for e, a, b in zip(err, u, m):
            gP[a] += 2 * e / len(r) * Q[b]
            gQ[b] += 2 * e / len(r) * P[a]
        for name, W, g in (("P", P, gP), ("Q", Q, gQ)):
            m1, v1 = state[name]
            m1[:] = 0.9 * m1 + 0.1 * g
            v1[:] = 0.999 * v1 + 0.001 * g * g
            W -= lr * (m1 / (1 - 0.9 ** t)) / (np.sqrt(v1 / (1 - 0.999 ** t)) + 1e-8)
    return np.array(mses), P, Q


def test_the_reported_loss_is_the_epochs_mean_mse_plus_the_penalty(backend):
    users, movies, y = toy()
    model = DotProduct(12, 15, n_factors=3, l2=0.01, dtype=np.float64, seed=0, backend=backend)
    P0, Q0 = (to_numpy(model.params[k]).copy() for k in ("user_embedding.W", "movie_embedding.W"))
    model.compile(Adam(0.01))
    hist = model.fit([users, movies], y, batch_size=32, shuffle=False, verbose=0)
    mses, P, Q = textbook_dot_product_epoch(P0, Q0, users, movies, y, 32, 0.01, 0.01)
    # The same maths summed in another order (and divided where the model multiplies): the
    # weights within adam_run for 13 steps; the loss through the predictions' slope and the
    # penalty's 2λΣ|W| (tolerances.loss_apart)
    bound = tol.adam_run(np.float64, [0.01] * -(-len(y) // 32), tol.gradient_terms(32, 3))
    for name, W in (("user_embedding.W", P), ("movie_embedding.W", Q)):
        assert np.max(np.abs(to_numpy(model.params[name]) - W)) <= bound, name
    penalty = 0.01 * ((P ** 2).sum() + (Q ** 2).sum())
    start = DotProduct(12, 15, n_factors=3, l2=0.01, dtype=np.float64, seed=0, backend="numpy")
    ref = DotProduct(12, 15, n_factors=3, l2=0.01, dtype=np.float64, backend="numpy")
    ref.set_params({"user_embedding.W": P, "movie_embedding.W": Q})
    slope = max(tol.prediction_slope(m, users, movies) for m in (start, ref))
    allowed = (tol.loss_apart(mses.mean(), slope * bound, len(y))
               + 2 * 0.01 * (np.abs(P).sum() + np.abs(Q).sum()) * bound + tol.rounding(P.size + Q.size) * penalty)
    assert abs(hist.history["loss"][0] - (mses.mean() + penalty)) <= allowed


class Recording(DotProduct):
    """Notes the users of every training batch it sees (the layers' path runs forward)."""

    def forward(self, users, movies, training=True):
        if training:
            self.seen.append(to_numpy(users).copy())
        return super().forward(users, movies, training)


def test_every_epoch_visits_the_ratings_in_a_fresh_order():
    users = np.arange(64) % 12
    movies, y = np.zeros(64, int), np.ones(64)
    model = Recording(12, 1, n_factors=2, seed=3, backend="numpy").compile(Adam())
    model.seen = []
    model.fit([users, movies], y, batch_size=64, epochs=3, verbose=0)
    orders = [tuple(s) for s in model.seen]
    assert len(orders) == 3 and len(set(orders)) == 3, "the same order twice"
    assert all(sorted(o) == sorted(users) for o in orders), "not a permutation of the ratings"
    assert tuple(users) not in orders, "not shuffled"
    model.seen = []
    model.fit([users, movies], y, batch_size=64, epochs=2, shuffle=False, verbose=0)
    assert [tuple(s) for s in model.seen] == [tuple(users)] * 2


def test_the_order_comes_from_the_model_seed():
    a = [epoch_order(50, np.random.default_rng(1)) for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    rng = np.random.default_rng(1)
    assert not np.array_equal(epoch_order(50, rng), epoch_order(50, rng))


def test_nan_loss_stops_training_naming_epoch_and_batch_and_restores_the_fit_start():
    users, movies, y = toy(640)
    model = DotProductBias(12, 15, n_factors=4, seed=0, backend="numpy").compile(Adam(1e30))
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(TrainingDiverged, match=r"epoch 1, batch 2\b.*weights it had before this fit"):
        model.fit([users, movies], y, batch_size=64, epochs=2, shuffle=False, verbose=0)
    for k in before:
        np.testing.assert_array_equal(model.params[k], before[k])


def test_overflowing_loss_stops_before_the_step():
    users, movies, y = toy(640)
    model = DotProduct(12, 15, n_factors=4, seed=0, backend="numpy").compile(Adam(0.01))
    model.fit([users, movies], y, epochs=1, verbose=0)
    good = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(TrainingDiverged, match="epoch 1, batch 1"):
        model.fit([users, movies], y * 1e30, epochs=1, verbose=0)  # the squared error overflows
    for k in good:
        np.testing.assert_array_equal(model.params[k], good[k])


def test_a_loss_that_explodes_while_finite_stops_and_keeps_the_last_good_epoch(backend):
    """At lr 1e4 (float64: nothing overflows) the loss grows by orders of magnitude but stays
    finite. Training must stop and go back to the weights and Adam state after epoch 1."""
    users, movies, y = toy(2000)
    val = ([users[1600:], movies[1600:]], y[1600:])
    model = DotProductBias(12, 15, n_factors=4, seed=0, dtype=np.float64, backend=backend)
    model.compile(Adam(0.01)).fit([users[:1600], movies[:1600]], y[:1600], epochs=1,
                                  validation_data=val, verbose=0)
    good = {k: to_numpy(v).copy() for k, v in model.params.items()}
    good_val, steps = model.evaluate(*val), model.optimizer.iterations
    model.optimizer.lr = 1e4
    with pytest.raises(TrainingDiverged, match=rf"epoch 1, batch \d+: the batch loss reached .* "
                                               rf"over 100x.*before this fit"):
        model.fit([users[:1600], movies[:1600]], y[:1600], epochs=3, validation_data=val, verbose=0)
    for k in good:
        np.testing.assert_array_equal(to_numpy(model.params[k]), good[k])
    assert model.evaluate(*val) == pytest.approx(good_val) and model.optimizer.iterations == steps


def test_divergence_in_a_later_epoch_keeps_the_previous_epochs_weights():
    """Epoch 1 trains well; then the rate is raised from inside a schedule and epoch 2 explodes:
    the model keeps what it had after epoch 1, and the message says so with its val MSE."""
    users, movies, y = toy(2000)
    val = ([users[1600:], movies[1600:]], y[1600:])
    model = DotProductBias(12, 15, n_factors=4, seed=0, dtype=np.float64, backend="numpy")
    model.compile(Adam(0.01))
    n_batches = 1600 // 64  # 25 full batches
    schedule = lambda step, n: 0.01 if step < n_batches else 1e4
    after_epoch_1 = {}

    class Spy(Adam):  # notes the weights when epoch 2 begins
        def step(self, params, grads, rows=None):
            if self.iterations == n_batches:
                after_epoch_1.update({k: v.copy() for k, v in params.items()})
            super().step(params, grads, rows)
    model.optimizer = Spy(0.01)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, .*from the start of epoch 2, after "
                                               r"epoch 1 \(validation MSE \d\.\d{4}\)"):
        model.fit([users[:1600], movies[:1600]], y[:1600], epochs=3, validation_data=val,
                  verbose=0, lr_schedule=schedule)
    for k, v in after_epoch_1.items():
        np.testing.assert_array_equal(model.params[k], v)
    assert model.optimizer.lr == 0.01  # the schedule's rates do not stay behind


def test_non_finite_weights_roll_back_to_the_start_of_the_fit():
    """A huge SGD step makes the weights infinite after batch 1; batch 2's loss is NaN."""
    users, movies, y = toy(640)
    model = DotProduct(12, 15, n_factors=4, seed=0, backend="numpy").compile(SGD(lr=1e300))
    good = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(TrainingDiverged, match="epoch 1, batch 2.*before this fit"):
        model.fit([users, movies], y, epochs=1, verbose=0)
    for k in good:
        np.testing.assert_array_equal(model.params[k], good[k])
