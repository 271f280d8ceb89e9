"""Step 0: one batch by hand — the two lines that are all of training.

Run:  python examples/00_one_batch.py [--data ml-latest-small] [--quick]

Every model in minirec trains the same way. For one batch of ratings (users, movies, y):

    loss, grads = model.loss_and_grads([users, movies], y)   # forward, loss, backward, + L2
    model.optimizer.step(model.params, grads)                # Adam moves every weight

``loss_and_grads`` runs the model forward (r̂ for each pair), takes the loss — the mean
squared error plus λ·ΣW² over each embedding table — runs backward, and adds the penalty's
gradient 2λW to each table's: ``grads`` holds one array per weight, keyed like ``model.params``.
``optimizer.step`` applies Adam's update (``minirec/nn/optim.py``) to every weight, in place.

The script takes one batch by hand and checks that ``model.fit`` does exactly that to the same
batch: the same weights and Adam moments, bit for bit, on the NumPy backend (the reference).
Then it trains a whole epoch by hand — shuffle, cut into batches of 64, the two lines per
batch — and checks that against ``fit`` too. ``fit`` adds only the report, the guard rails and,
on the Numba and CuPy backends, compiled code for the same maths (``minirec/train/runners.py``).

--quick (or MINIREC_QUICK=1): a small synthetic data set instead, in a few seconds.
"""
import argparse
import os

import numpy as np

import minirec
from minirec import Adam, DotProductBias

parser = argparse.ArgumentParser(description="one batch of training by hand, checked against fit")
parser.add_argument("--data", default="ml-latest-small", help="a release name or a folder")
parser.add_argument("--quick", action="store_true", default=os.environ.get("MINIREC_QUICK") == "1",
                    help="a small synthetic data set, a few seconds (also MINIREC_QUICK=1)")
args = parser.parse_args()

ds = (minirec.synthetic_movielens(n_users=100, n_movies=150, n_ratings=3000, seed=0)
      if args.quick else minirec.load_movielens(args.data))
train, valid = ds.split(0.8, seed=42)
print(f"{ds}: {len(train):,} training and {len(valid):,} validation ratings")


def fresh():
    """The notebook's second model, r̂ = u_i · m_j + b_i + b_j, always built the same way."""
    model = DotProductBias(ds.n_users, ds.n_movies, n_factors=50, l2=1e-4, seed=42,
                           backend="numpy")
    return model.compile(Adam(lr=0.001))


def same(a, b, what):
    """Assert that two models hold the same weights and Adam state, to the last bit."""
    assert a.optimizer.iterations == b.optimizer.iterations, what
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), f"{what}: {name} differs"
        for moment in ("m", "v"):
            assert np.array_equal(a.optimizer.state[name][moment],
                                  b.optimizer.state[name][moment]), f"{what}: {name} Adam {moment}"
    print(f"{what}: every weight and Adam moment equals fit's, bit for bit "
          f"(Adam's step count t = {a.optimizer.iterations:,})")


# ---- one batch: 64 training ratings drawn at random (the file is sorted by user) ----------------
rows = np.random.default_rng(0).choice(len(train), size=64, replace=False)
users, movies, y = train.user[rows], train.movie[rows], train.rating[rows]
model = fresh()
print(f"validation MSE before training: {model.evaluate(valid.x, valid.y):.4f}")

loss, grads = model.loss_and_grads([users, movies], y)
print(f"\nloss = MSE + L2 penalty = {loss:.6f}  (penalty {model.penalty():.6f})")
for name, g in grads.items():
    touched = int(np.count_nonzero(np.any(g != 0, axis=1)))
    print(f"  d loss / d {name:<18} {str(g.shape):<12} non-zero in {touched:,} of {len(g):,} rows")
print("  (a bias row has a gradient only where the batch looked it up; every row of an embedding "
      "table has the L2's 2λW)")

model.optimizer.step(model.params, grads)

# ---- what fit does to the same batch ----------------------------------------------------------------
# For each batch, fit's runner on NumPy (minirec/train/runners.py) runs forward and backward,
# adds each table's 2λW to its gradient as loss_and_grads does, sets optimizer.lr to the batch's
# rate (without a schedule, the lr the optimiser already has) and calls optimizer.step.
by_fit = fresh()
by_fit.fit([users, movies], y, batch_size=len(y), epochs=1, shuffle=False, verbose=0)
same(model, by_fit, "\none batch")

# ---- one epoch: the same two lines in a loop --------------------------------------------------------
by_hand, by_fit = fresh(), fresh()
order = by_hand.shuffle_rng.permutation(len(train))  # fit draws each epoch's order from it too
for start in range(0, len(train), 64):
    rows = order[start:start + 64]  # batch b: rows order[64 b : 64 (b + 1)]
    loss, grads = by_hand.loss_and_grads([train.user[rows], train.movie[rows]], train.rating[rows])
    by_hand.optimizer.step(by_hand.params, grads)
by_fit.fit(train.x, train.y, batch_size=64, epochs=1, verbose=0)
same(by_hand, by_fit, "one epoch")
print(f"validation MSE after one epoch: {by_hand.evaluate(valid.x, valid.y):.4f}")
