"""Reading meaning out of a trained model: PCA of the movie embeddings, bias rankings, the
movie map, similar movies and recommendations (the notebook's last third, and a little more).

Every function works on NumPy or CuPy weights (the array module is taken from the model's
parameters) and returns plain Python / NumPy results.
"""
import numpy as np

from .backend import get_array_module, to_numpy


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
    if not 1 <= n_components <= min(X.shape):
        raise ValueError(f"n_components must be in 1..{min(X.shape)}, got {n_components}")
    mean = X.mean(axis=0)
    Xc = X - mean
    U, S, Vt = xp.linalg.svd(Xc, full_matrices=False)
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
    counts = np.bincount(to_numpy(ds.movie), minlength=ds.n_movies)
    order = np.lexsort((np.arange(ds.n_movies), -counts))
    return order[:k]


def movie_weights(model, name):
    """A movie table as NumPy: ``"embedding"`` (M, F) or ``"bias"`` (M,)."""
    key = {"embedding": "movie_embedding.W", "bias": "movie_bias.W"}[name]
    if key not in model.params:
        raise ValueError(f"{type(model).__name__} has no movie {name}")
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
    W = model.params["movie_embedding.W"]
    result = pca(W[get_array_module(W).asarray(movies)], n_components)
    extremes = []
    for c in range(n_components):
        order = np.argsort(result.scores[:, c], kind="stable")
        extremes.append(([ds.title(movies[i]) for i in order[::-1][:n]],
                         [ds.title(movies[i]) for i in order[:n]]))
    return result, movies, extremes


def plot_movie_map(model, ds, path, components=(0, 1), among=2000, labels=40):
    """Scatter the most-rated movies on two principal components, label the ``labels`` most
    rated, and write a PNG atomically. Returns the path."""
    import matplotlib
    matplotlib.use("Agg")  # files only: no screen needed
    import matplotlib.pyplot as plt
    result, movies, _ = movie_components(model, ds, max(components) + 1, among)
    x, y = result.scores[:, components[0]], result.scores[:, components[1]]
    fig, ax = plt.subplots(figsize=(14, 10), dpi=100)
    ax.scatter(x, y, s=6, alpha=0.25, color="tab:blue")
    for i in label_positions(x, y, labels):
        ax.scatter(x[i], y[i], s=12, color="tab:red")
        ax.annotate(ds.title(movies[i]), (x[i], y[i]), fontsize=8, xytext=(3, 3),
                    textcoords="offset points")
    ratio = result.explained_variance_ratio
    ax.set_xlabel(f"component {components[0] + 1} ({ratio[components[0]]:.1%} of variance)")
    ax.set_ylabel(f"component {components[1] + 1} ({ratio[components[1]]:.1%} of variance)")
    ax.set_title(f"{len(movies):,} most-rated movies of {ds.name}, by their embeddings")
    fig.tight_layout()
    from .weights import atomic_write
    try:
        return str(atomic_write(path, lambda f: fig.savefig(f, format="png")))
    finally:
        plt.close(fig)


def label_positions(x, y, n, width=0.14, height=0.03):
    """Which points to label: the first n (most-rated first) whose label box — ``width`` and
    ``height`` as fractions of the plot's spans — does not overlap one already placed."""
    w, h = width * np.ptp(x), height * np.ptp(y)
    placed = []
    for i in range(len(x)):
        if len(placed) == n:
            break
        if all(abs(x[i] - x[j]) > w or abs(y[i] - y[j]) > h for j in placed):
            placed.append(i)
    return placed


def similar_movies(model, movie, k=10):
    """The k movies whose embeddings have the highest cosine similarity with ``movie``'s
    (an index), itself excluded: a list of (index, similarity), most similar first."""
    W = model.params["movie_embedding.W"]
    xp = get_array_module(W)
    _check_index(movie, W.shape[0], "movie")
    norms = xp.sqrt((W * W).sum(axis=1)) + 1e-12
    cosine = to_numpy((W @ W[movie]) / (norms * norms[movie]))
    cosine[movie] = -np.inf
    best = top_k(cosine, k)
    return [(int(i), float(cosine[i])) for i in best]


def recommend(model, ds, user, k=10, exclude_seen=True):
    """The k movies with the highest predicted rating for ``user`` (an index): a list of
    (movie index, predicted rating). Only one row of U x M is ever built (M predictions)."""
    _check_index(user, ds.n_users, "user")
    movies = np.arange(ds.n_movies)
    scores = model.predict([np.full(ds.n_movies, user), movies]).astype(np.float64)
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
    predicts the training mean plus whatever bias is known instead (the user's bias if only
    the movie is new, and so on; the mean alone for models without biases) and returns which
    rows fell back: (predictions, fallback mask).
    """
    if unknown not in ("error", "fallback"):
        raise ValueError("unknown must be 'error' or 'fallback'")
    u = np.array([ds.userid2idx.get(int(i), -1) for i in user_ids])
    m = np.array([ds.movieid2idx.get(int(i), -1) for i in movie_ids])
    known = (u >= 0) & (m >= 0)
    if unknown == "error" and not known.all():
        k = int(np.argmin(known))
        what, value = ("user", user_ids[k]) if u[k] < 0 else ("movie", movie_ids[k])
        raise KeyError(f"unknown {what} id {value}: not in {ds.name}")
    pred = np.full(len(u), float(np.mean(to_numpy(ds.rating))))
    if known.any():
        pred[known] = model.predict([u[known], m[known]])
    has_bias = "user_bias.W" in model.params
    for idx, table in ((u, "user_bias.W"), (m, "movie_bias.W")):
        use = ~known & (idx >= 0) & has_bias
        if use.any():
            pred[use] += to_numpy(model.params[table])[idx[use], 0]
    return pred, ~known


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
