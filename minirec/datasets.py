"""MovieLens: download (checksum, cache, atomic writes), parse, id mapping and splits.

    ds = minirec.load_movielens("ml-latest-small")      # or a path to a release's folder
    train, valid = ds.split(0.8, seed=42)
    model.fit(train.x, train.y, validation_data=(valid.x, valid.y))

Where the files come from (first match wins):

1. ``name_or_path`` is an existing folder holding a release: read it in place;
2. ``<data_home>/<name>/`` already holds the release (``data_home`` defaults to
   ``$MINIREC_DATA``, else the user cache folder ``~/.cache/minirec``);
3. ``download=True``: fetch GroupLens's zip, check it, and unpack it there.

Three file layouts are read: ``ratings.csv`` + ``movies.csv`` (ml-latest*, 20m, 25m, 32m),
``ratings.dat`` + ``movies.dat`` with ``::`` separators (1m, 10m) and ``u.data`` + the
Latin-1 ``u.item`` (100k). A malformed file is refused with its name and line number.
"""
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

GROUPLENS = "https://files.grouplens.org/datasets/movielens/"

# name -> (zip file, folder inside the zip, sha256 of the ratings file where it is known).
# Checksums: ml-latest-small (2018 release) and ml-100k from ../shared/data/MANIFEST.md.
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
RATING_RANGE = (0.5, 5.0)
FOLDS_100K = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")


class DataError(ValueError):
    """A MovieLens file is malformed; the message names the file and line."""


class DataNotFound(FileNotFoundError):
    """No local copy and no download: the message says what was tried and what to do."""


