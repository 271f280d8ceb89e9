"""Numerical gradient checks: prove every backward pass against central differences.

For a scalar function f of an array x, the central difference

    ∂f/∂x_k  ≈  (f(x + h e_k) - f(x - h e_k)) / (2h)

has error O(h²). In float64 with h = 1e-5 that is ~1e-10, far below any real bug. To check a
layer whose output is an array, we check the vector-Jacobian product instead: pick a random
upstream gradient ``dout`` and differentiate f(x) = Σ forward(x) · dout, whose gradient is
exactly what ``backward(dout)`` returns.

Relative error (one number per array):  max|a - n| / max(1e-8, max(|a| + |n|)).
The worst absolute error is measured against the largest gradient in the array, so entries
that are exactly zero (embedding rows no id touched) do not turn rounding noise into failures.

Bounds: 1e-7 for smooth operations; 1e-5 where ReLU is involved (the inputs are kept at
least 1e-3 away from its kink at 0, so a step of h = 1e-5 never crosses it).

``check_model`` checks any model through its ``loss_and_grads``. ``tools/check_all.py`` runs
the whole catalogue (every layer, loss and built-in model): ``minirec gradcheck`` prints it as a
table and the test suite asserts every bound.
"""
import numpy as np

from .activations import Clip, Dropout, ReLU, SigmoidRange
from .layers import Concat, Dense, Dot, Embedding, EmbeddingBag, Offset
from .losses import L2, mse

SMOOTH_BOUND = 1e-7
RELU_BOUND = 1e-5


