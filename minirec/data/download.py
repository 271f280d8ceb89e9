"""Where MovieLens releases come from: the data home, GroupLens downloads, and their checks.

``locate(name_or_path)`` gives the folder that holds a release (first match wins):

1. ``name_or_path`` is an existing folder: it is read in place, as it is;
2. ``<data_home>/<name>/`` exists (``data_home``: ``$MINIREC_DATA``, else ``~/.cache/minirec``);
   a known release found there is checked against its sha256 first;
3. ``download=True`` and ``name`` is a known release: fetch GroupLens's zip and unpack it there.

What is checked, and when: a download's size against Content-Length; that the answer is a
zip, that it would not unpack past the free disk or far past its own size, and every member's
CRC, before anything is unpacked; the ratings file's sha256 against the one minirec records for
the release (``RELEASES``: this project's own record of GroupLens's files, not a checksum
GroupLens publishes; for releases without one, against the hash taken at download). A cached
release is hashed once (``checksums.py``: a ledger keyed by the file's path, size and
modification time; ``minirec download NAME --verify`` hashes it anew).

Downloads are atomic and safe to run twice at once: each unpacks into a private temporary
folder (named with its process id, so that a later run can clear what a killed one left),
under a lock file, and the finished folder is renamed into place whole.
"""
import errno
import fcntl
import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ..backend import cache_home
from .checksums import DataError, _record_download, ratings_file, sha256, verify
from ..io.files import process_alive

GROUPLENS = "https://files.grouplens.org/datasets/movielens/"  # or $MINIREC_MIRROR

# name -> (zip file, folder inside the zip, sha256 of the ratings file where it is known).
# Checksums: ml-latest-small (2018 release) and ml-100k, hashed by this project from copies of
# GroupLens's files (its data manifest); they are minirec's record, not published by GroupLens.
RELEASES = {
    "ml-latest-small": ("ml-latest-small.zip", "ml-latest-small",
                        "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646"),
    "ml-100k": ("ml-100k.zip", "ml-100k",
                "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
    "ml-1m": ("ml-1m.zip", "ml-1m", None),
    "ml-10m": ("ml-10m.zip", "ml-10M100K", None),
    "ml-20m": ("ml-20m.zip", "ml-20m", None),
    "ml-25m": ("ml-25m.zip", "ml-25m", None),
    "ml-32m": ("ml-32m.zip", "ml-32m", None),
    "ml-latest": ("ml-latest.zip", "ml-latest", None),
}


class DataNotFound(FileNotFoundError):
    """No local copy and no download: the message says what was tried and what to do."""


def default_data_home():
    """``$MINIREC_DATA`` (which may be read-only; it must exist: a mistyped path is not quietly
    created), else minirec's cache folder."""
    home = os.environ.get("MINIREC_DATA")
    if home:
        if not Path(home).is_dir():
            raise DataNotFound(f"MINIREC_DATA is set to {home}, which is not a folder. Fix the "
                               "path, or unset MINIREC_DATA to use ~/.cache/minirec.")
        return Path(home)
    return cache_home()


def locate(name_or_path, data_home=None, download=True, force=False, verify_again=False,
           tell=False):
    """The folder that holds ``name_or_path``'s files, downloading the release if needed;
    ``force=True`` downloads a known release again, replacing the cached copy;
    ``verify_again=True`` hashes a cached release's ratings file even if the ledger has it.
    ``tell=True`` returns (folder, note): the note says how a cached copy was trusted without
    being hashed now (by its recorded size and time), or is None."""
    path = Path(name_or_path).expanduser()
    folder, note = path, None
    name = str(name_or_path)
    if not (path.is_dir() and not force):
        home = Path(data_home) if data_home is not None else default_data_home()
        folder = home / name
        if name not in RELEASES:
            if not folder.is_dir():  # not a folder of the data home either
                raise DataNotFound(f"{name!r} is neither a folder, nor a folder in {home}, nor a "
                                   f"known release ({', '.join(RELEASES)})")
        elif folder.is_dir() and not force:
            note = verify(folder, name, RELEASES[name][2], again=verify_again)
        elif not download:
            raise DataNotFound(f"{name} is not in {home} and download=False. " + how_to_point(name))
        else:
            folder = fetch(name, home, force=force)
    return (folder, note) if tell else folder


def how_to_point(name):
    return (f"Point minirec at a local copy: set MINIREC_DATA to a folder that holds {name}/, "
            f"pass data_home=..., or give the path of the release's folder.")


# ----- fetching a release -------------------------------------------------------------------------

def fetch(name, home, url=None, force=False):
    """Download ``name``'s zip into ``home/name/``, checked, atomically, under a lock."""
    zip_name, inner, sha = RELEASES[name]
    url = url or mirror().rstrip("/") + "/" + zip_name
    home = Path(home)
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataNotFound(f"cannot write the download to {home} ({e.strerror}). "
                           + how_to_point(name)) from e
    with lock_file(home / name) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds the folder
        clear_leftovers(home, name)
        if (home / name).is_dir() and not force:
            verify(home / name, name, sha)
            return home / name
        try:
            work = Path(tempfile.mkdtemp(prefix=f".{name}-{os.getpid()}-", dir=home))
        except OSError as e:  # a read-only data home, say: name it, not a hidden temporary
            raise DataNotFound(f"cannot write the download of {name} into {home} "
                               f"({e.strerror or e}). " + how_to_point(name)) from None
        try:
            archive = work / zip_name
            download(url, archive)
            unpacked = unpack(archive, work / "unpacked", url) / inner
            ratings = ratings_file(unpacked)
            if ratings is None:
                raise DataError(f"{url} holds no {inner}/ratings file")
            got = sha256(ratings)
            if sha is not None and got != sha:
                raise DataError(f"{ratings.name} from {url} has sha256 {got}, expected {sha}: the "
                                f"release changed or the download is damaged")
            install(unpacked, home / name, work)
            _record_download(home / name / ratings.name, got)
            return home / name
        finally:
            shutil.rmtree(work, ignore_errors=True)


def mirror():
    """Where releases come from: ``$MINIREC_MIRROR`` (a URL, or a local folder holding the zip
    files) or GroupLens."""
    where = os.environ.get("MINIREC_MIRROR") or GROUPLENS
    if "://" not in where:
        if not Path(where).expanduser().is_dir():
            raise DataNotFound(f"MINIREC_MIRROR is {where}, which is neither a URL nor a folder")
        where = Path(where).expanduser().resolve().as_uri()
    return where


def lock_file(target):
    """An open lock file for downloads of ``target`` (in minirec's cache folder, so that the data
    home holds nothing but releases; beside the target if the cache cannot be written)."""
    key = hashlib.sha1(str(Path(target).resolve()).encode()).hexdigest()[:16]
    for folder in (cache_home() / "locks", Path(target).parent):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return open(folder / f"{Path(target).name}-{key}.lock", "w")
        except OSError:
            continue
    raise DataNotFound(f"cannot write a lock file for {target}. " + how_to_point(Path(target).name))


def install(unpacked, target, work):
    """Rename the checked folder into place; an old copy (``force``) is moved aside first."""
    if target.exists():
        os.replace(target, work / "old")
    os.replace(unpacked, target)


def clear_leftovers(home, name):
    """Remove the temporary folders of downloads whose process is gone (killed mid-way)."""
    for leftover in home.glob(f".{name}-*-*"):
        try:
            pid = int(leftover.name[len(name) + 2:].split("-")[0])
        except ValueError:
            continue
        if leftover.is_dir() and not process_alive(pid):
            shutil.rmtree(leftover, ignore_errors=True)


def download(url, target):
    """Fetch ``url`` into ``target`` with a progress bar; refuse a short read."""
    from tqdm.auto import tqdm
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            got = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=None) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
    except http.client.IncompleteRead as e:
        raise DataError(f"the download of {url} was cut short: {got + len(e.partial):,} of "
                        f"{total or 0:,} bytes") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise DataNotFound(f"could not download {url} ({getattr(e, 'reason', e)}). "
                           + how_to_point(target.stem)) from e
    if total is not None and got != total:
        raise DataError(f"the download of {url} was cut short: {got:,} of {total:,} bytes")


