"""The training loop: batching, the per-epoch report, progress, and stopping on a NaN.

``fit`` runs epochs. An epoch shuffles the training rows, cuts them into batches of
``batch_size`` and hands ranges of batches to the *runner* ``runners.runner_for`` chose for the
model (its layers plus a per-table Adam, or a registered whole-model kernel). Runners return the
MSE of each batch; the loop adds the report and the inputs. Data flows one way: training calls
the runner, the runner calls the model.

Reported numbers (per epoch, Keras style):

* ``loss``: the mean of the batch MSEs over the epoch plus the L2 penalty of the weights at
  the end of the epoch — the training objective;
* ``val_loss``: the plain MSE on ``validation_data``, without any penalty — or, for a model
  trained to rank (BPR), ``val_ndcg@10``: NDCG@10 of its held-out ratings >= 4.
"""
import math
import time
import warnings

import numpy as np

from .. import inputs
from ..nn.optim import one_cycle_lr
from .metrics import ranking_metrics
from .objectives import mark_trained
from ..data.movielens import Ratings
from .curves import plot_history
from . import guards
from .runners import Batches, LayerRunner, runner_for


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite; the model keeps its last finite weights."""


class History:
    """What ``fit`` returns: ``history`` maps ``"loss"``/``"val_loss"``/``"lr"``/``"seconds"`` to
    per-epoch lists; ``batch_lr`` holds every batch's rate when a schedule ran. ``extend`` joins
    the histories of several ``fit`` calls (the notebook's stages) and ``plot`` draws them."""

    def __init__(self):
        self.history = {"loss": [], "val_loss": [], "lr": [], "seconds": []}
        self.epoch, self.batch_lr, self.stage_ends = [], [], []

    def append(self, epoch, **values):
        self.epoch.append(epoch)
        for key, value in values.items():
            self.history.setdefault(key, []).append(value)

    def extend(self, other):
        """Add the epochs of a later ``fit`` (their batch rates too, where a schedule ran)."""
        for key, values in other.history.items():
            self.history.setdefault(key, []).extend(values)
        self.epoch += list(range(len(self.epoch) + 1, len(self.epoch) + 1 + len(other.epoch)))
        self.batch_lr += other.batch_lr
        self.stage_ends.append(len(self.epoch))
        return self

    def plot(self, path=None, title="training"):
        """Loss and val_loss per epoch (and the rate per batch after a schedule); a PNG at
        ``path`` if given, inline in Jupyter (needs matplotlib)."""
        return plot_history(self, path, title)

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




class Checkpoint:
    """The weights and optimiser state at the start of an epoch, to go back to if it diverges."""

    def __init__(self, model, epoch, val_loss):
        self.epoch, self.val_loss = epoch, val_loss
        self.params = {k: v.copy() for k, v in model.params.items()}
        opt = model.optimizer
        self.iterations = opt.iterations
        self.state = {name: {k: a.copy() for k, a in slots.items()} for name, slots in opt.state.items()}

    def restore(self, model):
        model.set_params(self.params)
        model.optimizer.iterations = self.iterations
        model.optimizer.state = {name: {k: a.copy() for k, a in slots.items()}
                                 for name, slots in self.state.items()}

    def describe(self):
        if self.epoch == 1:
            return "it had before this fit"
        after = f" (validation MSE {self.val_loss:.4f})" if self.val_loss is not None else ""
        return f"from the start of epoch {self.epoch}, after epoch {self.epoch - 1}{after}"


def fit(model, x, y, batch_size=64, epochs=1, validation_data=None, shuffle=True, verbose=1,
        lr_schedule=None, nb_epoch=None):
    """Train ``model`` in place; returns a ``History`` (``.history["loss"/"val_loss"/"lr"]``).

    ``x`` is ``[users, movies]`` (indices: arrays, lists or pandas columns); ``validation_data``
    is ``([users, movies], y)``. ``nb_epoch`` is Keras 1's name for ``epochs``, so the
    notebook's own ``model.fit(..., nb_epoch=1, ...)`` runs as written.
    ``lr_schedule(step, n_steps)``, when given, sets the learning rate of every batch (a
    one-cycle schedule, say); ``step`` counts batches from 0 over the whole call.

    Training diverges when a batch's loss is not finite, or passes the objective's ``explosion``
    (for MSE 100 times the mean squared rating, the loss of predicting 0 for everything), or
    the validation MSE does.
    The model then goes back to the weights (and optimiser state) it had at the start of that
    epoch, and ``TrainingDiverged`` says where it happened and which weights were kept.
    """
    if nb_epoch is not None:
        if epochs not in (1, nb_epoch):
            raise ValueError(f"epochs={epochs} and nb_epoch={nb_epoch}: give one of them")
        epochs = nb_epoch
    if model.optimizer is None:
        raise RuntimeError("call model.compile(optimizer) before fit")
    users, movies = inputs.pairs(x, model.n_users, model.n_movies, model.xp)
    y = inputs.ratings(y, len(users), model.xp, model.dtype)
    batch_size = inputs.batch_size(batch_size, len(y))  # >= 1, at most the rows there are
    epochs = inputs.whole_number("epochs", epochs, 0)
    inputs.finite_positive("the learning rate (optimizer.lr)", model.optimizer.lr)
    if validation_data is not None:
        validation_data = inputs.validation_data(validation_data, model.n_users, model.n_movies,
                                                 model.xp, model.dtype)
        validation_data = validation_data if len(validation_data[1]) else None
    if len(y) == 0:
        raise ValueError("fit needs at least one training rating")
    rated = Ratings(users, movies, y)  # every training pair, which ranking never recommends
    users, movies, y = model.objective.prepare(users, movies, y, model.n_movies, model.negative_rng)
    if epochs:
        mark_trained(model, users, movies)  # the rows the objective trains (recommend checks)
    n = len(y)
    n_batches = math.ceil(n / batch_size)
    runner = runner_for(model, users, movies, batch_size, verbose)
    history, base_lr, val_loss, dead_since = History(), model.optimizer.lr, None, None
    limit = model.objective.explosion(y)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        checkpoint = Checkpoint(model, epoch, val_loss)
        batches = Batches(users, movies, y, epoch_order(n, model.shuffle_rng, shuffle, model.xp),
                          batch_size)
        if lr_schedule is None:
            lrs = np.full(n_batches, model.optimizer.lr)
        else:
            first = (epoch - 1) * n_batches
            lrs = np.array([lr_schedule(first + b, epochs * n_batches) for b in range(n_batches)])
            if not np.all(np.isfinite(lrs) & (lrs > 0)):
                raise ValueError("lr_schedule gave a learning rate that is not a finite number > 0")
        try:
            losses = _run_epoch(model, runner, batches, lrs, epoch, verbose, limit)
            seconds = time.perf_counter() - start
            loss = float(np.mean(losses)) + model.penalty()
            if validation_data is not None:
                val_loss = validate(model, rated, validation_data, limit, n_batches)
        except Diverged as e:
            checkpoint.restore(model)
            model.optimizer.lr = base_lr
            raise TrainingDiverged(
                f"training diverged at epoch {epoch}, batch {e.batch + 1}: {e.what}. The model "
                f"keeps the weights {checkpoint.describe()}. Try a smaller learning rate.") from None
        val_key = "val_loss" if model.objective.predicts == "ratings" else "val_ndcg@10"
        history.append(epoch, loss=loss, lr=float(lrs[-1]), seconds=seconds, **{val_key: val_loss})
        if lr_schedule is not None:
            history.batch_lr += lrs.tolist()
        if verbose:
            line = f"Epoch {epoch}/{epochs} - {n:,} samples - {seconds:.2f}s - loss: {loss:.4f}"
            if val_loss is not None:
                line += f" - {val_key}: {val_loss:.4f}"
            print(line, flush=True)
        if isinstance(runner, LayerRunner):  # (a fused kernel trains one exact, checked class)
            if not runner.gradient_seen and dead_since is None:
                dead_since, first = epoch, batches.order[:batch_size]
                warnings.warn(guards.no_gradient(model, epoch, users[first], movies[first]),
                              RuntimeWarning, stacklevel=3)
            elif not runner.gradient_seen:
                warnings.warn(f"epoch {epoch}: again every gradient was exactly 0 (as since "
                              f"epoch {dead_since})", RuntimeWarning, stacklevel=3)
            runner.gradient_seen = False
    if lr_schedule is not None:
        model.optimizer.lr = base_lr
    history.stage_ends.append(len(history.epoch))
    return history


def fit_one_cycle(model, x, y, epochs, lr_max, batch_size=64, validation_data=None, verbose=1,
                  **one_cycle):
    """``fit`` with the one-cycle schedule (``optim.one_cycle_lr``); ``lr`` is restored after."""
    lr_max = inputs.finite_positive("lr_max", lr_max)
    one_cycle_lr(0, 1, lr_max, **one_cycle)  # refuse bad settings now, not at batch 1
    return fit(model, x, y, batch_size, epochs, validation_data, verbose=verbose,
               lr_schedule=lambda step, n: one_cycle_lr(step, n, lr_max, **one_cycle))


def validate(model, rated, validation_data, limit, n_batches):
    """The epoch's validation figure: the plain MSE for a model of ratings (a divergence past
    ``limit``), NDCG@10 of the held-out ratings >= 4 for a model trained to rank."""
    (vu, vm), vy = validation_data
    if model.objective.predicts == "ratings":
        val_loss = model.evaluate(*validation_data)
        if not val_loss <= limit:
            raise Diverged(f"the validation MSE after it was {val_loss:.4g}", n_batches - 1)
        return val_loss
    return ranking_metrics(model, rated, Ratings(vu, vm, vy), model.n_movies)["ndcg"]  # k = min(10, M)


class Diverged(Exception):
    def __init__(self, what, batch):
        self.what, self.batch = what, batch


def _run_epoch(model, runner, batches, lrs, epoch, verbose, limit):
    """Run one epoch, in chunks of batches when a progress bar is shown; raise ``Diverged`` at
    the first batch whose loss is not finite or passes ``limit``."""
    n_batches = len(lrs)
    bar = _progress(n_batches, epoch, verbose)
    # With a bar, calls of about 1% of the epoch keep it moving; without one (and always on the
    # GPU, where the losses then come back to the host once), one call per epoch.
    chunk = n_batches if bar.disable or model.backend == "cupy" else max(1, n_batches // 100)
    losses = np.empty(n_batches)
    try:
        for first in range(0, n_batches, chunk):
            last = min(n_batches, first + chunk)
            with np.errstate(over="ignore", invalid="ignore"):  # non-finite losses: see below
                part, bad = runner.run(batches, lrs, first, last)
            losses[first:first + len(part)] = part
            if bad >= 0:
                raise Diverged(f"the loss became {part[-1]}", bad)
            over = np.flatnonzero(part > limit)
            if len(over):
                raise Diverged(f"the batch loss reached {part[over[0]]:.4g}, over "
                               f"{model.objective.explosion_text}", first + int(over[0]))
            bar.update(last - first)
    finally:
        bar.close()
    return losses


def _progress(total, epoch, verbose):
    """A tqdm bar that only appears when an epoch runs longer than a couple of seconds."""
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=f"epoch {epoch}", unit="batch", leave=False, delay=2.0,
                disable=None if verbose else True)  # None: only on a terminal