def rel_error(analytic, numeric):
    """max|a - n| / max(1e-8, max(|a| + |n|))  (0 for two empty arrays)."""
    a, n = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    if a.shape != n.shape:
        raise ValueError(f"shape mismatch: analytic {a.shape} vs numeric {n.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - n)) / max(1e-8, float(np.max(np.abs(a) + np.abs(n)))))


def numerical_gradient(f, x, h=1e-5):
    """Central-difference gradient of the scalar function ``f()`` with respect to array ``x``.

    ``x`` is perturbed in place, one entry at a time, and restored afterwards.
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        k = it.multi_index
        old = x[k].copy()
        x[k] = old + h
        f_plus = f()
        x[k] = old - h
        f_minus = f()
        x[k] = old
        grad[k] = (f_plus - f_minus) / (2 * h)
    return grad


class GradientCheckError(AssertionError):
    pass


def compare(name, analytic, numeric, bound):
    """The relative error, or a ``GradientCheckError`` that shows shapes and the worst entries."""
    err = rel_error(analytic, numeric)
    if not err < bound:
        a, n = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
        diff = np.abs(a - n).ravel()
        worst = np.argsort(diff)[::-1][:5]
        rows = "\n".join(f"    at {np.unravel_index(k, a.shape)}: analytic {a.ravel()[k]:+.10g}, "
                         f"numeric {n.ravel()[k]:+.10g}" for k in worst)
        raise GradientCheckError(f"{name}: relative error {err:.3e} is over the bound {bound:.0e}"
                                 f" (shape {a.shape})\n  worst entries:\n{rows}")
    return err


# ----- the catalogue --------------------------------------------------------------------------
# Each check returns {label: relative error} and raises GradientCheckError when over its bound.

def _rng(seed=0):
    return np.random.default_rng(seed)


def check_embedding(seed=0):
    rng = _rng(seed)
    layer = Embedding(5, 3, rng=rng, dtype=np.float64)
    idx = np.array([0, 2, 2, 4, 0, 0, 1])  # repeated ids on purpose
    dout = rng.standard_normal((len(idx), 3))
    layer.forward(idx)
    layer.backward(dout)
    W = layer.params["W"]
    num = numerical_gradient(lambda: float(np.sum(layer.forward(idx) * dout)), W)
    return {"Embedding (dW, repeated ids)": compare("Embedding.W", layer.grads["W"], num, SMOOTH_BOUND)}


# Bags of a 5-row table for 4 input rows: row 2's bag is empty, row 3's repeats id 1.
BAGS = (np.array([0, 3, 4, 4, 7]), np.array([0, 2, 4, 3, 1, 1, 4]))


def check_embedding_bag(seed=0):
    rng = _rng(seed)
    rows = np.array([0, 3, 3, 2, 1, 0])  # repeated rows, and the empty bag, on purpose
    out = {}
    for mode in ("sqrt", "mean", "sum"):
        layer = EmbeddingBag(5, 3, BAGS, mode=mode, rng=rng, dtype=np.float64)
        dout = rng.standard_normal((len(rows), 3))
        layer.forward(rows)
        layer.backward(dout)
        num = numerical_gradient(lambda: float(np.sum(layer.forward(rows) * dout)), layer.params["W"])
        out[f"EmbeddingBag {mode} (dW, repeated rows and ids, an empty bag)"] = compare(
            f"EmbeddingBag({mode}).W", layer.grads["W"], num, SMOOTH_BOUND)
    return out


def check_offset(seed=0):
    rng = _rng(seed)
    layer = Offset(0.5, dtype=np.float64)
    z, dout = rng.standard_normal(6), rng.standard_normal(6)
    layer.forward(z)
    out = _vjp_check("Offset (dz)", layer.forward, layer.backward, [z], dout, SMOOTH_BOUND)
    num = numerical_gradient(lambda: float(np.sum(layer.forward(z) * dout)), layer.params["b"])
    out["Offset (db)"] = compare("Offset.b", layer.grads["b"], num, SMOOTH_BOUND)
    return out


def check_clip(seed=0):
    rng = _rng(seed)
    z, dout = rng.uniform(-3, 3, (5, 4)), rng.standard_normal((5, 4))
    for bound in (-1.0, 1.0):  # keep every input at least 1e-3 from either bound
        near = np.abs(z - bound) < 1e-3
        z[near] += 2e-3
    layer = Clip(-1.0, 1.0)
    layer.forward(z)
    return _vjp_check("Clip (inputs off the bounds)", layer.forward, layer.backward, [z], dout,
                      RELU_BOUND)


def _vjp_check(label, layer_forward, layer_backward, inputs, dout, bound):
    """Check d(Σ forward(*inputs) · dout)/d(input k) against backward(dout)[k] for every input."""
    analytic = layer_backward(dout)
    if not isinstance(analytic, tuple):
        analytic = (analytic,)
    out = {}
    for k, x in enumerate(inputs):
        num = numerical_gradient(lambda: float(np.sum(layer_forward(*inputs) * dout)), x)
        out[f"{label} (input {k})" if len(inputs) > 1 else label] = compare(label, analytic[k], num, bound)
    return out


def check_dot(seed=0):
    rng = _rng(seed)
    a, b, dout = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4)
    layer = Dot()
    layer.forward(a, b)
    return _vjp_check("Dot", layer.forward, layer.backward, [a, b], dout, SMOOTH_BOUND)


def check_concat(seed=0):
    rng = _rng(seed)
    a, b, dout = rng.standard_normal((4, 2)), rng.standard_normal((4, 3)), rng.standard_normal((4, 5))
    layer = Concat()
    layer.forward(a, b)
    return _vjp_check("Concat", layer.forward, layer.backward, [a, b], dout, SMOOTH_BOUND)


def check_dense(seed=0):
    rng = _rng(seed)
    layer = Dense(4, 3, rng=rng, dtype=np.float64)
    layer.params["b"][:] = rng.standard_normal(3)
    x, dout = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    layer.forward(x)
    out = _vjp_check("Dense (dx)", layer.forward, layer.backward, [x], dout, SMOOTH_BOUND)
    for p in ("W", "b"):
        num = numerical_gradient(lambda: float(np.sum(layer.forward(x) * dout)), layer.params[p])
        out[f"Dense (d{p})"] = compare(f"Dense.{p}", layer.grads[p], num, SMOOTH_BOUND)
    return out


def check_relu(seed=0):
    rng = _rng(seed)
    x = rng.standard_normal((5, 4))
    x += np.where(x >= 0, 1e-3, -1e-3)  # keep every input at least 1e-3 from the kink
    dout = rng.standard_normal((5, 4))
    layer = ReLU()
    layer.forward(x)
    return _vjp_check("ReLU", layer.forward, layer.backward, [x], dout, RELU_BOUND)


def check_dropout(seed=0):
    rng = _rng(seed)
    x, dout = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    layer = Dropout(0.4)

    def forward(x):  # the same mask every call: reset the layer's generator first
        layer.rng = np.random.default_rng(seed)
        return layer.forward(x, training=True)

    forward(x)
    return _vjp_check("Dropout (fixed mask)", forward, layer.backward, [x], dout, SMOOTH_BOUND)


def check_mse(seed=0):
    rng = _rng(seed)
    pred, y = rng.standard_normal(6), rng.standard_normal(6)
    num = numerical_gradient(lambda: mse(pred, y)[0], pred)
    return {"MSE loss": compare("mse", mse(pred, y)[1], num, SMOOTH_BOUND)}


def check_l2(seed=0):
    W, reg = _rng(seed).standard_normal((4, 3)), L2(1e-2)
    num = numerical_gradient(lambda: reg.penalty(W), W)
    return {"L2 penalty": compare("l2", reg.gradient(W), num, SMOOTH_BOUND)}


def check_y_range(seed=0):
    rng = _rng(seed)
    z, dout = rng.standard_normal(6) * 2, rng.standard_normal(6)
    layer = SigmoidRange(0.0, 5.5)
    layer.forward(z)
    return _vjp_check("sigmoid y_range", layer.forward, layer.backward, [z], dout, SMOOTH_BOUND)


def tiny_batch(n_users=5, n_movies=6, n=9, seed=0):
    """A small batch with repeated user and movie ids, and ratings in 0.5..5."""
    rng = _rng(seed)
    users = np.concatenate([[0, 0, 1], rng.integers(0, n_users, n - 3)])
    movies = np.concatenate([[2, 2, 2], rng.integers(0, n_movies, n - 3)])
    ratings = rng.integers(1, 11, n) / 2.0
    return users, movies, ratings


def check_model(model, label, bound, seed=0):
    """Check every parameter of ``model`` (built in float64) through ``loss_and_grads``, under
    the objective it was compiled with (MSE, or BPR with its negatives drawn the same way for
    every evaluation). A float32 model is refused: its central differences carry rounding of
    about ε·|f|/h = 1.2e-7 / 1e-5 ≈ 1e-2 relative, so a correct gradient would fail any bound."""
    if np.dtype(model.dtype) != np.float64:
        raise ValueError(f"check_model needs a model built in float64, and this "
                         f"{type(model).__name__} is {np.dtype(model.dtype)}: build it with "
                         "dtype=np.float64 (in float32 the central differences' own rounding, "
                         "about 1e-2, would call a correct gradient wrong)")
    users, movies, y = tiny_batch(model.n_users, model.n_movies, seed=seed)
    states = [(rng, rng.bit_generator.state) for rng in (model.dropout_rng, model.negative_rng)]

    def same_draws():  # every evaluation uses the same dropout masks (and BPR negatives)
        for rng, state in states:
            rng.bit_generator.state = state

    def loss():
        same_draws()
        return model.loss_and_grads([users, movies], y, training=True)[0]

    same_draws()
    _, grads = model.loss_and_grads([users, movies], y, training=True)
    grads = {k: np.array(v) for k, v in grads.items()}
    return {f"{label} ({name})": compare(f"{label}.{name}", grads[name],
                                         numerical_gradient(loss, p), bound)
            for name, p in model.params.items()}
