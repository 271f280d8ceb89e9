"""The "Lesson 4: embeddings" recipes behind ``minirec lesson4``: schedules, the improved recipe,
the final table. ``examples/02_lesson4.py`` and ``examples/lesson4.ipynb`` walk the same notebook
cell by cell, as minirec rewrites of it.

Three models (50 factors, L2 1e-4 on the embeddings, batch 64, Adam updating every row as
Keras does), trained on one of these schedules, as lists of (epochs, learning rate) cells:

``NOTEBOOK`` (the default): the homework notebook this project reproduces ("Lesson 4 Homework
    Assignment: Exploration: Embeddings"; its text is in the project's reference notes, not in a
    public repository we can cite) — dot product 1, 3, 6 epochs at 1e-3, 1e-2, 1e-3; biases 1,
    3, 6, 10, 5 at 1e-3, 1e-2, 1e-3, 1e-3, 1e-3. Its neural-net cells (1, 3, 6 epochs at 1e-3,
    1e-2, 1e-3) call ``model.fit``, not ``nn.fit``: they train the *bias* model 10 epochs more,
    and the net is never trained. minirec trains the net on those cells (what they meant);
    ``as_written=True`` (``--as-written``) runs them as written instead.
``COURSE`` (``course=True``): the fast.ai course's own ``lesson4.ipynb`` (repository
    fastai/courses, deeplearning1/nbs/lesson4.ipynb, commit f25aae05 on master), whose printed
    losses are the ones people quote — dot product 1, 3, 6 epochs at 1e-3, 1e-2, 1e-3 (cells
    25, 27, 29); biases 1, 6, 10, 5 at 1e-3, 1e-2, 1e-3, 1e-3 (cells 418, 420, 422, 248); the
    neural net one fit of 8 epochs at 1e-3 (cell 65). Cell numbers are execution counts: the
    cell that printed the bias model's 0.7979 (248) ran *before* cells 418-422.
``keras1_schedule=True`` with either: Adam at 1e-3 throughout. A Keras 1 optimiser keeps its rate
    in a backend variable (``self.lr = K.variable(lr)``: keras-team/keras, tag 1.2.2,
    keras/optimizers.py line 408, class Adam) that the compiled update reads, so the notebooks'
    ``model.optimizer.lr = 0.01`` only rebound a Python attribute and changed nothing.

After each cell the tracked prediction (user index 3, movie index 6) is printed; the bias model
is saved and loaded back; the table reports the plain validation MSE, and each model's seconds
of training apart from the seconds Numba spent compiling its kernels (on a fresh cache; once
cached, 0). ``improved=True`` trains the better recipe instead (sigmoid output range,
one-cycle schedule; see ``IMPROVED``).
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..backend import cache_home
from ..data.movielens import load_movielens
from ..io.files import atomic_write, refuse_overlaps
from ..nn.optim import Adam
from ..models.recipes import BATCH, FACTORS, IMPROVED, L2, RECIPES, build  # noqa: F401
from ..models.registry import title_of
from ..train.loop import History

NOTEBOOK = {  # model -> [(epochs, learning rate), ...] as the homework notebook's cells ran them
    "dot": [(1, 1e-3), (3, 1e-2), (6, 1e-3)],
    "bias": [(1, 1e-3), (3, 1e-2), (6, 1e-3), (10, 1e-3), (5, 1e-3)],
    "nn": [(1, 1e-3), (3, 1e-2), (6, 1e-3)],  # as written, these cells fit the bias model
}
COURSE = {  # the same for fastai/courses deeplearning1/nbs/lesson4.ipynb (commit f25aae05,
    "dot": [(1, 1e-3), (3, 1e-2), (6, 1e-3)],            # cells 25, 27, 29)
    "bias": [(1, 1e-3), (6, 1e-2), (10, 1e-3), (5, 1e-3)],  # cells 418, 420, 422, 248
    "nn": [(8, 1e-3)],                                     # cell 65
}
TRACK_USER, TRACK_MOVIE = 3, 6


def tracked_prediction(model):
    return float(model.predict([np.array([TRACK_USER]), np.array([TRACK_MOVIE])])[0])


def train_notebook(model, train, valid, stages, keras1_schedule=False, verbose=1, compile=True):
    """Run the notebook's cells: for each (epochs, lr), set the rate and fit. Returns the
    joined ``History`` of all the cells. The summary is printed after ``compile``, when it can
    say what really trains the model."""
    if compile:
        model.compile(Adam(1e-3), loss="mse")
        if verbose:
            model.summary()
    history = History()
    for epochs, lr in stages:
        model.optimizer.lr = 1e-3 if keras1_schedule else lr
        if verbose:
            print(f"-- {epochs} epoch(s) at lr {model.optimizer.lr:g}")
        history.extend(model.fit(train.x, train.y, batch_size=BATCH, epochs=epochs,
                                 validation_data=(valid.x, valid.y), verbose=verbose))
        if verbose:
            print(f"   prediction for user {TRACK_USER}, movie {TRACK_MOVIE}: "
                  f"{tracked_prediction(model):.4f}")
    return history


def train_improved(model, train, valid, recipe, verbose=1):
    """The improved recipe: one cycle of the learning rate. Returns the ``History``."""
    model.compile(Adam(recipe["lr_max"], weight_decay=recipe["weight_decay"]), loss="mse")
    if verbose:
        model.summary()
        print(f"-- one cycle of {recipe['epochs']} epochs, peak lr {recipe['lr_max']:g}")
    return model.fit_one_cycle(train.x, train.y, recipe["epochs"], recipe["lr_max"],
                               batch_size=BATCH, validation_data=(valid.x, valid.y),
                               verbose=verbose)


def schedule_name(improved, course, keras1_schedule, as_written):
    if improved:
        return "improved recipe"
    if as_written:
        return "homework notebook as written: Adam at 1e-3 throughout, the net never trained"
    return (("course" if course else "notebook") + " schedule"
            + (", Adam at 1e-3 throughout" if keras1_schedule else ""))


def run(data="ml-latest-small", seed=42, keras1_schedule=False, improved=False, backend=None,
        json_path=None, weights_dir=None, verbose=1, duplicates="all", course=False,
        plots_dir=None, as_written=False, outputs=None):
    """The whole walk-through; returns (results, models, ds) and prints the final table. With
    ``plots_dir``, each model's loss curves go to ``<plots_dir>/<model>.png``; ``outputs``
    ({what: path}) are refused if one of them is a file the data set was read from."""
    ds = load_movielens(data, duplicates=duplicates)
    refuse_overlaps(outputs or {}, {f"the data file {p.name}": p for p in ds.files})
    train, valid = ds.split(0.8, seed=seed)
    if not len(valid) or not len(train):
        raise ValueError(f"the split of {ds.name} (seed {seed}) leaves {len(train)} training and "
                         f"{len(valid)} validation ratings: the notebook needs both")
    print(f"{ds}: {len(train):,} training and {len(valid):,} validation ratings (seed {seed})")
    schedules, schedule = COURSE if course else NOTEBOOK, schedule_name(improved, course,
                                                                        keras1_schedule, as_written)
    results, models = {}, {}
    for kind in (IMPROVED if improved else schedules):
        print(f"\n=== {title_of(kind)} ({schedule}) ===")
        extra = IMPROVED[kind]["model"] if improved else {}
        model = build(kind, ds, seed, backend, train, **extra)
        start, compiled = time.perf_counter(), compile_seconds()
        if improved:
            history = train_improved(model, train, valid, IMPROVED[kind], verbose)
        elif as_written and kind == "nn":  # the cells fit `model`, the bias model, not `nn`
            model.compile(Adam(1e-3), loss="mse")
            if verbose:
                print("(as written, these cells call model.fit: the bias model trains on, and "
                      "the neural net is never trained)")
            history = train_notebook(models["bias"], train, valid, schedules[kind], True, verbose,
                                     compile=False)
            results["bias"].update(val_mse=models["bias"].evaluate(valid.x, valid.y),
                                   train_mse=models["bias"].evaluate(train.x, train.y),
                                   epochs=results["bias"]["epochs"] + len(history.epoch))
        else:
            history = train_notebook(model, train, valid, schedules[kind],
                                     keras1_schedule or as_written, verbose)
        compiling = compile_seconds() - compiled
        seconds = time.perf_counter() - start - compiling
        trained = not (as_written and kind == "nn")
        if not trained:  # the time went into the bias model
            results["bias"]["seconds"] = round(results["bias"]["seconds"] + seconds, 2)
        results[kind] = {"val_mse": model.evaluate(valid.x, valid.y),
                         "train_mse": model.evaluate(train.x, train.y),
                         "epochs": len(history.epoch) if trained else 0,
                         "seconds": round(seconds, 2) if trained else 0.0,
                         "compile_seconds": round(compiling, 2)}
        if plots_dir is not None:
            path = history.plot(Path(plots_dir) / f"{kind}.png", f"{title_of(kind)} ({schedule})")
            print(f"wrote the loss curves to {path}")
        models[kind] = model
        if kind == "bias":
            reload_check(model, ds, seed, backend, extra, weights_dir, train)
    print_table(results, ds, schedule)
    if verbose and as_written:
        print_homework_analysis(models["nn"], ds)
    elif verbose and "bias" in models:
        print_analysis(models["bias"], ds)
    if json_path:
        write_json(json_path, {"data": str(data), "seed": seed, "schedule": schedule,
                               "backend": models[kind].backend, "models": results})
    return results, models, ds


def reload_check(model, ds, seed, backend, extra, weights_dir, train):
    """As the notebook: save the bias model's weights, load them into a fresh model, compare."""
    folder = Path(weights_dir) if weights_dir else cache_home() / "lesson4"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bias.npz"
    model.save_weights(path, data=ds, seed=seed, train_fraction=0.8)
    again = build("bias", ds, seed + 1, backend, train, **extra).load_weights(path)
    same = tracked_prediction(again) == tracked_prediction(model)
    print(f"saved the bias model to {path} and loaded it back: the tracked prediction "
          f"(user {TRACK_USER}, movie {TRACK_MOVIE}) is {'the same' if same else 'DIFFERENT'}")
    if not same:
        raise RuntimeError(f"reloading {path} changed the model's predictions")


