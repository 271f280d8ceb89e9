"""The MSE, Keras's L2 regulariser, and the balanced L2 of lazy steps (its row probabilities)."""
import numpy as np
import pytest

import tolerances as tol

from minirec.nn.losses import L2, BalancedL2, mse, touch_counts


def test_mse_and_its_gradient_by_hand():
    loss, grad = mse(np.array([1.0, 3.0]), np.array([2.0, 1.0]))
    assert loss == pytest.approx((1 + 4) / 2)
    np.testing.assert_allclose(grad, [2 * (1 - 2) / 2, 2 * (3 - 1) / 2])


def test_l2_penalty_is_lambda_times_sum_of_squares_with_gradient_two_lambda_w():
    W = np.array([[1.0, 2.0], [0.0, 0.0], [-1.0, 1.0]])
    reg = L2(0.5)
    assert reg.penalty(W) == pytest.approx(0.5 * (1 + 4 + 1 + 1))
    np.testing.assert_allclose(reg.gradient(W), 2 * 0.5 * W)
    np.testing.assert_allclose(reg.coefficients(W), [1.0, 1.0, 1.0])


@pytest.mark.parametrize("bad", [-1e-4, float("nan"), float("inf")])
def test_l2_refuses_negative_or_non_finite_lambda(bad):
    with pytest.raises(ValueError, match="l2"):
        L2(bad)


def test_balanced_l2_weights_each_row_by_one_over_its_batch_probability():
    """Row 0 has 3 of the 6 ratings, row 1 has 1, row 2 has 2, row 3 none; batches of 2.
    p_k = 1 - (1 - c_k/N)^B:  p_0 = 1 - (1/2)^2 = 3/4,  p_1 = 1 - (5/6)^2 = 11/36,
    p_2 = 1 - (2/3)^2 = 5/9; an unseen row keeps the plain 2λ."""
    ids = np.array([0, 0, 0, 1, 2, 2])
    reg = BalancedL2(0.1, touch_counts(ids, 4), len(ids), batch_size=2, dtype=np.float64)
    W = np.ones((4, 3))
    expected = 2 * 0.1 * np.array([4 / 3, 36 / 11, 9 / 5, 1.0])
    # 1 - (1 - c/N)^2 in floating point against the exact fractions (3 roundings each)
    allowed = tol.one_minus_power(np.array([1 / 4, 25 / 36, 4 / 9, 0.0]), 2) + tol.rounding(3)
    assert np.all(np.abs(reg.coefficients(W) - expected) <= allowed * expected)
    assert np.all(np.abs(reg.gradient(W) - expected[:, None] * W) <= (allowed * expected)[:, None] * W)
    assert reg.penalty(W) == pytest.approx(0.1 * 12)  # the objective stays Keras's


def test_balanced_l2_matches_the_keras_gradient_in_expectation():
    """Over all batches of a random order, the balanced lazy gradient a row receives adds up to
    about what Keras's dense 2λW gives it at every batch (the point of the weighting)."""
    rng = np.random.default_rng(0)
    ids = rng.choice(20, size=4000, p=np.arange(1, 21) / 210)
    reg, batch = BalancedL2(0.1, touch_counts(ids, 20), len(ids), 16, np.float64), 16
    seen = np.zeros(20)
    for _ in range(20):
        order = rng.permutation(ids)
        for s in range(0, len(order), batch):
            seen[np.unique(order[s:s + batch])] += 1
    n_batches = 20 * len(ids) // batch
    np.testing.assert_allclose(seen * reg.coefficients(np.ones((20, 1))) / n_batches, 0.2, rtol=0.05)
