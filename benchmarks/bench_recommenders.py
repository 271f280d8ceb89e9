"""minirec under a published protocol: the ml-100k algorithm comparison of the Recommenders
repository (recommenders-team/recommenders: its README's "Algorithm Comparison", its
examples/06_benchmarks/movielens.ipynb and benchmark_utils.py), with that package's own split
and metric functions.

Run:  python benchmarks/bench_recommenders.py [--dataset ml-100k|ml-latest-small] [--write]
      python benchmarks/bench_recommenders.py --choose       # the validation search, below

Needs the ``bench`` extra (``pip install -e ".[bench]"``: recommenders, cornac, scikit-surprise).

The protocol, as the notebook runs it:
* the ratings as ``movielens.load_pandas_df("100k")`` reads them (u.data in file order, the
  rating as a float), split by ``python_stratified_split(df, ratio=0.75, min_rating=1,
  filter_by="item", seed=42)``: 75% of each *movie's* ratings train, the rest test;
* every model ranks, for every training user, every training movie the user did not rate in
  training; ``map``, ``ndcg_at_k``, ``precision_at_k`` and ``recall_at_k`` from
  ``recommenders.evaluation.python_evaluation`` at k = 10, with every held-out rating relevant
  (``relevancy_method="top_k"``, their default); RMSE by their ``rmse``.
* peers, run here with the notebook's settings: cornac's BPR (k 200, 200 iterations, learning
  rate 0.01, lambda_reg 1e-3, seed 42) ranked by ``cornac_utils.predict_ranking``, and
  Surprise's SVD (150 factors, 15 epochs, lr 0.005, reg 0.02, seed 42) rated by
  ``surprise_utils.predict`` and ranked by ``compute_ranking_predictions``; both as the
  notebook's benchmark_utils.py calls them.
* minirec's rows give their metric functions each user's top 10 of the same candidates (the
  functions keep the top k of whatever list they get; ``--full-lists`` passes every candidate
  instead: for both EASE rows on ml-100k the four figures came out the same to the last digit).

Every minirec setting for this protocol was chosen on a validation cut of the ml-100k training
split, stratified the same way (``python_stratified_split(train, 0.75, filter_by="item",
seed=42)``), never on its test split: ``--choose`` reruns that search (``CHOSEN`` records its
outcome). ml-latest-small (2018) is the out-of-sample check, run once with those settings.
Fit seconds are wall-clock on one thread (BLAS, OpenMP and cornac), on a shared machine.
"""
import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core for every library, set before
os.environ.setdefault("OMP_NUM_THREADS", "1")       # NumPy and the peers start their pools
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import minirec  # noqa: E402
from minirec.backend import to_numpy  # noqa: E402
from minirec.models.multvae import RECIPE  # noqa: E402
from results import machine_line, table, write_section  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED, K = 42, 10
USER, ITEM, RATING, PREDICTION = "userID", "itemID", "rating", "prediction"
COLUMNS = dict(col_user=USER, col_item=ITEM, col_rating=RATING, col_prediction=PREDICTION)

# The published rows (recommenders-team/recommenders). README "Algorithm Comparison" at tag
# 1.2.1 (commit 5c862afa751f53559b5ad98b92e098760f530ad8) and unchanged for these rows at
# commit b02c95e2b98b961f9943ce561bbb03f8dff2f41f; the notebook examples/06_benchmarks/
# movielens.ipynb as rerun at commit c232540b6c0273edca166e10d1f99b116f526c23 (in b02c95e)
# records BPR and SVD as cornac 2.3.0 / Surprise 1.1.4 give them today.
# (model, MAP, nDCG@10, precision@10, recall@10, RMSE)
PUBLISHED = [
    ("BiVAE (README)", 0.146126, 0.475077, 0.411771, 0.219145, None),
    ("BPR (README)", 0.132478, 0.441997, 0.388229, 0.212522, None),
    ("LightGCN (README)", 0.088526, 0.419846, 0.379626, 0.144336, None),
    ("NCF (README)", 0.107720, 0.396118, 0.347296, 0.180775, None),
    ("SAR (README)", 0.110591, 0.382461, 0.330753, 0.176385, None),
    ("embdotbias (README at b02c95e)", 0.018954, 0.117810, 0.104242, 0.042450, 0.992760),
    ("SVD (README)", 0.012873, 0.095930, 0.091198, 0.032783, 0.938681),
    ("BiVAE (notebook at c232540)", 0.143562, 0.468673, 0.408165, 0.220898, None),
    ("BPR (notebook at c232540)", 0.133977, 0.444991, 0.388653, 0.216555, None),
    ("SVD (notebook at c232540)", 0.012060, 0.094445, 0.089077, 0.030094, 0.942506),
]

