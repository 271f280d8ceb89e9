"""Pictures: loss curves, the learning-rate finder and the movie map.

Each function draws with matplotlib (the ``plot`` extra), writes a PNG when given a path (whole
or not at all, ``files.atomic_write``), shows the picture inline when it runs in Jupyter, and
returns the path.
"""
import sys

import numpy as np

from .analysis import movie_components
from .files import atomic_write


def pyplot():
    """matplotlib's pyplot, or a clear error naming the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("plots need matplotlib: pip install 'minirec[plot]' "
                           "(or pip install matplotlib)") from None
    if not in_jupyter():
        matplotlib.use("Agg")  # files only: no screen needed
    import matplotlib.pyplot as plt
    return plt


def in_jupyter():
    return "ipykernel" in sys.modules


def finish(fig, path):
    """Write ``fig`` to ``path`` (PNG, atomically) if given, show it in Jupyter, close it."""
    plt = pyplot()
    try:
        if path is not None:
            path = str(atomic_write(path, lambda f: fig.savefig(f, format="png")))
        if in_jupyter():
            from IPython.display import display
            display(fig)
    finally:
        plt.close(fig)
    return path


def plot_history(history, path=None, title="training"):
    """Training loss and validation MSE per epoch; beside them, the learning rate of every batch
    when a schedule ran (``History.batch_lr``)."""
    plt = pyplot()
    h = history.history
    panels = 2 if history.batch_lr else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), dpi=100, squeeze=False)
    ax = axes[0, 0]
    epochs = np.arange(1, len(h["loss"]) + 1)
    ax.plot(epochs, h["loss"], marker="o", label="loss (MSE + L2 penalty)")
    if any(v is not None for v in h["val_loss"]):
        ax.plot(epochs, [np.nan if v is None else v for v in h["val_loss"]], marker="o",
                label="val_loss (MSE)")
    for boundary in history.stage_ends[:-1]:
        ax.axvline(boundary + 0.5, color="grey", lw=0.5, ls=":")
    ax.set(xlabel="epoch", ylabel="loss", title=title)
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    if panels == 2:
        axes[0, 1].plot(history.batch_lr)
        axes[0, 1].set(xlabel="batch", ylabel="learning rate", title="learning rate per batch")
    fig.tight_layout()
    return finish(fig, path)


def plot_lr_find(finder, path=None):
    """The LR range test: smoothed loss against the learning rate (log axis), the suggestion
    marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(finder.lrs, finder.losses)
    ax.set_xscale("log")
    ax.axvline(finder.suggestion, color="tab:red", ls="--",
               label=f"suggestion {finder.suggestion:.1e} (min loss / 10)")
    ax.set(xlabel="learning rate (log scale)", ylabel="smoothed batch loss",
           title="learning-rate finder")
    ax.legend()
    fig.tight_layout()
    return finish(fig, path)


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