def print_analysis(model, ds):
    """The course notebook's last section, on the bias model: biases, then PCA of the embeddings."""
    from .analysis import bias_ranking, components_text, movie_components
    low, high = bias_ranking(model, ds, n=15, among=2000)
    print("\n=== Analysis of the bias model (the 2,000 most-rated movies), as the course notebook "
          "does it (fastai/courses f25aae05, cells 59-66; the homework has only a PCA, of the "
          "untrained net: --as-written) ===")
    for label, pairs in (("lowest movie biases", low), ("highest movie biases", high)):
        print(f"\n{label}:")
        for bias, title in pairs:
            print(f"  {bias:+.3f}  {title}")
    result, _, extremes = movie_components(model, ds, n_components=3, among=2000, n=10)
    print("\nPCA of the movie embeddings:\n" + components_text(result, extremes))


def print_homework_analysis(nn, ds):
    """The homework's latent-factor analysis as written: the movie embeddings of ``nn``, which
    its cells built and compiled but never trained."""
    from .analysis import components_text, movie_components
    result, _, extremes = movie_components(nn, ds, n_components=3, among=2000, n=10)
    print("\n=== The homework's latent-factor analysis, as written: PCA of the movie embeddings "
          "of the neural net, which was never trained (its weights are their random start) ===\n"
          + components_text(result, extremes))


