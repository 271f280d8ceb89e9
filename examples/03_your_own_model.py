"""Step 3: a model of your own, from scratch — a new layer, a model, its gradient check, training,
and a name under which it saves and loads.

Run:  python examples/03_your_own_model.py [--data ml-latest-small] [--seed 42] [--quick]

The model is generalised matrix factorisation with biases (GMF, the "generalised" half of He et
al.'s neural collaborative filtering, 2017): the dot product u_i · m_j with a learned weight per
factor,

    r̂ = μ + b_i + b_j + Σ_f w_f · u_if · m_jf  =  μ + b_i + b_j + w · (u_i ⊙ m_j)

A model needs three things: ``__init__`` builds its layers (assigning a layer to an attribute
registers it), ``forward`` computes r̂ (N,) and ``backward`` takes d loss / d r̂ (N,) and hands
each layer the gradient of its output, in reverse order. Nothing else: ``fit`` trains it through
its layers on every backend (step 0's two lines, batch after batch), the guard rails check that
every weight got a gradient, and ``@register`` gives it a name that saved weights remember.

--quick (or MINIREC_QUICK=1): a small synthetic data set on the NumPy backend, a few seconds.
"""
import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

import minirec
from minirec import Adam, Dense, Layer, Model, register
from minirec.models import recipes
from minirec.models.saved import model_from_weights
from minirec.nn import gradcheck


class Hadamard(Layer):
    """The elementwise product of two inputs — a layer written from scratch.

    forward:  a (N, F), b (N, F)  ->  out (N, F),  out[i, f] = a[i, f] · b[i, f]
    backward: dout (N, F)         ->  da = dout ⊙ b,  db = dout ⊙ a   (no weights of its own)
    """

    def forward(self, a, b):
        self.a, self.b = a, b  # what backward needs
        return a * b

    def backward(self, dout):
        return dout * self.b, dout * self.a


@register("gmf", title="GMF + biases (examples/03)")
class GMF(Model):
    """r̂ = μ + b_i + b_j + w · (u_i ⊙ m_j).

    Parameters: user.W (U, F) and movie.W (M, F) with Keras's L2 ``l2``; user_bias.W (U, 1) and
    movie_bias.W (M, 1), not regularised; w.W (F, 1), the factor weights, and w.b (1,), which is
    μ and starts at ``global_mean``.
    """

    def __init__(self, n_users, n_movies, n_factors=32, l2=1e-4, global_mean=3.5,
                 dtype=np.float32, seed=None, backend=None):
        super().__init__(n_users, n_movies, n_factors, dtype, seed, backend)
        self.l2, self.global_mean = float(l2), float(global_mean)  # config() saves these
        self.user = self.embedding("user", self.n_users, self.n_factors, l2, reads="user")
        self.movie = self.embedding("movie", self.n_movies, self.n_factors, l2, reads="movie")
        self.user_bias = self.embedding("user_bias", self.n_users, 1, 0.0, reads="user")
        self.movie_bias = self.embedding("movie_bias", self.n_movies, 1, 0.0, reads="movie")
        self.product = Hadamard()
        self.w = Dense(self.n_factors, 1, rng=self.init_rng, dtype=self.dtype, xp=self.xp)
        self.w.params["b"][:] = self.global_mean

    def forward(self, users, movies, training=True):
        p = self.product.forward(self.user.forward(users), self.movie.forward(movies))  # (N, F)
        z = self.w.forward(p)[:, 0]                                     # w · p + μ, (N,)
        return z + self.user_bias.forward(users)[:, 0] + self.movie_bias.forward(movies)[:, 0]

    def backward(self, dpred):                      # dpred (N,): d loss / d r̂
        self.user_bias.backward(dpred[:, None])     # d r̂ / d b_i = 1
        self.movie_bias.backward(dpred[:, None])    # d r̂ / d b_j = 1
        dp = self.w.backward(dpred[:, None])        # (N, F): dpred · wᵀ; fills dW and db (dμ)
        du, dm = self.product.backward(dp)          # dp ⊙ m_j, dp ⊙ u_i
        self.user.backward(du)
        self.movie.backward(dm)


parser = argparse.ArgumentParser(description="a model written from scratch, checked and trained")
parser.add_argument("--data", default="ml-latest-small", help="a release name or a folder")
parser.add_argument("--seed", type=int, default=42)
parser.add_argument("--quick", action="store_true", default=os.environ.get("MINIREC_QUICK") == "1",
                    help="a small synthetic data set, a few seconds (also MINIREC_QUICK=1)")
args = parser.parse_args()
backend = "numpy" if args.quick else None

# ---- 1. the new layer's gradient, against central differences (float64) -------------------------
rng = np.random.default_rng(0)
a, b, dout = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
layer = Hadamard()
layer.forward(a, b)
da, db = layer.backward(dout)
for name, x, analytic in (("a", a, da), ("b", b, db)):
    numeric = gradcheck.numerical_gradient(lambda: float(np.sum(layer.forward(a, b) * dout)), x)
    error = gradcheck.rel_error(analytic, numeric)
    print(f"Hadamard d{name}: relative error {error:.1e} (bound 1e-7)")

# ---- 2. the whole model's gradient, on a tiny float64 copy ----------------------------------------
tiny = GMF(5, 6, n_factors=3, l2=1e-2, dtype=np.float64, seed=0, backend="numpy")
errors = gradcheck.check_model(tiny, "GMF", gradcheck.SMOOTH_BOUND)  # raises naming a bad one
print(f"GMF: every parameter ({', '.join(tiny.params)}) within the bound; "
      f"worst relative error {max(errors.values()):.1e}\n")

# ---- 3. train it, with the recipe of the built-in bias model's best run, and the two side by side --
ds = (minirec.synthetic_movielens(n_users=100, n_movies=150, n_ratings=3000, seed=0)
      if args.quick else minirec.load_movielens(args.data))
train, valid = ds.split(0.8, seed=args.seed)
recipe = recipes.IMPROVED["bias"]  # one cycle of Adam at 5e-3, weight decay 0.01, five epochs
gmf = GMF(ds.n_users, ds.n_movies, global_mean=float(np.mean(train.y)), seed=args.seed,
          backend=backend)
bias = recipes.build("bias", ds, args.seed, backend=backend, **recipe["model"])  # y_range (0, 5.5)
gmf.summary()  # "Trained by": its own layers' forward/backward, no kernel of its own
for label, model in (("GMF + biases (yours)", gmf), ("dot product + biases, y_range", bias)):
    model.compile(Adam(recipe["lr_max"], weight_decay=recipe["weight_decay"]))
    model.fit_one_cycle(train.x, train.y, recipe["epochs"], recipe["lr_max"], verbose=0)
    print(f"{label:<30} validation MSE {model.evaluate(valid.x, valid.y):.4f}")
# (The built-in squashes r̂ into (0, 5.5) by a sigmoid, which GMF does not: step 4 changes one such
# step of a built-in model.)

# ---- 4. saved, and loaded back by its registered name ----------------------------------------------
with tempfile.TemporaryDirectory(prefix="minirec-gmf-") as folder:
    path = Path(folder) / "gmf.npz"
    gmf.save_weights(path, data=ds, seed=args.seed)  # records the class, its config and the ids
    back = model_from_weights(path, ds, backend=backend)  # GMF found by name in the registry
assert type(back) is GMF and back.config() == gmf.config()
assert np.array_equal(back.predict(valid.x), gmf.predict(valid.x))
print(f"\nloaded back: a {type(back).__name__} with {back.config()}; "
      "the same predictions, bit for bit")
