"""The validation search behind ``bench_recommenders.CHOSEN``: every minirec setting for the
Recommenders protocol, chosen on a cut of the ml-100k *training* split, never on its test split.

Run:  python benchmarks/bench_recommenders.py --choose

The cut is the protocol applied again inside the training split: ``python_stratified_split(
train, ratio=0.75, filter_by="item", seed=42)``, 75% of each movie's training ratings to fit,
the rest to validate, scored by the same metric functions. Its figures sit well below the test
split's: the movies a user rated in the test split are unknown here, so they stay among the
candidates and count as misses — the same for every setting, so the order of the settings is
what the cut tells.

For each model the table gives the shipped setting's validation nDCG@10, the best one's, and
how far the choice moved it.
"""
import time

import bench_recommenders as bench
from results import table


def grid_ease(ix, val):
    rows = []
    for positive_at in (None, 3.0, 4.0):
        for l2 in (100.0, 200.0, 300.0, 500.0, 800.0, 1200.0):
            model = bench.fit_ease(ix, l2, positive_at)
            rows.append((dict(l2=l2, positive_at=positive_at), score(ix, val, model)))
    return rows


def grid_bpr(ix, val):
    rows = []
    for positive_at in (None, 4.0):
        for epochs in (20, 40, 80):
            rows.append((dict(positive_at=positive_at, epochs=epochs),
                         score(ix, val, bench.fit_bpr(ix, positive_at, epochs))))
    return rows


def grid_multvae(ix, val):
    """Each setting trained once for 100 epochs, read every 10: the epochs are chosen too."""
    rows = []
    for n_factors, hidden, beta in ((200, 600, 0.2), (200, 600, 0.5), (200, 600, 1.0),
                                    (100, 300, 0.5)):
        for dropout in (0.5,):
            settings = dict(n_factors=n_factors, hidden=hidden, dropout=dropout, beta=beta,
                            anneal_steps=0, lr=1e-3, batch_size=100)

            def each(epoch, model, settings=settings):
                rows.append((dict(settings, epochs=epoch), score(ix, val, model)))
            bench.fit_multvae(ix, **settings, epochs=100, each=each)
    return rows


def score(ix, val, model):
    return bench.ranking(val, ix.top_k(bench.score_matrix(model, ix.ds.n_users, ix.ds.n_movies)))["nDCG@10"]


SHIPPED = {  # the settings minirec shipped before this protocol (recipes.py), or Liang et al.'s
    "ease": dict(l2=300.0, positive_at=3.0),
    "bpr": dict(positive_at=4.0, epochs=40),
    "multvae": dict(n_factors=200, hidden=600, dropout=0.5, beta=0.2, anneal_steps=0, lr=1e-3,
                    batch_size=100, epochs=100),
}


def choose(df):
    train, _ = bench.stratified_split(df)       # the test split is never looked at
    fit_part, val = bench.stratified_split(train)
    ix = bench.Indexed(fit_part, "validation cut")
    print(f"validation cut: {len(fit_part):,} ratings to fit, {len(val):,} to validate")
    summary = []
    for name, grid in (("ease", grid_ease), ("bpr", grid_bpr), ("multvae", grid_multvae)):
        start = time.perf_counter()
        rows = grid(ix, val)
        for settings, ndcg in rows:
            print(f"{name} {settings}: nDCG@10 {ndcg:.4f}", flush=True)
        best_settings, best = max(rows, key=lambda r: r[1])
        shipped = next((v for s, v in rows if s == SHIPPED[name]), float("nan"))
        summary.append((name, str(SHIPPED[name]), f"{shipped:.4f}", str(best_settings),
                        f"{best:.4f}", f"{best - shipped:+.4f}",
                        f"{time.perf_counter() - start:.0f}"))
    text = table(("model", "shipped setting", "val nDCG@10", "chosen setting", "val nDCG@10",
                  "moved", "search s"), summary)
    print("\n" + text)
    return summary
