"""How good a ranking is: precision@k, recall@k and NDCG@k of a model's recommendations
against held-out ratings. ``fit`` reports NDCG@10 after each epoch of a model trained to rank
(BPR); ``minirec evaluate --ranking`` and the ranking benchmarks print all three.
"""
import numpy as np

from ..backend import to_numpy
from ..inputs import whole_number


def positive(name, k):
    """A count >= 1 (a negative k would silently slice from the end of a list)."""
    return whole_number(name, k, 1)


def ranking_metrics(model, train, test, n_movies, k=None, threshold=4.0, chunk=256):
    """Recommendations judged as recommendations: precision@k, recall@k and NDCG@k.

    For every user with at least one held-out rating >= ``threshold`` (the *relevant* movies),
    rank all movies the user did not rate in ``train`` by the model's predicted rating — or,
    with ``model=None``, by popularity (the number of training ratings: the baseline) — and
    compare the top k with the relevant held-out movies:

        precision@k = hits / k     recall@k = hits / #relevant
        NDCG@k = Σ_{hits at rank r} 1/log2(r + 1)  /  Σ_{r <= min(k, #relevant)} 1/log2(r + 1)

    averaged over those users. ``train``/``test`` are ``Ratings`` (indices), ``n_movies`` the
    catalogue size; ``k`` not given is 10, or the catalogue where it is smaller. Returns
    {"precision", "recall", "ndcg", "k", "users", "median_ratings"}, the last the median number
    of training ratings of the recommended movies (how popular they are).
    """
    k = min(10, n_movies) if k is None else positive("k", k)
    if k > n_movies:
        raise ValueError(f"k = {k} is more than the {n_movies:,} movies there are to rank")
    tu, tm = to_numpy(train.user), to_numpy(train.movie)
    relevant = to_numpy(test.rating) >= threshold
    users = np.unique(to_numpy(test.user)[relevant])
    if len(users) == 0:
        raise ValueError(f"no held-out rating is {threshold:g} or more, so no user has a relevant "
                         "movie and the ranking metrics are undefined")
    popularity = np.bincount(tm, minlength=n_movies).astype(np.float64)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    totals, movies, picked = np.zeros(3), np.arange(n_movies), []
    for start in range(0, len(users), chunk):
        block = users[start:start + chunk]
        if model is None:
            scores = np.tile(popularity, (len(block), 1))
        else:
            scores = model.predict([np.repeat(block, n_movies), np.tile(movies, len(block))])
            scores = scores.astype(np.float64).reshape(len(block), n_movies)
        row = np.full(int(block.max()) + 1, -1)
        row[block] = np.arange(len(block))
        seen = np.isin(tu, block)
        scores[row[tu[seen]], tm[seen]] = -np.inf  # never recommend what was rated in training
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        picked.append(popularity[top].ravel())
        is_relevant = np.zeros((len(block), n_movies), bool)
        held = relevant & np.isin(to_numpy(test.user), block)
        is_relevant[row[to_numpy(test.user)[held]], to_numpy(test.movie)[held]] = True
        hits = np.take_along_axis(is_relevant, top, axis=1)
        n_relevant = is_relevant.sum(axis=1)
        ideal = np.array([discount[:min(k, r)].sum() for r in n_relevant])
        totals += [(hits.sum(axis=1) / k).sum(), (hits.sum(axis=1) / n_relevant).sum(),
                   ((hits * discount).sum(axis=1) / ideal).sum()]
    n = max(1, len(users))
    return {"precision": totals[0] / n, "recall": totals[1] / n, "ndcg": totals[2] / n,
            "k": k, "users": len(users),
            "median_ratings": float(np.median(np.concatenate(picked))) if picked else 0.0}
