"""Saving and loading weights — files that know what their rows mean.

A weights file is a ``.npz``: one array per parameter (``"user_embedding.W"``, ...), the
buffers some layers need besides their weights (``"__buffer__/implicit.offsets"``: the bags of
an ``EmbeddingBag``), and ``__config__``, a JSON record of the model (class, constructor
arguments, dtype, a digest of the whole) and, when the data set is given to ``save_weights``,
of what it was trained on: the data set's name, a fingerprint of its ratings and how duplicates
were kept, the split (seed and training fraction), and the user and movie ids in row order
(``__user_ids__``, ``__movie_ids__``).

Reading trusts nothing (``weightsfile.read_weights``). ``load_weights`` also compares the
record with the model it loads into and refuses a difference in any setting, naming both
values. ``model_from_weights(path, ds)`` rebuilds the model by its class name (``registry.py``)
and lines its rows up with ``ds``: the same ids in another order are remapped; ids that differ
are refused, naming the difference.
"""
import json
import warnings

import numpy as np
import pandas as pd

from . import objectives, registry
from .backend import default_threads, to_numpy
from .files import atomic_write
from .weightsfile import BUFFER, FORMAT, IDS, WeightsError, digest, read_weights  # noqa: F401

def save_weights(model, path, data=None, seed=None, train_fraction=0.8):
    """Write every weight and the model's record to ``path`` (``.npz``), atomically. With
    ``data`` (a ``MovieLens``), also what the rows index and, with ``seed``, which split
    (``data.split(train_fraction, seed)``) trained them."""
    arrays = {name: to_numpy(p) for name, p in model.params.items()}
    for ln, layer in model.layers.items():
        for bn, b in getattr(layer, "buffers", {}).items():
            arrays[f"{BUFFER}{ln}.{bn}"] = to_numpy(b)
    record = {"format": FORMAT, **model.config(), "dtype": str(model.dtype),
              "objective": objectives.settings(model.objective)}
    if data is not None:
        record["data"] = {"name": data.name, "n_ratings": len(data),
                          "ratings_sha256": data.fingerprint(),
                          "duplicates": getattr(data, "duplicates", "all")}
        arrays[IDS[0]] = np.asarray(data.user_ids, np.int64)
        arrays[IDS[1]] = np.asarray(data.movie_ids, np.int64)
    if seed is not None:
        record["split"] = {"seed": int(seed), "train_fraction": float(train_fraction)}
    record["digest"] = digest(arrays, record)
    arrays["__config__"] = np.array(json.dumps(record))
    return atomic_write(path, lambda f: np.savez(f, **arrays))


# ----- loading into a model -------------------------------------------------------------------

SETTINGS_NOT_COMPARED = ("format", "data", "split", "dtype", "digest", "objective")


def load_weights(model, path):
    """Copy a file's weights into ``model``; names, shapes and settings are checked first, so a
    refused file leaves the model as it was."""
    arrays, buffers, record, _ = read_weights(path)
    mine = model.params
    if set(arrays) != set(mine):
        raise WeightsError(f"weights file {path} holds {sorted(arrays)}, but this "
                           f"{type(model).__name__} has {sorted(mine)}")
    for name, p in mine.items():
        if tuple(arrays[name].shape) != tuple(p.shape):
            raise WeightsError(f"weights file {path}: {name} has shape {tuple(arrays[name].shape)}"
                               f" but this model's {name} has shape {tuple(p.shape)}")
    if record is not None:
        ours = {k: v for k, v in model.config().items() if k not in SETTINGS_NOT_COMPARED}
        name = type(model).__name__
        for key in sorted(set(ours) | set(record) - set(SETTINGS_NOT_COMPARED)):
            if key not in record:
                raise WeightsError(f"{path} does not record {key} (this {name} has {key} = "
                                   f"{ours[key]!r}): it cannot be checked against this model")
            if key not in ours:
                raise WeightsError(f"{path} records {key} = {record[key]!r}, a setting this "
                                   f"{name} does not have")
            if normal(record[key]) != normal(ours[key]):
                raise WeightsError(f"{path} was saved from a model with {key} = {record[key]!r}, "
                                   f"but this {name} has {key} = {ours[key]!r}; build the model "
                                   "with the same settings (or use model_from_weights)")
    layer_buffers = {f"{ln}.{bn}" for ln, layer in model.layers.items()
                     for bn in getattr(layer, "buffers", {})}
    if layer_buffers != set(buffers) and (buffers or record is None or record.get("format", 1) >= 3):
        raise WeightsError(f"weights file {path} holds buffers {sorted(buffers)}, but this model's "
                           f"layers keep {sorted(layer_buffers)}")
    for ln, layer in model.layers.items():
        names = [b for b in buffers if b.startswith(ln + ".")]
        if names:
            try:
                layer.load_buffers({b[len(ln) + 1:]: buffers[b] for b in names})
            except (ValueError, KeyError) as e:
                raise WeightsError(f"{path}: the buffers of {ln} are damaged ({e})") from None
    model.set_params(arrays)
    return model


def normal(value):
    """A setting as JSON keeps it (tuples as lists), for comparing a record with a model."""
    return json.loads(json.dumps(value))


def largest_dimension(arrays, buffers):
    return max([max(a.shape, default=1) for a in (*arrays.values(), *buffers.values())] or [1])


def model_from_weights(path, ds=None, backend=None):
    """Build the model a ``save_weights`` file describes, load it, and — with a data set ``ds``
    — line its rows up with ``ds``'s indices (see ``align``). ``model.trained_on`` keeps the
    file's record of its data and split (``{}`` for a file that has none)."""
    arrays, buffers, record, ids = read_weights(path)
    if record is None:
        raise WeightsError(f"{path} was not written by minirec's save_weights (no config)")
    cls = registry.class_named(record["class"])
    if cls is None:
        raise WeightsError(f"{path} describes a model class {record['class']!r} that is not "
                           f"registered (minirec knows {', '.join(c.__name__ for c in registry.KINDS.values())});"
                           " import the module that defines it, decorated with @minirec.register")
    biggest = largest_dimension(arrays, buffers)
    for key, value in record.items():  # no constructor may allocate more than the file holds
        if isinstance(value, int) and not isinstance(value, bool) and value > max(biggest, 1024):
            raise WeightsError(f"{path}: its record says {key} = {value:,}, more than any array in "
                               f"the file holds ({biggest:,}): the record is damaged")
    kwargs = {k: v for k, v in record.items() if k not in SETTINGS_NOT_COMPARED + ("class",)}
    kwargs["dtype"] = record.get("dtype", "float32")
    default_threads()  # a bad MINIREC_THREADS is its own error, not this file's
    try:
        model = cls(backend=backend, **kwargs)
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{path}: its config does not build a {record['class']} ({e})") from None
    load_weights(model, path)
    model.objective = objectives.from_settings(record.get("objective"))
    model.trained_on = {k: record[k] for k in ("data", "split") if k in record}
    if ds is not None:
        align(model, path, ds, ids, record.get("format", 1))
    return model


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
        model.remap(what, order)


def example(ids):
    return f" (ids {', '.join(map(str, ids[:3]))}{', ...' if len(ids) > 3 else ''})" if len(ids) else ""

