"""The "Lesson 4: embeddings" notebook, model by model, with the notebook's own numbers.

Read this file top to bottom as the notebook: load MovieLens, split 80/20, then

1. dot product       r̂ = u·m                 (1 epoch at 1e-3, 3 at 1e-2, 6 at 1e-3)
2. + biases          r̂ = u·m + b_u + b_m     (1, 3, 6, 10, 5 epochs at 1e-3, 1e-2, 1e-3, 1e-3, 1e-3)
3. neural net        concat -> dense -> 1    (1, 3, 6 at 1e-3, 1e-2, 1e-3)

with 50 factors, L2 1e-4 on the embeddings, batch 64 and Adam updating every row (as Keras).
After each stage it prints the notebook's tracked prediction (user index 3, movie index 6);
it saves the bias model's weights and loads them back, and ends with a table of validation
MSE (the plain MSE; Keras 1 printed it with the L2 penalty added).

``keras1_schedule=True`` keeps Adam at 1e-3 throughout: Keras 1 silently ignored the
notebook's ``model.optimizer.lr = 0.01`` (the rate had been baked into the compiled update),
so that is what the notebook actually ran. ``improved=True`` trains the better recipe instead
(sigmoid output range, one-cycle schedule; see ``IMPROVED``).
"""
import json
import time
from pathlib import Path

import numpy as np

from .backend import cache_home
from .datasets import load_movielens
from .models import KINDS, TITLES
from .optim import Adam
from .weights import atomic_write

FACTORS, L2, BATCH = 50, 1e-4, 64
NOTEBOOK = {  # model -> [(epochs, learning rate), ...] as the notebook's cells ran them
    "dot": [(1, 1e-3), (3, 1e-2), (6, 1e-3)],
    "bias": [(1, 1e-3), (3, 1e-2), (6, 1e-3), (10, 1e-3), (5, 1e-3)],
    "nn": [(1, 1e-3), (3, 1e-2), (6, 1e-3)],
}
# The improved recipe: the notebook's L2 plus fastai's tools — predictions squashed into
# (0, 5.5) by a sigmoid, a little decoupled weight decay in Adam, and one cycle of the learning
# rate (warm up, then anneal). Chosen on the 2016 data's validation split, seed 42 (see README).
IMPROVED = {
    "bias": dict(model=dict(l2=1e-4, y_range=(0.0, 5.5)), weight_decay=0.01, epochs=5,
                 lr_max=5e-3),
    "nn": dict(model=dict(l2=1e-4, y_range=(0.0, 5.5), dropout=(0.5, 0.5)), weight_decay=0.01,
               epochs=5, lr_max=3e-3),
}
TRACK_USER, TRACK_MOVIE = 3, 6


def build(kind, ds, seed, backend=None, **kwargs):
    """The notebook's model ``kind`` (``models.KINDS``: dot, bias, nn) for data set ``ds``."""
    kwargs.setdefault("l2", L2)
    return KINDS[kind](ds.n_users, ds.n_movies, n_factors=FACTORS, seed=seed, backend=backend, **kwargs)


def tracked_prediction(model):
    return float(model.predict([np.array([TRACK_USER]), np.array([TRACK_MOVIE])])[0])


def train_notebook(model, train, valid, stages, keras1_schedule=False, verbose=1):
    """Run the notebook's cells: for each (epochs, lr), set the rate and fit."""
    model.compile(Adam(1e-3), loss="mse")
    for epochs, lr in stages:
        model.optimizer.lr = 1e-3 if keras1_schedule else lr
        if verbose:
            print(f"-- {epochs} epoch(s) at lr {model.optimizer.lr:g}")
        model.fit(train.x, train.y, batch_size=BATCH, epochs=epochs,
                  validation_data=(valid.x, valid.y), verbose=verbose)
        if verbose:
            print(f"   prediction for user {TRACK_USER}, movie {TRACK_MOVIE}: "
                  f"{tracked_prediction(model):.4f}")
    return sum(e for e, _ in stages)


def train_improved(model, train, valid, recipe, verbose=1):
    model.compile(Adam(recipe["lr_max"], weight_decay=recipe["weight_decay"]), loss="mse")
    if verbose:
        print(f"-- one cycle of {recipe['epochs']} epochs, peak lr {recipe['lr_max']:g}")
    model.fit_one_cycle(train.x, train.y, recipe["epochs"], recipe["lr_max"], batch_size=BATCH,
                        validation_data=(valid.x, valid.y), verbose=verbose)
    return recipe["epochs"]


