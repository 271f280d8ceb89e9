"""Adam and SGD: hand-computed steps, dense and lazy modes, and live learning-rate changes."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tolerances as tol
from minirec import SGD, Adam, DotProductBias
from minirec.nn.optim import adam_update, one_cycle_lr


def test_adam_two_steps_by_hand_dense():
    """p0 = 1, g1 = 0.5, g2 = -1, lr = 0.1, β1 = 0.9, β2 = 0.999, ε = 1e-8.

    t=1: m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25, p = 1 - 0.1·0.5/(0.5 + 1e-8) = 0.900000002
    t=2: m = 0.045 - 0.1 = -0.055, v = 0.00024975 + 0.001 = 0.00124975,
         m̂ = -0.055/0.19 = -0.289473684..., v̂ = 0.00124975/0.001999 = 0.625187594...,
         p = 0.900000002 + 0.1·0.289473684/(0.790688...) = 0.936610354...
    """
    p = {"w": np.array([1.0])}
    opt = Adam(lr=0.1)
    opt.step(p, {"w": np.array([0.5])})
    # The formulas above, in decimal literals, against Adam's step: each a chain of about 16
    # roundings of numbers below 1 (the literals, 0.19 for 1 - 0.9², count as roundings too)
    p1 = 1 - 0.1 * 0.5 / (0.5 + 1e-8)
    assert p["w"][0] == pytest.approx(p1, abs=tol.rounding(2 * 16))
    assert abs(p1 - 0.900000002) < 1e-16  # the docstring's figure: exact 0.90000000199999996...
    opt.step(p, {"w": np.array([-1.0])})
    p2 = p1 - 0.1 * (-0.055 / 0.19) / (np.sqrt(0.00124975 / 0.001999) + 1e-8)
    assert p["w"][0] == pytest.approx(p2, abs=tol.rounding(4 * 16))  # two steps on each side
    assert p2 == pytest.approx(0.9366103542, abs=5e-11)  # the docstring's ten decimals
    assert opt.state["w"]["m"][0] == pytest.approx(-0.055)
    assert opt.state["w"]["v"][0] == pytest.approx(0.00124975)


def test_adam_two_steps_by_hand_lazy():
    """Three rows: batch 1 sees row 0, batch 2 sees row 1. Lazy: row 2 never moves, row 0 does
    not move at t=2, and row 1's first step uses t=2's bias correction. Dense: every row moves."""
    grads1 = {"E": np.array([[0.5], [0.0], [0.0]])}
    grads2 = {"E": np.array([[0.0], [-1.0], [0.0]])}
    lazy = {"E": np.ones((3, 1))}
    opt = Adam(lr=0.1, lazy=True)
    opt.step(lazy, grads1, rows={"E": np.array([0])})
    opt.step(lazy, grads2, rows={"E": np.array([1])})
    # one step, then left alone (the two-step test's p1, with its rounding)
    assert lazy["E"][0, 0] == pytest.approx(1 - 0.1 * 0.5 / (0.5 + 1e-8), abs=tol.rounding(2 * 16))
    assert lazy["E"][2, 0] == 1.0
    # row 1 at t=2: m = 0.1·(-1) = -0.1, v = 0.001·1 = 0.001, m̂ = -0.1/0.19, v̂ = 0.001/0.001999
    m_hat, v_hat = -0.1 / 0.19, 0.001 / 0.001999
    assert lazy["E"][1, 0] == pytest.approx(1 - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8),
                                            abs=tol.rounding(2 * 16))

    dense = {"E": np.ones((3, 1))}
    opt = Adam(lr=0.1)
    opt.step(dense, grads1, rows={"E": np.array([0])})
    opt.step(dense, grads2, rows={"E": np.array([1])})
    # row 0 in dense mode takes a second step with g = 0: m = 0.045, m̂ = 0.045/0.19,
    # v = 0.00024975, v̂ = 0.00024975/0.001999
    m_hat, v_hat = 0.045 / 0.19, 0.00024975 / 0.001999
    p1 = 1 - 0.1 * 0.5 / (0.5 + 1e-8)
    assert dense["E"][0, 0] == pytest.approx(p1 - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8),
                                             abs=tol.rounding(4 * 16))
    assert dense["E"][2, 0] == 1.0  # zero gradient from zero moments: no move


@given(lr=st.floats(1e-4, 1.0), g=st.floats(-1e3, 1e3).filter(lambda x: abs(x) > 1e-6))
def test_adam_first_step_moves_at_most_lr(lr, g):
    p = {"w": np.array([0.3])}
    Adam(lr=lr).step(p, {"w": np.array([g])})
    # |m̂/(√v̂ + ε)| = |g|/(|g| + ε) ≤ 1, computed in about 8 roundings; then the subtraction
    # from 0.3 rounds once more, relative to the result
    assert abs(p["w"][0] - 0.3) <= lr * (1 + tol.rounding(8)) + tol.rounding(1) * (0.3 + lr)


def test_sgd_step():
    p = {"w": np.array([1.0, 2.0])}
    SGD(lr=0.5).step(p, {"w": np.array([2.0, -2.0])})
    np.testing.assert_array_equal(p["w"], [0.0, 3.0])


def test_decoupled_weight_decay_shrinks_outside_the_adaptive_step():
    p = {"w": np.array([2.0])}
    Adam(lr=0.1, weight_decay=0.5).step(p, {"w": np.array([0.0])})
    assert p["w"][0] == pytest.approx(2.0 - 0.1 * 0.5 * 2.0)


def _toy(seed=0):
    rng = np.random.default_rng(seed)
    users, movies = rng.integers(0, 20, 500), rng.integers(0, 30, 500)
    return users, movies, rng.integers(1, 11, 500) / 2


def test_changing_lr_between_fits_changes_the_step_size():
    """Two identical models; after one epoch each, one gets lr 0.01, the other keeps 0.001.
    The next epoch's weight change must be about 10 times bigger (Adam steps scale with lr)."""
    users, movies, y = _toy()
    moves = []
    for lr in (0.001, 0.01):
        model = DotProductBias(20, 30, n_factors=4, seed=3, backend="numpy")
        model.compile(Adam(0.001))
        model.fit([users, movies], y, epochs=1, verbose=0)
        model.optimizer.lr = lr
        before = {k: v.copy() for k, v in model.params.items()}
        model.fit([users, movies], y, epochs=1, verbose=0)
        moves.append(sum(np.abs(model.params[k] - before[k]).sum() for k in before))
    assert 5 < moves[1] / moves[0] < 15


