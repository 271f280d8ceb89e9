"""The options of each ``minirec`` command (``cli.py`` runs them): one argparse sub-parser per
command, with types that refuse a bad value in one line before anything runs.

Your own model on the command line: register its class in a file of yours
(``@minirec.register("mine")`` on a ``minirec.Model`` subclass), then name the file and the class:

    minirec train --model path/to/mine.py:MyModel --data ml-latest-small --save mine.npz
    minirec evaluate --import path/to/mine.py --weights mine.npz --data ml-latest-small

``--model FILE.py`` alone takes the one kind the file registers; ``--model package.module:Class``
imports an installed module instead. ``--import FILE.py`` (or a module, repeatable) runs the file
first, so its kinds are known: ``--model mine`` then works too, and saved weights of its classes
load (``evaluate``, ``pca``, ``recommend``, ``similar``). The class is built as the built-in kinds
are: ``cls.for_data(ds, train, seed=..., backend=...)``, plus ``n_factors=50`` and
``l2=1e-4`` where its constructor takes them.
"""
import argparse
import contextlib
import importlib
import importlib.util
import inspect
import os
import sys

from ..models import registry
from ..models.registry import KINDS


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block) and exit status 2."""

    def error(self, message):
        print(f"minirec: error: {message}", file=sys.stderr)
        sys.exit(2)


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


# Which of train's flags each way of training takes (``check_train_flags`` refuses the rest, by
# name, before anything runs). A flag left out is "not given" (None), never a default that
# stands in for it: the recipes fill what was not given.
TRAIN_FLAGS = {
    ("adam", "mse"): ("--loss", "--epochs", "--lr", "--batch-size", "--lazy", "--dense", "--improved"),
    ("adam", "bpr"): ("--loss", "--epochs", "--lr", "--batch-size", "--lazy", "--dense"),
    ("fitted", None): (),  # EASE's closed form, BPMF's Gibbs sampler: nothing to choose
}


def check_train_flags(args, trained_by=None):
    """Refuse the flags of ``train`` that the model kind (``trained_by``: how a kind fitted
    another way than Adam trains) and the loss do not take, naming them."""
    way = ("fitted", None) if trained_by else ("adam", args.loss or "mse")
    given = [flag for flag in TRAIN_FLAGS[("adam", "mse")]  # the row that takes every flag
             if getattr(args, flag[2:].replace("-", "_")) not in (None, False)]
    refused = [flag for flag in given if flag not in TRAIN_FLAGS[way]]
    if refused:
        what = (f"{args.model} is fitted without Adam ({trained_by})" if trained_by else
                f"--loss {args.loss} trains the ranking recipe")
        raise ValueError(f"{what}: it takes none of {', '.join(refused)}")


def rate(text):
    """An argparse type: a learning rate, a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def import_source(source):
    """Run a learner's file (``path/to/mine.py``) or import a module (``package.module``), so
    the model kinds it registers are known; returns the module."""
    if source.endswith(".py") or os.sep in source or "/" in source:
        path = os.path.abspath(source)
        if not os.path.isfile(path):
            raise ValueError(f"--model/--import {source}: no such file")
        name = os.path.splitext(os.path.basename(path))[0]
        known = sys.modules.get(name)
        if known is not None and os.path.abspath(getattr(known, "__file__", "") or "") == path:
            return known
        if known is not None or not name.isidentifier():
            name = "minirec_learner_" + "".join(c if c.isalnum() else "_" for c in name)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        sys.path.insert(0, os.path.dirname(path))  # its own imports find their neighbours, as
        spec.loader.exec_module(module)            # under `python mine.py`
        return module
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as e:
        if e.name and source.startswith(e.name):
            raise ValueError(f"--model/--import {source}: no module named {e.name!r} (a file "
                             "of yours is named by its path: path/to/mine.py)") from None
        raise


