"""The losses — mean squared error, the BPR ranking loss — and the L2 regularisers, each with
its gradient (``objectives.py`` says which one a model trains on).

Training loss (what ``fit`` prints as ``loss``), for MSE:

    L = (1/N) * sum_i (r̂_i - r_i)**2  +  sum over regularised tables T of  λ_T * sum(T**2)

Validation loss (``val_loss``) is the plain MSE, *without* the penalty, so it measures only how
well ratings are predicted. Keras 1.0 and 1.1 did the same: their weight regulariser returned
``K.in_train_phase(regularized_loss, loss)`` (keras-team/keras, tag 1.1.0,
keras/regularizers.py line 95). From Keras 1.2.0 the penalties join the model's total loss
(tag 1.2.0, keras/engine/training.py lines 628-631), which the test function evaluates too
(line 733): there ``val_loss`` includes the penalty.
"""
import numpy as np

from ..backend import get_array_module, to_numpy, to_xp


def mse(pred, y):
    """Mean squared error and its gradient.

    pred (N,), y (N,)  ->  loss (float), dpred (N,) = 2 * (pred - y) / N
    """
    diff = pred - y
    n = diff.shape[0]
    return float(diff @ diff) / n, diff * (2.0 / n)  # diff @ diff = Σ diff²


def bpr(pos, neg):
    """The BPR loss (Rendle et al. 2009) and its gradients, with x = pos - neg (N,):

        loss = mean log(1 + e^-x) = -mean log σ(x)
        dpos = -σ(-x) / N,   dneg = +σ(-x) / N

    log(1 + e^-x) is computed as logaddexp(0, -x) and σ(-x) as exp(-logaddexp(0, x)), which
    never overflow.
    """
    xp = get_array_module(pos)
    x = pos - neg
    n = x.shape[0]
    s = xp.exp(-xp.logaddexp(0.0, x))  # σ(-x) = 1 / (1 + e^x), without overflow
    g = s * (1.0 / n)
    return float(xp.logaddexp(0.0, -x).sum()) / n, -g, g


def mse_of(pred, y):
    """Plain MSE as a float (for evaluation), on NumPy or CuPy arrays."""
    diff = pred - y
    return float(get_array_module(pred).mean(diff * diff))


class L2:
    """Keras's ``l2`` weight regulariser on a whole table W:

        penalty = λ · ΣW²        gradient = 2λ·W   (every row, at every batch)

    ``coefficients(W)`` is 2λ per row, the factor the optimiser multiplies W by.
    """

    def __init__(self, l2):
        self.l2 = float(l2)
        if not (np.isfinite(self.l2) and self.l2 >= 0):
            raise ValueError(f"l2 must be a finite number >= 0, got {l2}")

    def penalty(self, W):
        return self.l2 * float((W * W).sum())

    def gradient(self, W):
        return (2.0 * self.l2) * W

    def coefficients(self, W):
        """2λ for each of W's rows, shape (n,), in W's dtype."""
        return get_array_module(W).full(W.shape[0], 2.0 * self.l2, dtype=W.dtype)


class BalancedL2(L2):
    """The L2 a *lazy* optimiser step uses instead, so that rarely-seen rows are not let off.

    Under Keras every row pays 2λ·W at every batch. A lazy step only touches the rows in the
    batch, so a row seen in few batches is barely regularised (PyTorch's SparseAdam with the
    notebook's λ overfits to 1.06 validation MSE on the bias model). Row k appears in a batch of
    B ratings, drawn from N of which c_k touch row k, with probability

        p_k = 1 - (1 - c_k / N)^B

    and weighting its gradient by 1/p_k whenever it is seen makes the *expected* gradient per
    batch equal to Keras's:  gradient = (2λ / p_k) · W_k  on the rows in the batch. Rows never
    seen keep the plain 2λ (they are never stepped). The penalty, and so the reported loss, stays
    Keras's λ·ΣW²: only the lazy step's gradient is reweighted.

    ``counts`` (rows,): c_k, the training ratings that touch each row (``touch_counts``).
    """

    def __init__(self, l2, counts, n_ratings, batch_size, dtype=np.float32, xp=np):
        super().__init__(l2)
        counts = np.asarray(to_numpy(counts), np.float64)
        p_seen = 1.0 - (1.0 - counts / max(1, n_ratings)) ** batch_size
        weight = np.where(counts > 0, 1.0 / np.maximum(p_seen, 1e-300), 1.0)
        self.row_weight = weight
        self._coefficients = to_xp(2.0 * self.l2 * weight, xp, dtype)

    def gradient(self, W):
        return self.coefficients(W)[:, None] * W

    def coefficients(self, W):
        return self._coefficients


def touch_counts(ids, n_rows, bags=None):
    """c_k for every row k: how many of the ratings (whose ``ids`` are given) touch row k. A
    table looked up directly is touched by the ratings of its id; a bag table (``bags = (offsets,
    bag ids)``, one bag per id) by every rating whose id's bag holds k."""
    if bags is None:
        return np.bincount(to_numpy(ids), minlength=n_rows)
    offsets, bag_ids = (to_numpy(a) for a in bags)
    per_id = np.bincount(to_numpy(ids), minlength=len(offsets) - 1)
    return np.bincount(bag_ids, weights=np.repeat(per_id, np.diff(offsets)), minlength=n_rows)
