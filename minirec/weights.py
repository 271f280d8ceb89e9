"""Saving and loading weights — files that know what their rows mean — and writing any output
file whole or not at all.

A weights file is a ``.npz``: one array per parameter (``"user_embedding.W"``, ...) and
``__config__``, a JSON record of the model (class, constructor arguments, dtype) and, when the
data set is given to ``save_weights``, of what it was trained on: the data set's name and a
fingerprint of its ratings, the split (seed and training fraction), and the user and movie ids
in row order (``__user_ids__``, ``__movie_ids__``). ``model_from_weights(path, ds)`` rebuilds
the model and lines its rows up with ``ds``: the same ids in another order are remapped; ids
that differ are refused, naming the difference. Files written before this record existed load
with a warning that says what cannot be checked.

``atomic_write`` is the one way minirec writes a file (weights, JSON, PNG): into a temporary
file in the same folder, flushed to disk, then renamed over the target, so a crash or Ctrl-C
leaves the old file or the new one, never half of one.
"""
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from .backend import to_numpy

FORMAT = 2  # 1: weights and config only (minirec 0.1); 2: also the data, split and ids


class WeightsError(ValueError):
    """A weights file that cannot be read or does not fit; the message names the file."""


def atomic_write(path, write):
    """Call ``write(file)`` on a binary temporary file beside ``path``, then rename it to
    ``path``. The file gets ordinary permissions (0666 less the umask, as ``open`` gives)."""
    path = Path(os.fspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as e:  # name the file the user asked for, not the temporary one
        raise OSError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename == tmp:
            raise OSError(f"cannot write {path}: {e.strerror}") from None
        raise
    return path


def save_weights(model, path, data=None, seed=None, train_fraction=None):
    """Write every weight and the model's record to ``path`` (``.npz``), atomically. With
    ``data`` (a ``MovieLens``), also what the rows index and which split trained them."""
    arrays = {name: to_numpy(p) for name, p in model.params.items()}
    record = {"format": FORMAT, **model.config(), "dtype": str(model.dtype)}
    if data is not None:
        record["data"] = {"name": data.name, "n_ratings": len(data),
                          "ratings_sha256": data.fingerprint()}
        arrays["__user_ids__"] = np.asarray(data.user_ids, np.int64)
        arrays["__movie_ids__"] = np.asarray(data.movie_ids, np.int64)
    if seed is not None:
        record["split"] = {"seed": int(seed), "train_fraction": float(train_fraction)}
    arrays["__config__"] = np.array(json.dumps(record))
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def read_weights(path):
    """(parameter arrays, record, stored ids or None) from a weights file; anything that is not
    one is refused with the file named."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise WeightsError(f"{path} is a single .npy array, not a weights file")
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise WeightsError(f"no weights file at {path}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        if isinstance(e, WeightsError):
            raise
        raise WeightsError(f"{path} is not a minirec weights file (empty, truncated or another "
                           f"format: {type(e).__name__})") from None
    try:
        record = json.loads(str(arrays.pop("__config__"))) if "__config__" in arrays else None
    except ValueError:
        raise WeightsError(f"{path}: its __config__ record is not valid JSON") from None
    ids = [arrays.pop(k, None) for k in ("__user_ids__", "__movie_ids__")]
    return arrays, record, None if ids[0] is None else ids


def load_weights(model, path):
    """Copy a file's weights into ``model``; every name and shape is checked first, so a refused
    file leaves the model as it was."""
    arrays, _, _ = read_weights(path)
    mine = model.params
    if set(arrays) != set(mine):
        raise WeightsError(f"weights file {path} holds {sorted(arrays)}, but this "
                           f"{type(model).__name__} has {sorted(mine)}")
    for name, p in mine.items():
        if tuple(arrays[name].shape) != tuple(p.shape):
            raise WeightsError(f"weights file {path}: {name} has shape {tuple(arrays[name].shape)}"
                               f" but this model's {name} has shape {tuple(p.shape)}")
    model.set_params(arrays)
    return model


def model_from_weights(path, ds=None, backend=None):
    """Build the model a ``save_weights`` file describes, load it, and — with a data set ``ds``
    — line its rows up with ``ds``'s indices (see ``align``). ``model.trained_on`` keeps the
    file's record of its data and split (``{}`` for a file that has none)."""
    from .models import CLASSES
    _, record, ids = read_weights(path)
    if record is None:
        raise WeightsError(f"{path} was not written by minirec's save_weights (no config)")
    kwargs = {k: v for k, v in record.items() if k not in ("class", "format", "data", "split")}
    if record.get("class") not in CLASSES:
        raise WeightsError(f"{path} describes a model class {record.get('class')!r}; minirec "
                           f"knows {', '.join(CLASSES)}")
    try:
        model = CLASSES[record["class"]](backend=backend, **kwargs)
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{path}: its config does not build a {record['class']} ({e})") from None
    load_weights(model, path)
    model.trained_on = {k: record[k] for k in ("data", "split") if k in record}
    if ds is not None:
        align(model, path, ds, ids)
    return model


def align(model, path, ds, ids):
    """Make ``model``'s rows follow ``ds``'s indices. The same ids in another order (the same
    ratings sorted by time, say) are remapped row by row; different ids are refused."""
    if ids is None:
        if (model.n_users, model.n_movies) != (ds.n_users, ds.n_movies):
            raise WeightsError(f"{path} was trained on {model.n_users} users and {model.n_movies} "
                               f"movies, but {ds.name} has {ds.n_users} and {ds.n_movies}")
        warnings.warn(f"{path} was written by an older minirec and does not record the ids, data "
                      "set or split it was trained on: minirec cannot check that it belongs to "
                      f"{ds.name}, and takes its rows to be in {ds.name}'s order", stacklevel=3)
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
        for name, reads in model.lookups.items():
            if reads == what:
                p = model.params[name]
                p[...] = p[model.xp.asarray(order)]


def example(ids):
    return f" (ids {', '.join(map(str, ids[:3]))}{', ...' if len(ids) > 3 else ''})" if len(ids) else ""