# The settings chosen by ``--choose`` on the validation cut (nDCG@10 there; see the docs page
# docs/recommenders-protocol.md for the whole search and how far each choice moved it).
# EASE: λ 800 on every rating (0.2744; λ 300 gave 0.2743, the shipped λ 300 on ratings >= 3
# 0.2711); BPR: every rating a positive, 40 epochs (0.2578; the shipped ratings >= 4: 0.2446);
# Mult-VAE: K 100, H 300, dropout 0.5, β 0.5, 60 epochs (0.2718; Liang et al.'s K 200, H 600,
# β 0.2 for 100 epochs: 0.2270, best 0.2675 after 30) — models/multvae.py's RECIPE.
CHOSEN = {
    "ease": dict(l2=800.0, positive_at=None),
    "bpr": dict(positive_at=None, epochs=40),
    "multvae": dict(**{k: v for k, v in RECIPE["model"].items() if k != "l2"}, anneal_steps=0,
                    lr=RECIPE["lr"], batch_size=RECIPE["batch_size"], epochs=RECIPE["epochs"]),
}


# ----- the protocol --------------------------------------------------------------------------

def read_ratings(folder):
    """The ratings in file order as the Recommenders loader reads them (rating as a float)."""
    folder = Path(folder)
    names = [USER, ITEM, RATING, "timestamp"]
    if (folder / "u.data").exists():
        df = pd.read_csv(folder / "u.data", sep="\t", names=names, header=None)
    else:
        df = pd.read_csv(folder / "ratings.csv", names=names, header=0)
    df[RATING] = df[RATING].astype(float)
    return df


def stratified_split(df):
    """Their split: 75% of each movie's ratings in training (seed 42, their default)."""
    from recommenders.datasets.python_splitters import python_stratified_split
    return python_stratified_split(df.copy(), ratio=0.75, min_rating=1, filter_by="item",
                                   col_user=USER, col_item=ITEM, seed=SEED)


def ranking(test, frame):
    from recommenders.evaluation.python_evaluation import map, ndcg_at_k, precision_at_k, recall_at_k
    return {name: f(test, frame, k=K, **COLUMNS) for name, f in
            (("MAP", map), ("nDCG@10", ndcg_at_k), ("precision@10", precision_at_k),
             ("recall@10", recall_at_k))}


class Indexed:
    """The training frame as minirec sees it: contiguous indices, and the (U, M) mask of the
    pairs rated in training (never recommended)."""

    def __init__(self, train, name):
        self.ds = minirec.MovieLens(name, train[USER], train[ITEM], train[RATING])
        self.seen = np.zeros((self.ds.n_users, self.ds.n_movies), bool)
        self.seen[self.ds.user, self.ds.movie] = True

    def pairs(self, frame):
        """(users, movies) indices of a frame's pairs; pairs with an id training never saw are
        dropped (the protocol's stratified split leaves none in ml-100k)."""
        u = pd.Index(self.ds.user_ids).get_indexer(frame[USER])
        m = pd.Index(self.ds.movie_ids).get_indexer(frame[ITEM])
        known = (u >= 0) & (m >= 0)
        return u[known], m[known], known

    def top_k(self, scores, full=False):
        """A predictions frame from a (U, M) score matrix: each user's top k unseen movies
        (or, with ``full``, every unseen movie), as the metric functions take them."""
        scores = np.where(self.seen, -np.inf, scores.astype(np.float64))
        if full:
            u, m = np.nonzero(~self.seen)
        else:
            top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
            u, m = np.repeat(np.arange(len(scores)), K), top.ravel()
        return pd.DataFrame({USER: self.ds.user_ids[u], ITEM: self.ds.movie_ids[m],
                             PREDICTION: scores[u, m]})


def score_matrix(model, n_users, n_movies):
    """Every (user, movie) score of a minirec model, (U, M)."""
    if isinstance(model, minirec.EASE):
        return to_numpy(model.scores.params["S"])
    if hasattr(model, "score_rows"):  # Mult-VAE: each user's row at once
        return model.score_rows(np.arange(n_users))
    users = np.repeat(np.arange(n_users), n_movies)
    return model.predict([users, np.tile(np.arange(n_movies), n_users)]).reshape(n_users, n_movies)


