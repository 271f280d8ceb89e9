"""What a movie is and who a user is: the side information a MovieLens release ships, read into
bags a model can look up (``nn/layers.py``'s ``EmbeddingBag``).

    ds = minirec.load_movielens("ml-100k")
    genres = movie_genres(ds)          # Features: names (the vocabulary) and CSR bags
    genres.bags                        # (offsets, ids): bag j holds ids[offsets[j]:offsets[j+1]]
    genres.of(ds.movieid2idx[1])       # ['genre:Animation', "genre:Children's", 'genre:Comedy']

Every ``Features`` is aligned with the data set's rows: bag j belongs to the movie at index j
(``ds.movie_ids[j]``), bag i to the user at index i (``ds.user_ids[i]``). A movie or user with
none of a feature has an empty bag, never an error. ``combine`` joins several features into
one bag per row (one vocabulary, each name prefixed by its kind).

=====================  =======================================================================
movie_genres(ds)       ml-latest-small ``movies.csv`` genres ``A|B|C``; ml-1m ``movies.dat``;
                       ml-100k ``u.item``'s 19 genre flags
movie_years(ds, 5)     the release year in the title, "Heat (1995)", in bins of 5 years
movie_tags(ds, 5)      ``tags.csv``: each movie's bag of the tags people applied to it, keeping
                       the tags applied to at least ``min_movies`` distinct movies (lower case)
user_demographics(ds)  ml-100k ``u.user``: age band, gender, occupation, zip-code region (the
                       first digit of a US zip code; "other" for the rest)
=====================  =======================================================================

A malformed side file is refused like a ratings file: a ``DataError`` naming the file and line.
"""
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .download import DataError

AGE_BANDS = (18, 25, 35, 45, 50, 56)  # MovieLens 1M's bands: under 18, 18-24, ..., 56+
YEAR = re.compile(r"\((\d{4})\)\s*$")


class Features(NamedTuple):
    """``names[k]`` is what id k stands for; ``bags = (offsets, ids)`` holds one bag per row."""
    names: list
    bags: tuple

    def of(self, row):
        """The names in the bag of ``row``."""
        offsets, ids = self.bags
        return [self.names[k] for k in ids[offsets[row]:offsets[row + 1]]]

    def sizes(self):
        """How many ids each row's bag holds, (rows,)."""
        return np.diff(self.bags[0])


def bags_from(rows, n_rows, kind):
    """A ``Features`` from ``rows[r]`` = the list of names of row r (r < ``n_rows``; rows not
    in the dict get an empty bag). Names are numbered in sorted order, each once per bag."""
    vocab = sorted({name for names in rows.values() for name in names})
    index = {name: k for k, name in enumerate(vocab)}
    offsets, ids = np.zeros(n_rows + 1, np.int64), []
    for r in range(n_rows):
        mine = sorted({index[name] for name in rows.get(r, ())})
        ids += mine
        offsets[r + 1] = offsets[r] + len(mine)
    names = [f"{kind}:{name}" if kind else name for name in vocab]
    return Features(names, (offsets, np.asarray(ids, np.int64)))


def combine(*features):
    """One bag per row holding every feature's ids, the vocabularies laid end to end."""
    if not features:
        raise ValueError("combine needs at least one Features")
    n_rows = len(features[0].bags[0]) - 1
    if any(len(f.bags[0]) - 1 != n_rows for f in features):
        raise ValueError("combine: the features have different numbers of rows: "
                         f"{[len(f.bags[0]) - 1 for f in features]}")
    names, start, per_row = [], 0, [[] for _ in range(n_rows)]
    for f in features:
        offsets, ids = f.bags
        for r in range(n_rows):
            per_row[r].extend((ids[offsets[r]:offsets[r + 1]] + start).tolist())
        names += f.names
        start += len(f.names)
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in per_row])]).astype(np.int64)
    ids = np.asarray([k for b in per_row for k in b], np.int64)
    return Features(names, (offsets, ids))


# ----- reading the files ----------------------------------------------------------------------

def text_lines(path):
    """(line number, line) of a text file, UTF-8 or else Latin-1 (ml-100k's files), blank lines
    skipped but counted."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # every byte decodes
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def csv_rows(path, columns):
    """The rows of a MovieLens CSV with a header naming ``columns`` (quoted fields allowed), as
    (line number, {column: text})."""
    import csv
    lines = text_lines(path)
    if not lines:
        raise DataError(f"{path}: the file is empty")
    number, first = lines[0]
    header = next(csv.reader([first]))
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"{path}: line {number}: missing column(s) {', '.join(missing)} "
                        f"(found {', '.join(header)})")
    out = []
    for number, line in lines[1:]:
        fields = next(csv.reader([line]))
        if len(fields) != len(header):
            raise DataError(f"{path}: line {number}: {len(fields)} fields, expected "
                            f"{len(header)} ({', '.join(header)})")
        out.append((number, dict(zip(header, fields))))
    return out


def whole(text, what, path, number):
    if not text.strip().isdigit():
        raise DataError(f"{path}: line {number}: {what} is {text!r}, not an integer id")
    return int(text)


def side_file(ds, *names):
    """The first of ``names`` that the data set's folder holds, or None."""
    folder = getattr(ds, "folder", None)
    if folder is None:
        return None
    return next((Path(folder) / n for n in names if (Path(folder) / n).exists()), None)