def default_cache_home():
    """minirec's own writable folder: ``$XDG_CACHE_HOME/minirec`` or ``~/.cache/minirec``."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "minirec"


def default_data_home():
    """``$MINIREC_DATA`` (which may be read-only), else ``default_cache_home()``."""
    if os.environ.get("MINIREC_DATA"):
        return Path(os.environ["MINIREC_DATA"])
    return default_cache_home()


class Ratings:
    """A set of ratings as model inputs: ``x = [user, movie]`` (indices) and ``y`` (ratings)."""

    def __init__(self, user, movie, rating):
        self.user, self.movie, self.rating = user, movie, rating

    @property
    def x(self):
        return [self.user, self.movie]

    @property
    def y(self):
        return self.rating

    def __len__(self):
        return len(self.rating)


class MovieLens(Ratings):
    """Ratings with contiguous indices, the id maps both ways, and titles.

    ``user`` / ``movie`` (N,) are indices 0..U-1 / 0..M-1 in order of first appearance in the
    ratings file (the notebook's ``userid2idx``); ``user_ids[i]`` / ``movie_ids[j]`` map back
    to MovieLens ids; ``userid2idx`` / ``movieid2idx`` map forward. ``rating`` is float32.
    """

    def __init__(self, name, user_ids, movie_ids, rating, titles=None, folder=None, timestamp=None):
        user, self.user_ids = pd.factorize(np.asarray(user_ids), sort=False)
        movie, self.movie_ids = pd.factorize(np.asarray(movie_ids), sort=False)
        super().__init__(user.astype(np.int32), movie.astype(np.int32),
                         np.asarray(rating, dtype=np.float32))
        self.name, self.folder, self.timestamp = name, folder, timestamp
        self.titles = titles or {}
        self.userid2idx = {int(o): i for i, o in enumerate(self.user_ids)}
        self.movieid2idx = {int(o): i for i, o in enumerate(self.movie_ids)}

    @property
    def n_users(self):
        return len(self.user_ids)

    @property
    def n_movies(self):
        return len(self.movie_ids)

    def title(self, movie_index):
        """The title of the movie at ``movie_index`` (its MovieLens id if it has none)."""
        movie_id = int(self.movie_ids[movie_index])
        return self.titles.get(movie_id, f"movie {movie_id}")

    def split(self, train_frac=0.8, seed=42):
        """(train, valid): row k is for training when ``default_rng(seed).random(n)[k] < train_frac``."""
        mask = np.random.default_rng(seed).random(len(self)) < train_frac
        return self.subset(mask), self.subset(~mask)

    def subset(self, rows):
        return Ratings(self.user[rows], self.movie[rows], self.rating[rows])

    def fold(self, name):
        """ml-100k's shipped folds (u1..u5, ua, ub): (train, test) from ``<name>.base/.test``."""
        if name not in FOLDS_100K or self.folder is None or not (Path(self.folder) / "u.data").exists():
            raise ValueError(f"folds {', '.join(FOLDS_100K)} exist only for ml-100k")
        parts = []
        for part in ("base", "test"):
            df = _read_table(Path(self.folder) / f"{name}.{part}", "\t", header=False)
            parts.append(Ratings(self._indices(df.userId, self.userid2idx, "user"),
                                 self._indices(df.movieId, self.movieid2idx, "movie"),
                                 df.rating.to_numpy(np.float32)))
        return tuple(parts)

    @staticmethod
    def _indices(ids, mapping, what):
        try:
            return np.array([mapping[int(i)] for i in ids], dtype=np.int32)
        except KeyError as e:
            raise KeyError(f"unknown {what} id {e.args[0]}") from None

    def __repr__(self):
        return (f"MovieLens({self.name!r}: {len(self):,} ratings, {self.n_users:,} users, "
                f"{self.n_movies:,} movies)")


# ----- finding or fetching a release ------------------------------------------------------------

def load_movielens(name_or_path="ml-latest-small", data_home=None, download=True):
    """Load a MovieLens release by name (downloading it once) or from a folder."""
    folder = locate(name_or_path, data_home, download)
    return read_release(folder, name=Path(name_or_path).name)


def locate(name_or_path, data_home=None, download=True):
    """The folder that holds ``name_or_path``'s files, downloading the release if needed."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if name not in RELEASES:
        raise DataNotFound(f"{name!r} is neither a folder nor a known release "
                           f"({', '.join(RELEASES)})")
    home = Path(data_home) if data_home is not None else default_data_home()
    folder = home / name
    if folder.is_dir():
        return folder
    if not download:
        raise DataNotFound(f"{name} is not in {home} and download=False. "
                           + _how_to_point(name))
    return fetch(name, home)


def _how_to_point(name):
    return (f"Point minirec at a local copy: set MINIREC_DATA to a folder that holds {name}/, "
            f"pass data_home=..., or give the path of the release's folder.")


def fetch(name, home, url=None):
    """Download ``name``'s zip into ``home/name/``: progress bar, zip check, sha256, atomic."""
    zip_name, inner, sha = RELEASES[name]
    url = url or GROUPLENS + zip_name
    home = Path(home)
    try:
        home.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=home))
    except OSError as e:
        raise DataNotFound(f"cannot write the download to {home} ({e}). " + _how_to_point(name)) from e
    try:
        archive = work / zip_name
        _download(url, archive)
        with zipfile.ZipFile(archive) as z:
            bad = z.testzip()
            if bad is not None:
                raise DataError(f"{url}: the zip is corrupt (first bad member: {bad})")
            z.extractall(work / "unpacked")
        unpacked = work / "unpacked" / inner
        if sha is not None:
            ratings = unpacked / ("u.data" if name == "ml-100k" else "ratings.csv")
            got = sha256(ratings)
            if got != sha:
                raise DataError(f"{ratings.name} from {url} has sha256 {got}, expected {sha}: the "
                                f"release changed or the download is damaged")
        os.replace(unpacked, home / name)  # atomic: the folder appears whole or not at all
        return home / name
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _download(url, target):
    from tqdm.auto import tqdm
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as e:
        raise DataNotFound(f"could not download {url} ({getattr(e, 'reason', e)}). "
                           + _how_to_point(target.stem)) from e


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# ----- parsing --------------------------------------------------------------------------------

