"""Step 5: SVD++, piece by piece — a model past the notebook from the layers, one overridden step
and a new input, no kernel.

Run:  python examples/05_svdpp.py [--data ml-latest-small] [--seed 42] [--quick]

SVD++ (Koren 2008) adds to the bias model what a user's *choices* say:

    r̂ = μ + b_i + b_j + m_j · (u_i + |N(i)|^-½ Σ_{k ∈ N(i)} y_k)

where N(i) is the set of movies user i rated in training. Where step 3 wrote a model whole and
step 4 changed one step, ``SVDpp`` (``minirec/models/svdpp.py``) subclasses ``DotProductBias``,
adds a bag layer and an offset, and overrides ``score`` and ``biases``. The script builds N(i)
from the training ratings (CSR: offsets + movie ids), looks at the bag layer that sums the y_k,
proves the model's gradient numerically, trains it with its recipe, and compares it with the
improved bias recipe on the same split.

--quick (or MINIREC_QUICK=1): a small synthetic data set on the NumPy backend, a few seconds.
"""
import argparse
import os

import numpy as np

import minirec
from minirec import Adam, EmbeddingBag, SVDpp
from minirec.nn import gradcheck
from minirec.models import recipes
from minirec.models.svdpp import rated_by

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--data", default="ml-latest-small")
parser.add_argument("--seed", type=int, default=42)
parser.add_argument("--quick", action="store_true", default=os.environ.get("MINIREC_QUICK") == "1",
                    help="a small synthetic data set, a few seconds (also MINIREC_QUICK=1)")
args = parser.parse_args()
backend = "numpy" if args.quick else None

ds = (minirec.synthetic_movielens(n_users=100, n_movies=150, n_ratings=3000, seed=0)
      if args.quick else minirec.load_movielens(args.data))
train, valid = ds.split(0.8, seed=args.seed)

# ---- N(i): each user's bag of the movies they rated in training -----------------------------------
offsets, movie_ids = rated_by(train.user, train.movie, ds.n_users)
sizes = np.diff(offsets)
print(f"{ds}: N(i) holds {len(movie_ids):,} (user, movie) pairs; bags of {sizes.min()} to "
      f"{sizes.max()} movies (median {int(np.median(sizes))})")

# ---- the bag layer: out[n] = |N(i)|^-½ Σ_{k ∈ N(i)} y_k for the user i of example n ---------------
bag = EmbeddingBag(ds.n_movies, 4, (offsets, movie_ids), mode="sqrt", dtype=np.float64)
first = bag.forward(np.array([0]))[0]
by_hand = bag.params["W"][movie_ids[offsets[0]:offsets[1]]].sum(axis=0) / np.sqrt(sizes[0])
print(f"user 0's implicit vector, from the layer: {np.round(first, 5)}; by hand: {np.round(by_hand, 5)}")

# ---- the gradient, proved numerically on a tiny SVD++ --------------------------------------------
tiny = SVDpp(5, 6, n_factors=3, l2=1e-2, bags=(np.array([0, 2, 2, 5, 6, 9]),
                                               np.array([2, 5, 0, 1, 2, 3, 0, 4, 5])),
             global_mean=3.0, dtype=np.float64, seed=0, backend="numpy")
worst = max(gradcheck.check_model(tiny, "SVD++", gradcheck.SMOOTH_BOUND).values())
print(f"gradient check of every SVD++ parameter: worst relative error {worst:.1e} (bound 1e-7)")

# ---- train it with its recipe, beside the improved bias recipe ---------------------------------------
results = {}
for kind in ("bias", "svdpp"):
    recipe = recipes.RECIPES[kind]
    model = recipes.build(kind, ds, args.seed, backend, train=train, **recipe["model"])
    model.compile(Adam(recipe["lr_max"], weight_decay=recipe["weight_decay"]))
    if kind == "svdpp":
        model.summary()  # the layers train it: no fused kernel is registered for SVD++
    model.fit_one_cycle(train.x, train.y, recipe["epochs"], recipe["lr_max"],
                        validation_data=(valid.x, valid.y), verbose=0)
    results[minirec.models.registry.title_of(kind)] = model.evaluate(valid.x, valid.y)
for title, mse in results.items():
    print(f"{title:<24} validation MSE {mse:.4f}")
