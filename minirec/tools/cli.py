"""The ``minirec`` command: reproduce the notebook, train, evaluate, download, check gradients.

    minirec lesson4 [--data NAME|PATH] [--course-schedule] [--keras1-schedule | --improved |
                    --as-written]
                    [--plots DIR] [--json F]
    minirec train --model bias --data ml-latest-small --epochs 5 --lr 0.005 --improved --save w.npz
    minirec train --model bias --loss bpr --save ranker.npz      # learn to rank (BPR)
    minirec train --model ease --save ease.npz                    # EASE, in closed form
    minirec lr-find --model bias [--improved] [--plot lr.png]
    minirec evaluate --weights w.npz --data ml-latest-small [--ranking [-k 10]]
    minirec download ml-100k [--force | --verify]
    minirec pca --weights w.npz --data ml-latest-small [--components 3] [--plot map.png]
    minirec recommend --weights w.npz --data ml-latest-small --user 15 [-k 10]
    minirec similar --weights w.npz --data ml-latest-small --movie "Toy Story (1995)"
    minirec gradcheck
    minirec train --model path/to/mine.py:MyModel ...            # your own registered class

Training commands take --threads N (the Numba kernels' CPU threads; the numbers do not change).
Your own model: ``--model path/to/mine.py:MyModel`` runs the file and trains the class it
registers (``@minirec.register("mine")``); ``--import path/to/mine.py`` lets the other commands
load its saved weights (``cli_options.py`` says more).

Every user error ends with one line ``minirec: error: ...`` and exit status 2, before anything
is written; output paths are checked before training starts; Ctrl-C stops with one line and
exit status 130, and every file minirec writes appears whole or not at all.

The options each command takes are in ``cli_options.py``; below ``main`` is one function per
command, ``cmd_<name>(args)``, which imports what it uses (so a command never loads matplotlib or
Numba code it does not need). Each checks its output paths before any work (``output_file``,
``output_folder``) and raises ``OSError``/``ValueError``/``KeyError`` with a message for the
user, which ``main`` prints as one line.
"""
import os
import sys
import warnings
import zipfile

from ..models import (bayes_flipped, bayes_hybrid, bayes_timed, bpmf, ease, hybrid, multvae,  # noqa: F401  (the built-in
                      recommender, svdpp, svdpp_flipped)  # kinds register themselves)
from ..backend import default_threads
from ..io.files import output_file, output_folder, refuse_overlaps
from .cli_options import build_parser, check_train_flags, import_source, model_kind, threads_setting
from .new_user import print_picks, recommend_new_user