# ----- the models ----------------------------------------------------------------------------

def fit_ease(ix, l2, positive_at):
    model = minirec.EASE(ix.ds.n_users, ix.ds.n_movies, l2=l2, positive_at=positive_at,
                         seed=SEED, backend="numpy")
    model.fit(ix.ds.x, ix.ds.y, verbose=0)
    return model


def fit_bpr(ix, positive_at, epochs):
    """minirec's ranking recipe (``recipes.RANKING["bpr"]``: the bias model, 64 factors, lazy
    Adam 3e-3, batch 1024) with its positives and epochs set for this protocol."""
    from minirec.models import recipes
    r = recipes.RANKING["bpr"]
    model = recipes.build("bias", ix.ds, SEED, "numba", ix.ds, **r["model"])
    model.compile(minirec.Adam(r["lr"], lazy=r["lazy"]), loss=minirec.BPR(positive_at=positive_at))
    model.fit(ix.ds.x, ix.ds.y, batch_size=r["batch_size"], epochs=epochs, verbose=0)
    return model


def fit_multvae(ix, n_factors, hidden, dropout, beta, anneal_steps, lr, batch_size, epochs,
                each=None):
    """Mult-VAE through Adam; ``each(epoch, model)``, if given, is called every 10 epochs
    (the search reads the validation figure along one run)."""
    from minirec.models.multvae import MultVAE
    model = MultVAE(ix.ds.n_users, ix.ds.n_movies, n_factors=n_factors, hidden=hidden,
                    dropout=dropout, beta=beta, anneal_steps=anneal_steps, seed=SEED,
                    backend="numba")
    model.compile(minirec.Adam(lr))
    step = 10 if each else epochs
    for done in range(step, epochs + 1, step):
        model.fit(ix.ds.x, ix.ds.y, batch_size=batch_size, epochs=step, verbose=0)
        if each:
            each(done, model)
    return model


def fit_bias(ix):
    """minirec's improved bias recipe (MSE; ``recipes.IMPROVED["bias"]``), as shipped."""
    from minirec.models import recipes
    recipe = recipes.IMPROVED["bias"]
    model = recipes.build("bias", ix.ds, SEED, "numba", ix.ds, **recipe["model"])
    model.compile(minirec.Adam(recipe["lr_max"], weight_decay=recipe["weight_decay"]))
    model.fit_one_cycle(ix.ds.x, ix.ds.y, recipe["epochs"], recipe["lr_max"], verbose=0)
    return model


def minirec_runs(ix):
    c = CHOSEN
    return [
        ("minirec EASE, shipped recipe (λ 300, rated >= 3)", lambda: fit_ease(ix, 300.0, 3.0)),
        (f"minirec EASE (λ {c['ease']['l2']:g}, every rating)", lambda: fit_ease(ix, **c["ease"])),
        ("minirec Mult-VAE", lambda: fit_multvae(ix, **c["multvae"])),
        ("minirec bias model, BPR (every rating)", lambda: fit_bpr(ix, **c["bpr"])),
        ("minirec bias model, improved recipe (MSE)", lambda: fit_bias(ix)),
    ]


def cornac_bpr(train):
    import cornac
    from recommenders.models.cornac.cornac_utils import predict_ranking
    data = cornac.data.Dataset.from_uir(train.drop("timestamp", axis=1).itertuples(index=False),
                                        seed=SEED)
    model = cornac.models.BPR(k=200, max_iter=200, learning_rate=0.01, lambda_reg=1e-3,
                              seed=SEED, verbose=False, num_threads=1)
    start = time.perf_counter()
    model.fit(data)
    seconds = time.perf_counter() - start
    frame = predict_ranking(model, train, usercol=USER, itemcol=ITEM, predcol=PREDICTION,
                            remove_seen=True)
    return frame, None, seconds


def surprise_svd(train, test):
    import surprise
    from recommenders.models.surprise.surprise_utils import compute_ranking_predictions, predict
    reader = surprise.Reader("ml-100k", rating_scale=(1, 5))
    data = surprise.Dataset.load_from_df(train.drop("timestamp", axis=1), reader=reader)
    model = surprise.SVD(n_factors=150, n_epochs=15, lr_all=0.005, reg_all=0.02,
                         random_state=SEED, verbose=False)
    start = time.perf_counter()
    model.fit(data.build_full_trainset())
    seconds = time.perf_counter() - start
    rated = predict(model, test, usercol=USER, itemcol=ITEM, predcol=PREDICTION)
    frame = compute_ranking_predictions(model, train, usercol=USER, itemcol=ITEM,
                                        predcol=PREDICTION, remove_seen=True)
    return frame, rated, seconds


