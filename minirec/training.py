"""The training loop: batching, the per-epoch report, progress, and stopping on a NaN.

``fit`` runs epochs. An epoch shuffles the training rows, cuts them into batches of
``batch_size`` and hands ranges of batches to the *runner* ``runners.runner_for`` chose for the
model (its layers plus a per-table Adam, or a registered whole-model kernel). Runners return the
MSE of each batch; the loop adds the report and the checks. Data flows one way: training calls
the runner, the runner calls the model.

Reported numbers (per epoch, Keras style):

* ``loss``: the mean of the batch MSEs over the epoch plus the L2 penalty of the weights at
  the end of the epoch — the training objective;
* ``val_loss``: the plain MSE on ``validation_data``, without any penalty.
"""
import math
import time

import numpy as np

from . import checks
from .backend import to_numpy
from .runners import Batches, runner_for


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite; the model keeps its last finite weights."""


class History:
    """What ``fit`` returns: ``history`` maps ``"loss"``/``"val_loss"``/``"lr"`` to per-epoch lists."""

    def __init__(self):
        self.history = {"loss": [], "val_loss": [], "lr": [], "seconds": []}
        self.epoch = []

    def append(self, epoch, **values):
        self.epoch.append(epoch)
        for key, value in values.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        last = {k: v[-1] for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"


def epoch_order(n, rng, shuffle=True, xp=np):
    """The order in which the ``n`` training rows are visited this epoch: a fresh permutation
    from ``rng`` every epoch (or 0..n-1 without ``shuffle``).

    On the GPU the permutation is drawn on the device, from a CuPy generator seeded from
    ``rng``: reproducible, but a different order from the CPU's (permuting 25M rows on the
    host and copying them over took longer than a whole GPU epoch).
    """
    if not shuffle:
        return xp.arange(n)
    if xp is np:
        return rng.permutation(n)
    return xp.random.RandomState(int(rng.integers(2**63))).permutation(n)


def fit(model, x, y, batch_size=64, epochs=1, validation_data=None, shuffle=True, verbose=1,
        lr_schedule=None):
    """Train ``model`` in place; see ``Model.fit`` for the arguments.

    ``lr_schedule(step, n_steps)``, when given, sets the learning rate of every batch (a
    one-cycle schedule, say); ``step`` counts batches from 0 over the whole call.
    """
    if model.optimizer is None:
        raise RuntimeError("call model.compile(optimizer) before fit")
    users, movies = checks.inputs(x, model.n_users, model.n_movies, model.xp)
    y = checks.ratings(y, len(users), model.xp, model.dtype)
    batch_size = checks.whole_number("batch_size", batch_size, 1)
    epochs = checks.whole_number("epochs", epochs, 0)
    checks.finite_positive("the learning rate (optimizer.lr)", model.optimizer.lr)
    if validation_data is not None:
        (vu, vm), vy = validation_data
        vu, vm = checks.inputs([vu, vm], model.n_users, model.n_movies, model.xp)
        validation_data = ([vu, vm], checks.ratings(vy, len(vu), model.xp, model.dtype))
    n = len(y)
    if n == 0:
        raise ValueError("fit needs at least one training rating")
    n_batches = math.ceil(n / batch_size)
    runner = runner_for(model, users, movies, batch_size)
    history = History()
    base_lr = model.optimizer.lr
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        batches = Batches(users, movies, y, epoch_order(n, model.shuffle_rng, shuffle, model.xp),
                          batch_size)
        if lr_schedule is None:
            lrs = np.full(n_batches, model.optimizer.lr)
        else:
            first = (epoch - 1) * n_batches
            lrs = np.array([lr_schedule(first + b, epochs * n_batches) for b in range(n_batches)])
            if not np.all(np.isfinite(lrs) & (lrs > 0)):
                raise ValueError("lr_schedule gave a learning rate that is not a finite number > 0")
        losses = _run_epoch(model, runner, batches, lrs, epoch, verbose)
        seconds = time.perf_counter() - start
        loss = float(np.mean(losses)) + model.penalty()
        val_loss = None
        if validation_data is not None and len(validation_data[1]):
            val_loss = model.evaluate(*validation_data)
        history.append(epoch, loss=loss, val_loss=val_loss, lr=float(lrs[-1]), seconds=seconds)
        if verbose:
            line = f"Epoch {epoch}/{epochs} - {n:,} samples - {seconds:.2f}s - loss: {loss:.4f}"
            if val_loss is not None:
                line += f" - val_loss: {val_loss:.4f}"
            print(line, flush=True)
    if lr_schedule is not None:
        model.optimizer.lr = base_lr
    return history


def _run_epoch(model, runner, batches, lrs, epoch, verbose):
    """Run one epoch, in chunks of batches when a progress bar is shown; stop on a non-finite
    loss."""
    n_batches = len(lrs)
    snapshot = {k: v.copy() for k, v in model.params.items()}  # last known-good weights
    bar = _progress(n_batches, epoch, verbose)
    # With a bar, calls of about 1% of the epoch keep it moving; without one (and always on the
    # GPU, where the losses then come back to the host once), one call per epoch.
    chunk = n_batches if bar.disable or model.backend == "cupy" else max(1, n_batches // 100)
    losses = np.empty(n_batches)
    for first in range(0, n_batches, chunk):
        last = min(n_batches, first + chunk)
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite losses are caught below
            part, bad = runner.run(batches, lrs, first, last)
        losses[first:first + len(part)] = part
        if bad >= 0:
            bar.close()
            _diverged(model, snapshot, epoch, bad, part[-1])
        bar.update(last - first)
    bar.close()
    return losses


def _diverged(model, snapshot, epoch, batch, loss):
    """Keep the last finite weights and raise a clear error naming epoch and batch."""
    where = "before that batch"
    if not all(np.isfinite(to_numpy(p)).all() for p in model.params.values()):
        model.set_params(snapshot)
        where = f"from the start of epoch {epoch}"
    raise TrainingDiverged(
        f"training loss became {loss} at epoch {epoch}, batch {batch + 1}; the model keeps "
        f"its last finite weights ({where}). Try a smaller learning rate.")


def _progress(total, epoch, verbose):
    """A tqdm bar that only appears when an epoch runs longer than a couple of seconds."""
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=f"epoch {epoch}", unit="batch", leave=False, delay=2.0,
                disable=None if verbose else True)  # None: only on a terminal