def unpack(archive, folder, url):
    """Check that ``archive`` is a zip and every member's CRC, then unpack it into ``folder``."""
    if not zipfile.is_zipfile(archive):
        head = archive.read_bytes()[:200].lstrip().lower()
        what = "an HTML page" if head.startswith((b"<!doctype", b"<html", b"<")) else "not a zip file"
        raise DataError(f"{url} answered with {what} (a proxy, captive portal or error page?)")
    try:
        with zipfile.ZipFile(archive) as z:
            check_unpacked_size(z, archive, url)
            bad = z.testzip()
            if bad is not None:
                raise DataError(f"{url}: the zip is corrupt (member {bad} fails its CRC check)")
            z.extractall(folder)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DataError(f"disk full while unpacking {url} into {folder.parent}") from None
        raise DataError(f"{url}: the zip is corrupt ({e})") from e
    except (zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{url}: the zip is corrupt ({e})") from e
    return folder


MAX_RATIO = 50  # MovieLens zips unpack to 3-8 times their size; far more is not a release


def check_unpacked_size(z, archive, url):
    """Refuse, before unpacking, a zip whose members would fill the disk or are far larger than
    any release (a zip bomb, or a damaged directory)."""
    need = sum(info.file_size for info in z.infolist())
    size = archive.stat().st_size
    if need > MAX_RATIO * max(size, 1 << 20):
        raise DataError(f"{url}: the zip says it unpacks to {need:,} bytes, {need / size:.0f} times "
                        "its own size; no MovieLens release does: refusing it")
    free = shutil.disk_usage(archive.parent).free
    if need > free:
        raise DataError(f"disk full: unpacking {url} needs {need / 1e6:,.0f} MB and "
                        f"{archive.parent} has {free / 1e6:,.0f} MB free")
