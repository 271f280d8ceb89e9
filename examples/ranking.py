"""Does the model with the lowest MSE also recommend best? The Lesson 4 models, judged both ways.

Run:  python examples/ranking.py [--data ml-latest-small] [--seed 42] [-k 10]

Trains the notebook's three models on its schedule and the improved recipe (bias and neural net)
on an 80/20 split, then prints each one's validation MSE beside precision@k, recall@k and NDCG@k
on the held-out ratings (a movie rated 4 or more is relevant; movies a user rated in training
are never recommended to them), with a baseline that recommends the most-rated movies, and how
popular the recommended movies are (the median number of training ratings they have).
"""
import argparse

import minirec
from minirec import lesson4
from minirec.analysis import ranking_metrics

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--data", default="ml-latest-small")
parser.add_argument("--seed", type=int, default=42)
parser.add_argument("-k", type=int, default=10)
args = parser.parse_args()

ds = minirec.load_movielens(args.data)
train, valid = ds.split(0.8, seed=args.seed)
models = {}
for kind in ("dot", "bias", "nn"):
    models[lesson4.TITLES[kind]] = model = lesson4.build(kind, ds, args.seed)
    lesson4.train_notebook(model, train, valid, lesson4.NOTEBOOK[kind], verbose=0)
for kind, recipe in lesson4.IMPROVED.items():
    models[f"{lesson4.TITLES[kind]}, improved"] = model = lesson4.build(kind, ds, args.seed, **recipe["model"])
    lesson4.train_improved(model, train, valid, recipe, verbose=0)
models["popularity (baseline)"] = None

print(f"{ds}, split 80/20 with seed {args.seed}; relevant: held-out ratings >= 4; k = {args.k}\n")
print(f"| model | val MSE | precision@{args.k} | recall@{args.k} | NDCG@{args.k} | "
      "ratings of a recommended movie (median) |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for label, model in models.items():
    r = ranking_metrics(model, train, valid, ds.n_movies, k=args.k)
    mse = f"{model.evaluate(valid.x, valid.y):.4f}" if model is not None else "—"
    print(f"| {label} | {mse} | {r['precision']:.4f} | {r['recall']:.4f} | {r['ndcg']:.4f} | "
          f"{r['median_ratings']:g} |")
print(f"\n({r['users']} users have at least one relevant held-out rating.)")
