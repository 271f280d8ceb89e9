"""Recommendations judged as recommendations: minirec's ranking models against the recommender
libraries, on the same splits, with the same metric code.

Run:  python benchmarks/bench_ranking.py [--data DIR] [--write]

For ml-100k and ml-latest-small (2018), each split 80/20 with ``default_rng(42)``, it fits
every model on the training ratings and scores it with ``minirec.tools.analysis.ranking_metrics``
(all movies the user did not rate in training are candidates; held-out ratings >= 4 are
relevant; k = 10): NDCG@10, precision@10, recall@10, the median number of training ratings of
the recommended movies (how far from the head they go; popularity's own is the baseline), and
the seconds to fit, on one core.

* minirec: popularity; the notebook's dot product and the improved bias recipe (MSE); the bias
  model trained with BPR (``recipes.RANKING["bpr"]``); EASE (``recipes.RANKING["ease"]``).
* peers (the ``bench`` extra; skipped with a note where missing), fitted on every training
  rating as an implicit interaction, with 64 factors and their defaults otherwise: implicit
  0.7's BayesianPersonalizedRanking (100 iterations) and AlternatingLeastSquares (15
  iterations, regularization 0.05), and cornac's BPR (max_iter 200, learning_rate 0.01,
  lambda_reg 0.01). All on one thread.

The recipes were chosen on the 2016 ml-latest-small split and ml-100k's fold u2, not on these.
``--write`` rewrites the bench_ranking section of benchmarks/RESULTS.md.
"""
import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core for every library, set before
os.environ.setdefault("OMP_NUM_THREADS", "1")       # NumPy and the peers start their pools
import numpy as np  # noqa: E402

import minirec  # noqa: E402
from minirec.models import recipes  # noqa: E402
from minirec.tools.analysis import ranking_metrics  # noqa: E402
from results import machine_line, table, write_section  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED, FACTORS = 42, 64


class Scores:
    """A peer's learned factors as something ``ranking_metrics`` can ask for scores."""

    def __init__(self, users, items, item_bias=None):
        self.users, self.items, self.bias = users, items, item_bias

    def predict(self, x):
        u, m = np.asarray(x[0]), np.asarray(x[1])
        s = np.einsum("ij,ij->i", self.users[u], self.items[m])
        return s + self.bias[m] if self.bias is not None else s


def interactions(train, ds):
    from scipy.sparse import csr_matrix
    return csr_matrix((np.ones(len(train)), (train.user, train.movie)), shape=(ds.n_users, ds.n_movies))


def fit_implicit(kind, train, ds):
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    X = interactions(train, ds)
    if kind == "bpr":
        model = BayesianPersonalizedRanking(factors=FACTORS, iterations=100, num_threads=1,
                                            random_state=SEED)
    else:
        model = AlternatingLeastSquares(factors=FACTORS, iterations=15, regularization=0.05,
                                        num_threads=1, random_state=SEED)
    model.fit(X, show_progress=False)
    return Scores(model.user_factors, model.item_factors)


def fit_cornac(train, ds):
    import cornac
    triples = [(str(u), str(m), 1.0) for u, m in zip(train.user, train.movie)]
    data = cornac.data.Dataset.from_uir(triples, seed=SEED)
    model = cornac.models.BPR(k=FACTORS, max_iter=200, learning_rate=0.01, lambda_reg=0.01,
                              num_threads=1, seed=SEED)
    model.fit(data)
    users = np.zeros((ds.n_users, FACTORS), np.float32)
    items = np.zeros((ds.n_movies, FACTORS), np.float32)
    bias = np.full(ds.n_movies, -np.inf, np.float32)  # a movie cornac never saw is never ranked
    for raw, k in data.uid_map.items():
        users[int(raw)] = model.u_factors[k]
    for raw, k in data.iid_map.items():
        items[int(raw)], bias[int(raw)] = model.i_factors[k], model.i_biases[k]
    return Scores(users, items, bias)


