"""Saving and loading weights — files that know what their rows mean.

A weights file is a ``.npz``: one array per parameter (``"user_embedding.W"``, ...), the
buffers some layers need besides their weights (``"__buffer__/implicit.offsets"``: the bags of
an ``EmbeddingBag``), and ``__config__``, a JSON record of the model (class, constructor
arguments, dtype, a digest of the whole) and, when the data set is given to ``save_weights``,
of what it was trained on: the data set's name, a fingerprint of its ratings and how duplicates
were kept, the split (seed and training fraction), and the user and movie ids in row order
(``__user_ids__``, ``__movie_ids__``); and which rows training used (``__trained_users__``,
``__trained_movies__``: ``model.trained_rows``), so that a row that never trained is not served.

Reading trusts nothing (``read_weights``, below). ``load_weights`` also compares the
record with the model it loads into and refuses a difference in any setting, naming both
values. ``models/saved.py``'s ``model_from_weights(path, ds)`` rebuilds the model by its class
name and lines its rows up with ``ds``.
"""
import hashlib
import inspect
import json
import math
import zipfile

import numpy as np

from ..backend import to_numpy
from .files import atomic_write

FORMAT = 3  # 1: weights and config; 2: also the data, split and ids; 3: also buffers, digest
BUFFER = "__buffer__/"
IDS = ("__user_ids__", "__movie_ids__")
TRAINED = ("__trained_users__", "__trained_movies__")  # optional in format 3
OBJECTIVES = ("mse", "bpr", "ease", "elbo")  # the objectives a record may name (train/objectives.py)


class WeightsError(ValueError):
    """A weights file that cannot be read or does not fit; the message names the file."""


