"""Step 6: from "the lowest MSE does not recommend best" to models that recommend.

Run:  python examples/06_ranking.py [--data ml-latest-small] [--seed 42] [-k 10] [--quick]

Steps 2 to 5 judged models by their squared error on held-out ratings. A recommender is judged
by what it puts at the top of each user's list:

1. The notebook's question, asked of recommendations: train the dot product and the improved
   bias recipe on squared error, then rank, for every user with held-out ratings of 4 or more,
   all the movies they did not rate in training. Neither beats recommending the most-rated
   movies to everyone: squared error teaches a model the rating of a movie *given* that the
   user rates it, not which movies they will choose.
2. Train on the choice itself: BPR (``minirec/train/objectives.py``). Every training rating
   of 4 or more is a positive; for each, a movie the user did not rate is drawn as a negative,
   and the same bias model is trained to score the positive above it: -log σ(r̂_ij - r̂_ik).
   Nothing but the loss changes — the model's layers, forward and backward are the ones it had.
3. EASE (``minirec/models/ease.py``): item-item weights in closed form, one linear solve.

It prints each model's precision@k, recall@k and NDCG@k beside popularity's, and the median
number of training ratings of the movies it recommends (how far beyond the head it goes).

--quick (or MINIREC_QUICK=1): a small synthetic data set on the NumPy backend, a few seconds
(a synthetic user's movies are drawn by popularity alone, so there is nothing past popularity
to learn: its table says nothing about real data).
"""
import argparse
import os

import minirec
from minirec import BPR, Adam
from minirec.models import recipes
from minirec.tools.analysis import ranking_metrics
from minirec.tools.lesson4 import NOTEBOOK, train_notebook

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--data", default="ml-latest-small")
parser.add_argument("--seed", type=int, default=42)
parser.add_argument("-k", type=int, default=10)
parser.add_argument("--quick", action="store_true", default=os.environ.get("MINIREC_QUICK") == "1",
                    help="a small synthetic data set, a few seconds (also MINIREC_QUICK=1)")
args = parser.parse_args()
backend = "numpy" if args.quick else None

ds = (minirec.synthetic_movielens(n_users=100, n_movies=150, n_ratings=3000, seed=0)
      if args.quick else minirec.load_movielens(args.data))
train, valid = ds.split(0.8, seed=args.seed)
models = {}

# ---- 1. models of ratings -----------------------------------------------------------------------
dot = recipes.build("dot", ds, args.seed, backend, train=train)
train_notebook(dot, train, valid, NOTEBOOK["dot"], verbose=0)
models["dot product (MSE, the notebook's schedule)"] = dot

recipe = recipes.IMPROVED["bias"]
bias = recipes.build("bias", ds, args.seed, backend, train=train, **recipe["model"])
bias.compile(Adam(recipe["lr_max"], weight_decay=recipe["weight_decay"]))
bias.fit_one_cycle(train.x, train.y, recipe["epochs"], recipe["lr_max"], verbose=0)
models["dot product + biases (MSE, improved recipe)"] = bias

# ---- 2. the same bias model, trained to rank ----------------------------------------------------
r = recipes.RANKING["bpr"]
ranker = recipes.build("bias", ds, args.seed, backend, train=train, **r["model"])
ranker.compile(Adam(r["lr"], lazy=r["lazy"]), loss=BPR(**r["loss"]))  # only the loss changes
ranker.fit(train.x, train.y, batch_size=r["batch_size"], epochs=r["epochs"], verbose=0)
models["dot product + biases (BPR)"] = ranker

# ---- 3. EASE ---------------------------------------------------------------------------------------
ease = recipes.build("ease", ds, args.seed, backend, train=train,
                     **recipes.RANKING["ease"]["model"])
ease.fit(train.x, train.y, verbose=0)
models["EASE (closed form)"] = ease
models["popularity (baseline)"] = None

print(f"{ds}, split 80/20 with seed {args.seed}; relevant: held-out ratings >= 4; k = {args.k}\n")
print(f"| model | precision@{args.k} | recall@{args.k} | NDCG@{args.k} | "
      "ratings of a recommended movie (median) |")
print("| --- | ---: | ---: | ---: | ---: |")
for label, model in models.items():
    m = ranking_metrics(model, train, valid, ds.n_movies, k=args.k)
    print(f"| {label} | {m['precision']:.4f} | {m['recall']:.4f} | {m['ndcg']:.4f} | "
          f"{m['median_ratings']:g} |")
print(f"\n({m['users']} users have at least one relevant held-out rating.)")