def run(data="ml-latest-small", seed=42, keras1_schedule=False, improved=False, backend=None,
        json_path=None, weights_dir=None, verbose=1, duplicates="all"):
    """The whole walk-through; returns {model: metrics} and prints the final table."""
    ds = load_movielens(data, duplicates=duplicates)
    train, valid = ds.split(0.8, seed=seed)
    print(f"{ds}: {len(train):,} training and {len(valid):,} validation ratings (seed {seed})")
    schedule = "improved" if improved else ("keras1" if keras1_schedule else "notebook")
    results, models = {}, {}
    for kind in (IMPROVED if improved else NOTEBOOK):
        print(f"\n=== {TITLES[kind]} ({schedule} schedule) ===")
        extra = IMPROVED[kind]["model"] if improved else {}
        model = build(kind, ds, seed, backend, **extra)
        if verbose:
            model.summary()
        start = time.perf_counter()
        if improved:
            epochs = train_improved(model, train, valid, IMPROVED[kind], verbose)
        else:
            epochs = train_notebook(model, train, valid, NOTEBOOK[kind], keras1_schedule, verbose)
        seconds = time.perf_counter() - start
        results[kind] = {"val_mse": model.evaluate(valid.x, valid.y),
                         "train_mse": model.evaluate(train.x, train.y),
                         "epochs": epochs, "seconds": round(seconds, 2)}
        models[kind] = model
        if kind == "bias":
            reload_check(model, ds, seed, backend, extra, weights_dir)
    print_table(results, ds, schedule)
    if "bias" in models and verbose:
        print_analysis(models["bias"], ds)
    if json_path:
        write_json(json_path, {"data": str(data), "seed": seed, "schedule": schedule,
                               "backend": models[kind].backend, "models": results})
    return results, models, ds


def reload_check(model, ds, seed, backend, extra, weights_dir):
    """As the notebook: save the bias model's weights, load them into a fresh model, compare."""
    folder = Path(weights_dir) if weights_dir else cache_home() / "lesson4"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bias.npz"
    model.save_weights(path, data=ds, seed=seed, train_fraction=0.8)
    again = build("bias", ds, seed + 1, backend, **extra).load_weights(path)
    same = tracked_prediction(again) == tracked_prediction(model)
    print(f"saved the bias model to {path} and loaded it back: "
          f"{'same predictions' if same else 'PREDICTIONS DIFFER'}")
    if not same:
        raise RuntimeError(f"reloading {path} changed the model's predictions")


def print_analysis(model, ds):
    """The notebook's last section, on the bias model: biases, then PCA of the embeddings."""
    from .analysis import bias_ranking, movie_components
    low, high = bias_ranking(model, ds, n=15, among=2000)
    print("\n=== Analysis of the bias model (the 2,000 most-rated movies) ===")
    for label, pairs in (("lowest movie biases", low), ("highest movie biases", high)):
        print(f"\n{label}:")
        for bias, title in pairs:
            print(f"  {bias:+.3f}  {title}")
    result, _, extremes = movie_components(model, ds, n_components=3, among=2000, n=10)
    for c, (top, bottom) in enumerate(extremes):
        print(f"\nPCA component {c + 1} ({result.explained_variance_ratio[c]:.1%} of the variance)")
        print("  top:    " + " | ".join(top))
        print("  bottom: " + " | ".join(bottom))


def print_table(results, ds, schedule):
    print(f"\nValidation MSE on {ds.name} ({schedule} schedule; plain MSE, no L2 penalty)")
    print(f"{'model':<24}{'val MSE':>10}{'train MSE':>11}{'epochs':>8}{'seconds':>9}")
    for kind, r in results.items():
        print(f"{TITLES[kind]:<24}{r['val_mse']:>10.4f}{r['train_mse']:>11.4f}"
              f"{r['epochs']:>8}{r['seconds']:>9.1f}")


def write_json(path, payload):
    """Write ``payload`` as JSON, atomically (``weights.atomic_write``)."""
    atomic_write(path, lambda f: f.write(json.dumps(payload, indent=2).encode()))
