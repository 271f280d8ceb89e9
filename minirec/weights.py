"""Saving and loading weights, and writing any output file whole or not at all.

A weights file is a ``.npz``: one array per parameter (``"user_embedding.W"``, ...) and
``__config__``, the JSON of ``model.config()`` (class and constructor arguments) plus the dtype.
``model_from_weights`` rebuilds the model a file describes.

``atomic_write`` is the one way minirec writes a file (weights, JSON, PNG): into a temporary
file in the same folder, flushed to disk, then renamed over the target, so a crash or Ctrl-C
leaves the old file or the new one, never half of one.
"""
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .backend import to_numpy


def atomic_write(path, write):
    """Call ``write(file)`` on a binary temporary file beside ``path``, then rename it to
    ``path``. The file gets ordinary permissions (0666 less the umask, as ``open`` gives)."""
    path = Path(os.fspath(path))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_weights(model, path, **metadata):
    """Write every weight and the model's config to ``path`` (``.npz``), atomically."""
    arrays = {name: to_numpy(p) for name, p in model.params.items()}
    config = {**model.config(), "dtype": str(model.dtype), **metadata}
    arrays["__config__"] = np.array(json.dumps(config))
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def read_weights(path):
    """(arrays, config) from a weights file."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != "__config__"}
        config = json.loads(str(data["__config__"])) if "__config__" in data.files else None
    return arrays, config


def load_weights(model, path):
    """Copy a file's weights into ``model``; every name and shape is checked first, so a refused
    file leaves the model as it was."""
    arrays, _ = read_weights(path)
    mine = model.params
    if set(arrays) != set(mine):
        raise ValueError(f"weights file {path} holds {sorted(arrays)}, but this "
                         f"{type(model).__name__} has {sorted(mine)}")
    for name, p in mine.items():
        if tuple(arrays[name].shape) != tuple(p.shape):
            raise ValueError(f"weights file {path}: {name} has shape {tuple(arrays[name].shape)}"
                             f" but this model's {name} has shape {tuple(p.shape)}")
    model.set_params(arrays)
    return model


def model_from_weights(path, ds=None, backend=None):
    """Build the model a ``save_weights`` file describes and load it. With a data set ``ds``,
    its user and movie counts must match the file's."""
    from .models import CLASSES
    _, config = read_weights(path)
    if config is None:
        raise ValueError(f"{path} was not written by minirec's save_weights (no config)")
    kwargs = {k: v for k, v in config.items() if k not in ("class",)}
    if ds is not None and (ds.n_users, ds.n_movies) != (kwargs["n_users"], kwargs["n_movies"]):
        raise ValueError(f"{path} was trained on {kwargs['n_users']} users and "
                         f"{kwargs['n_movies']} movies, but {ds.name} has {ds.n_users} and "
                         f"{ds.n_movies}")
    model = CLASSES[config["class"]](backend=backend, **kwargs)
    return load_weights(model, path)
