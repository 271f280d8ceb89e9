"""The ``minirec`` command: reproduce the notebook, train, evaluate, download, check gradients.

    minirec lesson4 [--data NAME|PATH] [--seed 42] [--keras1-schedule | --improved] [--json F]
    minirec train --model bias --data ml-latest-small --epochs 5 --lr 0.005 --improved --save w.npz
    minirec evaluate --weights w.npz --data ml-latest-small
    minirec download ml-100k
    minirec pca --weights w.npz --data ml-latest-small [--components 3] [--plot map.png]
    minirec recommend --weights w.npz --data ml-latest-small --user 15 [-k 10]
    minirec similar --weights w.npz --data ml-latest-small --movie "Toy Story (1995)"
    minirec gradcheck

Bad input ends with one line ``minirec: error: ...`` and exit status 2.
"""
import argparse
import sys


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"minirec: error: {message}", file=sys.stderr)
        return 2


def build_parser():
    from .backend import BACKENDS
    parser = argparse.ArgumentParser(prog="minirec", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(title="commands")

    def command(name, func, help):
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(run=func)
        return p

    def data_options(p):
        p.add_argument("--data", default="ml-latest-small",
                       help="a release name (ml-latest-small, ml-100k, ml-1m, ...) or a folder "
                            "holding one (default: ml-latest-small)")
        p.add_argument("--seed", type=int, default=42, help="split and initialisation seed (42)")
        p.add_argument("--backend", choices=BACKENDS, default=None,
                       help="numpy | numba | cupy | auto (default: $MINIREC_BACKEND or auto)")

    p = command("lesson4", cmd_lesson4, "reproduce the Lesson 4 notebook (three models, final table)")
    data_options(p)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--keras1-schedule", action="store_true",
                       help="keep Adam at 1e-3 throughout, as Keras 1 effectively did")
    group.add_argument("--improved", action="store_true",
                       help="train the improved recipe (y_range, one-cycle) instead")
    p.add_argument("--json", metavar="PATH", help="write the final metrics as JSON")
    p.add_argument("--weights-dir", metavar="DIR", help="where the bias model's weights go")
    p.add_argument("-q", "--quiet", action="store_true", help="only the final table")

    p = command("train", cmd_train, "train one model and report its validation MSE")
    data_options(p)
    p.add_argument("--model", choices=["dot", "bias", "nn"], default="bias")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (peak rate with --improved); default 1e-3, or the "
                        "recipe's with --improved")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lazy", action="store_true", help="lazy Adam (only the rows seen step)")
    p.add_argument("--improved", action="store_true", help="y_range + one-cycle recipe")
    p.add_argument("--save", metavar="PATH", help="save the weights (.npz)")
    p.add_argument("-q", "--quiet", action="store_true")

    p = command("evaluate", cmd_evaluate, "validation MSE of saved weights")
    data_options(p)
    p.add_argument("--weights", required=True, metavar="PATH")

    p = command("download", cmd_download, "fetch a MovieLens release into the cache")
    p.add_argument("name", help="ml-latest-small, ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-32m, ml-latest")
    p.add_argument("--data-home", help="where to keep it (default: $MINIREC_DATA or ~/.cache/minirec)")

    p = command("pca", cmd_pca, "principal components of the movie embeddings (and a map)")
    data_options(p)
    p.add_argument("--weights", required=True, metavar="PATH")
    p.add_argument("--components", type=int, default=3)
    p.add_argument("--among", type=int, default=2000, help="the most-rated movies to use")
    p.add_argument("--plot", metavar="PNG", help="write the movie map (first two components)")

    p = command("recommend", cmd_recommend, "the top movies for a known user")
    data_options(p)
    p.add_argument("--weights", required=True, metavar="PATH")
    p.add_argument("--user", required=True, type=int, help="a MovieLens user id")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--include-seen", action="store_true", help="keep movies the user rated")

    p = command("similar", cmd_similar, "movies with the most similar embeddings")
    data_options(p)
    p.add_argument("--weights", required=True, metavar="PATH")
    p.add_argument("--movie", required=True, help="a title (or part of one) or a MovieLens id")
    p.add_argument("-k", type=int, default=10)

    p = command("gradcheck", cmd_gradcheck, "check every layer's and model's gradient numerically")
    p.add_argument("--seed", type=int, default=0)
    return parser


