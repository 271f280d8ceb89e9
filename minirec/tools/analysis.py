"""Reading meaning out of a trained model: PCA of the movie embeddings, bias rankings, the
movie map, similar movies and recommendations (the notebook's last third, and a little more).

Every function works on NumPy or CuPy weights (the array module is taken from the model's
parameters) and returns plain Python / NumPy results.
"""
import numpy as np

from ..backend import get_array_module, to_numpy
from ..train.metrics import positive, ranking_metrics  # noqa: F401  (ranking_metrics: re-exported for the tools)
from ..models.coldstart import scored_from


class PCAResult:
    """components (k, F), scores (n, k), explained_variance_ratio (k,), mean (F,)."""

    def __init__(self, components, scores, explained_variance_ratio, mean):
        self.components, self.scores = components, scores
        self.explained_variance_ratio, self.mean = explained_variance_ratio, mean


def pca(X, n_components):
    """Principal components of the rows of X (n, F), through the SVD of the centred matrix.

    With Xc = X - mean = U S Vᵀ: the components are the first rows of Vᵀ, the scores (each
    row's coordinates) are Xc Vₖ = Uₖ Sₖ, and component i explains S_i² / Σ S² of the variance.
    Signs: an SVD may flip any component; we flip each so that its largest-magnitude loading
    is positive, which makes results repeatable across runs, machines and backends.
    """
    xp = get_array_module(X)
    X = X.astype(xp.float64)
    if not 1 <= n_components <= min(X.shape[0] - 1, X.shape[1]):
        raise ValueError(f"PCA of {X.shape[0]} rows of {X.shape[1]} numbers has at most "
                         f"{max(0, min(X.shape[0] - 1, X.shape[1]))} components; asked for "
                         f"{n_components} (use more movies, --among, or fewer --components)")
    mean = X.mean(axis=0)
    Xc = X - mean
    U, S, Vt = xp.linalg.svd(Xc, full_matrices=False)
    if not float((S ** 2).sum()) > 0:
        raise ValueError(f"the {X.shape[0]} rows are all the same: there is no variance to explain")
    components = Vt[:n_components]
    biggest = xp.argmax(xp.abs(components), axis=1)
    signs = xp.sign(components[xp.arange(n_components), biggest])
    components = components * signs[:, None]
    scores = Xc @ components.T
    ratio = (S ** 2) / (S ** 2).sum()
    return PCAResult(to_numpy(components), to_numpy(scores), to_numpy(ratio[:n_components]),
                     to_numpy(mean))


def top_movies(ds, k=2000):
    """Indices of the k movies with the most ratings, most-rated first (ties by index)."""
    k = positive("among", k)
    counts = np.bincount(to_numpy(ds.movie), minlength=ds.n_movies)
    order = np.lexsort((np.arange(ds.n_movies), -counts))
    return order[:k]


def movie_weights(model, name):
    """A movie table as NumPy: ``"embedding"`` (M, F) or ``"bias"`` (M,) — the tables the
    Lesson 4 models name ``movie_embedding`` and ``movie_bias``."""
    key = {"embedding": "movie_embedding.W", "bias": "movie_bias.W"}[name]
    if key not in model.params:
        raise ValueError(f"{type(model).__name__} has no movie {name} (no {key} parameter)")
    W = to_numpy(model.params[key])
    return W[:, 0] if name == "bias" else W


def bias_ranking(model, ds, n=15, among=2000):
    """The notebook's movie-bias ranking among the ``among`` most-rated movies:
    (lowest n, highest n), each a list of (bias, title), lowest or highest first."""
    movies = top_movies(ds, among)
    bias = movie_weights(model, "bias")[movies]
    order = np.argsort(bias, kind="stable")
    pairs = [(float(bias[i]), ds.title(movies[i])) for i in order]
    return pairs[:n], pairs[::-1][:n]


def movie_components(model, ds, n_components=3, among=2000, n=10):
    """PCA of the most-rated movies' embeddings. Returns (PCAResult, movie indices, extremes),
    extremes[c] = (top n titles, bottom n titles) on component c, by score."""
    movies = top_movies(ds, among)
    result = pca(movie_weights(model, "embedding")[movies], n_components)
    extremes = []
    for c in range(n_components):
        order = np.argsort(result.scores[:, c], kind="stable")
        extremes.append(([ds.title(movies[i]) for i in order[::-1][:n]],
                         [ds.title(movies[i]) for i in order[:n]]))
    return result, movies, extremes


