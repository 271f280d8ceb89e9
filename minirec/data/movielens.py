"""MovieLens: parse a release, map ids to contiguous indices, and split.

    ds = minirec.load_movielens("ml-latest-small")      # or a path to a release's folder
    train, valid = ds.split(0.8, seed=42)
    model.fit(train.x, train.y, validation_data=(valid.x, valid.y))

Where the files come from, and how downloads and the cache are checked: ``download.py``.

Three file layouts are read: ``ratings.csv`` + ``movies.csv`` (ml-latest*, 20m, 25m, 32m),
``ratings.dat`` + ``movies.dat`` with ``::`` separators (1m, 10m) and ``u.data`` + the
Latin-1 ``u.item`` (100k). A malformed file is refused with its name and line number (blank
lines counted as the file has them); ids that cannot be held exactly are refused; duplicate
(user, movie) pairs are reported, and ``duplicates=`` says which copies to keep.
"""
import hashlib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .download import DataError, DataNotFound, locate  # noqa: F401  (re-exported)

RATING_RANGE = (0.5, 5.0)
FOLDS_100K = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
COLUMNS = ["userId", "movieId", "rating", "timestamp"]
DUPLICATES = ("all", "first", "last")
EXACT = 2 ** 53  # beyond this a float64 id no longer holds every integer
EXPECTED = {"rating": "a number",  # what each column holds, for the message that refuses it
            "timestamp": "a Unix time (whole seconds since 1970; a date is not read)"}


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
        self._fingerprint = None
        self.duplicates, self.files = "all", []  # how repeats were kept; the files it was read from

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

    def fingerprint(self):
        """sha256 of the ratings in file order (user id, movie id, rating): two data sets with the
        same fingerprint give the same indices and the same ``split``."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for a in (self.user_ids[self.user], self.movie_ids[self.movie]):
                h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
            h.update(np.ascontiguousarray(self.rating, dtype=np.float32).tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

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
            df = read_table(Path(self.folder) / f"{name}.{part}", "\t", header=False)
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


def load_movielens(name_or_path="ml-latest-small", data_home=None, download=True,
                   duplicates="all"):
    """Load a MovieLens release by name (downloading it once) or from a folder.

    ``duplicates``: what to do with ratings of a (user, movie) pair that appears more than once
    — keep them ``"all"`` (the default), or keep only the ``"first"`` or ``"last"`` in file
    order. Either way a warning says how many there were.
    """
    if duplicates not in DUPLICATES:
        raise ValueError(f"duplicates must be one of {', '.join(DUPLICATES)}, got {duplicates!r}")
    folder, checked = locate(name_or_path, data_home, download, tell=True)
    ds = read_release(folder, name=Path(name_or_path).name, duplicates=duplicates)
    ds.checked = checked  # how a cached release was checked, when it was not hashed now
    return ds


# ----- parsing --------------------------------------------------------------------------------

def read_release(folder, name=None, duplicates="all"):
    """Parse whichever of the three layouts ``folder`` holds."""
    folder = Path(folder)
    layouts = (("ratings.csv", ",", True, "movies.csv"), ("ratings.dat", "::", False, "movies.dat"),
               ("u.data", "\t", False, "u.item"))
    for ratings, sep, header, titles_file in layouts:
        if (folder / ratings).exists():
            break
    else:
        raise DataNotFound(f"{folder} holds no ratings.csv, ratings.dat or u.data")
    df = read_table(folder / ratings, sep, header)
    titles = (read_titles_csv(folder / titles_file) if sep == "," else
              read_titles_split(folder / titles_file, "::" if sep == "::" else "|"))
    df = drop_duplicates(df, duplicates, folder)
    ds = MovieLens(name or folder.name, df.userId.to_numpy(), df.movieId.to_numpy(),
                   df.rating.to_numpy(np.float32), titles, folder, df.timestamp.to_numpy())
    ds.duplicates = duplicates
    ds.files = [folder / f for f in (ratings, titles_file) if (folder / f).exists()]  # read
    return ds


def drop_duplicates(df, keep, folder):
    """Report repeated (user, movie) pairs, and keep all of them, or the first or last each."""
    repeated = df.duplicated(["userId", "movieId"], keep=False)
    if not repeated.any():
        return df
    n_pairs = int(df[repeated].drop_duplicates(["userId", "movieId"]).shape[0])
    extra = int(repeated.sum()) - n_pairs
    if keep != "all":
        df = df[~df.duplicated(["userId", "movieId"], keep=keep)]
    done = "all kept" if keep == "all" else f"kept the {keep} of each, dropped {extra:,}"
    warnings.warn(f"{folder}: {n_pairs:,} (user, movie) pairs are rated more than once ({extra:,} "
                  f"extra ratings; {done}). Choose with duplicates='first' or 'last' "
                  "(--duplicates on the command line).", stacklevel=3)
    return df


def line_of(path, row, header):
    """The file line number of data row ``row`` (0-based), counting blank lines, which the
    parser skips, as the file has them."""
    seen, target = -1, row + (1 if header else 0)
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                seen += 1
                if seen == target:
                    return number
    return "?"


def read_table(path, sep, header):
    """Read four rating columns; refuse anything malformed, naming the file and line."""
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    kw = dict(header=0 if header else None, index_col=False, encoding="utf-8")
    if sep == "::":  # '::' as ':' keeps pandas' fast C parser; every other field must be empty
        kw.update(sep=":", names=list(range(7)))
    else:
        kw.update(sep=sep, names=None if header else COLUMNS)
    try:
        with warnings.catch_warnings():  # a line with extra fields only warns: make it fail
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(path, **kw)
    except (pd.errors.ParserError, pd.errors.ParserWarning):
        line = first_line_with_extra_fields(path, sep, len(COLUMNS))
        raise DataError(f"{path}: line {line}: more than {len(COLUMNS)} fields") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: line {first_undecodable_line(path)}: not UTF-8 text ({e.reason})") from None
    if sep == "::":
        df = dat_columns(df, path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: line 1: missing column(s) {', '.join(missing)} "
                        f"(found {', '.join(map(str, df.columns))})")
    if len(df) == 0:
        raise DataError(f"{path}: the file holds no ratings")
    for col in COLUMNS:
        df[col] = check_column(df[col], col, path, header)
    r = df.rating.to_numpy()
    out = (r < RATING_RANGE[0]) | (r > RATING_RANGE[1])
    if out.any():
        row = int(np.argmax(out))
        raise DataError(f"{path}: line {line_of(path, row, header)}: rating {r[row]} is outside "
                        f"{RATING_RANGE[0]}..{RATING_RANGE[1]}")
    return df


def dat_columns(df, path):
    """``a::b::c::d`` read with ':' gives a, '', b, '', c, '', d: check the gaps are empty."""
    gaps = df[[1, 3, 5]].notna().any(axis=1).to_numpy()
    if gaps.any():
        row = int(np.argmax(gaps))
        raise DataError(f"{path}: line {line_of(path, row, False)}: fields must be separated "
                        "by '::'")
    df = df[[0, 2, 4, 6]]
    df.columns = COLUMNS
    return df


def check_column(column, col, path, header):
    """A column as numbers: ids whole and exactly representable, ratings numbers."""
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna().to_numpy()
    if col != "rating" and not bad.any():
        v = values.to_numpy()
        if v.dtype == np.uint64 or (v.dtype.kind == "f" and np.abs(v).max() >= EXACT):
            row = int(np.argmax(np.abs(v.astype(np.float64)) >= min(EXACT, 2.0 ** 63)))
            raise DataError(f"{path}: line {line_of(path, row, header)}: {col} {column.iloc[row]} "
                            "is too large to be held exactly")
        bad = v != np.floor(v)
    if bad.any():
        row = int(np.argmax(bad))
        value = column.iloc[row]
        value = repr(value) if isinstance(value, str) else value
        raise DataError(f"{path}: line {line_of(path, row, header)}: {col} is {value}, "
                        f"not {EXPECTED.get(col, 'an integer id')}"
                        + (" (truncated line?)" if pd.isna(column.iloc[row]) else ""))
    return values


def first_line_with_extra_fields(path, sep, n_fields):
    """The number of the first line with more than ``n_fields`` fields (the slow path)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if len(line.rstrip("\r\n").split(sep)) > n_fields:
                return number
    return "?"


