"""Pictures of a trained model: the movie map (the most-rated movies on two principal
components of their embeddings). The training pictures (loss curves, the learning-rate finder)
are in ``train/curves.py``; all of them write PNGs through ``io/figures.py``.
"""
import numpy as np

from .analysis import movie_components
from ..io.figures import finish, pyplot  # noqa: F401  (pyplot: for the commands that draw)
from ..train.curves import plot_history, plot_lr_find  # noqa: F401  (re-exported: every plot in one place)


def plot_movie_map(model, ds, path=None, components=(0, 1), among=2000, labels=40):
    """Scatter the most-rated movies on two principal components of their embeddings and label
    the ``labels`` most rated ones whose labels do not overlap."""
    plt = pyplot()
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
    return finish(fig, path)


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