def model_kind(text):
    """The registered kind ``--model`` names: a kind (bias, nn, ...), ``FILE.py:Class`` or
    ``module:Class`` (imported first; the class must be registered), or ``FILE.py`` alone (the
    one kind it registers)."""
    if text in KINDS:
        return text
    source, _, class_name = text.rpartition(":") if ":" in text else (text, "", "")
    if not (source.endswith(".py") or class_name):
        raise ValueError(f"--model {text}: not a model kind ({', '.join(KINDS)}); a class of "
                         "your own is --model path/to/file.py:ClassName")
    module = import_source(source)
    if not class_name:
        new = [kind for kind, cls in KINDS.items() if cls.__module__ == module.__name__]
        if len(new) != 1:
            raise ValueError(f"--model {text}: the file registers {len(new)} model kinds "
                             f"({', '.join(new) or 'none'}); name the class: {text}:ClassName")
        return new[0]
    cls = getattr(module, class_name, None)
    if not inspect.isclass(cls):
        classes = [n for n, c in vars(module).items() if inspect.isclass(c) and c.__module__ == module.__name__]
        raise ValueError(f"--model {text}: {source} defines no class {class_name} (its classes: "
                         f"{', '.join(classes) or 'none'})")
    kind = registry.kind_of(cls)
    if kind is None:
        raise ValueError(f"--model {text}: {class_name} is not registered; decorate it with "
                         f"@minirec.register(\"{class_name.lower()}\") so that the CLI, and the "
                         "weights it saves, know it by name")
    return kind