def compile_seconds():
    """Seconds this process has spent in Numba's compiler (0 if the fast path never loaded)."""
    fast = sys.modules.get("minirec.fast")
    return fast.compile_seconds() if fast is not None else 0.0


def print_table(results, ds, schedule):
    """The closing table. ``seconds`` is training alone; ``compile`` the seconds Numba spent
    compiling kernels for that model (once per machine: 0 once they are cached)."""
    print(f"\nValidation MSE on {ds.name} ({schedule}; plain MSE, no L2 penalty)")
    print(f"{'model':<24}{'val MSE':>10}{'train MSE':>11}{'epochs':>8}{'seconds':>9}{'compile':>9}")
    for kind, r in results.items():
        print(f"{title_of(kind):<24}{r['val_mse']:>10.4f}{r['train_mse']:>11.4f}"
              f"{r['epochs']:>8}{r['seconds']:>9.1f}{r.get('compile_seconds', 0.0):>9.1f}")
    if any(r.get("compile_seconds", 0.0) > 0 for r in results.values()):
        print("(seconds: training alone; compile: Numba compiling the kernels, once: they are "
              "cached for the next run)")


def write_json(path, payload):
    """Write ``payload`` as JSON, atomically (``files.atomic_write``)."""
    atomic_write(path, lambda f: f.write(json.dumps(payload, indent=2).encode()))
