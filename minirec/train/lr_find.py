"""The learning-rate finder (Smith 2015's LR range test, as fastai's ``lr_find``).

Train on one pass of batches while the rate grows exponentially from ``start_lr`` to
``end_lr``, record the loss of each batch smoothed by an exponential moving average, and stop
once it blows up (``stop_factor`` times the lowest smoothed loss, or not finite). The loss falls
while the rate is useful and climbs once it is too large; a good rate to train with sits well
below the minimum: ``suggestion`` is the rate at the minimum smoothed loss divided by 10
(what fastai's ``minimum`` suggestion returns).

How many batches the pass takes matters more here than for image models: a batch of 64 ratings
touches about a hundred embedding rows, so after fastai's default of 100 batches most rows have
not moved at all. The default ``num_it`` is half an epoch (at least 100 batches), so that most
rows are stepped a few times; the suggestion moves with it (fewer batches, higher rate), which
is why it is a starting point, not a verdict.

The model is left exactly as it was: weights, Adam's state and step count, and the seeded
generators (shuffling, dropout) are put back afterwards.
"""
import numpy as np

from .. import inputs
from .runners import Batches, runner_for
from .loop import Checkpoint, epoch_order


class LRFinder:
    """The curve (``lrs``, smoothed ``losses``, ``raw_losses``) and ``suggestion``."""

    def __init__(self, lrs, losses, raw_losses):
        self.lrs, self.losses, self.raw_losses = np.asarray(lrs), np.asarray(losses), np.asarray(raw_losses)
        self.lr_min_loss = float(self.lrs[int(np.argmin(self.losses))])
        self.suggestion = self.lr_min_loss / 10

    def plot(self, path=None):
        """Loss against learning rate on a log axis; a PNG at ``path`` if given."""
        from .curves import plot_lr_find
        return plot_lr_find(self, path)

    def __repr__(self):
        return (f"LRFinder({len(self.lrs)} batches, lowest loss at lr {self.lr_min_loss:.1e}, "
                f"suggestion {self.suggestion:.1e})")


def lr_find(model, x, y, start_lr=1e-7, end_lr=10.0, num_it=None, batch_size=64, stop_factor=4.0,
            beta=0.98):
    """Run the LR range test on ``model`` (compiled) with ratings ``x = [users, movies]``, ``y``;
    ``num_it`` batches (default: half an epoch, at least 100)."""
    if model.optimizer is None:
        raise RuntimeError("call model.compile(optimizer) before lr_find")
    users, movies = inputs.pairs(x, model.n_users, model.n_movies, model.xp)
    y = inputs.ratings(y, len(users), model.xp, model.dtype)
    users, movies, y = model.objective.prepare(users, movies, y, model.n_movies, model.negative_rng)
    batch_size = inputs.batch_size(batch_size, len(y))  # >= 1, at most the rows there are
    if num_it is None:
        num_it = max(100, -(-len(y) // batch_size) // 2)
    num_it = inputs.whole_number("num_it", num_it, 2)
    start_lr, end_lr = (inputs.finite_positive(n, v) for n, v in (("start_lr", start_lr), ("end_lr", end_lr)))
    rates = start_lr * (end_lr / start_lr) ** (np.arange(num_it) / (num_it - 1))
    saved = Checkpoint(model, 1, None), model.optimizer.lr, [
        (rng, rng.bit_generator.state) for rng in (model.shuffle_rng, model.dropout_rng,
                                                   model.negative_rng)]
    try:
        return _range_test(model, users, movies, y, rates, batch_size, stop_factor, beta)
    finally:
        checkpoint, lr, rngs = saved
        checkpoint.restore(model)
        model.optimizer.lr = lr
        for rng, state in rngs:
            rng.bit_generator.state = state


def _range_test(model, users, movies, y, rates, batch_size, stop_factor, beta):
    runner = runner_for(model, users, movies, batch_size)
    n = len(y)
    n_batches = -(-n // batch_size)
    lrs, raw, smoothed, average, best = [], [], [], 0.0, np.inf
    done = 0
    while done < len(rates):  # as many passes over the data as the test needs batches
        batches = Batches(users, movies, y, epoch_order(n, model.shuffle_rng, True, model.xp), batch_size)
        epoch_rates = np.full(n_batches, rates[-1])
        take = min(n_batches, len(rates) - done)
        epoch_rates[:take] = rates[done:done + take]
        for first in range(0, take, 10):
            last = min(take, first + 10)
            with np.errstate(over="ignore", invalid="ignore"):
                losses, bad = runner.run(batches, epoch_rates, first, last)
            for b, loss in enumerate(losses):
                if not np.isfinite(loss):
                    return LRFinder(lrs, smoothed, raw)
                average = beta * average + (1 - beta) * loss
                value = average / (1 - beta ** (len(raw) + 1))
                lrs.append(float(epoch_rates[first + b]))
                raw.append(float(loss))
                smoothed.append(value)
                best = min(best, value)
                if value > stop_factor * best:
                    return LRFinder(lrs, smoothed, raw)
            if bad >= 0:
                return LRFinder(lrs, smoothed, raw)
        done += take
    return LRFinder(lrs, smoothed, raw)
