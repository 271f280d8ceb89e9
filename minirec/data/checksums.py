"""Checking a MovieLens release against its sha256, with a ledger so that a file is hashed once.

A cached release is hashed once and the result kept in ``verified.json`` in minirec's cache
folder, keyed by the file's path, size and modification time: on later loads a file whose size
and time are unchanged is not hashed again (an edit that keeps both goes unseen until
``minirec download NAME --verify`` hashes it anew). A release minirec downloaded without a
known checksum is held to the hash it had when it arrived.
"""
import hashlib
import json
from pathlib import Path

from ..backend import cache_home
from ..io.files import atomic_write

RATINGS_FILES = ("ratings.csv", "ratings.dat", "u.data")


class DataError(ValueError):
    """A MovieLens file is malformed or not what it claims; the message names the file."""


def refetch_hint(name):
    return f"Fetch it again with `minirec download {name} --force`."


def ratings_file(folder):
    for file in RATINGS_FILES:
        if (Path(folder) / file).is_file():
            return Path(folder) / file
    return None


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _ledger():
    return cache_home() / "verified.json"


def _read_ledger():
    try:
        return json.loads(_ledger().read_text())
    except (OSError, ValueError):
        return {}


def _write_ledger(**entries):
    """Add entries to the ledger; a cache folder that cannot be written only means hashing
    again next time."""
    ledger = {**_read_ledger(), **entries}
    try:
        _ledger().parent.mkdir(parents=True, exist_ok=True)
        atomic_write(_ledger(), lambda f: f.write(json.dumps(ledger, indent=1).encode()))
    except OSError:
        pass


def _record(path, digest):
    """Remember a file's hash, by path, size and modification time, so that it is hashed once."""
    st = path.stat()
    _write_ledger(**{str(path.resolve()): {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                           "sha256": digest}})


def is_unchanged(path):
    """True when the ledger holds ``path``'s hash at its present size and modification time."""
    entry, st = _read_ledger().get(str(path.resolve())), path.stat()
    return bool(entry) and entry["size"] == st.st_size and entry["mtime_ns"] == st.st_mtime_ns


def file_hash(path):
    """sha256 of ``path``, from the ledger when the file has not changed since it was hashed."""
    if is_unchanged(path):
        return _read_ledger()[str(path.resolve())]["sha256"]
    digest = sha256(path)
    _record(path, digest)
    return digest


def verify(folder, name, expected, again=False):
    """Refuse a cached release whose ratings file is missing, or is not the release's bytes.
    The hash comes from the ledger while the file's size and modification time are unchanged;
    ``again=True`` hashes the file itself (``minirec download NAME --verify``). Returns a note
    saying so when the ledger's hash was trusted (an edit that kept both would go unseen), else
    None."""
    ratings = ratings_file(folder)
    if ratings is None or ratings.stat().st_size == 0:
        raise DataError(f"the cached {name} in {folder} holds no ratings file (an interrupted "
                        f"copy?). {refetch_hint(name)}")
    expected = expected or _read_ledger().get(f"download:{ratings.resolve()}")
    if expected is None:
        if again:
            raise DataError(f"{ratings} has no checksum to verify against: minirec has none "
                            f"recorded for {name} and did not download this copy")
        return  # nothing recorded to check against, and not downloaded by minirec
    trusted = not again and is_unchanged(ratings)
    got = sha256(ratings) if again else file_hash(ratings)
    if again:
        _record(ratings, got)
    if got != expected:
        raise DataError(f"{ratings} is not the {name} release: its sha256 is {got}, expected "
                        f"{expected} (truncated, edited, or another release under this name?). "
                        f"{refetch_hint(name)}")
    if trusted:
        return (f"{ratings} has the size and modification time it had when it was hashed, so "
                f"it was not hashed again; `minirec download {name} --verify` hashes it anew")
    return None


def _record_download(ratings, digest):
    """Keep the hash a release without a published checksum had when it was downloaded."""
    _write_ledger(**{f"download:{ratings.resolve()}": digest})
    _record(ratings, digest)