def rmse_of(test, rated):
    from recommenders.evaluation.python_evaluation import rmse
    return rmse(test, rated, **COLUMNS)


# ----- one run -------------------------------------------------------------------------------

def run(df, name, full_lists=False):
    """Every row for one data set: (label, MAP, nDCG, precision, recall, RMSE, fit seconds)."""
    train, test = stratified_split(df)
    ix = Indexed(train, name)
    rows = []

    def add(label, metrics, rmse, seconds):
        rows.append((label, *(metrics[k] for k in ("MAP", "nDCG@10", "precision@10", "recall@10")),
                     rmse, seconds))
        print(f"{name} | {label} | " + " | ".join(cell(v) for v in rows[-1][1:]), flush=True)

    for label, fit in minirec_runs(ix):
        start = time.perf_counter()
        model = fit()
        seconds = time.perf_counter() - start
        scores = score_matrix(model, ix.ds.n_users, ix.ds.n_movies)
        rmse = None
        if model.objective.predicts == "ratings":
            u, m, known = ix.pairs(test)
            rated = test[known].assign(**{PREDICTION: model.predict([u, m])})
            rmse = rmse_of(test[known], rated)
        add(label, ranking(test, ix.top_k(scores, full_lists)), rmse, seconds)
    for label, fit in (("cornac BPR (notebook's settings)", lambda: cornac_bpr(train)),
                       ("Surprise SVD (notebook's settings)", lambda: surprise_svd(train, test))):
        try:
            frame, rated, seconds = fit()
        except ImportError as e:
            print(f"{name} | {label} | skipped: {e}")
            continue
        add(label, ranking(test, frame), None if rated is None else rmse_of(test, rated), seconds)
    return rows, len(train), len(test)


def cell(v, digits=4):
    return "—" if v is None else f"{v:.{digits}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("MINIREC_DATA") or HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--dataset", choices=("ml-100k", "ml-latest-small"), default="ml-100k")
    parser.add_argument("--full-lists", action="store_true",
                        help="give the metric functions every candidate for minirec's rows too")
    parser.add_argument("--choose", action="store_true",
                        help="run the validation search behind CHOSEN (ml-100k) instead")
    parser.add_argument("--write", action="store_true", help="rewrite RESULTS.md's section")
    args = parser.parse_args()
    df = read_ratings(args.data / ("ml-100k" if args.choose else args.dataset))
    if args.choose:
        from recommenders_choice import choose
        return choose(df)
    rows, n_train, n_test = run(df, args.dataset, args.full_lists)
    cells = [(label, *(cell(v, 6) for v in r[:4]), cell(r[4], 4), cell(r[5], 2))
             for label, *r in rows]
    if args.dataset == "ml-100k":
        cells += [(f"published: {p[0]}", *(cell(v, 6) for v in p[1:5]), cell(p[5], 4), "—")
                  for p in PUBLISHED]
    versions = []
    for package in ("recommenders", "cornac", "surprise"):
        try:
            versions.append(f"{package} {__import__(package).__version__}")
        except ImportError:
            versions.append(f"{package} not installed")
    text = "\n\n".join([
        f"## The Recommenders protocol, {args.dataset} (bench_recommenders.py)",
        f"Machine: {machine_line(versions)}; one thread for every library, on a shared machine "
        f"(fit seconds are indicative). Split: `python_stratified_split(ratio=0.75, "
        f"filter_by=\"item\", seed=42)` ({n_train:,} training, {n_test:,} test ratings); k = 10, "
        "every held-out rating relevant, training pairs never recommended; metrics from "
        "`recommenders.evaluation.python_evaluation`. minirec's settings were chosen on a "
        "validation cut of the ml-100k training split (`--choose`), never on a test split"
        + (": this data set is out of sample for them." if args.dataset != "ml-100k" else ".")
        + " Published rows: recommenders-team/recommenders README (tag 1.2.1) and its benchmark "
        "notebook as rerun at commit c232540 (docs/recommenders-protocol.md).",
        table(("model", "MAP", "nDCG@10", "precision@10", "recall@10", "RMSE", "fit s"), cells)])
    print("\n" + text)
    if args.write:
        write_section(f"bench_recommenders {args.dataset}", text)


if __name__ == "__main__":
    main()
