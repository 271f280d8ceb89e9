"""Every gradient check at once: each layer, loss and built-in model of minirec against central
differences (``nn/gradcheck.py`` holds the checks themselves). ``minirec gradcheck`` prints
``run_all()`` as a table; ``tests/test_gradcheck.py`` asserts every bound.
"""
import numpy as np

from ..models.recommender import DotProduct, DotProductBias, NeuralNet
from ..models.svdpp import SVDpp
from ..models.hybrid import Hybrid
from ..models.svdpp_flipped import FlippedSVDpp
from ..models.multvae import MultVAE
from ..nn.variational import check_variational
from ..models.bayes_timed import check_user_day_bias
from ..nn.gradcheck import (RELU_BOUND, SMOOTH_BOUND, GradientCheckError, check_clip, check_concat,
                            check_dense, check_dot, check_dropout, check_embedding,
                            check_embedding_bag, check_l2, check_model, check_mse, check_offset,
                            check_relu, check_y_range, tiny_batch)


def _relu_margin(model, users, movies):
    """Smallest |pre-activation| of the hidden layer on a batch (distance from the kink)."""
    state = model.dropout_rng.bit_generator.state
    model.forward(users, movies, training=True)
    model.dropout_rng.bit_generator.state = state
    x = model.drop_1.forward(model.concat.forward(model.user.forward(users),
                                                  model.movie.forward(movies)), True)
    model.dropout_rng.bit_generator.state = state
    return float(np.min(np.abs(model.dense_1.forward(x))))


def check_models(seed=0):
    kw = dict(n_factors=3, l2=1e-2, dtype=np.float64, backend="numpy")
    out = {}
    out.update(check_model(DotProduct(5, 6, seed=seed, **kw), "DotProduct", SMOOTH_BOUND, seed))
    out.update(check_model(DotProductBias(5, 6, seed=seed, **kw), "DotProductBias", SMOOTH_BOUND, seed))
    out.update(check_model(DotProductBias(5, 6, y_range=(0, 5.5), seed=seed, **kw),
                           "DotProductBias+y_range", SMOOTH_BOUND, seed))
    users, movies, _ = tiny_batch(seed=seed)
    for s in range(seed, seed + 100):  # the first seed whose hidden units stay off the kink
        net = NeuralNet(5, 6, hidden=4, dropout=(0.3, 0.5), seed=s, **kw)
        net.layers["dense_1"].params["b"][:] = 0.1
        if _relu_margin(net, users, movies) > 1e-3:
            break
    out.update(check_model(net, "NeuralNet", RELU_BOUND, seed))
    svdpp = SVDpp(5, 6, bags=(np.array([0, 2, 2, 5, 6, 9]), np.array([2, 5, 0, 1, 2, 3, 0, 4, 5])),
                  global_mean=3.0, seed=seed, **kw)  # user 1's bag is empty
    out.update(check_model(svdpp, "SVDpp", SMOOTH_BOUND, seed))
    flipped = FlippedSVDpp(5, 6, bags=(np.array([0, 2, 2, 5, 6, 9]), np.array([2, 5, 0, 1, 2, 3, 0, 4, 5])),
                           movie_bags=(np.array([0, 1, 3, 3, 4, 6, 7]), np.array([0, 1, 2, 3, 0, 4, 2])),
                           global_mean=3.0, seed=seed, **kw)  # movie 2 has nobody's bag
    out.update(check_model(flipped, "FlippedSVDpp", SMOOTH_BOUND, seed))
    hybrid = Hybrid(5, 6, bags=(np.array([0, 2, 2, 5, 6, 9]), np.array([2, 5, 0, 1, 2, 3, 0, 4, 5])),
                    movie_bags=(np.array([0, 1, 3, 3, 4, 6, 7]), np.array([0, 1, 2, 3, 0, 4, 2])),
                    movie_features=["a", "b", "c"], user_features=["x", "y"],
                    movie_side=(np.array([0, 2, 3, 3, 4, 5, 6]), np.array([0, 1, 2, 0, 1, 2])),
                    user_side=(np.array([0, 1, 1, 2, 3, 4]), np.array([0, 1, 0, 1])),
                    global_mean=3.0, seed=seed, **kw)  # movie 2 and user 1 have no side features
    out.update(check_model(hybrid, "Hybrid", SMOOTH_BOUND, seed))
    vae = MultVAE(5, 6, n_factors=3, hidden=4, dropout=0.3, beta=0.7, l2=1e-2, dtype=np.float64,
                  bags=(np.array([0, 2, 2, 5, 6, 9]), np.array([2, 5, 0, 1, 2, 3, 0, 4, 5])),
                  seed=seed, backend="numpy")  # user 1 rated nothing
    out.update(check_model(vae, "MultVAE", SMOOTH_BOUND, seed))
    return out


CHECKS = [check_embedding, check_embedding_bag, check_offset, check_dot, check_concat,
          check_dense, check_relu, check_dropout, check_clip, check_mse, check_l2, check_y_range,
          check_variational, check_user_day_bias, check_models]


class Result:
    """One row of the report: what was checked, its relative error and bound."""

    def __init__(self, label, error, bound, message=""):
        self.label, self.error, self.bound, self.message = label, error, bound, message
        self.passed = not message and error < bound


def bound_for(label):
    return RELU_BOUND if any(w in label for w in ("ReLU", "NeuralNet", "Clip")) else SMOOTH_BOUND


def run_all(seed=0):
    """Run every check in ``CHECKS``; returns a list of ``Result`` rows (failures included)."""
    rows = []
    for check in CHECKS:
        try:
            rows += [Result(label, err, bound_for(label)) for label, err in check(seed).items()]
        except GradientCheckError as e:
            rows.append(Result(check.__name__, float("nan"), 0.0, str(e)))
    return rows
