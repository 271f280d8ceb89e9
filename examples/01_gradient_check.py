"""Step 1: are the gradients right? One gradient check by hand, then every check minirec has.

Run:  python examples/01_gradient_check.py

Step 0 trusted ``grads``, the gradients backprop computes. A numerical check proves them: nudge
a weight by ±h, watch the loss, and compare. Part 1 walks the method on the dot-product-with-
biases model in float64:
  * the analytic gradient comes from backprop (model.loss_and_grads);
  * the numerical one nudges each weight by ±h and takes (L(w+h) - L(w-h)) / 2h;
  * the relative error max|a - n| / max(1e-8, max(|a| + |n|)) must be tiny (below 1e-7).
Part 2 runs the whole catalogue (the checks of ``minirec/nn/gradcheck.py`` for every layer,
loss and built-in model, gathered in ``minirec/tools/check_all.py``; the tests assert the same)
and exits non-zero if any check is over its bound, as ``minirec gradcheck`` does. Tiny models,
no data: it takes seconds, so --quick (or MINIREC_QUICK=1) changes nothing.
"""
import sys

import numpy as np

from minirec import DotProductBias
from minirec.tools.cli import main
from minirec.nn.gradcheck import rel_error

# A tiny model and a batch with repeated users and movies (the scatter-add must add them up).
model = DotProductBias(n_users=4, n_movies=5, n_factors=3, l2=0.01, dtype=np.float64, seed=0,
                       backend="numpy")
users = np.array([0, 0, 1, 3, 3, 2])
movies = np.array([4, 4, 0, 1, 4, 2])
ratings = np.array([4.0, 3.5, 1.0, 5.0, 2.5, 3.0])

loss, grads = model.loss_and_grads([users, movies], ratings)
print(f"loss = MSE + L2 penalty = {loss:.6f}")

h = 1e-5
W = model.params["movie_embedding.W"]          # (M, F) = (5, 3)
numeric = np.zeros_like(W)
for i in range(W.shape[0]):
    for f in range(W.shape[1]):
        old = W[i, f]
        W[i, f] = old + h
        plus = model.loss_and_grads([users, movies], ratings)[0]
        W[i, f] = old - h
        minus = model.loss_and_grads([users, movies], ratings)[0]
        W[i, f] = old                            # put the weight back
        numeric[i, f] = (plus - minus) / (2 * h)

print("analytic dL/dW (movie 4, the row three ratings share):", np.round(grads["movie_embedding.W"][4], 8))
print("numerical dL/dW (movie 4):                            ", np.round(numeric[4], 8))
print(f"relative error: {rel_error(grads['movie_embedding.W'], numeric):.2e}  (bound 1e-7)\n")

sys.exit(main(["gradcheck"]))