def first_undecodable_line(path, encoding="utf-8"):
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError:
                return number
    return "?"


def read_titles_csv(path):
    """movies.csv (``movieId,title,genres``, quoted titles) -> {movie id: title}."""
    if not path.exists():
        return {}
    try:
        movies = pd.read_csv(path, usecols=["movieId", "title"], encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: line {first_undecodable_line(path)}: not UTF-8 text ({e.reason})") from None
    except ValueError as e:  # a missing column, or a malformed line
        line = first_line_with_extra_fields(path, ",", 3) if "Expected" in str(e) else 1
        raise DataError(f"{path}: line {line}: {str(e).splitlines()[0]}") from None
    ids = check_column(movies.movieId, "movieId", path, True)
    return dict(zip(ids.astype(np.int64), movies.title.astype(str)))


def read_titles_split(path, sep):
    """movies.dat (``id::title::genres``) or u.item (``id|title|...``, Latin-1)."""
    if not path.exists():
        return {}
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # u.item is Latin-1; every byte decodes
    titles = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(sep)
        if len(fields) < 2 or not fields[0].strip().isdigit():
            raise DataError(f"{path}: line {number}: expected movie id{sep}title{sep}..., got "
                            f"{line[:60]!r}")
        titles[int(fields[0])] = fields[1]
    return titles