def read_release(folder, name=None):
    """Parse whichever of the three layouts ``folder`` holds."""
    folder = Path(folder)
    if (folder / "ratings.csv").exists():
        df = _read_table(folder / "ratings.csv", ",", header=True)
        titles = _read_titles_csv(folder / "movies.csv")
    elif (folder / "ratings.dat").exists():
        df = _read_table(folder / "ratings.dat", "::", header=False)
        titles = _read_titles_split(folder / "movies.dat", "::")
    elif (folder / "u.data").exists():
        df = _read_table(folder / "u.data", "\t", header=False)
        titles = _read_titles_split(folder / "u.item", "|")
    else:
        raise DataNotFound(f"{folder} holds no ratings.csv, ratings.dat or u.data")
    return MovieLens(name or folder.name, df.userId.to_numpy(), df.movieId.to_numpy(),
                     df.rating.to_numpy(np.float32), titles, folder, df.timestamp.to_numpy())


COLUMNS = ["userId", "movieId", "rating", "timestamp"]


def _read_table(path, sep, header):
    """Read four rating columns; refuse anything malformed, naming the file and line."""
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    first = 2 if header else 1  # the file line number of data row 0
    kw = dict(header=0 if header else None)
    if sep == "::":  # '::' as ':' keeps pandas' fast C parser: the empty fields are dropped
        kw.update(sep=":", usecols=[0, 2, 4, 6], names=COLUMNS if not header else None)
    else:
        kw.update(sep=sep, names=None if header else COLUMNS)
    try:
        with warnings.catch_warnings():  # a line with extra fields only warns: make it fail
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(path, index_col=False, **kw)
    except (pd.errors.ParserError, pd.errors.ParserWarning):
        line = _first_line_with_extra_fields(path, sep, len(COLUMNS))
        raise DataError(f"{path}: line {line}: more than {len(COLUMNS)} fields") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    if sep == "::":
        df.columns = COLUMNS
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: line 1: missing column(s) {', '.join(missing)} "
                        f"(found {', '.join(map(str, df.columns))})")
    if len(df) == 0:
        raise DataError(f"{path}: the file holds no ratings")
    for col in COLUMNS:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna().to_numpy()
        if col != "rating" and not bad.any():
            bad = (values.to_numpy() != np.floor(values.to_numpy()))
        if bad.any():
            row = int(np.argmax(bad))
            value = df[col].iloc[row]
            value = repr(value) if isinstance(value, str) else value
            raise DataError(f"{path}: line {row + first}: {col} is {value}, "
                            f"not {'a number' if col == 'rating' else 'an integer id'}"
                            + (" (truncated line?)" if pd.isna(df[col].iloc[row]) else ""))
        df[col] = values
    r = df.rating.to_numpy()
    out = (r < RATING_RANGE[0]) | (r > RATING_RANGE[1])
    if out.any():
        row = int(np.argmax(out))
        raise DataError(f"{path}: line {row + first}: rating {r[row]} is outside "
                        f"{RATING_RANGE[0]}..{RATING_RANGE[1]}")
    return df


def _first_line_with_extra_fields(path, sep, n_fields):
    """The number of the first line with more than ``n_fields`` fields (the slow path)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if len(line.rstrip("\r\n").split(sep)) > n_fields:
                return number
    return "?"


def _read_titles_csv(path):
    if not path.exists():
        return {}
    movies = pd.read_csv(path, usecols=["movieId", "title"])
    return dict(zip(movies.movieId.astype(int), movies.title))


def _read_titles_split(path, sep):
    """movies.dat (``id::title::genres``) or u.item (``id|title|...``, Latin-1)."""
    if not path.exists():
        return {}
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    titles = {}
    for line in text.splitlines():
        if line.strip():
            movie_id, title = line.split(sep)[:2]
            titles[int(movie_id)] = title
    return titles
