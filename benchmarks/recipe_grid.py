"""The grid behind bench_epoch's time-to-quality recipes: how low each Adam mode gets the
validation MSE on the 2016 split (seed 42), and how fast.

Run:  python benchmarks/recipe_grid.py [--data DIR] [--mode lazy|dense|both]

Every recipe is the bias model with y_range (0, 5.5) and one cycle of the learning rate. Lazy:
λ 1e-4, 3e-4 or 1e-3 (1e-4 at batches 512 and 1,024), weight decay 0/0.1/0.3 (0.01/0.1 at
batches 512 and 1,024), 30 or 50 factors, batches 64, 256, 512, 1,024, 4 to 8 epochs, peak lr
5e-3 to 2e-2. Dense: λ 1e-4, 30 or 50 factors, batches 256 and 512, 4 to 6 epochs, lr 5e-3 or
1e-2, weight decay 0.01 or 0.1. It prints every recipe (best validation MSE, final, training
seconds, seconds to 0.75), then the best of each mode (264 lazy recipes, 48 dense). About 5
minutes on one core.
"""
import argparse
import itertools

import minirec
from bench_epoch import default_data, seconds_to


def lazy_grid():
    yield from itertools.product([True], (1e-4, 3e-4, 1e-3), (0.0, 0.1, 0.3), (30, 50), (64, 256),
                                 (4, 6, 8), (5e-3, 1e-2))
    yield from itertools.product([True], (1e-4,), (0.01, 0.1), (30, 50), (512, 1024), (4, 6, 8),
                                 (1e-2, 2e-2))


def dense_grid():
    yield from itertools.product([False], (1e-4,), (0.01, 0.1), (30, 50), (256, 512), (4, 5, 6),
                                 (5e-3, 1e-2))


def run(ds, train, valid, lazy, l2, wd, factors, batch, epochs, lr):
    model = minirec.DotProductBias(ds.n_users, ds.n_movies, factors, seed=42, backend="numba",
                                   l2=l2, y_range=(0.0, 5.5))
    model.compile(minirec.Adam(lr, weight_decay=wd, lazy=lazy))
    hist = model.fit_one_cycle(train.x, train.y, epochs, lr, batch_size=batch,
                               validation_data=(valid.x, valid.y), verbose=0)
    return (min(hist.history["val_loss"]), hist.history["val_loss"][-1],
            sum(hist.history["seconds"]), seconds_to(hist.history, (0.75,)).get(0.75))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=default_data())
    parser.add_argument("--mode", default="both", choices=("lazy", "dense", "both"))
    args = parser.parse_args()
    ds = minirec.load_movielens(args.data)
    train, valid = ds.split(0.8, seed=42)
    grids = {"lazy": lazy_grid, "dense": dense_grid}
    modes = list(grids) if args.mode == "both" else [args.mode]
    best = {}
    for mode in modes:
        for recipe in grids[mode]():
            low, final, seconds, reached = run(ds, train, valid, *recipe)
            print(mode, *recipe[1:], f"best {low:.4f} final {final:.4f} train {seconds:.2f} s",
                  f"0.75 after {reached:.2f} s" if reached is not None else "0.75 not reached",
                  flush=True)
            if mode not in best or low < best[mode][0]:
                best[mode] = (low, recipe, reached)
    for mode, (low, recipe, reached) in best.items():
        count = sum(1 for _ in grids[mode]())
        print(f"best {mode} recipe of {count}: (λ, weight decay, factors, batch, epochs, lr) = "
              f"{recipe[1:]}, validation MSE {low:.4f}"
              + (f", 0.75 after {reached:.2f} s" if reached is not None else ", 0.75 not reached"))


if __name__ == "__main__":
    main()
