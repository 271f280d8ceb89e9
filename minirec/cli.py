"""The ``minirec`` command: reproduce the notebook, train, evaluate, download, check gradients.

    minirec lesson4 [--data NAME|PATH] [--course-schedule] [--keras1-schedule | --improved]
                    [--plots DIR] [--json F]
    minirec train --model bias --data ml-latest-small --epochs 5 --lr 0.005 --improved --save w.npz
    minirec lr-find --model bias [--improved] [--plot lr.png]
    minirec evaluate --weights w.npz --data ml-latest-small [--ranking [-k 10]]
    minirec download ml-100k [--force]
    minirec pca --weights w.npz --data ml-latest-small [--components 3] [--plot map.png]
    minirec recommend --weights w.npz --data ml-latest-small --user 15 [-k 10]
    minirec similar --weights w.npz --data ml-latest-small --movie "Toy Story (1995)"
    minirec gradcheck

Training commands take --threads N (the Numba kernels' CPU threads; the numbers do not change).

Every user error ends with one line ``minirec: error: ...`` and exit status 2, before anything
is written; output paths are checked before training starts; Ctrl-C stops with one line and
exit status 130, and every file minirec writes appears whole or not at all.
"""
import argparse
import contextlib
import os
import sys
import warnings
import zipfile

from .models import KINDS

USER_ERRORS = (OSError, ValueError, KeyError, RuntimeError, FloatingPointError, EOFError,
               zipfile.BadZipFile)


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block) and exit status 2."""

    def error(self, message):
        print(f"minirec: error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *rest: print(f"minirec: warning: {message}",
                                                            file=sys.stderr)
        try:
            with threads_setting(getattr(args, "threads", None)):
                return args.run(args) or 0
        except USER_ERRORS as e:
            message = e.args[0] if isinstance(e, KeyError) and e.args else e
            print(f"minirec: error: {message}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("minirec: interrupted; no file was left half-written", file=sys.stderr)
            return 130


@contextlib.contextmanager
def threads_setting(threads):
    """``--threads N`` is ``MINIREC_THREADS=N`` for this command only (models read it when built)."""
    if threads is None:
        yield
        return
    before = os.environ.get("MINIREC_THREADS")
    os.environ["MINIREC_THREADS"] = str(threads)
    try:
        yield
    finally:
        if before is None:
            del os.environ["MINIREC_THREADS"]
        else:
            os.environ["MINIREC_THREADS"] = before


def count(minimum):
    """An argparse type: a whole number >= ``minimum``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def rate(text):
    """An argparse type: a learning rate, a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def output_file(path):
    """Refuse, before any work, an output path that cannot be written (named as given)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise OSError(f"{path} is a folder, not a file name")
    if not os.path.isdir(folder):
        raise OSError(f"cannot write {path}: the folder {os.path.dirname(path) or '.'} does not exist")
    if not os.access(folder, os.W_OK):
        raise OSError(f"cannot write {path}: the folder is not writable")
    return path


