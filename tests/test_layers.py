"""Properties of the layers on tiny random shapes (hypothesis), duplicate ids included."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import tolerances as tol
from minirec.nn.activations import Dropout, ReLU, SigmoidRange, sigmoid_range
from minirec.nn.layers import Concat, Dense, Dot, Embedding

small = st.integers(1, 4)
finite = st.floats(-3, 3, allow_nan=False, width=64)


@given(n=small, F=small, ids=st.lists(st.integers(0, 3), min_size=1, max_size=8), seed=st.integers(0, 2**16))
def test_embedding_backward_equals_one_hot_matmul(n, F, ids, seed):
    """dW = onehot(idx)ᵀ @ dout — the dense formula a scatter-add must match, repeats included."""
    idx = np.array(ids) % n
    rng = np.random.default_rng(seed)
    layer = Embedding(n, F, rng=rng, dtype=np.float64)
    out = layer.forward(idx)
    assert out.shape == (len(idx), F)
    dout = rng.standard_normal((len(idx), F))
    layer.backward(dout)
    one_hot = np.eye(n)[idx]                      # (N, n)
    # a row's gradient sums up to len(idx) rows of dout, in its own order (tolerances.py)
    allowed = tol.rounding(len(idx)) * (one_hot.T @ np.abs(dout))
    assert np.all(np.abs(layer.grads["W"] - one_hot.T @ dout) <= allowed)
    np.testing.assert_array_equal(np.sort(layer.rows()), np.unique(idx))


@given(N=small, F=small, seed=st.integers(0, 2**16))
def test_backward_never_modifies_dout(N, F, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((N, F)), rng.standard_normal((N, F))
    for layer, args, dout in [
        (Dot(), (a, b), rng.standard_normal(N)),
        (Concat(), (a, b), rng.standard_normal((N, 2 * F))),
        (ReLU(), (a,), rng.standard_normal((N, F))),
        (Dropout(0.5, rng=rng), (a,), rng.standard_normal((N, F))),
        (Dense(F, 3, rng=rng, dtype=np.float64), (a,), rng.standard_normal((N, 3))),
    ]:
        layer.forward(*args)
        before = dout.copy()
        layer.backward(dout)
        np.testing.assert_array_equal(dout, before, err_msg=type(layer).__name__)


@given(p=st.floats(0.0, 0.9), seed=st.integers(0, 2**16))
def test_dropout_preserves_the_mean_in_expectation(p, seed):
    """Inverted dropout: E[out] = x. The number of kept entries among 200,000 is binomial; it
    must lie within the binomial's central 1 - 2e-9 (exact quantiles, so a drop probability
    near float32's resolution, where a normal approximation fails, is judged right). The draws
    are float32 multiples of 2^-24, so the real drop probability is p rounded up to one."""
    from scipy.stats import binom
    n = 200_000
    out = Dropout(p, rng=np.random.default_rng(seed)).forward(np.ones(n), training=True)
    kept = int((out != 0).sum())
    p_real = np.ceil(np.float32(p) * 2.0**24) / 2.0**24  # P(draw < p) for draws k / 2^24
    lo, hi = binom.ppf([1e-9, 1 - 1e-9], n, 1 - p_real)
    assert lo <= kept <= hi, (kept, lo, hi)
    np.testing.assert_array_equal(out[out != 0], 1.0 / (1.0 - p))  # 1 · (1/(1-p)): the same two roundings


def test_dropout_mean_test_holds_at_float32_resolution():
    """The draw that once failed the normal approximation: p = 5.96e-8, seed 5617."""
    test_dropout_preserves_the_mean_in_expectation.hypothesis.inner_test(5.96e-8, 5617)


@given(x=arrays(np.float64, (3, 4), elements=finite))
def test_dropout_is_the_identity_at_eval(x):
    layer = Dropout(0.75, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    np.testing.assert_array_equal(layer.backward(x), x)


def test_dropout_p_is_the_drop_rate():
    out = Dropout(0.75, rng=np.random.default_rng(0)).forward(np.ones(100_000))
    assert abs((out == 0).mean() - 0.75) < 0.01


def test_dropout_rejects_p_of_one():
    with pytest.raises(ValueError, match="drop probability"):
        Dropout(1.0)


def test_embedding_init_is_keras_uniform():
    W = Embedding(1000, 50, rng=np.random.default_rng(0)).params["W"]
    assert W.dtype == np.float32 and W.shape == (1000, 50)
    assert W.min() >= -0.05 and W.max() <= 0.05 and W.std() > 0.02


def test_dense_init_is_glorot_uniform_with_zero_bias():
    layer = Dense(100, 70, rng=np.random.default_rng(0))
    limit = np.sqrt(6 / 170)
    assert np.abs(layer.params["W"]).max() <= limit and layer.params["W"].std() > limit / 3
    assert not layer.params["b"].any()


@given(z=arrays(np.float64, 7, elements=st.floats(-30, 30)))
def test_sigmoid_range_stays_inside_the_range_and_is_centred(z):
    layer = SigmoidRange(0.0, 5.5)
    out = layer.forward(z)
    assert np.all((out >= 0.0) & (out <= 5.5))
    # 0 + 5.5·(1/(1 + e^-z)) against 5.5/(1 + e^-z), the same exp: 3 roundings apart
    np.testing.assert_allclose(out, 5.5 / (1 + np.exp(-z)), rtol=tol.rounding(3), atol=0)
    assert layer.forward(np.zeros(1))[0] == pytest.approx(2.75)


def test_sigmoid_range_is_one_function_for_numbers_and_arrays():
    z = np.array([-2.0, 0.0, 3.0])
    pred, s = sigmoid_range(z, 1.0, 4.0)
    # np.exp of a number and of an array may be two implementations (IEEE 754 does not ask exp
    # to be correctly rounded); allowing each 4 ulp, then 1 + e, 1/·, span·, lo + (no
    # cancellation: all positive) on each side: 2·(4 + 4) roundings
    for k in range(3):
        one, s_one = sigmoid_range(float(z[k]), 1.0, 4.0)
        assert one == pytest.approx(pred[k], rel=tol.rounding(16), abs=0)
        assert s_one == pytest.approx(s[k], rel=tol.rounding(16), abs=0)


def test_sigmoid_range_refuses_an_empty_range():
    with pytest.raises(ValueError, match="lo < hi"):
        SigmoidRange(5.0, 5.0)


def test_embedding_has_no_regulariser_of_its_own():
    """L2 lives in losses.L2 and is attached by the model; the layer is a plain lookup."""
    layer = Embedding(3, 2, dtype=np.float64)
    assert set(vars(layer)) <= {"params", "grads", "idx", "dW", "written"}


def test_the_output_range_holds_at_both_ends():
    """r̂ = lo + (hi - lo)·σ(z): far below zero it meets lo, far above hi, at zero the middle
    — with lo = 1 (ml-100k's lowest star), so a lost lower bound cannot hide behind lo = 0."""
    layer = SigmoidRange(1.0, 5.0)
    out = layer.forward(np.array([-40.0, 0.0, 40.0]))
    np.testing.assert_array_equal(out, [1.0, 3.0, 5.0])  # 1 + 4σ(±40) rounds to 1 and 5 exactly
    # dr̂/dz = 4σ(z)σ(-z): 1 at zero, and at most 4e^-40 at ±40 (8 roundings on the way)
    np.testing.assert_allclose(layer.backward(np.ones(3)), [0.0, 1.0, 0.0], rtol=0,
                               atol=4 * np.exp(-40) * (1 + tol.rounding(8)))