def components_text(result, extremes, n=None):
    """``movie_components``'s result as lines to print: per component, its share of the
    variance, then its top and bottom titles (the first ``n`` of each, or all)."""
    lines = []
    for c, (top, bottom) in enumerate(extremes):
        lines += [f"component {c + 1} ({result.explained_variance_ratio[c]:.1%} of the variance)",
                  "  top:    " + " | ".join(top[:n]), "  bottom: " + " | ".join(bottom[:n])]
    return "\n".join(lines)


def trained(model, what):
    """The (rows,) mask of the ``what`` rows ("user" or "movie") that training used
    (``objectives.mark_trained``), or None where the model does not say (an older file)."""
    masks = getattr(model, "trained_rows", None)
    return None if masks is None else np.asarray(masks[what], bool)


def refuse_untrained(model, what, index, name=None):
    """Refuse a row that never trained: its vector is its random start, and a list made from it
    would be noise. ``name`` says the row as the user knows it (an id, a title)."""
    mask = trained(model, what)
    if mask is not None and not mask[index]:
        at = getattr(model.objective, "positive_at", getattr(model, "positive_at", None))
        why = (f"positive_at {at:g} kept none of its training ratings" if at is not None else
               "none of its ratings was a training rating")
        raise ValueError(f"{name or f'{what} index {index}'} never trained ({why}): its row is "
                         "still its random start, so any list from it would be noise")


def similar_movies(model, movie, k=10, name=None):
    """The k movies whose embeddings have the highest cosine similarity with ``movie``'s
    (an index), itself and any movie that never trained excluded: a list of (index,
    similarity), most similar first (fewer than k when the catalogue is smaller). A ``movie``
    that never trained is refused (``name`` says it in the message)."""
    k = positive("k", k)
    W = movie_weights(model, "embedding")
    _check_index(movie, W.shape[0], "movie")
    refuse_untrained(model, "movie", movie, name)
    norms = np.sqrt((W * W).sum(axis=1)) + 1e-12
    cosine = (W @ W[movie]) / (norms * norms[movie])
    cosine[movie] = -np.inf
    mask = trained(model, "movie")
    if mask is not None:
        cosine[~mask] = -np.inf  # neighbours of noise are not neighbours
    return [(int(i), float(cosine[i])) for i in top_k(cosine, k) if np.isfinite(cosine[i])]


def recommend(model, ds, user, k=10, exclude_seen=True):
    """The k movies with the highest predicted rating for ``user`` (an index): a list of
    (movie index, predicted rating). Only one row of U x M is ever built (M predictions). A
    user or movie whose rows never trained is served only where the model scores it from side
    features (``coldstart.scored_from``: the hybrid's genres, demographics, ...); otherwise the
    user is refused and the movie left out, since its score would be noise."""
    k = positive("k", k)
    _check_index(user, ds.n_users, "user")
    if scored_from(model, "user")[user] == "nothing":
        refuse_untrained(model, "user", user, f"user {ds.user_ids[user]}")
    movies = np.arange(ds.n_movies)
    scores = model.predict([np.full(ds.n_movies, user), movies]).astype(np.float64)
    scores[scored_from(model, "movie") == "nothing"] = -np.inf
    if exclude_seen:
        scores[to_numpy(ds.movie)[to_numpy(ds.user) == user]] = -np.inf
    best = [i for i in top_k(scores, k) if np.isfinite(scores[i])]
    return [(int(i), float(scores[i])) for i in best]


def top_k(values, k):
    """Indices of the k largest values, largest first (argpartition, then a small sort)."""
    k = min(k, len(values))
    part = np.argpartition(-values, k - 1)[:k]
    return part[np.argsort(-values[part], kind="stable")]


