"""Pictures of training: the loss per epoch (``History.plot``) and the learning-rate finder's
curve (``LRFinder.plot``). Each writes a PNG when given a path and returns the path.
"""
import numpy as np

from ..io.figures import finish, pyplot


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
