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

from .datasets import MovieLens

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


def _repeats(users, movies, n_movies):
    """True for every rating whose (user, movie) pair came earlier."""
    pairs = users.astype(np.int64) * n_movies + movies
    first = np.zeros(len(pairs), bool)
    first[np.unique(pairs, return_index=True)[1]] = True
    return ~first


def _unique_pairs(users, movies, n_movies, user_p, movie_p, rng, rounds=20):
    for _ in range(rounds):
        again = np.flatnonzero(_repeats(users, movies, n_movies))
        if len(again) == 0:
            return users, movies
        users[again] = rng.choice(len(user_p), size=len(again), p=user_p)
        movies[again] = rng.choice(len(movie_p), size=len(again), p=movie_p)
    keep = ~_repeats(users, movies, n_movies)
    return users[keep], movies[keep]


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
