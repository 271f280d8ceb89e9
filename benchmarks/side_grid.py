"""How the hybrid's recipes were chosen: its settings tried on the splits named for choosing.

Run:  python benchmarks/side_grid.py [--data DIR] [--set 100k|2016] [--folds u2,u3,u4,u5]
                                     [--grid 'cold_dropout=0,epochs=8;cold_dropout=0.5']

Each configuration is the hybrid's recipe (``recipes.RECIPES["hybrid"]``) with the settings
given changed (model settings by name, and ``epochs``, ``lr_max``, ``weight_decay``:
``bench_side.train_kind``); it trains
on each fold's ``.base`` of ml-100k (or the 2016 ml-latest-small split, 80/20 seed 42) and
prints the test RMSE (validation MSE on 2016) per fold and the mean. Fold u1 is never read:
it is the out-of-sample check of benchmarks/bench_side.py.
"""
import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ["MINIREC_THREADS"] = "1"
import numpy as np  # noqa: E402

import minirec  # noqa: E402
from bench_side import cold_movies, train_kind  # noqa: E402

def parse(text):
    """'cold_dropout=0,epochs=8' -> {"cold_dropout": 0.0, "epochs": 8}"""
    out = {}
    for pair in filter(None, text.split(",")):
        key, _, value = pair.partition("=")
        out[key.strip()] = int(value) if key.strip() == "epochs" else float(value)
    return out


def score(ds, splits, changes, is_100k):
    """(score per split, mean fit seconds) of the hybrid with ``changes``."""
    out, seconds = [], 0.0
    for train, test in splits:
        start = time.perf_counter()
        model = train_kind("hybrid", ds, train, **changes)
        seconds += time.perf_counter() - start
        mse = model.evaluate(test.x, test.y)
        out.append(float(np.sqrt(mse)) if is_100k else mse)
    return out, seconds / len(splits)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("MINIREC_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")))
    p.add_argument("--set", default="100k", choices=["100k", "2016"])
    p.add_argument("--folds", default="u2,u3,u4,u5")
    p.add_argument("--grid", default="cold_dropout=0.5;cold_dropout=0;cold_dropout=0,epochs=8")
    p.add_argument("--cold-seed", type=int, default=None,
                   help="2016 only: also the cold-movie RMSE, 20%% of movies held out with this seed")
    args = p.parse_args()
    is_100k = args.set == "100k"
    ds = minirec.load_movielens(Path(args.data) / ("ml-100k" if is_100k else "ml-latest-small-2016"))
    folds = args.folds.split(",")
    if is_100k and "u1" in folds:
        raise SystemExit("fold u1 is the out-of-sample check: choose on u2-u5")
    splits = [ds.fold(f) for f in folds] if is_100k else [ds.split(0.8, 42)]
    what = "test RMSE" if is_100k else "validation MSE"
    print(f"{ds!r}: the hybrid's recipe with the changes below; {what} per split, the mean, fit s")
    for text in args.grid.split(";"):
        scores, seconds = score(ds, splits, parse(text), is_100k)
        cold = ""
        if args.cold_seed is not None and not is_100k:
            rows = cold_movies(ds, args.cold_seed, **parse(text))[0]
            cold = f"  cold movies: hybrid {rows[2][1]:.4f}, genre mean {rows[1][1]:.4f}"
        print(f"{text or '(recipe)':45s} " + " ".join(f"{v:.4f}" for v in scores)
              + f"  mean {np.mean(scores):.4f}  {seconds:.1f} s{cold}", flush=True)


if __name__ == "__main__":
    main()