def output_folder(path):
    """A folder to write into: it exists (or its parent does) and is writable."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise OSError(f"{path} is a file, not a folder")
    existing = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
        raise OSError(f"cannot write into {path}")
    return path


def build_parser():
    from .backend import BACKENDS
    parser = Parser(prog="minirec", description=__doc__.split("\n")[0],
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(title="commands", parser_class=Parser)

    def command(name, func, help):
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(run=func)
        return p

    def data_options(p, seed=42):
        p.add_argument("--data", default="ml-latest-small",
                       help="a release name (ml-latest-small, ml-100k, ml-1m, ...), a folder in "
                            "$MINIREC_DATA, or a folder holding one (default: ml-latest-small)")
        p.add_argument("--seed", type=int, default=seed,
                       help="split and initialisation seed" + (f" ({seed})" if seed is not None
                                                               else " (default: the stored split)"))
        p.add_argument("--backend", choices=BACKENDS, default=None,
                       help="numpy | numba | cupy | auto (default: $MINIREC_BACKEND or auto)")
        p.add_argument("--duplicates", choices=("all", "first", "last"), default="all",
                       help="ratings of a (user, movie) pair given more than once: keep all "
                            "(default), or the first or last in the file")
        p.add_argument("--threads", type=count(1), default=None,
                       help="CPU threads for the Numba kernels (default: $MINIREC_THREADS or 1); "
                            "the numbers do not depend on it")

    p = command("lesson4", cmd_lesson4, "reproduce the Lesson 4 notebook (three models, final table)")
    data_options(p)
    p.add_argument("--course-schedule", action="store_true",
                   help="the fast.ai course notebook's schedules (fastai/courses lesson4.ipynb) "
                        "instead of the homework notebook's")
    p.add_argument("--keras1-schedule", action="store_true",
                   help="keep Adam at 1e-3 throughout, as Keras effectively did")
    p.add_argument("--improved", action="store_true",
                   help="train the improved recipe (y_range, one-cycle) instead")
    p.add_argument("--plots", metavar="DIR", help="write each model's loss curves as DIR/<model>.png")
    p.add_argument("--json", metavar="PATH", help="write the final metrics as JSON")
    p.add_argument("--weights-dir", metavar="DIR", help="where the bias model's weights go")
    p.add_argument("-q", "--quiet", action="store_true", help="only the final table")

    p = command("train", cmd_train, "train one model and report its validation MSE")
    data_options(p)
    p.add_argument("--model", choices=list(KINDS), default="bias")
    p.add_argument("--epochs", type=count(0), default=5)
    p.add_argument("--lr", type=rate, default=None,
                   help="learning rate (peak rate with --improved); default 1e-3, or the "
                        "recipe's with --improved")
    p.add_argument("--batch-size", type=count(1), default=64)
    p.add_argument("--lazy", action="store_true", help="lazy Adam (only the rows seen step)")
    p.add_argument("--improved", action="store_true", help="y_range + one-cycle recipe (bias, nn)")
    p.add_argument("--save", metavar="PATH", help="save the weights (.npz)")
    p.add_argument("--plot-loss", metavar="PNG", help="write the loss curves (and the rates)")
    p.add_argument("-q", "--quiet", action="store_true")

    p = command("lr-find", cmd_lr_find, "the learning-rate finder (LR range test) for a model")
    data_options(p)
    p.add_argument("--model", choices=list(KINDS), default="bias")
    p.add_argument("--improved", action="store_true", help="the improved recipe's model (bias, nn)")
    p.add_argument("--batch-size", type=count(1), default=64)
    p.add_argument("--num-it", type=count(2), default=None,
                   help="batches in the test (default: half an epoch, at least 100)")
    p.add_argument("--plot", metavar="PNG", help="write loss against learning rate")

    p = command("evaluate", cmd_evaluate, "validation MSE of saved weights")
    data_options(p, seed=None)
    p.add_argument("--weights", required=True, metavar="PATH")
    p.add_argument("--ranking", action="store_true",
                   help="also precision@k, recall@k and NDCG@k (held-out ratings >= 4 are "
                        "relevant), beside a popularity baseline")
    p.add_argument("-k", type=count(1), default=10, help="the k of the ranking metrics (10)")

    p = command("download", cmd_download, "fetch a MovieLens release into the cache")
    p.add_argument("name", help="ml-latest-small, ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-32m, ml-latest")
    p.add_argument("--data-home", help="where to keep it (default: $MINIREC_DATA or ~/.cache/minirec)")
    p.add_argument("--force", action="store_true", help="download again, replacing the cached copy")

    p = command("pca", cmd_pca, "principal components of the movie embeddings (and a map)")
    data_options(p)
    p.add_argument("--weights", required=True, metavar="PATH")
    p.add_argument("--components", type=count(1), default=3)
    p.add_argument("--among", type=count(1), default=2000, help="the most-rated movies to use")
    p.add_argument("--plot", metavar="PNG", help="write the movie map (first two components)")

    p = command("recommend", cmd_recommend, "the top movies for a known user")
    data_options(p)
    p.add_argument("--weights", required=True, metavar="PATH")
    p.add_argument("--user", required=True, type=int, help="a MovieLens user id")
    p.add_argument("-k", type=count(1), default=10)
    p.add_argument("--include-seen", action="store_true", help="keep movies the user rated")

    p = command("similar", cmd_similar, "movies with the most similar embeddings")
    data_options(p)
    p.add_argument("--weights", required=True, metavar="PATH")
    p.add_argument("--movie", required=True, help="a title (or part of one) or a MovieLens id")
    p.add_argument("-k", type=count(1), default=10)

    p = command("gradcheck", cmd_gradcheck, "check every layer's and model's gradient numerically")
    p.add_argument("--seed", type=int, default=0)
    return parser


def load(args):
    from .datasets import load_movielens
    return load_movielens(args.data, duplicates=args.duplicates)


def cmd_lesson4(args):
    from . import lesson4
    if args.improved and (args.keras1_schedule or args.course_schedule):
        raise ValueError("--improved trains its own schedule: drop --keras1-schedule and "
                         "--course-schedule")
    if args.json:
        output_file(args.json)
    for folder in (args.weights_dir, args.plots):
        if folder:
            output_folder(folder)
    if args.plots:
        from .plots import pyplot
        pyplot()  # refuse now, not after the training, when matplotlib is missing
        os.makedirs(args.plots, exist_ok=True)
    lesson4.run(args.data, args.seed, args.keras1_schedule, args.improved, args.backend,
                args.json, args.weights_dir, verbose=0 if args.quiet else 1,
                duplicates=args.duplicates, course=args.course_schedule, plots_dir=args.plots)


def cmd_train(args):
    from . import lesson4
    from .optim import Adam
    if args.improved and args.model not in lesson4.IMPROVED:
        raise ValueError(f"--improved is a recipe for {' and '.join(lesson4.IMPROVED)}, "
                         f"not {args.model}")
    for path in (args.save, args.plot_loss):
        if path:
            output_file(path)
    if args.plot_loss:
        from .plots import pyplot
        pyplot()
    ds = load(args)
    train, valid = ds.split(0.8, seed=args.seed)
    verbose = 0 if args.quiet else 1
    validation = (valid.x, valid.y) if len(valid) else None
    if args.improved:
        recipe = dict(lesson4.IMPROVED[args.model])
        lr = args.lr if args.lr is not None else recipe["lr_max"]
        model = lesson4.build(args.model, ds, args.seed, args.backend, **recipe["model"])
        model.compile(Adam(lr, weight_decay=recipe["weight_decay"], lazy=args.lazy))
        history = model.fit_one_cycle(train.x, train.y, args.epochs, lr,
                                      batch_size=args.batch_size, validation_data=validation,
                                      verbose=verbose)
    else:
        model = lesson4.build(args.model, ds, args.seed, args.backend)
        model.compile(Adam(args.lr if args.lr is not None else 1e-3, lazy=args.lazy))
        history = model.fit(train.x, train.y, batch_size=args.batch_size, epochs=args.epochs,
                            validation_data=validation, verbose=verbose)
    if args.plot_loss:
        print(f"wrote the loss curves to {history.plot(args.plot_loss, args.model)}")
    if validation is None:
        print(f"{args.model}: no validation ratings (the split left none of {len(ds)})")
    else:
        print(f"{args.model}: validation MSE {model.evaluate(valid.x, valid.y):.4f}")
    if args.save:
        model.save_weights(args.save, data=ds, seed=args.seed, train_fraction=0.8)
        print(f"saved weights to {args.save}")


def cmd_evaluate(args):
    from .weights import model_from_weights
    ds = load(args)
    model = model_from_weights(args.weights, ds, backend=args.backend)
    seed, fraction, note = stored_split(model.trained_on, ds, args.seed)
    train, valid = ds.split(fraction, seed=seed)
    if not len(valid):
        raise ValueError(f"the split (seed {seed}) leaves no validation ratings in {ds.name}")
    print(f"{type(model).__name__} from {args.weights} on {ds.name} ({note}): "
          f"validation MSE {model.evaluate(valid.x, valid.y):.4f}, "
          f"training MSE {model.evaluate(train.x, train.y):.4f}")
    if args.ranking:
        from .analysis import ranking_metrics
        print(f"\nranking the held-out ratings (relevant: rated >= 4), k = {args.k}")
        print(f"{'':<24}{'precision@k':>12}{'recall@k':>10}{'NDCG@k':>9}{'users':>7}")
        for label, scorer in ((type(model).__name__, model), ("popularity", None)):
            r = ranking_metrics(scorer, train, valid, ds.n_movies, k=args.k)
            print(f"{label:<24}{r['precision']:>12.4f}{r['recall']:>10.4f}{r['ndcg']:>9.4f}"
                  f"{r['users']:>7}")


def cmd_lr_find(args):
    from . import lesson4
    from .optim import Adam
    if args.improved and args.model not in lesson4.IMPROVED:
        raise ValueError(f"--improved is a recipe for {' and '.join(lesson4.IMPROVED)}, not {args.model}")
    if args.plot:
        output_file(args.plot)
        from .plots import pyplot
        pyplot()
    ds = load(args)
    train, _ = ds.split(0.8, seed=args.seed)
    recipe = lesson4.IMPROVED[args.model] if args.improved else {"model": {}, "weight_decay": 0.0}
    model = lesson4.build(args.model, ds, args.seed, args.backend, **recipe["model"])
    model.compile(Adam(1e-3, weight_decay=recipe["weight_decay"]))
    finder = model.lr_find(train.x, train.y, batch_size=args.batch_size, num_it=args.num_it)
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
            raise ValueError(f"the ratings in {ds.name} are not the ones the weights were trained "
                             f"on ({data['name']}, {data['n_ratings']:,} ratings), so their split "
                             "cannot be rebuilt; pass --seed to evaluate a split of these ratings "
                             "anyway (it may hold ratings the model was trained on)")
        return split["seed"], split["train_fraction"], f"its training split, seed {split['seed']}"
    if split is not None and (not same_data or seed != split["seed"]):
        warnings.warn(f"seed {seed} is not the split the weights were trained with; its "
                      "validation ratings may include training ratings")
    return seed, split["train_fraction"] if split else 0.8, f"seed {seed}"


def trained(args):
    from .weights import model_from_weights
    ds = load(args)
    return ds, model_from_weights(args.weights, ds, backend=args.backend)


def cmd_pca(args):
    from .analysis import movie_components
    from .plots import plot_movie_map, pyplot
    if args.plot:
        output_file(args.plot)
        pyplot()  # refuse now, not after the work, when matplotlib is missing
    ds, model = trained(args)
    result, _, extremes = movie_components(model, ds, args.components, args.among)
    for c, (top, bottom) in enumerate(extremes):
        print(f"component {c + 1} ({result.explained_variance_ratio[c]:.1%} of the variance)")
        print("  top:    " + " | ".join(top))
        print("  bottom: " + " | ".join(bottom))
    if args.plot:
        print(f"wrote the movie map to {plot_movie_map(model, ds, args.plot, among=args.among)}")


def cmd_recommend(args):
    from .analysis import recommend
    ds, model = trained(args)
    if args.user not in ds.userid2idx:
        raise KeyError(f"unknown user id {args.user}: not in {ds.name}")
    for j, score in recommend(model, ds, ds.userid2idx[args.user], args.k, not args.include_seen):
        print(f"{score:5.2f}  {ds.title(j)}")


def cmd_similar(args):
    from .analysis import find_movie, similar_movies
    ds, model = trained(args)
    movie = find_movie(ds, args.movie)
    print(f"movies most like {ds.title(movie)}:")
    for j, cosine in similar_movies(model, movie, args.k):
        print(f"{cosine:+.3f}  {ds.title(j)}")


def cmd_download(args):
    from .datasets import read_release
    from .download import locate
    folder = locate(args.name, data_home=args.data_home, force=args.force)
    print(f"{read_release(folder, args.name)} in {folder}")


def cmd_gradcheck(args):
    from .gradcheck import run_all
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