USER_ERRORS = (OSError, ValueError, KeyError, RuntimeError, FloatingPointError, EOFError,
               zipfile.BadZipFile)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *rest: print(f"minirec: warning: {message}",
                                                            file=sys.stderr)
        try:
            with threads_setting(getattr(args, "threads", None)):
                default_threads()  # a bad MINIREC_THREADS is named now, not blamed on a file later
                for source in getattr(args, "imports", ()):
                    import_source(source)
                if hasattr(args, "model"):
                    args.model = model_kind(args.model)
                return globals()["cmd_" + args.command.replace("-", "_")](args) or 0
        except USER_ERRORS as e:
            message = e.args[0] if isinstance(e, KeyError) and e.args else e
            print(f"minirec: error: {message}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("minirec: interrupted; no file was left half-written", file=sys.stderr)
            return 130



# ----- the commands ---------------------------------------------------------------------------

def load(args):
    from ..data.movielens import load_movielens
    ds = load_movielens(args.data, duplicates=args.duplicates)
    if getattr(ds, "checked", None):  # how a cached release was checked, when not hashed now
        print(f"minirec: note: {ds.checked}", file=sys.stderr)
    return ds


def cmd_lesson4(args):
    from . import lesson4
    if args.improved and (args.keras1_schedule or args.course_schedule or args.as_written):
        raise ValueError("--improved trains its own schedule: drop --keras1-schedule, "
                         "--course-schedule and --as-written")
    if args.as_written and (args.keras1_schedule or args.course_schedule):
        raise ValueError("--as-written runs the homework's cells as Keras ran them (Adam at 1e-3 "
                         "throughout): drop --keras1-schedule and --course-schedule")
    if args.json:
        output_file(args.json)
    for folder in (args.weights_dir, args.plots):
        if folder:
            output_folder(folder)
    from ..backend import cache_home
    outputs = {"--json": args.json,
               "the saved bias model": os.path.join(args.weights_dir or cache_home() / "lesson4",
                                                   "bias.npz"),
               **{f"--plots' {k}.png": os.path.join(args.plots, f"{k}.png")
                  for k in ("dot", "bias", "nn") if args.plots}}
    refuse_overlaps(outputs)
    if args.plots:
        from .plots import pyplot
        pyplot()  # refuse now, not after the training, when matplotlib is missing
        os.makedirs(args.plots, exist_ok=True)
    lesson4.run(args.data, args.seed, args.keras1_schedule, args.improved, args.backend,
                args.json, args.weights_dir, verbose=0 if args.quiet else 1,
                duplicates=args.duplicates, course=args.course_schedule, plots_dir=args.plots,
                as_written=args.as_written, outputs=outputs)


def data_inputs(ds, **more):
    """{what: path} of every file the command reads: the data set's files, and ``more``."""
    found = {f"the data file {p.name}": p for p in getattr(ds, "files", [])}
    return {**found, **{what: path for what, path in more.items() if path}}


def cmd_train(args):
    from ..models import recipes
    from ..models.registry import KINDS
    trained_by = getattr(KINDS[args.model], "trained_by", None)
    closed_form = trained_by is not None
    check_train_flags(args, trained_by)  # cli_options.TRAIN_FLAGS: what each kind and loss takes
    if args.improved and args.model not in recipes.RECIPES:
        raise ValueError(f"--improved is a recipe for {', '.join(recipes.RECIPES)}, "
                         f"not {args.model}")
    outputs = {"--save": args.save, "--plot-loss": args.plot_loss}
    for path in outputs.values():
        if path:
            output_file(path)
    refuse_overlaps(outputs)
    if args.plot_loss:
        from .plots import pyplot
        pyplot()
    ds = load(args)
    refuse_overlaps(outputs, data_inputs(ds))
    train, valid = ds.split(0.8, seed=args.seed)
    if not len(train):
        raise ValueError(f"the split of {ds.name} (seed {args.seed}) leaves no training ratings")
    validation = (valid.x, valid.y) if len(valid) else None
    model, history = train_model(args, ds, train, validation, closed_form)
    if args.plot_loss:
        print(f"wrote the loss curves to {history.plot(args.plot_loss, args.model)}")
    if validation is None:
        print(f"{args.model}: no validation ratings (the split left none of {len(ds)})")
    elif model.objective.predicts == "ratings":
        print(f"{args.model}: validation MSE {model.evaluate(valid.x, valid.y):.4f}")
    else:
        from .analysis import ranking_metrics
        r = ranking_metrics(model, train, valid, ds.n_movies)  # k = 10, or M where M < 10
        at = r["k"]
        print(f"{args.model} ({model.objective.name}): validation NDCG@{at} {r['ndcg']:.4f}, "
              f"precision@{at} {r['precision']:.4f}, recall@{at} {r['recall']:.4f} "
              f"({r['users']:,} users with a held-out rating >= 4)")
    if args.save:
        model.save_weights(args.save, data=ds, seed=args.seed, train_fraction=0.8)
        print(f"saved weights to {args.save}")


def train_model(args, ds, train, validation, closed_form):
    """Build and train ``args.model``: its rating recipe (--improved), the ranking recipe
    (--loss bpr), its closed form (EASE), or plain Adam on the notebook's settings."""
    from ..models import recipes
    from ..train.objectives import BPR
    from ..nn.optim import Adam
    verbose = 0 if args.quiet else 1
    if closed_form:
        model = recipes.build(args.model, ds, args.seed, args.backend, train,
                              **recipes.FITTED.get(args.model, {}).get("model", {}))
        return model, model.fit(train.x, train.y, verbose=verbose)
    if args.model == "multvae":  # trained on whole user rows: its own recipe (models/multvae.py)
        from ..models.multvae import RECIPE as r
        if args.loss not in (None, "elbo") or args.lazy:  # flags default to "not given"
            raise ValueError("multvae trains on its own objective (the ELBO) with dense Adam: "
                             "drop --loss and --lazy")
        model = recipes.build(args.model, ds, args.seed, args.backend, train, **r["model"])
        model.compile(Adam(args.lr or r["lr"]))
        return model, model.fit(train.x, train.y,
                                batch_size=args.batch_size or r["batch_size"],
                                epochs=args.epochs if args.epochs is not None else r["epochs"],
                                verbose=verbose)
    if args.loss == "bpr":
        r = recipes.RANKING["bpr"]
        model = recipes.build(args.model, ds, args.seed, args.backend, train, **r["model"])
        model.compile(Adam(args.lr or r["lr"], lazy=not args.dense), loss=BPR(**r["loss"]))
        batch = args.batch_size if args.batch_size is not None else r["batch_size"]
        return model, model.fit(train.x, train.y, batch_size=batch,
                                epochs=args.epochs if args.epochs is not None else r["epochs"],
                                verbose=verbose)
    if args.improved:
        recipe = dict(recipes.RECIPES[args.model])
        lr = args.lr if args.lr is not None else recipe["lr_max"]
        model = recipes.build(args.model, ds, args.seed, args.backend, train, **recipe["model"])
        model.compile(Adam(lr, weight_decay=recipe["weight_decay"], lazy=args.lazy))
        return model, model.fit_one_cycle(
            train.x, train.y, args.epochs if args.epochs is not None else recipe["epochs"], lr,
            batch_size=args.batch_size or recipes.BATCH, validation_data=validation,
            verbose=verbose)
    model = recipes.build(args.model, ds, args.seed, args.backend, train)
    model.compile(Adam(args.lr if args.lr is not None else 1e-3, lazy=args.lazy))
    return model, model.fit(train.x, train.y, batch_size=args.batch_size or recipes.BATCH,
                            epochs=args.epochs if args.epochs is not None else 5,
                            validation_data=validation, verbose=verbose)


def cmd_evaluate(args):
    from ..models.saved import model_from_weights
    ds = load(args)
    model = model_from_weights(args.weights, ds, backend=args.backend)
    seed, fraction, note = stored_split(model.trained_on, ds, args.seed)
    train, valid = ds.split(fraction, seed=seed)
    if not len(valid):
        raise ValueError(f"the split (seed {seed}) leaves no validation ratings in {ds.name}")
    if model.objective.predicts == "ratings":
        print(f"{type(model).__name__} from {args.weights} on {ds.name} ({note}): "
              f"validation MSE {model.evaluate(valid.x, valid.y):.4f}, "
              f"training MSE {model.evaluate(train.x, train.y):.4f}")
    else:
        print(f"{type(model).__name__} from {args.weights} on {ds.name} ({note}): trained to "
              f"rank ({model.objective.name}), so its predictions are scores: judged by ranking")
    if args.ranking or model.objective.predicts != "ratings":
        from .analysis import ranking_metrics
        rows = [(label, ranking_metrics(scorer, train, valid, ds.n_movies, k=args.k))
                for label, scorer in ((type(model).__name__, model), ("popularity", None))]
        print(f"\nranking the held-out ratings of {rows[0][1]['users']:,} users (relevant: "
              f"rated >= 4), k = {rows[0][1]['k']}")
        print(f"{'':<24}{'precision@k':>12}{'recall@k':>10}{'NDCG@k':>9}")
        for label, r in rows:
            print(f"{label:<24}{r['precision']:>12.4f}{r['recall']:>10.4f}{r['ndcg']:>9.4f}")


def cmd_lr_find(args):
    from ..models import recipes
    from ..models.registry import KINDS
    from ..nn.optim import Adam
    trained_by = getattr(KINDS[args.model], "trained_by", None)
    if trained_by:
        raise ValueError(f"{args.model} is fitted without Adam ({trained_by}): it has no "
                         "learning rate to find")
    if args.improved and args.model not in recipes.IMPROVED:
        raise ValueError(f"--improved is a recipe for {' and '.join(recipes.IMPROVED)}, not {args.model}")
    if args.plot:
        output_file(args.plot)
        from .plots import pyplot
        pyplot()
    ds = load(args)
    refuse_overlaps({"--plot": args.plot}, data_inputs(ds))
    train, _ = ds.split(0.8, seed=args.seed)
    recipe = recipes.IMPROVED[args.model] if args.improved else {"model": {}, "weight_decay": 0.0}
    model = recipes.build(args.model, ds, args.seed, args.backend, train, **recipe["model"])
    model.compile(Adam(1e-3, weight_decay=recipe["weight_decay"]))
    finder = model.lr_find(train.x, train.y, batch_size=args.batch_size or recipes.BATCH,
                           num_it=args.num_it)
    print(f"{args.model}{' (improved recipe)' if args.improved else ''} on {ds.name}: "
          f"{len(finder.lrs)} batches; the smoothed loss was lowest at lr {finder.lr_min_loss:.2e}; "
          f"suggested rate {finder.suggestion:.2e} (a tenth of that)")
    if args.plot:
        print(f"wrote the curve to {finder.plot(args.plot)}")


def stored_split(trained_on, ds, seed):
    """(seed, training fraction, a note) of the split to evaluate: the one the weights were
    trained with unless ``seed`` says otherwise; refused where it cannot be rebuilt."""
    split, data = trained_on.get("split"), trained_on.get("data")
    same_data = data is not None and data["ratings_sha256"] == ds.fingerprint()
    if seed is None:
        if split is None:
            warnings.warn("the weights do not record the split they were trained with; "
                          "evaluating seed 42's split, which holds training rows if they were "
                          "trained with another seed (pass --seed)")
            return 42, 0.8, "seed 42"
        if not same_data:
            kept = data.get("duplicates", "all")
            if kept != getattr(ds, "duplicates", "all"):
                raise ValueError(f"the weights were trained on {data['name']} read with "
                                 f"--duplicates {kept}; read it the same way (--duplicates "
                                 f"{kept}) to rebuild their split")
            raise ValueError(f"the ratings in {ds.name} are not the ones the weights were trained "
                             f"on ({data['name']}, {data['n_ratings']:,} ratings), so their split "
                             "cannot be rebuilt; pass --seed to evaluate a split of these ratings "
                             "anyway (it may hold ratings the model was trained on)")
        return split["seed"], split["train_fraction"], f"its training split, seed {split['seed']}"
    if split is not None and (not same_data or seed != split["seed"]):
        warnings.warn(f"seed {seed} is not the split the weights were trained with; its "
                      "validation ratings may include training ratings")
    return seed, split["train_fraction"] if split else 0.8, f"seed {seed}"


def trained(args, outputs=None):
    """(data set, model) for the analysis commands, refusing outputs that would overwrite the
    weights or the data they read."""
    from ..models.saved import model_from_weights
    refuse_overlaps(outputs or {}, {"the weights file": args.weights})
    ds = load(args)
    refuse_overlaps(outputs or {}, data_inputs(ds))
    return ds, model_from_weights(args.weights, ds, backend=args.backend)


def cmd_pca(args):
    from .analysis import components_text, movie_components
    from .plots import plot_movie_map, pyplot
    if args.plot:
        output_file(args.plot)
        pyplot()  # refuse now, not after the work, when matplotlib is missing
    ds, model = trained(args, {"--plot": args.plot})
    result, _, extremes = movie_components(model, ds, args.components, args.among)
    print(components_text(result, extremes))
    if args.plot:
        print(f"wrote the movie map to {plot_movie_map(model, ds, args.plot, among=args.among)}")


def cmd_recommend(args):
    from .analysis import recommend
    ds, model = trained(args)
    if args.rated is not None:
        return recommend_new_user(args, ds, model)
    if args.side:
        raise ValueError("--side goes with --rated (a new user's side features)")
    if args.user not in ds.userid2idx:
        raise KeyError(f"unknown user id {args.user}: not in {ds.name}")
    user = ds.userid2idx[args.user]
    split = model.trained_on.get("split")  # an older file, without the trained rows: its split
    if getattr(model, "trained_rows", None) is None and split is not None \
            and model.trained_on["data"]["ratings_sha256"] == ds.fingerprint():
        train, _ = ds.split(split["train_fraction"], seed=split["seed"])
        if not (train.user == user).any():
            raise ValueError(f"user {args.user} has no ratings in the split the weights were "
                             f"trained on (seed {split['seed']}): all of them were held out, so "
                             "the user's rows never trained and any list would be noise")
    picks = recommend(model, ds, user, args.k, not args.include_seen)
    if not picks:
        raise ValueError(f"user {args.user} has rated every one of the {ds.n_movies:,} movies in "
                         f"{ds.name}: none is left to recommend (--include-seen ranks them all)")
    if model.objective.predicts != "ratings":
        print(f"(scores of a model trained to rank ({model.objective.name}), not ratings)")
    print_picks(model, ds, picks, user)


def cmd_similar(args):
    from .analysis import find_movie, similar_movies
    ds, model = trained(args)
    movie = find_movie(ds, args.movie)
    named = [j for j in range(ds.n_movies) if str(args.movie).strip() in ds.title(j)] \
        if str(args.movie).strip().isdigit() else []
    if named:
        warnings.warn(f"--movie {args.movie} is read as the movie id {args.movie}; "
                      f"{len(named)} title(s) contain {args.movie!r} too (such as "
                      f"{ds.title(named[0])}): give a title to mean one of them")
    label = f"{ds.title(movie)} (movie id {ds.movie_ids[movie]})"
    neighbours = similar_movies(model, movie, args.k, label)  # refused before any line is printed
    print(f"movies most like {label}:")
    for j, cosine in neighbours:
        print(f"{cosine:+.3f}  {ds.title(j)}")


def cmd_download(args):
    from ..data.movielens import read_release
    from ..data.download import locate
    if args.verify and args.force:
        raise ValueError("--verify checks the cached copy and --force replaces it: choose one")
    folder = locate(args.name, data_home=args.data_home, force=args.force, verify_again=args.verify)
    checked = " (its ratings file hashed again and matched)" if args.verify else ""
    print(f"{read_release(folder, args.name)} in {folder}{checked}")


def cmd_gradcheck(args):
    from .check_all import run_all
    rows = run_all(args.seed)
    width = max(len(r.label) for r in rows)
    print(f"{'check':<{width}}  {'rel. error':>10}  {'bound':>6}  ok")
    for r in rows:
        print(f"{r.label:<{width}}  {r.error:>10.2e}  {r.bound:>6.0e}  {'yes' if r.passed else 'NO'}")
        if r.message:
            print(r.message)
    failed = sum(not r.passed for r in rows)
    print(f"\n{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