@given(t=st.integers(1, 50), seed=st.integers(0, 2**16))
def test_adam_update_is_the_textbook_update(t, seed):
    """The one written-out update, against Kingma & Ba's algorithm computed here with its
    divisions: m̂ = m/(1-β1^t), v̂ = v/(1-β2^t), w -= lr·m̂/(√v̂+ε) + lr·wd·w."""
    rng = np.random.default_rng(seed)
    w, g, m, v = rng.standard_normal((4, 5)), rng.standard_normal(5), rng.standard_normal(5), rng.random(5)
    opt = Adam(lr=0.05, beta_1=0.8, beta_2=0.99, epsilon=1e-6, weight_decay=0.1)
    m1 = 0.8 * m + 0.2 * g
    v1 = 0.99 * v + 0.01 * g * g
    w1 = w[0] - 0.05 * (m1 / (1 - 0.8 ** t)) / (np.sqrt(v1 / (1 - 0.99 ** t)) + 1e-6) - 0.05 * 0.1 * w[0]
    got = adam_update(w[0], g, m, v, opt.constants(t, np.float64))
    # The same maths with multiplications where the textbook divides: each result within 16
    # roundings of its terms' magnitudes (m and w may cancel; v's terms are all positive)
    step = 0.05 * np.abs(m1 / (1 - 0.8 ** t)) / (np.sqrt(v1 / (1 - 0.99 ** t)) + 1e-6)
    assert np.all(np.abs(got[0] - w1) <= tol.rounding(16) * (np.abs(w[0]) * 1.005 + step))
    assert np.all(np.abs(got[1] - m1) <= tol.rounding(4) * (0.8 * np.abs(m) + 0.2 * np.abs(g)))
    np.testing.assert_allclose(got[2], v1, rtol=tol.rounding(4), atol=0)


def test_adam_constants_come_in_the_parameters_dtype():
    """Float32 weights stay float32 through the update (a float64 constant would upcast)."""
    k = Adam().constants(3, np.float32)
    assert all(type(x) is np.float32 for x in k)
    w, m, v = adam_update(np.ones(3, np.float32), np.ones(3, np.float32), np.zeros(3, np.float32),
                          np.zeros(3, np.float32), k)
    assert w.dtype == m.dtype == v.dtype == np.float32


def test_adam_constants_for_many_steps_are_the_bits_of_one_step_at_a_time():
    """The Numba runners ask ``constants`` for a whole run of steps at once (an array of t), the
    NumPy and CuPy steps for one t: the same maths must give the same bits, so the equality is
    exact. (With NumPy's array power, β^t differed by an ulp at some t on AVX-512 machines: at
    t = 12 and 23 for β1 = 0.9.)"""
    opt = Adam(0.01, weight_decay=0.1)
    t = np.arange(1, 5001, dtype=np.float64)
    many = opt.constants(t, np.float64, np.full(t.size, 0.01))
    for name in ("m_correction", "v_correction"):
        one_by_one = [getattr(opt.constants(int(s), np.float64), name) for s in t]
        assert np.array_equal(getattr(many, name), one_by_one), name


def test_one_cycle_warms_up_then_anneals_on_cosines():
    """From lr_max/25 up to lr_max over the first quarter, then down to lr_max/25e4; half way
    through each phase the rate is the mean of its two ends (a cosine, not a straight line:
    a quarter of the way it is 1/2 - √2/4 of the way)."""
    n, top = 400, 0.01
    lrs = np.array([one_cycle_lr(s, n, top) for s in range(n)])
    assert lrs[0] == pytest.approx(top / 25)
    assert lrs.argmax() == 100 and lrs[100] == pytest.approx(top)
    assert np.all(np.diff(lrs[:101]) > 0) and np.all(np.diff(lrs[100:]) < 0)
    assert lrs[50] == pytest.approx((top / 25 + top) / 2)
    assert lrs[25] == pytest.approx(top / 25 + (top - top / 25) * (0.5 - np.sqrt(2) / 4))
    end = top / (25 * 1e4)
    assert lrs[250] == pytest.approx((top + end) / 2)
    assert one_cycle_lr(n, n, top) == pytest.approx(end)


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), "0.1", True])
def test_a_learning_rate_must_be_finite_and_positive(lr):
    with pytest.raises(ValueError, match="learning rate"):
        Adam(lr)
