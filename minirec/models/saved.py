"""A saved model back: ``model_from_weights(path, ds)`` builds the class a weights file names
(through the registry of kinds, ``registry.py``), loads its weights (``io/weights.py``) and
its objective, and — given a data set — lines its rows up with the data's ids: the same ids in
another order are remapped (``remap``); ids that differ are refused, naming the difference.

Nothing is built on the record's word alone: each whole-number setting is checked against the
file's arrays, and the weights the settings imply together (``implied_weights``) against the
weights the file holds, before the model allocates any.
"""
import warnings

import numpy as np
import pandas as pd

from . import registry
from .. import inputs
from ..backend import default_threads
from ..io.weights import FORMAT, SETTINGS_NOT_COMPARED, WeightsError, read_weights


def largest_dimension(arrays, buffers):
    return max([max(a.shape, default=1) for a in (*arrays.values(), *buffers.values())] or [1])


def model_from_weights(path, ds=None, backend=None):
    """Build the model a ``save_weights`` file describes, load it, and — with a data set ``ds``
    — line its rows up with ``ds``'s indices (see ``align``). ``model.trained_on`` keeps the
    file's record of its data and split (``{}`` for a file that has none)."""
    arrays, buffers, record, ids, _ = read_weights(path)
    if record is None:
        raise WeightsError(f"{path} was not written by minirec's save_weights (no config)")
    cls = registry.class_named(record["class"])
    if cls is None:
        raise WeightsError(f"{path} describes a model class {record['class']!r} that is not "
                           f"registered (minirec knows {', '.join(c.__name__ for c in registry.KINDS.values())});"
                           " import the module that defines it, decorated with @minirec.register"
                           " (on the command line: --import path/to/file.py)")
    biggest = largest_dimension(arrays, buffers)
    for key, value in record.items():  # no constructor may allocate more than the file holds
        if isinstance(value, int) and not isinstance(value, bool) and value > max(biggest, 1024):
            raise WeightsError(f"{path}: its record says {key} = {value:,}, more than any array in "
                               f"the file holds ({biggest:,}): the record is damaged")
    kwargs = {k: v for k, v in record.items() if k not in SETTINGS_NOT_COMPARED + ("class",)}
    kwargs["dtype"] = record.get("dtype", "float32")
    check_implied_weights(cls, kwargs, arrays, path)
    default_threads()  # a bad MINIREC_THREADS is its own error, not this file's
    try:
        model = cls(backend=backend, **kwargs)
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{path}: its config does not build a {record['class']} ({e})") from None
    model.load_weights(path)  # the weights, the rows they trained, and their objective
    model.trained_on = {k: record[k] for k in ("data", "split") if k in record}
    if ds is not None:
        align(model, path, ds, ids, record.get("format", 1))
    return model


def implied_weights(cls, kwargs):
    """How many numbers a ``cls`` built from ``kwargs`` holds: what the class says
    (``cls.weights_implied(n_users, n_movies, **settings)``: EASE's U·M, BPMF's (U + M) rows of
    rank x kept draws) or, for a class that does not say, at least one table of ``n_factors``
    columns for the users or the movies. None where the settings do not make sense (the
    constructor then names what is wrong)."""
    U, M = kwargs["n_users"], kwargs["n_movies"]
    settings = {k: v for k, v in kwargs.items() if k not in ("n_users", "n_movies", "dtype")}
    try:
        if hasattr(cls, "weights_implied"):
            return int(cls.weights_implied(U, M, **settings))
        return min(U, M) * int(settings.get("n_factors", 1))
    except (TypeError, ValueError):
        return None


def check_implied_weights(cls, kwargs, arrays, path):
    """Refuse a record whose settings, each plausible alone, together imply more weights than
    the file holds (rank = samples = 1,130 for a BPMF asks for gigabytes): the model it
    describes could never load this file, and building it would allocate them first."""
    implied, held = implied_weights(cls, kwargs), sum(a.size for a in arrays.values())
    if implied is None or implied <= held:
        return
    itemsize = np.dtype(kwargs["dtype"]).itemsize if kwargs["dtype"] in ("float32", "float64") else 4
    settings = ", ".join(f"{k} = {v!r}" for k, v in kwargs.items() if k != "dtype")
    try:
        inputs.memory(f"{path}: the {cls.__name__} its record describes ({settings})",
                      implied * itemsize, have=held * itemsize,
                      where="of weights the file holds; the record is damaged")
    except inputs.NotEnoughMemory as e:
        raise WeightsError(str(e)) from None


def align(model, path, ds, ids, fmt=FORMAT):
    """Make ``model``'s rows follow ``ds``'s indices. The same ids in another order (the same
    ratings sorted by time, say) are remapped row by row; different ids are refused."""
    if ids is None:
        if (model.n_users, model.n_movies) != (ds.n_users, ds.n_movies):
            raise WeightsError(f"{path} was trained on {model.n_users} users and {model.n_movies} "
                               f"movies, but {ds.name} has {ds.n_users} and {ds.n_movies}")
        why = ("was written by an older minirec" if fmt < 2 else
               "was saved without data= (save_weights(path, data=ds, seed=...) records it)")
        warnings.warn(f"{path} {why}, so it does not record the ids it was trained on: minirec "
                      f"cannot check that it belongs to {ds.name}, and takes its rows to be in "
                      f"{ds.name}'s order", stacklevel=3)
        return
    for what, stored, current in (("user", ids[0], ds.user_ids), ("movie", ids[1], ds.movie_ids)):
        current = np.asarray(current, np.int64)
        if np.array_equal(stored, current):
            continue
        unknown = np.setdiff1d(current, stored)
        gone = np.setdiff1d(stored, current)
        if len(unknown) or len(gone):
            differences = [f"{len(unknown):,} of {ds.name}'s {what}s are not in the weights"
                           + example(unknown)] if len(unknown) else []
            differences += [f"{len(gone):,} of the weights' {what}s are not in {ds.name}"
                            + example(gone)] if len(gone) else []
            raise WeightsError(f"{path} was trained on {len(stored):,} {what}s and {ds.name} has "
                               f"{len(current):,}: " + "; ".join(differences))
        order = pd.Index(stored).get_indexer(current)  # row of the weights for each ds index
        remap(model, what, order)
        trained = getattr(model, "trained_rows", None)
        if trained is not None:  # the trained-row masks follow the rows
            trained[what] = trained[what][order]


def remap(model, what, order):
    """Make ``model`` follow a new order of the data's ids: ``order[k]`` is the old row of new
    row k, for the ``what`` input ("user" or "movie"). Tables looked up by that input
    (``model.lookups``) move their rows; a bag layer renumbers its bags or moves its rows. A
    model whose rows are not tables of that kind (EASE's S) defines its own ``remap``."""
    if hasattr(model, "remap"):
        return model.remap(what, order)
    remap_tables(model, what, order)


def remap_tables(model, what, order):
    """The tables and bags of ``remap``, for a model's own ``remap`` to call first."""
    for name, reads in model.lookups.items():
        if reads == what:
            p = model.params[name]
            p[...] = p[model.xp.asarray(order)]
    for layer in model.layers.values():
        if getattr(layer, "bag_owner", None) == what:
            layer.reorder(owners=order)
        if getattr(layer, "row_kind", None) == what:
            layer.reorder(rows=order)


def example(ids):
    return f" (ids {', '.join(map(str, ids[:3]))}{', ...' if len(ids) > 3 else ''})" if len(ids) else ""

