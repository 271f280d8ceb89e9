"""Step 10: the ml-100k record, step by step — SVD++ flipped drawn by Gibbs sampling, then time.

Run:  python examples/10_ml100k_record.py [--data ml-100k] [--folds u2,u3,u4,u5] [--quick]

Step 7 trained SVD++ flipped with Adam: one set of weights, the one that minimises the loss.
Gibbs sampling (``minirec/models/bayes_flipped.py``) draws many sets instead, each from the
posterior given the data and the others, and predicts with their mean. Every table enters the
prediction linearly when the others are held fixed, so each row's draw is a ridge regression
plus Gaussian noise of the right size (the docstring works each conditional out, and
tests/test_bayes_flipped.py checks them against regressions solved by hand):

    r̂ = μ + b_i + b_j + (m_j + |N(j)|^-½ Σ x_l) · (u_i + |N(i)|^-½ Σ y_k)       (step 7's model)

The steps, each one setting or one model kind more than the last:

1. SVD++ flipped with Adam (``recipes.RECIPES["svdpp-flipped"]``);
2. the same model by Gibbs sampling, one noise precision α for every rating;
3. a noise precision per user, α τ_i with τ_i ~ Gamma(a, a): some users rate more steadily;
4. timeSVD++'s day bias b_{i,d} (``models/bayes_timed.py``): a user's mood on the day of a rating.
5. past the record, which uses no side information: the movies' genres, years (and tags, where
   the release has them: ml-100k has none) and the users' demographics as two more bag tables,
   drawn the same way (``models/bayes_hybrid.py``).

Nothing is chosen here: the settings (``recipes.FITTED``) were chosen on folds u2-u5 with
benchmarks/record_search.py (docs/ml100k-record.md), and fold u1, the published test, is left
out. Step 4's chain on the first fold prints its posterior mean's test RMSE as the draws
accumulate.

--quick (or MINIREC_QUICK=1): a small synthetic data set with made-up days, on the NumPy backend,
a few short chains (seconds; its figures say nothing about real data, and it has no side
features, so step 5 repeats step 4 there).
"""
import argparse
import os
import time

import numpy as np

import minirec
from minirec import Adam
from minirec.models import bayes_flipped, bayes_hybrid, bayes_timed, recipes  # noqa: F401  (the kinds)

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--data", default="ml-100k")
parser.add_argument("--folds", default="u2,u3,u4,u5")
parser.add_argument("--quick", action="store_true", default=os.environ.get("MINIREC_QUICK") == "1",
                    help="a small synthetic data set, a few seconds (also MINIREC_QUICK=1)")
args = parser.parse_args()
backend = "numpy" if args.quick else "numba"
if args.quick:
    ds = minirec.synthetic_movielens(n_users=100, n_movies=150, n_ratings=3000, seed=0)
    days = np.random.default_rng(0).integers(17_000, 17_030, len(ds.user))  # synthetic: no dates
    ds.timestamp = days * 86400
    folds = {"80/20 split": ds.split(0.8, seed=42)}
    short = dict(samples=30, burn_in=10)  # a few sweeps: enough to run every line, not to converge
else:
    ds = minirec.load_movielens(args.data)
    folds = {name: ds.fold(name) for name in args.folds.split(",")}
    short = {}


def adam(train, test, verbose):
    r = recipes.RECIPES["svdpp-flipped"]
    m = recipes.build("svdpp-flipped", ds, 42, backend, train=train, **r["model"])
    m.compile(Adam(r["lr_max"], weight_decay=r["weight_decay"]))
    m.fit_one_cycle(train.x, train.y, r["epochs"], r["lr_max"], verbose=0)
    return m


def gibbs(kind, **change):
    def fit(train, test, verbose):
        settings = {**recipes.FITTED[kind]["model"], **short, **change}
        m = recipes.build(kind, ds, 42, backend, train=train, **settings)
        m.fit(train.x, train.y, validation_data=(test.x, test.y), verbose=verbose)
        return m
    return fit


steps = {"1. SVD++ flipped (Adam)": adam,
         "2. Bayesian SVD++ flipped, one noise precision": gibbs("bayes-flipped", user_noise=None),
         "3. + a noise precision per user": gibbs("bayes-flipped"),
         "4. + day biases": gibbs("bayes-flipped-time"),
         "5. + side information (Bayesian hybrid)": gibbs("bayes-hybrid")}
first = next(iter(folds))
rows = {}
for label, fit in steps.items():
    scores, seconds = [], []
    for name, (train, test) in folds.items():
        talk = label.startswith("4.") and name == first
        if talk:  # this chain prints as it draws; the others say what they are fitting
            print(f"{label} on {name}, its test ratings given as validation data: the RMSE as the draws accumulate")
        else:
            print(f"{label}, {name}: fitting ...", end="", flush=True)
        start = time.perf_counter()
        model = fit(train, test, verbose=int(talk))
        seconds.append(time.perf_counter() - start)
        scores.append(float(np.sqrt(model.evaluate(test.x, test.y))))
        print(f"{f'{label}, {name}:' if talk else ''} test RMSE {scores[-1]:.4f}, fitted in "
              f"{seconds[-1]:.1f} s", flush=True)
    rows[label] = (scores, float(np.mean(seconds)))

print(f"\ntest RMSE on {ds}; seconds to fit a fold (the first fit of a kind includes compiling)\n")
print(f"| step | {' | '.join(folds)} | mean | fit s |\n|---|" + "---:|" * (len(folds) + 2))
for label, (scores, seconds) in rows.items():
    print(f"| {label} | " + " | ".join(f"{v:.4f}" for v in scores)
          + f" | {np.mean(scores):.4f} | {seconds:.1f} |")
