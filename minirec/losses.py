"""Mean squared error and the L2 penalty, each with its gradient.

Training loss (what ``fit`` prints as ``loss``):

    L = (1/N) * sum_i (r̂_i - r_i)**2  +  sum over regularised tables T of  λ_T * sum(T**2)

Validation loss (``val_loss``) is the plain MSE, *without* the penalty, so it measures only how
well ratings are predicted. (Keras 1 printed the penalty inside its validation loss too; the
notebook's numbers therefore mix the two — see the README.)
"""
from .backend import get_array_module


def mse(pred, y):
    """Mean squared error and its gradient.

    pred (N,), y (N,)  ->  loss (float), dpred (N,) = 2 * (pred - y) / N
    """
    diff = pred - y
    n = diff.shape[0]
    return float((diff * diff).sum()) / n, diff * (2.0 / n)


def l2_penalty(W, l2):
    """``l2 * sum(W**2)`` and its gradient ``2 * l2 * W`` (Keras's ``l2`` regulariser)."""
    return l2 * float((W * W).sum()), (2.0 * l2) * W


def mse_of(pred, y):
    """Plain MSE as a float (for evaluation), on NumPy or CuPy arrays."""
    xp = get_array_module(pred)
    diff = pred - y
    return float(xp.mean(diff * diff))