def movie_table(ds):
    """{movie id: (line number, [title, genres...])} from movies.csv, movies.dat or u.item."""
    path = side_file(ds, "movies.csv", "movies.dat", "u.item")
    if path is None:
        return None, {}
    table = {}
    if path.suffix == ".csv":
        for number, row in csv_rows(path, ["movieId", "title", "genres"]):
            movie = whole(row["movieId"], "movieId", path, number)
            genres = [] if row["genres"] == "(no genres listed)" else row["genres"].split("|")
            table[movie] = (number, row["title"], [g for g in genres if g])
        return path, table
    sep = "::" if path.suffix == ".dat" else "|"
    flags = genre_names_100k(path.parent) if sep == "|" else None
    for number, line in text_lines(path):
        fields = line.split(sep)
        if sep == "::":
            if len(fields) != 3:
                raise DataError(f"{path}: line {number}: expected movieId::title::genres")
            genres = [g for g in fields[2].split("|") if g]
        else:
            if len(fields) != 5 + len(flags):
                raise DataError(f"{path}: line {number}: {len(fields)} fields, expected "
                                f"{5 + len(flags)} (id|title|date|video date|url|{len(flags)} "
                                "genre flags)")
            bits = fields[5:]
            if any(b not in ("0", "1") for b in bits):
                raise DataError(f"{path}: line {number}: the genre flags must be 0 or 1, got "
                                f"{'|'.join(bits)}")
            genres = [g for g, b in zip(flags, bits) if b == "1" and g != "unknown"]
        table[whole(fields[0], "movie id", path, number)] = (number, fields[1], genres)
    return path, table


def genre_names_100k(folder):
    """ml-100k's ``u.genre`` (``name|index``), in index order; the 19 documented names if the
    file is absent."""
    path = Path(folder) / "u.genre"
    if not path.exists():
        return ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                "Romance", "Sci-Fi", "Thriller", "War", "Western"]
    names = {}
    for number, line in text_lines(path):
        name, _, index = line.rpartition("|")
        names[whole(index, "genre index", path, number)] = name
    if sorted(names) != list(range(len(names))):
        raise DataError(f"{path}: the genre indices must be 0..{len(names) - 1}, got {sorted(names)}")
    return [names[k] for k in range(len(names))]


# ----- the features ---------------------------------------------------------------------------

def movie_rows(ds, pick):
    """{movie index: names} for every movie of ``ds`` its movie file describes."""
    _, table = movie_table(ds)
    if not table:  # no movie file (or no data set files at all): every bag empty
        return {}
    out = {}
    for j, movie_id in enumerate(ds.movie_ids):
        entry = table.get(int(movie_id))
        if entry is not None:
            out[j] = pick(*entry[1:])
    return out


def movie_genres(ds):
    """Each movie's genres (none for a movie the file does not list, or lists with none)."""
    return bags_from(movie_rows(ds, lambda title, genres: genres), ds.n_movies, "genre")


def movie_years(ds, width=5):
    """The release year from the title, in bins of ``width`` years ("year:1990-1994")."""
    def year_bin(title, genres):
        found = YEAR.search(title.strip())
        if not found:
            return []
        start = int(found.group(1)) // width * width
        return [f"{start}" if width == 1 else f"{start}-{start + width - 1}"]
    return bags_from(movie_rows(ds, year_bin), ds.n_movies, "year")


def movie_tags(ds, min_movies=5):
    """Each movie's bag of tags from ``tags.csv`` (lower case, spaces trimmed), keeping the tags
    applied to at least ``min_movies`` distinct movies of the file (rarer tags describe one film
    and cannot carry over to another). Empty bags where the release has no tags file."""
    path = side_file(ds, "tags.csv")
    if path is None:
        return bags_from({}, ds.n_movies, "tag")
    tagged = {}
    for number, row in csv_rows(path, ["movieId", "tag"]):
        movie = whole(row["movieId"], "movieId", path, number)
        tag = " ".join(row["tag"].lower().split())
        if tag:
            tagged.setdefault(tag, set()).add(movie)
    kept = {tag: movies for tag, movies in tagged.items() if len(movies) >= min_movies}
    rows = {}
    for tag, movies in kept.items():
        for movie in movies:
            j = ds.movieid2idx.get(movie)
            if j is not None:
                rows.setdefault(j, []).append(tag)
    return bags_from(rows, ds.n_movies, "tag")


def user_demographics(ds):
    """ml-100k ``u.user`` (``id|age|gender|occupation|zip``): each user's age band, gender,
    occupation and zip region. Empty bags where the release has no such file."""
    path = side_file(ds, "u.user")
    if path is None:
        return bags_from({}, ds.n_users, None)
    rows = {}
    for number, line in text_lines(path):
        fields = line.split("|")
        if len(fields) != 5:
            raise DataError(f"{path}: line {number}: {len(fields)} fields, expected 5 "
                            "(id|age|gender|occupation|zip code)")
        user = whole(fields[0], "user id", path, number)
        age = whole(fields[1], "age", path, number)
        band = sum(age >= edge for edge in AGE_BANDS)
        names = [f"age:{('<18', '18-24', '25-34', '35-44', '45-49', '50-55', '56+')[band]}",
                 f"gender:{fields[2]}", f"occupation:{fields[3]}",
                 f"zip:{fields[4][0] if fields[4][:1].isdigit() else 'other'}"]
        i = ds.userid2idx.get(user)
        if i is not None:
            rows[i] = names
    return bags_from(rows, ds.n_users, None)
