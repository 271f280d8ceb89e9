"""Figures as files: matplotlib (the ``plot`` extra) drawing off-screen, a PNG written whole or
not at all (``files.atomic_write``), and the picture shown inline when running in Jupyter.
"""
import sys

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
