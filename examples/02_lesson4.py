"""Step 2: Lesson 4, cell by cell — the homework notebook's collaborative filtering, in minirec.

Run:  python examples/02_lesson4.py [--data ml-latest-small] [--seed 42] [--map movie_map.png]
      [--quick]

Steps 0 and 1 trained one batch and proved its gradients; here ``fit`` runs those batches for
the notebook's three models. Read it top to bottom beside the notebook: load MovieLens and make
the ids contiguous, split 80/20, train the dot-product model, the same with biases (save it,
load it back), look at the movie biases and the principal components of the movie embeddings
(``--map`` draws the first two as a picture; needs matplotlib), then train the small neural
net. Every call is plain minirec; ``minirec lesson4`` runs the same recipes
(``minirec/tools/lesson4.py``) and adds the final table, ``--improved``, ``--keras1-schedule``
and ``--as-written``.

--quick (or MINIREC_QUICK=1): a small synthetic data set on the NumPy backend, a few seconds.
"""
import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

import minirec
from minirec import Adam, DotProduct, DotProductBias, NeuralNet
from minirec.tools.analysis import bias_ranking, components_text, movie_components

parser = argparse.ArgumentParser(description="the Lesson 4 notebook, cell by cell")
parser.add_argument("--data", default="ml-latest-small", help="a release name or a folder")
parser.add_argument("--seed", type=int, default=42)
parser.add_argument("--map", metavar="PNG", help="also draw the movie map into this file")
parser.add_argument("--quick", action="store_true", default=os.environ.get("MINIREC_QUICK") == "1",
                    help="a small synthetic data set, a few seconds (also MINIREC_QUICK=1)")
args = parser.parse_args()
backend = "numpy" if args.quick else None  # None: the fastest here (Numba's kernels on a CPU)

# ---- Set up the data: ratings with user and movie ids turned into contiguous indices ---------
ds = (minirec.synthetic_movielens(n_users=100, n_movies=150, n_ratings=3000, seed=0)
      if args.quick else minirec.load_movielens(args.data))
print(ds)
print(f"user id {ds.user_ids[0]} is index 0; movie id {ds.movie_ids[0]} is index 0")

# ---- Split 80/20 ---------------------------------------------------------------------------------
# The course's copy of the notebook writes `np.random.seed = 42`, which *replaces* NumPy's seed
# function with the number 42 instead of calling it; the homework has no seed line at all.
# Either way the split was never seeded. Here the seed is real.
train, valid = ds.split(0.8, seed=args.seed)
print(f"{len(train):,} training and {len(valid):,} validation ratings")
n_factors = 50
validation = (valid.x, valid.y)


def fit(model, epochs, lr):
    """One notebook cell: set the learning rate, then fit (minirec really uses the new rate)."""
    model.optimizer.lr = lr
    model.fit(train.x, train.y, batch_size=64, epochs=epochs, validation_data=validation)


def show_prediction(model):
    """The notebook's check after each stage: user index 3's predicted rating of movie 6."""
    pred = model.predict([np.array([3]), np.array([6])])[0]
    print(f"prediction for user 3, movie 6: {pred:.3f}")


# ---- Dot product: r̂ = u_i · m_j --------------------------------------------------------------------
dot = DotProduct(ds.n_users, ds.n_movies, n_factors, l2=1e-4, seed=args.seed, backend=backend)
dot.compile(Adam(0.001), loss="mse")
dot.summary()
for epochs, lr in [(1, 0.001), (3, 0.01), (6, 0.001)]:  # the notebook's three fit cells
    fit(dot, epochs, lr)
show_prediction(dot)

# ---- Bias: r̂ = u_i · m_j + b_i + b_j ---------------------------------------------------------------
bias = DotProductBias(ds.n_users, ds.n_movies, n_factors, l2=1e-4, seed=args.seed, backend=backend)
bias.compile(Adam(0.001), loss="mse")
bias.summary()
for epochs, lr in [(1, 0.001), (3, 0.01), (6, 0.001), (10, 0.001), (5, 0.001)]:
    fit(bias, epochs, lr)
show_prediction(bias)

# ---- Save the weights and load them into a fresh model ------------------------------------------
with tempfile.TemporaryDirectory(prefix="minirec-lesson4-") as folder:
    path = Path(folder) / "bias.npz"
    bias.save_weights(path)
    again = DotProductBias(ds.n_users, ds.n_movies, n_factors, l2=1e-4, backend=backend)
    again.load_weights(path)
show_prediction(again)

# ---- Analyse the results: the movie biases, among the 2,000 most-rated movies ---------------------
lowest, highest = bias_ranking(bias, ds, n=15, among=2000)
print("\nlowest movie biases:")
for b, title in lowest:
    print(f"  {b:+.3f}  {title}")
print("highest movie biases:")
for b, title in highest:
    print(f"  {b:+.3f}  {title}")

# ---- The principal components of the movie embeddings --------------------------------------------
pca, _, extremes = movie_components(bias, ds, n_components=3, among=2000, n=10)
print("\n" + components_text(pca, extremes))
if args.map:  # the notebook's picture: the first two components as a map of the movies
    from minirec.tools.plots import plot_movie_map
    print("wrote the movie map to", plot_movie_map(bias, ds, args.map))

# ---- Neural net: embeddings side by side, dense 70 + ReLU, dropout, one output ----------------------
# (The homework's cells call `model.fit` here: as written they train the bias model 10 epochs
# more, never the net, and its PCA reads the untrained net's embeddings: minirec lesson4
# --as-written runs that. Here the net is trained.)
nn = NeuralNet(ds.n_users, ds.n_movies, n_factors, hidden=70, dropout=(0.3, 0.75), l2=1e-4,
               seed=args.seed, backend=backend)
nn.compile(Adam(0.001), loss="mse")
nn.summary()
for epochs, lr in [(1, 0.001), (3, 0.01), (6, 0.001)]:
    fit(nn, epochs, lr)
show_prediction(nn)
print(f"\nvalidation MSE: dot product {dot.evaluate(*validation):.4f}, "
      f"with biases {bias.evaluate(*validation):.4f}, neural net {nn.evaluate(*validation):.4f}")