def predict_ids(model, ds, user_ids, movie_ids, unknown="error"):
    """Predictions for MovieLens *ids* (not indices).

    ``unknown="error"`` refuses an id the data set does not know, naming it. ``"fallback"``
    predicts what the model expects for an unknown movie (or user) instead, and returns which
    rows fell back: (predictions, fallback mask). See ``cold_start``.
    """
    if unknown not in ("error", "fallback"):
        raise ValueError("unknown must be 'error' or 'fallback'")
    user_ids, movie_ids = whole_ids(user_ids, "user"), whole_ids(movie_ids, "movie")
    if len(user_ids) != len(movie_ids):
        raise ValueError(f"{len(user_ids)} user ids but {len(movie_ids)} movie ids: give one "
                         "of each per prediction")
    u = np.array([ds.userid2idx.get(int(i), -1) for i in user_ids], dtype=np.int64)
    m = np.array([ds.movieid2idx.get(int(i), -1) for i in movie_ids], dtype=np.int64)
    known = (u >= 0) & (m >= 0)
    if unknown == "error" and not known.all():
        k = int(np.argmin(known))
        what, value = ("user", user_ids[k]) if u[k] < 0 else ("movie", movie_ids[k])
        raise KeyError(f"unknown {what} id {value}: not in {ds.name}")
    pred = cold_start(model, ds, u, m)
    if known.any():
        pred[known] = model.predict([u[known], m[known]])
    return pred, ~known


def cold_start(model, ds, u, m):
    """Predictions where an index is -1 (unknown), for any model, in the units of a rating.

    A model has no rating for a movie it never saw, but it knows what it predicts for the known
    user across the movies people rate: the fallback for (user i, unknown movie) is the mean of
    r̂(i, j) over ``ds``'s ratings (each movie weighted by its number of ratings) — the user's
    typical predicted rating. The same for an unknown user and a known movie; with both
    unknown, the mean rating. (Adding a learned bias to the mean would count the mean twice:
    the models have no global intercept, so their biases already carry it; and under a
    ``y_range`` a bias is a logit, not stars.)
    """
    pred = np.full(len(u), float(np.mean(to_numpy(ds.rating))))
    movie_counts = np.bincount(to_numpy(ds.movie), minlength=ds.n_movies).astype(np.float64)
    user_counts = np.bincount(to_numpy(ds.user), minlength=ds.n_users).astype(np.float64)
    for i in np.unique(u[(u >= 0) & (m < 0)]):      # a known user, an unknown movie
        r = model.predict([np.full(ds.n_movies, i), np.arange(ds.n_movies)]).astype(np.float64)
        pred[(u == i) & (m < 0)] = r @ movie_counts / movie_counts.sum()
    for j in np.unique(m[(m >= 0) & (u < 0)]):      # an unknown user, a known movie
        r = model.predict([np.arange(ds.n_users), np.full(ds.n_users, j)]).astype(np.float64)
        pred[(m == j) & (u < 0)] = r @ user_counts / user_counts.sum()
    return pred


def whole_ids(ids, what):
    """MovieLens ids as int64; 1.9 is refused, not read as 1."""
    a = np.asarray(ids)
    if a.ndim != 1:
        raise ValueError(f"{what} ids must be a 1-D list")
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:  # before the cast
        raise KeyError(f"unknown {what} id {int(a.max())}: MovieLens ids are below 2^63")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        try:
            f = a.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{what} ids must be whole numbers, got {a[0]!r}") from None
        bad = ~(np.isfinite(f) & (f == np.floor(f)))
        if bad.any():
            raise ValueError(f"{what} ids must be whole numbers, got {a[bad][0].item()!r}")
        if f.size and np.abs(f).max() >= 2.0 ** 63:  # before the cast
            raise KeyError(f"unknown {what} id {a[np.argmax(np.abs(f))].item()!r}: MovieLens ids "
                           "are below 2^63")
        a = f
    return a.astype(np.int64)


def find_movie(ds, text):
    """A movie index from an id or a title. A title that matches several movies (or none)
    raises an error listing the candidates."""
    text = str(text).strip()
    if text.isdigit():
        if int(text) not in ds.movieid2idx:
            raise KeyError(f"unknown movie id {text}: not in {ds.name}")
        return ds.movieid2idx[int(text)]
    exact = [j for j in range(ds.n_movies) if ds.title(j).lower() == text.lower()]
    if len(exact) == 1:
        return exact[0]
    partial = exact or [j for j in range(ds.n_movies) if text.lower() in ds.title(j).lower()]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        raise KeyError(f"no movie in {ds.name} has a title matching {text!r}")
    listing = "; ".join(f"{ds.title(j)} (id {ds.movie_ids[j]})" for j in partial[:20])
    more = f" and {len(partial) - 20} more" if len(partial) > 20 else ""
    raise KeyError(f"{len(partial)} movies match {text!r}: {listing}{more}. Give the id instead.")


def _check_index(i, n, what):
    if not 0 <= int(i) < n:
        raise KeyError(f"unknown {what} index {i}: the model knows {n} {what}s (0..{n - 1})")
