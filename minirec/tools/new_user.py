"""``minirec recommend --rated 'ID=R,...' [--side NAMES]``: a new user folded into a trained model
from a handful of ratings (``models/coldstart.py``), without retraining, then ranked; each pick
says when the movie had no training ratings.
"""
import numpy as np

from ..models.coldstart import NOTES, fold_in, scored_from


def parse_rated(text, ds):
    """'1=5,260=4.5' -> (movie indices, ratings), naming a malformed pair or an unknown id."""
    movies, ratings = [], []
    for pair in filter(None, (s.strip() for s in text.split(","))):
        movie, _, rating = pair.partition("=")
        try:
            movie_id, value = int(movie), float(rating)
        except ValueError:
            raise ValueError(f"--rated: {pair!r} is not MOVIE_ID=RATING (e.g. 1=4.5)") from None
        if movie_id not in ds.movieid2idx:
            raise KeyError(f"--rated: unknown movie id {movie_id}: not in {ds.name}")
        movies.append(ds.movieid2idx[movie_id])
        ratings.append(value)
    return movies, ratings


def recommend_new_user(args, ds, model):
    """``recommend --rated``: the new user folded in (``coldstart.fold_in``), then ranked."""
    movies, ratings = parse_rated(args.rated, ds)
    names = [s.strip() for s in args.side.split(",") if s.strip()]
    known = list(getattr(model, "user_features", []))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"--side: {', '.join(unknown)} not among this model's user features "
                         f"({', '.join(known[:12]) or 'none'}{', ...' if len(known) > 12 else ''})")
    new, user = fold_in(model, movies, ratings, side=[known.index(n) for n in names])
    scores = new.predict([np.full(ds.n_movies, user), np.arange(ds.n_movies)]).astype(np.float64)
    scores[movies] = -np.inf
    scores[scored_from(model, "movie") == "nothing"] = -np.inf  # noise: never served
    how = (f"folded in from {len(movies)} rating(s), without retraining" if movies else
           "no ratings: scored from " + ("the side features given" if names else
                                         "the model's biases alone (give --side or --rated)"))
    print(f"A new user, {how}:")
    best = np.argsort(-scores, kind="stable")[:args.k]
    print_picks(model, ds, [(int(j), float(scores[j])) for j in best if np.isfinite(scores[j])])


def print_picks(model, ds, picks, user=None):
    """One line per (movie index, score); a movie or ``user`` scored from side features rather
    than training ratings says so (``coldstart.scored_from``, ``coldstart.NOTES``)."""
    if user is not None and scored_from(model, "user")[user] == "side":
        print(f"user {ds.user_ids[user]}: {NOTES['user', 'side']}")
    movie_case = scored_from(model, "movie")
    for j, score in picks:
        note = f"  ({NOTES['movie', 'side']})" if movie_case[j] == "side" else ""
        print(f"{score:5.2f}  {ds.title(j)}{note}")
