"""The movie map: train the bias model, then place the 2,000 most-rated movies on the first two
principal components of their embeddings and write the picture to a PNG.

Run:  python examples/movie_map.py [--data ml-latest-small] [--out movie_map.png]

The notebook read its components by eye (one ran from blockbusters to critically acclaimed
films, another from violent to gentle); the printed top and bottom titles let you do the same.
Needs matplotlib (pip install -e ".[plot]").
"""
import argparse

import minirec
from minirec.tools import lesson4
from minirec.tools.analysis import movie_components
from minirec.tools.plots import plot_movie_map

parser = argparse.ArgumentParser(description="write the 2-D movie map of a trained bias model")
parser.add_argument("--data", default="ml-latest-small")
parser.add_argument("--out", default="movie_map.png")
args = parser.parse_args()

ds = minirec.load_movielens(args.data)
train, valid = ds.split(0.8, seed=42)
model = lesson4.build("bias", ds, seed=42)
lesson4.train_notebook(model, train, valid, lesson4.NOTEBOOK["bias"], verbose=0)
print(f"bias model trained: validation MSE {model.evaluate(valid.x, valid.y):.4f}")

result, _, extremes = movie_components(model, ds, n_components=2)
for c, (top, bottom) in enumerate(extremes):
    print(f"component {c + 1}: top {top[:5]}\n             bottom {bottom[:5]}")
print("wrote", plot_movie_map(model, ds, args.out))
