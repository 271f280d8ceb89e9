"""Synthetic ratings shaped like MovieLens, for tests and scale runs (never a stand-in for real data).

The generator plants the structure the models look for::

    r = μ + b_u + b_m + p_u · q_m + noise,   rounded to half stars and clipped to 0.5..5

* popularity follows a power law: a few users rate a lot and a few movies get most ratings
  (weight of the k-th most active user ∝ (k + 10)^-0.9, of the k-th movie ∝ (k + 1)^-1.0);
* biases b_u ~ N(0, 0.35²), b_m ~ N(0, 0.5²); taste p_u, q_m ~ N(0, 1/√rank) in ``rank`` dims;
* noise ~ N(0, 0.8²).

Each (user, movie) pair is rated at most once, as in real MovieLens: pairs drawn twice are drawn
again (a few rounds), and any still repeated after that are dropped, so a set denser than the
popularity law allows holds fewer than ``n_ratings`` ratings. Any size up to ML-25M's
(162,541 users, 59,047 movies, 25,000,095 ratings) fits in a few hundred MB.
"""
import numpy as np
import pandas as pd

from .movielens import MovieLens

SHAPES = {
    "ml-latest-small": (671, 9066, 100_004),
    "ml-25m": (162_541, 59_047, 25_000_095),
}


def synthetic_movielens(n_users=671, n_movies=9066, n_ratings=100_004, rank=8, seed=0,
                        chunk=1 << 20):
    """A ``MovieLens`` data set of synthetic ratings (see the module docstring)."""
    rng = np.random.default_rng(seed)
    user_p = _power_law(n_users, 0.9, 10, rng)
    movie_p = _power_law(n_movies, 1.0, 1, rng)
    users = rng.choice(n_users, size=n_ratings, p=user_p).astype(np.int32)
    movies = rng.choice(n_movies, size=n_ratings, p=movie_p).astype(np.int32)
    users, movies = _unique_pairs(users, movies, n_movies, user_p, movie_p, rng)
    n_ratings = len(users)
    b_u = rng.normal(0, 0.35, n_users).astype(np.float32)
    b_m = rng.normal(0, 0.5, n_movies).astype(np.float32)
    P = rng.normal(0, rank ** -0.5, (n_users, rank)).astype(np.float32)
    Q = rng.normal(0, rank ** -0.5, (n_movies, rank)).astype(np.float32)
    ratings = np.empty(n_ratings, np.float32)
    for s in range(0, n_ratings, chunk):  # in chunks: (chunk, rank) temporaries, not (N, rank)
        u, m = users[s:s + chunk], movies[s:s + chunk]
        r = 3.5 + b_u[u] + b_m[m] + np.einsum("ij,ij->i", P[u], Q[m])
        r += rng.normal(0, 0.8, len(u)).astype(np.float32)
        ratings[s:s + chunk] = np.clip(np.round(r * 2) / 2, 0.5, 5.0)
    titles = {j + 1: f"Synthetic movie {j + 1}" for j in range(n_movies)}
    return MovieLens("synthetic", users + 1, movies + 1, ratings, titles)


def _unique_pairs(users, movies, n_movies, user_p, movie_p, rng, rounds=20):
    """Keep the first rating of every (user, movie) pair and draw the repeats again, checking
    the new draws against the kept pairs by binary search (O(k log n) a round, so 25M ratings
    take seconds); what still repeats after ``rounds`` rounds is dropped."""
    kept, _, again = _first_occurrences(users.astype(np.int64) * n_movies + movies)
    extra = np.empty(0, np.int64)                     # pairs accepted in later rounds (few)
    for _ in range(rounds):
        if len(again) == 0:
            break
        users[again] = rng.choice(len(user_p), size=len(again), p=user_p)
        movies[again] = rng.choice(len(movie_p), size=len(again), p=movie_p)
        fresh, first, _ = _first_occurrences(users[again].astype(np.int64) * n_movies + movies[again])
        ok = ~(_contains(kept, fresh) | _contains(extra, fresh))
        extra = np.sort(np.concatenate([extra, fresh[ok]]))
        redo = np.ones(len(again), bool)
        redo[first[ok]] = False
        again = again[redo]
    keep = np.ones(len(users), bool)
    keep[again] = False
    return users[keep], movies[keep]


def _first_occurrences(values):
    """(the distinct values, sorted; where each first occurs; where the repeats are), by one
    stable sort."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.ones(len(values), bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return ordered[first], order[first], order[~first]


def _contains(sorted_values, x):
    """Which of x are in the sorted array ``sorted_values`` (binary search)."""
    if len(sorted_values) == 0:
        return np.zeros(len(x), bool)
    at = np.minimum(np.searchsorted(sorted_values, x), len(sorted_values) - 1)
    return sorted_values[at] == x


def synthetic_like(shape, seed=0):
    """``synthetic_like("ml-25m")``: the sizes of a real release (see ``SHAPES``)."""
    n_users, n_movies, n_ratings = SHAPES[shape]
    return synthetic_movielens(n_users, n_movies, n_ratings, seed=seed)


def _power_law(n, exponent, offset, rng):
    weights = (np.arange(n) + offset) ** -exponent
    rng.shuffle(weights)  # the most popular item is not always id 0
    return weights / weights.sum()


def write_ratings_csv(ds, path, chunk=1 << 21):
    """Write ``ds`` as a MovieLens ``ratings.csv`` (userId,movieId,rating,timestamp)."""
    with open(path, "w", newline="") as f:
        f.write("userId,movieId,rating,timestamp\n")
        for s in range(0, len(ds), chunk):
            part = pd.DataFrame({"userId": ds.user_ids[ds.user[s:s + chunk]],
                                 "movieId": ds.movie_ids[ds.movie[s:s + chunk]],
                                 "rating": ds.rating[s:s + chunk],
                                 "timestamp": 1_500_000_000})
            part.to_csv(f, header=False, index=False, float_format="%g")


def write_release(ds, folder):
    """Write ``ds`` as a MovieLens-style folder: ``ratings.csv`` and ``movies.csv``."""
    from pathlib import Path
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_ratings_csv(ds, folder / "ratings.csv")
    movies = pd.DataFrame({"movieId": list(ds.titles), "title": list(ds.titles.values()),
                           "genres": "(no genres listed)"})
    movies.to_csv(folder / "movies.csv", index=False)
    return folder