def build_parser():
    from ..backend import BACKENDS
    parser = Parser(prog="minirec", description=__doc__.split("\n")[0],
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(title="commands", parser_class=Parser)

    def command(name, help):
        """A sub-command, run by ``cli.cmd_<name>`` (dashes as underscores)."""
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(command=name)
        return p

    def data_options(p, seed=42):
        p.add_argument("--data", default="ml-latest-small",
                       help="a release name (ml-latest-small, ml-100k, ml-1m, ...), a folder in "
                            "$MINIREC_DATA, or a folder holding one (default: ml-latest-small)")
        p.add_argument("--seed", type=count(0), default=seed,
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
        p.add_argument("--import", dest="imports", action="append", default=[],
                       metavar="FILE.py|MODULE",
                       help="run a file of yours (or import a module) first, so the model kinds "
                            "it registers are known (repeatable)")

    def model_option(p):
        p.add_argument("--model", default="bias", metavar="KIND",
                       help=f"a model kind ({', '.join(KINDS)}), or your own registered class: "
                            "path/to/file.py:ClassName (default: bias)")

    p = command("lesson4", "reproduce the Lesson 4 notebook (three models, final table)")
    data_options(p)
    p.add_argument("--course-schedule", action="store_true",
                   help="the fast.ai course notebook's schedules (fastai/courses lesson4.ipynb) "
                        "instead of the homework notebook's")
    p.add_argument("--keras1-schedule", action="store_true",
                   help="keep Adam at 1e-3 throughout, as Keras effectively did")
    p.add_argument("--as-written", action="store_true",
                   help="the homework's cells exactly as Keras ran them: Adam at 1e-3 "
                        "throughout, the neural-net cells training the bias model, the PCA of "
                        "the untrained net")
    p.add_argument("--improved", action="store_true",
                   help="train the improved recipe (y_range, one-cycle) instead")
    p.add_argument("--plots", metavar="DIR", help="write each model's loss curves as DIR/<model>.png")
    p.add_argument("--json", metavar="PATH", help="write the final metrics as JSON")
    p.add_argument("--weights-dir", metavar="DIR", help="where the bias model's weights go")
    p.add_argument("-q", "--quiet", action="store_true", help="only the final table")

    p = command("train", "train one model and report its validation MSE")
    data_options(p)
    model_option(p)
    p.add_argument("--epochs", type=count(0), default=None,
                   help="epochs to train (default 5, or the recipe's with --improved)")
    p.add_argument("--lr", type=rate, default=None,
                   help="learning rate (peak rate with --improved); default 1e-3, or the "
                        "recipe's with --improved")
    p.add_argument("--batch-size", type=count(1), default=None,
                   help="ratings per batch (default 64, or 1,024 with --loss bpr)")
    adam = p.add_mutually_exclusive_group()
    adam.add_argument("--lazy", action="store_true",
                      help="lazy Adam: only the rows a batch saw step (--loss bpr's default)")
    adam.add_argument("--dense", action="store_true",
                      help="dense Adam: every row steps every batch (--loss mse's default)")
    p.add_argument("--loss", choices=("mse", "bpr"), default=None,
                   help="mse (the default): predict ratings (the notebook); bpr: learn to rank "
                        "from who rated what (the ranking recipe: lazy Adam, 40 epochs of "
                        "batches of 1,024)")
    p.add_argument("--improved", action="store_true",
                   help="the model's recipe: y_range + one cycle (bias, nn, svdpp)")
    p.add_argument("--save", metavar="PATH", help="save the weights (.npz)")
    p.add_argument("--plot-loss", metavar="PNG", help="write the loss curves (and the rates)")
    p.add_argument("-q", "--quiet", action="store_true")

    p = command("lr-find", "the learning-rate finder (LR range test) for a model")
    data_options(p)
    model_option(p)
    p.add_argument("--improved", action="store_true", help="the improved recipe's model (bias, nn)")
    p.add_argument("--batch-size", type=count(1), default=None, help="ratings per batch (64)")
    p.add_argument("--num-it", type=count(2), default=None,
                   help="batches in the test (default: half an epoch, at least 100)")
    p.add_argument("--plot", metavar="PNG", help="write loss against learning rate")

    p = command("evaluate", "validation MSE of saved weights")
    data_options(p, seed=None)
    p.add_argument("--weights", required=True, metavar="PATH")
    p.add_argument("--ranking", action="store_true",
                   help="also precision@k, recall@k and NDCG@k (held-out ratings >= 4 are "
                        "relevant), beside a popularity baseline")
    p.add_argument("-k", type=count(1), default=None,
                   help="the k of the ranking metrics (10, or every movie of a smaller catalogue)")

    p = command("download", "fetch a MovieLens release into the cache")
    p.add_argument("name", help="ml-latest-small, ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-32m, ml-latest")
    p.add_argument("--data-home", help="where to keep it (default: $MINIREC_DATA or ~/.cache/minirec)")
    p.add_argument("--force", action="store_true", help="download again, replacing the cached copy")
    p.add_argument("--verify", action="store_true",
                   help="hash the cached copy's ratings file again, even if its size and time "
                        "are unchanged, and refuse it if it no longer matches")

    p = command("pca", "principal components of the movie embeddings (and a map)")
    data_options(p)
    p.add_argument("--weights", required=True, metavar="PATH")
    p.add_argument("--components", type=count(1), default=3)
    p.add_argument("--among", type=count(1), default=2000, help="the most-rated movies to use")
    p.add_argument("--plot", metavar="PNG", help="write the movie map (first two components)")

    p = command("recommend", "the top movies for a known user, or a new one folded in")
    data_options(p)
    p.add_argument("--weights", required=True, metavar="PATH")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", type=int, help="a MovieLens user id")
    who.add_argument("--rated", metavar="ID=R,...", help="a new user's ratings, e.g. "
                     "'1=5,260=4.5' (MovieLens movie ids): folded in, not retrained "
                     "(models/coldstart.py); '' for none")
    p.add_argument("--side", default="", metavar="NAME,...", help="with --rated, the new user's "
                   "side features for the hybrid model, e.g. 'age:25-34,gender:F,occupation:writer'")
    p.add_argument("-k", type=count(1), default=10)
    p.add_argument("--include-seen", action="store_true", help="keep movies the user rated")

    p = command("similar", "movies with the most similar embeddings")
    data_options(p)
    p.add_argument("--weights", required=True, metavar="PATH")
    p.add_argument("--movie", required=True, help="a title (or part of one) or a MovieLens id")
    p.add_argument("-k", type=count(1), default=10)

    p = command("gradcheck", "check every layer's and model's gradient numerically")
    p.add_argument("--seed", type=count(0), default=0)
    return parser


@contextlib.contextmanager
def threads_setting(threads):
    """``--threads N`` means ``MINIREC_THREADS=N`` for this command only (read when a model
    is built)."""
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