def digest(arrays, record):
    """sha256 of every array (name, dtype, shape, bytes) and of the record without its digest:
    saved in the record, so a file damaged or edited after saving is refused."""
    h = hashlib.sha256(json.dumps({k: v for k, v in record.items() if k != "digest"},
                                  sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def read_weights(path):
    """(parameter arrays, buffers, record or None, stored ids or None, trained rows or None)
    from a weights file."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except FileNotFoundError:
        raise WeightsError(f"no weights file at {path}") from None
    except OSError as e:
        raise WeightsError(f"cannot read {path}: {e.strerror}") from None
    if head == b"\x93NUMPY":
        raise WeightsError(f"{path} is a single .npy array, not a weights file (.npz)")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                arrays[info.filename[:-4]] = read_member(z, info, path)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zipfile.LargeZipFile) as e:
        if isinstance(e, WeightsError):
            raise
        raise WeightsError(f"{path} is not a minirec weights file (empty, truncated or another "
                           f"format: {type(e).__name__})") from None
    record = read_record(arrays.pop("__config__", None), path)
    if record is not None and record.get("format", 1) >= 3 and "digest" not in record:
        raise WeightsError(f"{path}: its format-{record['format']} record has no digest, which "
                           "every such file is saved with: it was edited after it was saved")
    if record is not None and "digest" in record and digest(arrays, record) != record["digest"]:
        raise WeightsError(f"{path}: its contents do not match the digest saved with them: the "
                           "file was damaged or edited after it was saved")
    ids = [arrays.pop(k, None) for k in IDS]
    trained = [arrays.pop(k, None) for k in TRAINED]
    buffers = {k[len(BUFFER):]: arrays.pop(k) for k in list(arrays) if k.startswith(BUFFER)}
    for name, a in arrays.items():
        if a.dtype.kind != "f" or a.dtype.itemsize not in (4, 8):
            raise WeightsError(f"{path}: {name} holds {a.dtype} numbers; weights are float32 or float64")
        if not np.isfinite(a).all():
            raise WeightsError(f"{path}: {name} holds NaN or infinite weights (saved from a model "
                               "that diverged?); refusing to load them")
    if (ids[0] is None) != (ids[1] is None):
        raise WeightsError(f"{path} holds {'__user_ids__' if ids[1] is None else '__movie_ids__'} "
                           "without the other")
    if ids[0] is not None:
        for field, a in zip(IDS, ids):
            check_ids(a, field, path)
        if record is not None:
            for field, a, n in zip(IDS, ids, ("n_users", "n_movies")):
                if n in record and len(a) != record[n]:
                    raise WeightsError(f"{path}: {field} has {len(a):,} ids but the config says "
                                       f"{n} = {record[n]:,}")
    trained = read_trained(trained, record, path)
    return arrays, buffers, record, None if ids[0] is None else ids, trained


def read_trained(masks, record, path):
    """The trained-row masks {"user": (U,) bool, "movie": (M,) bool}, checked, or None."""
    if masks[0] is None and masks[1] is None:
        return None
    for k, (field, a, n) in enumerate(zip(TRAINED, masks, ("n_users", "n_movies"))):
        if a is None:
            raise WeightsError(f"{path} holds {TRAINED[1 - k]} without {field}")
        if a.dtype != np.bool_ or a.ndim != 1 or (record is not None and len(a) != record[n]):
            raise WeightsError(f"{path}: {field} must be one true/false per row ({n} = "
                               f"{f'{record[n]:,}' if record else '?'}), got {a.dtype} of shape "
                               f"{a.shape}")
    return {"user": masks[0], "movie": masks[1]}


def read_member(z, info, path):
    """One ``.npy`` member of the zip, after checking that the shape and dtype its header
    declares fit in the bytes it holds (no allocation on a header's word alone)."""
    if not info.filename.endswith(".npy"):
        raise WeightsError(f"{path}: member {info.filename} is not a .npy array")
    with z.open(info) as f:
        version = np.lib.format.read_magic(f)
        shape, fortran, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                 else np.lib.format.read_array_header_2_0(f))
        if dtype.hasobject:
            raise WeightsError(f"{path}: {info.filename[:-4]} holds Python objects; refusing it")
        declared = math.prod(shape) * dtype.itemsize
        if declared > info.file_size:
            raise WeightsError(f"{path}: {info.filename[:-4]} declares shape {shape} of {dtype} "
                               f"({declared:,} bytes) but the file holds {info.file_size:,}: damaged")
        data = f.read(declared)
        if f.read(1):  # also reads to the end, where zipfile checks the member's CRC
            raise WeightsError(f"{path}: {info.filename[:-4]} holds more bytes than its shape")
    if len(data) != declared:
        raise WeightsError(f"{path}: {info.filename[:-4]} is cut short")
    a = np.frombuffer(data, dtype=dtype)
    return a.reshape(shape, order="F" if fortran else "C").copy()


def read_record(array, path):
    """The ``__config__`` record as a checked dict, or None for a file that has none."""
    if array is None:
        return None
    try:
        record = json.loads(str(array[()]) if array.ndim == 0 else "")
    except ValueError:
        raise WeightsError(f"{path}: its __config__ record is not valid JSON") from None
    if not isinstance(record, dict):
        raise WeightsError(f"{path}: its __config__ record is JSON but not an object of settings")
    fmt = record.get("format", 1)
    if fmt not in (1, 2, 3):
        raise WeightsError(f"{path} has format {fmt!r}; this minirec reads formats 1 to {FORMAT} "
                           "(a newer minirec wrote it?)")
    for field in ("class", "n_users", "n_movies"):
        if field not in record:
            raise WeightsError(f"{path}: its __config__ record has no {field!r}")
    if not isinstance(record["class"], str):
        raise WeightsError(f"{path}: its record's class is {record['class']!r}, not a class name")
    for field in ("n_users", "n_movies", "n_factors"):
        if field not in record and field == "n_factors":  # a model without factors (EASE)
            continue
        v = record[field]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise WeightsError(f"{path}: its record's {field} is {v!r}, not a whole number >= 1")
    check_fields(record.get("data"), {"name": str, "n_ratings": int, "ratings_sha256": str},
                 "data", path)
    check_fields(record.get("objective"), {"name": str}, "objective", path)
    if "objective" in record and record["objective"]["name"] not in OBJECTIVES:
        raise WeightsError(f"{path}: its objective {record['objective']['name']!r} is not one "
                           f"minirec knows ({', '.join(OBJECTIVES)})")
    check_fields(record.get("split"), {"seed": int, "train_fraction": (int, float)}, "split", path)
    if "split" in record and not 0 < record["split"]["train_fraction"] < 1:
        raise WeightsError(f"{path}: its split's train_fraction is "
                           f"{record['split']['train_fraction']!r}, not a number in (0, 1)")
    return record


def check_fields(value, fields, what, path):
    if value is None:
        return
    if not isinstance(value, dict):
        raise WeightsError(f"{path}: its {what} record is {value!r}, not an object")
    for field, kind in fields.items():
        if field not in value:
            raise WeightsError(f"{path}: its {what} record has no {field!r}")
        if isinstance(value[field], bool) or not isinstance(value[field], kind):
            raise WeightsError(f"{path}: its {what} record's {field} is {value[field]!r}")


def check_ids(a, field, path):
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise WeightsError(f"{path}: {field} must be a 1-D array of whole-number ids, got "
                           f"{a.dtype} of shape {a.shape}")
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:  # before any cast
        raise WeightsError(f"{path}: {field} holds the id {int(a.max())}, past the largest id "
                           f"minirec reads ({np.iinfo(np.int64).max})")
    if len(np.unique(a)) != len(a):
        raise WeightsError(f"{path}: {field} repeats ids, so two rows would claim one id")


# ----- writing and loading into a model ---------------------------------------------------------

def model_config(model):
    """The constructor arguments that rebuild ``model`` (its record in a weights file): each
    argument of its ``__init__`` but dtype, seed, backend and those in ``not_in_config``, read
    from the attribute of the same name (a model that keeps one under another name overrides
    ``config``)."""
    cls = type(model)
    record = {"class": cls.__name__}
    for arg in list(inspect.signature(cls.__init__).parameters)[1:]:
        if arg in ("dtype", "seed", "backend", "args", "kwargs", *model.not_in_config):
            continue
        if not hasattr(model, arg):
            raise AttributeError(f"{cls.__name__}.config() cannot find self.{arg}: keep each "
                                 "constructor argument as an attribute of the same name, or "
                                 "override config()")
        value = getattr(model, arg)
        record[arg] = list(value) if isinstance(value, tuple) else value
    return record


def save_weights(model, path, data=None, seed=None, train_fraction=0.8):
    """Write every weight and the model's record to ``path`` (``.npz``), atomically. With
    ``data`` (a ``MovieLens``), also what the rows index and, with ``seed``, which split
    (``data.split(train_fraction, seed)``) trained them."""
    arrays = {name: to_numpy(p) for name, p in model.params.items()}
    for ln, layer in model.layers.items():
        for bn, b in getattr(layer, "buffers", {}).items():
            arrays[f"{BUFFER}{ln}.{bn}"] = to_numpy(b)
    record = {"format": FORMAT, **model.config(), "dtype": str(model.dtype),
              "objective": model.objective.settings()}
    if data is not None:
        record["data"] = {"name": data.name, "n_ratings": len(data),
                          "ratings_sha256": data.fingerprint(),
                          "duplicates": getattr(data, "duplicates", "all")}
        arrays[IDS[0]] = np.asarray(data.user_ids, np.int64)
        arrays[IDS[1]] = np.asarray(data.movie_ids, np.int64)
    trained = getattr(model, "trained_rows", None)
    if trained is not None:
        arrays[TRAINED[0]], arrays[TRAINED[1]] = trained["user"], trained["movie"]
    if seed is not None:
        record["split"] = {"seed": int(seed), "train_fraction": float(train_fraction)}
    record["digest"] = digest(arrays, record)
    arrays["__config__"] = np.array(json.dumps(record))
    return atomic_write(path, lambda f: np.savez(f, **arrays))


# ----- loading into a model -------------------------------------------------------------------

SETTINGS_NOT_COMPARED = ("format", "data", "split", "dtype", "digest", "objective")


def load_weights(model, path, objective_from=None):
    """Copy a file's weights into ``model``, and the rows they trained (``model.trained_rows``,
    None for a file that does not say); names, shapes and settings are checked first, so a
    refused file leaves the model as it was. ``objective_from(settings)`` (``Model.load_weights``
    passes ``objectives.from_settings``) makes the objective the file records the model's: BPR
    weights stay a ranker, whose scores ``evaluate`` refuses to read as ratings."""
    arrays, buffers, record, _, trained = read_weights(path)
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
    model.trained_rows = trained
    if objective_from is not None:
        model.objective = objective_from((record or {}).get("objective"))
    return model


def normal(value):
    """A setting as JSON keeps it (tuples as lists), for comparing a record with a model."""
    return json.loads(json.dumps(value))
