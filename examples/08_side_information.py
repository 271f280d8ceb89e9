"""Step 8: what a movie is — genres as a bag of embeddings, then the hybrid model and cold start.

Run:  python examples/08_side_information.py [--data ml-latest-small] [--seed 42] [--quick]

Step 5 read a user's choices through a bag (N(i)). A movie's genres are a bag too. The genre
model written here is the bias model whose movie vector is its own embedding plus the mean of
its genres' embeddings:

    r̂ = u_i · (m_j + mean_{g ∈ G(j)} z_g) + b_i + b_j

— ``DotProductBias`` plus one ``EmbeddingBag(mode="mean")`` and one overridden step. The
genres come from ``minirec/data/side.py`` as CSR bags lined up with the data set's movies.
Then the built-in ``Hybrid`` (``minirec/models/hybrid.py``: SVD++ flipped with genres, years,
tags and demographics on both sides) scores a movie nobody rated from its side features, and
``coldstart.fold_in`` adds a new user from five ratings without retraining.

--quick (or MINIREC_QUICK=1): a small synthetic data set on the NumPy backend, a few seconds.
"""
import argparse
import os

import numpy as np

import minirec
from minirec import Adam, DotProductBias
from minirec.backend import to_numpy
from minirec.data import side
from minirec.models import coldstart, recipes
from minirec.nn import gradcheck

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--data", default="ml-latest-small")
parser.add_argument("--seed", type=int, default=42)
parser.add_argument("--quick", action="store_true", default=os.environ.get("MINIREC_QUICK") == "1",
                    help="a small synthetic data set, a few seconds (also MINIREC_QUICK=1)")
args = parser.parse_args()
backend = "numpy" if args.quick else None


class GenreBias(DotProductBias):
    """r̂ = u_i · (m_j + mean of its genres' z_g) + b_i + b_j: one bag layer, one step changed."""

    def __init__(self, n_users, n_movies, genres, n_genres, n_factors=50, l2=1e-4, y_range=None,
                 dtype=np.float32, seed=None, backend=None):
        super().__init__(n_users, n_movies, n_factors, l2, y_range, dtype, seed, backend)
        self.genres = self.bag("genres", n_genres, self.n_factors, genres, l2, "movie", "genre",
                               mode="mean")

    def score(self, users, movies, training=True):
        """z = u_i · (m_j + mean_{g ∈ G(j)} z_g)"""
        u = self.user.forward(users)
        q = self.movie.forward(movies) + self.genres.forward(movies)
        z = self.dot.forward(u, q)

        def backward(dz):
            du, dq = self.dot.backward(dz)
            self.user.backward(du)
            self.movie.backward(dq)
            self.genres.backward(dq)
        return z, backward


if args.quick:
    ds = minirec.synthetic_movielens(n_users=100, n_movies=150, n_ratings=3000, seed=0)
    labels = np.arange(ds.n_movies) % 4  # four made-up genres, one per movie
    genres = side.Features([f"genre:{g}" for g in "ABCD"], (np.arange(ds.n_movies + 1), labels))
else:
    ds = minirec.load_movielens(args.data)
    genres = side.movie_genres(ds)
print(f"{ds}: {len(genres.names)} genres; movie 0 ({ds.title(0)}) is {genres.of(0)}")
train, valid = ds.split(0.8, seed=args.seed)

# ---- the genre model's gradient, proved on a tiny copy ---------------------------------------------
tiny = GenreBias(5, 6, (np.array([0, 2, 3, 3, 4, 5, 6]), np.array([0, 1, 2, 0, 1, 0])), 3,
                 n_factors=3, l2=1e-2, dtype=np.float64, seed=0, backend="numpy")
worst = max(gradcheck.check_model(tiny, "GenreBias", gradcheck.SMOOTH_BOUND).values())
print(f"gradient check of every GenreBias parameter: worst relative error {worst:.1e} (bound 1e-7)")

# ---- three models, one recipe (the improved bias recipe's schedule) ------------------------------
bias = recipes.IMPROVED["bias"]
epochs = 2 if args.quick else bias["epochs"]


def train_and_score(model, recipe=bias):
    model.compile(Adam(recipe["lr_max"], weight_decay=recipe["weight_decay"]))
    model.fit_one_cycle(train.x, train.y, 2 if args.quick else recipe["epochs"], recipe["lr_max"],
                        verbose=0)
    return model, model.evaluate(valid.x, valid.y)


_, plain = train_and_score(DotProductBias(ds.n_users, ds.n_movies, seed=args.seed, backend=backend,
                                          **bias["model"]))
_, with_genres = train_and_score(GenreBias(ds.n_users, ds.n_movies, genres.bags, len(genres.names),
                                           seed=args.seed, backend=backend, **bias["model"]))
hybrid_recipe = recipes.RECIPES["hybrid"]
model = recipes.build("hybrid", ds, args.seed, backend, train, **hybrid_recipe["model"])
model, hybrid = train_and_score(model, hybrid_recipe)
print(f"validation MSE: bias model {plain:.4f}, with genres {with_genres:.4f}, hybrid {hybrid:.4f}")

# ---- cold start: a movie nobody rated in training -------------------------------------------------
rated = np.bincount(train.movie, minlength=ds.n_movies)
cold = int(np.flatnonzero(rated == 0)[0]) if (rated == 0).any() else None
if cold is not None:
    offsets, ids = (to_numpy(a) for a in model.movie_side.bags)
    names = [model.movie_features[k] for k in ids[offsets[cold]:offsets[cold + 1]]]
    r = model.predict([np.arange(3), np.full(3, cold)])
    print(f"{ds.title(cold)} has no training ratings: scored from {', '.join(names) or 'no side feature'}"
          f" — for users 0-2: {np.round(r, 2)}")

# ---- a new user, folded in from five ratings --------------------------------------------------------
picks = np.argsort(-rated)[:5]
new, user = coldstart.fold_in(model, picks, [5.0, 5.0, 4.0, 1.0, 1.0])
scores = new.predict([np.full(ds.n_movies, user), np.arange(ds.n_movies)])
scores[picks] = -np.inf
best = np.argsort(-scores)[:3]
print("a new user who loved " + ds.title(picks[0]) + " and disliked " + ds.title(picks[-1]) +
      ": " + "; ".join(f"{ds.title(j)} ({scores[j]:.2f})" for j in best))