def cmd_lesson4(args):
    from . import lesson4
    lesson4.run(args.data, args.seed, args.keras1_schedule, args.improved, args.backend,
                args.json, args.weights_dir, verbose=0 if args.quiet else 1)


def cmd_train(args):
    from . import lesson4
    from .datasets import load_movielens
    from .optim import Adam
    ds = load_movielens(args.data)
    train, valid = ds.split(0.8, seed=args.seed)
    verbose = 0 if args.quiet else 1
    if args.improved:
        recipe = dict(lesson4.IMPROVED.get(args.model, lesson4.IMPROVED["bias"]))
        recipe.update(epochs=args.epochs, lr_max=args.lr or recipe["lr_max"])
        model = lesson4.build(args.model, ds, args.seed, args.backend, **recipe["model"])
        model.compile(Adam(recipe["lr_max"], weight_decay=recipe["weight_decay"], lazy=args.lazy))
        model.fit_one_cycle(train.x, train.y, recipe["epochs"], recipe["lr_max"],
                            batch_size=args.batch_size, validation_data=(valid.x, valid.y),
                            verbose=verbose)
    else:
        model = lesson4.build(args.model, ds, args.seed, args.backend)
        model.compile(Adam(args.lr or 1e-3, lazy=args.lazy))
        model.fit(train.x, train.y, batch_size=args.batch_size, epochs=args.epochs,
                  validation_data=(valid.x, valid.y), verbose=verbose)
    print(f"{args.model}: validation MSE {model.evaluate(valid.x, valid.y):.4f}")
    if args.save:
        model.save_weights(args.save)
        print(f"saved weights to {args.save}")


def cmd_evaluate(args):
    from .datasets import load_movielens
    from .weights import model_from_weights
    ds = load_movielens(args.data)
    model = model_from_weights(args.weights, ds, backend=args.backend)
    train, valid = ds.split(0.8, seed=args.seed)
    print(f"{type(model).__name__} from {args.weights} on {ds.name}: "
          f"validation MSE {model.evaluate(valid.x, valid.y):.4f}, "
          f"training MSE {model.evaluate(train.x, train.y):.4f}")


def _trained(args):
    from .datasets import load_movielens
    from .weights import model_from_weights
    ds = load_movielens(args.data)
    return ds, model_from_weights(args.weights, ds, backend=args.backend)


def cmd_pca(args):
    from .analysis import movie_components, plot_movie_map
    ds, model = _trained(args)
    result, _, extremes = movie_components(model, ds, args.components, args.among)
    for c, (top, bottom) in enumerate(extremes):
        print(f"component {c + 1} ({result.explained_variance_ratio[c]:.1%} of the variance)")
        print("  top:    " + " | ".join(top))
        print("  bottom: " + " | ".join(bottom))
    if args.plot:
        print(f"wrote the movie map to {plot_movie_map(model, ds, args.plot, among=args.among)}")


def cmd_recommend(args):
    from .analysis import recommend
    ds, model = _trained(args)
    if args.user not in ds.userid2idx:
        raise KeyError(f"unknown user id {args.user}: not in {ds.name}")
    for j, score in recommend(model, ds, ds.userid2idx[args.user], args.k, not args.include_seen):
        print(f"{score:5.2f}  {ds.title(j)}")


def cmd_similar(args):
    from .analysis import find_movie, similar_movies
    ds, model = _trained(args)
    movie = find_movie(ds, args.movie)
    print(f"movies most like {ds.title(movie)}:")
    for j, cosine in similar_movies(model, movie, args.k):
        print(f"{cosine:+.3f}  {ds.title(j)}")


def cmd_download(args):
    from .datasets import load_movielens
    ds = load_movielens(args.name, data_home=args.data_home)
    print(f"{ds} in {ds.folder}")


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