def fit_minirec(kind, train, valid, ds):
    from minirec.train.objectives import BPR
    if kind == "popularity":
        return None
    if kind == "ease":
        model = recipes.build("ease", ds, SEED, "numba", train, **recipes.RANKING["ease"]["model"])
        model.fit(train.x, train.y, verbose=0)
        return model
    if kind == "bpr":
        r = recipes.RANKING["bpr"]
        model = recipes.build("bias", ds, SEED, "numba", train, **r["model"])
        model.compile(minirec.Adam(r["lr"], lazy=r["lazy"]), loss=BPR(**r["loss"]))
        model.fit(train.x, train.y, batch_size=r["batch_size"], epochs=r["epochs"], verbose=0)
        return model
    if kind == "dot":
        model = recipes.build("dot", ds, SEED, "numba", train)
        from minirec.tools.lesson4 import NOTEBOOK, train_notebook
        train_notebook(model, train, valid, NOTEBOOK["dot"], verbose=0)
        return model
    recipe = recipes.IMPROVED["bias"]
    model = recipes.build("bias", ds, SEED, "numba", train, **recipe["model"])
    model.compile(minirec.Adam(recipe["lr_max"], weight_decay=recipe["weight_decay"]))
    model.fit_one_cycle(train.x, train.y, recipe["epochs"], recipe["lr_max"], verbose=0)
    return model


RUNS = [  # (label, how to fit it)
    ("popularity (baseline)", lambda tr, va, ds: fit_minirec("popularity", tr, va, ds)),
    ("minirec dot product (notebook, MSE)", lambda tr, va, ds: fit_minirec("dot", tr, va, ds)),
    ("minirec bias, improved recipe (MSE)", lambda tr, va, ds: fit_minirec("improved", tr, va, ds)),
    ("minirec bias model trained with BPR", lambda tr, va, ds: fit_minirec("bpr", tr, va, ds)),
    ("minirec EASE (closed form)", lambda tr, va, ds: fit_minirec("ease", tr, va, ds)),
    ("implicit BPR", lambda tr, va, ds: fit_implicit("bpr", tr, ds)),
    ("implicit ALS", lambda tr, va, ds: fit_implicit("als", tr, ds)),
    ("cornac BPR", lambda tr, va, ds: fit_cornac(tr, ds)),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("MINIREC_DATA") or HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--write", action="store_true", help="rewrite RESULTS.md's section")
    args = parser.parse_args()
    notes, rows = [], []
    for package in ("implicit", "cornac"):
        try:
            notes.append(f"{package} {__import__(package).__version__}")
        except ImportError:
            notes.append(f"{package} not installed (pip install -e '.[bench]')")
    for name in ("ml-100k", "ml-latest-small"):
        ds = minirec.load_movielens(args.data / name)
        train, valid = ds.split(0.8, seed=SEED)
        for label, fit in RUNS:
            start = time.perf_counter()
            try:
                model = fit(train, valid, ds)
            except ImportError as e:
                print(f"{name} | {label} | skipped: {e}")
                continue
            seconds = time.perf_counter() - start
            r = ranking_metrics(model, train, valid, ds.n_movies, k=10)
            rows.append((name, label, f"{r['ndcg']:.4f}", f"{r['precision']:.4f}",
                         f"{r['recall']:.4f}", f"{r['median_ratings']:g}",
                         "—" if model is None else f"{seconds:.2f}"))
            print(" | ".join(rows[-1]), flush=True)
    text = "\n\n".join([
        "## Ranking (bench_ranking.py)",
        f"Machine: {machine_line(notes)}; every library on one thread. Splits: 80/20 with "
        "`default_rng(42)`; all movies a user did not rate in training are candidates, held-out "
        "ratings >= 4 are relevant, k = 10, scored by `minirec.tools.analysis.ranking_metrics` for "
        "every model. `median ratings` is the median number of training ratings of the "
        "recommended movies. Fit seconds include minirec's compilation where a cache was cold. "
        "minirec's ranking recipes were chosen on the 2016 ml-latest-small split and ml-100k's "
        "fold u2: these splits are out of sample for them.",
        table(("data", "model", "NDCG@10", "precision@10", "recall@10", "median ratings",
               "fit s"), rows)])
    print("\n" + text)
    if args.write:
        write_section("bench_ranking", text)


if __name__ == "__main__":
    main()
