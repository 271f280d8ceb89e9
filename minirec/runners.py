"""How a model trains, batch after batch — chosen here, in one place (``runner_for``).

``LayerRunner`` trains *any* model on any backend: each batch goes forward and backward through
the model's own layers, and then the optimiser steps. With Adam the step is ``adam_update``
from ``optim.py``, table by table: called on NumPy arrays (the reference), compiled into a
Numba loop (``kernels/numba_adam.py``), or compiled by ``cupy.fuse`` on the GPU. A new model,
or a subclass that changes ``forward``, needs nothing else.

``FusedRunner`` is an optional speed-up: a whole-model kernel registered (in ``models.py``) for
one *exact* class and backend, which does forward, backward and Adam for many batches in one
compiled call. It is used only when the model is of that exact class (a subclass never inherits
it), ``model.fused`` is true, the optimiser is Adam, and — checked once per process and
configuration — the kernel gives the same weights as the layers on a probe: a few batches of
a tiny copy of the model with repeated ids, in float64. If the reference code was edited since
(a layer, the model's ``forward``, ``adam_update``), the probe disagrees and the layers train.

A runner's ``run(batches, lrs, first, last)`` trains batches first..last-1 and returns
(batch MSEs, the first batch whose loss was not finite — not stepped — or -1).
"""
import copy
import importlib
import json
import warnings
from typing import NamedTuple

import numpy as np

from .backend import to_numpy, to_xp
from .layers import Embedding
from .losses import BalancedL2
from .models import FUSED_KERNELS
from .optim import Adam


class Batches(NamedTuple):
    """The training data and this epoch's order: batch b is order[b·size : (b+1)·size]."""
    users: object
    movies: object
    ratings: object
    order: object
    size: int


def training_regularisers(model, users, movies, batch_size):
    """The regulariser each table's *step* uses: the model's own L2, or for lazy Adam with
    ``lazy_l2="balanced"`` the ``BalancedL2`` of the ids the table reads."""
    opt = model.optimizer
    if not (opt.lazy and getattr(opt, "lazy_l2", None) == "balanced"):
        return dict(model.regularisers)
    ids = {"user": users, "movie": movies}
    return {name: BalancedL2(reg.l2, ids[model.lookups[name]], model.params[name].shape[0],
                             batch_size, model.dtype, model.xp)
            for name, reg in model.regularisers.items()}


class LayerRunner:
    """Any model: its layers' forward/backward, then the optimiser's step, table by table."""

    def __init__(self, model, regularisers):
        self.model, self.regularisers = model, regularisers
        self.numba_adam = model.backend == "numba" and isinstance(model.optimizer, Adam)
        if self.numba_adam:
            from .kernels import numba_adam, use_threads
            self.kernels, self.use_threads = numba_adam, use_threads
            self.no_rows = np.empty(0, np.intp)
            self.l2 = {name: numba_adam.l2_factors(regularisers.get(name), p)
                       for name, p in model.params.items()}

    def run(self, batches, lrs, first, last):
        model, opt = self.model, self.model.optimizer
        order, losses = to_xp(batches.order, model.xp), []
        for b in range(first, last):
            rows = order[b * batches.size:(b + 1) * batches.size]
            loss, grads = model.mse_and_grads(batches.users[rows], batches.movies[rows],
                                              batches.ratings[rows], training=True)
            losses.append(loss)
            if not np.isfinite(loss):
                return np.array(losses), b
            opt.lr = float(lrs[b])
            looked_up = {f"{name}.W": layer.rows() for name, layer in model.layers.items()
                         if isinstance(layer, Embedding)}
            if self.numba_adam:
                self.numba_step(grads, looked_up)
            else:
                grads = {name: g + self.regularisers[name].gradient(model.params[name])
                         if name in self.regularisers else g for name, g in grads.items()}
                opt.step(model.params, grads, looked_up)
        return np.array(losses), -1

    def numba_step(self, grads, looked_up):
        """``Adam.step`` with each table's update in a Numba loop (``kernels/numba_adam.py``)."""
        model, opt, kernels = self.model, self.model.optimizer, self.kernels
        opt.iterations += 1
        k = opt.constants(opt.iterations, model.dtype)
        threads = self.use_threads(model.threads)
        for name, p in model.params.items():
            t = kernels.table(p, grads[name], opt.slot(name, "m", p), opt.slot(name, "v", p),
                              *self.l2[name])
            rows = looked_up.get(name) if opt.lazy else None
            kernels.step_table(t, rows if rows is not None else self.no_rows,
                               len(rows) if rows is not None else 0, k, rows is not None, threads)


class FusedRunner:
    """A registered whole-model kernel (``kernels/<module>.py``'s ``Trainer``)."""

    def __init__(self, model, module, adapter, regularisers):
        self.module = module
        kernel = importlib.import_module(f"minirec.kernels.{module}")
        self.trainer = kernel.Trainer(model, adapter, regularisers)

    def run(self, batches, lrs, first, last):
        return self.trainer.run(batches, lrs, first, last)


def registered_kernel(model):
    """The (module, adapter) of the whole-model kernel that may train ``model``, or None."""
    if not model.fused or not isinstance(model.optimizer, Adam):
        return None
    return FUSED_KERNELS.get(type(model), {}).get(model.backend)  # type(): the exact class


def runner_for(model, users, movies, batch_size):
    """The runner that trains ``model`` in this ``fit``: the one place the choice is made."""
    regularisers = training_regularisers(model, users, movies, batch_size)
    entry = registered_kernel(model)
    if entry is not None and agrees_with_layers(model, *entry):
        return FusedRunner(model, *entry, regularisers)
    return LayerRunner(model, regularisers)


def describe(model):
    """Which runner trains ``model`` (for ``summary``), and on how many threads where that counts."""
    threads = f" on {model.threads} CPU thread{'s' if model.threads > 1 else ''}"
    entry = registered_kernel(model)
    if entry is not None:
        return (f"the fused kernel minirec/kernels/{entry[0]}.py{threads} (registered for "
                f"{type(model).__name__}, checked against its layers before use)")
    layers = f"the layers' forward/backward on {model.backend}, then"
    if model.optimizer is not None and not isinstance(model.optimizer, Adam):
        return f"{layers} {type(model.optimizer).__name__}.step"
    return {"numba": f"{layers} Adam compiled by Numba, table by table{threads}",
            "cupy": f"{layers} Adam compiled by cupy.fuse"}.get(model.backend,
                                                               f"{layers} the optimiser's step")


# ----- the probe: a fused kernel is used only where it gives the layers' numbers ---------------

_VERDICTS = {}


def agrees_with_layers(model, module, adapter):
    """True when the kernel, on a tiny float64 copy of ``model`` (same class and settings, same
    optimiser settings), ends three batches with the same weights as the layers (1e-9)."""
    opt = model.optimizer
    config = {k: v for k, v in model.config().items()
              if k not in ("class", "n_users", "n_movies", "n_factors")}
    key = (type(model), model.backend, module, json.dumps(config, sort_keys=True),
           json.dumps({k: v for k, v in vars(opt).items() if k not in ("state", "lr", "iterations")},
                      sort_keys=True))
    if key not in _VERDICTS:
        _VERDICTS[key] = _probe(model, module, adapter, config)
        if not _VERDICTS[key]:
            warnings.warn(f"the fused kernel minirec/kernels/{module}.py does not give the same "
                          f"numbers as {type(model).__name__}'s layers (was the reference code "
                          "changed?); training through the layers instead", RuntimeWarning,
                          stacklevel=4)
    return _VERDICTS[key]


def _probe(model, module, adapter, config):
    users = np.array([0, 0, 1, 3, 2, 4, 0, 1, 4, 4, 2, 0, 3, 3, 1, 0, 2, 2, 4, 1, 0, 3, 1, 2])
    movies = np.array([2, 2, 2, 5, 0, 1, 3, 2, 5, 4, 0, 1, 1, 2, 3, 4, 5, 5, 0, 2, 3, 1, 0, 4])
    ratings = np.linspace(0.5, 5.0, len(users))
    weights = []
    for backend, fused in (("numpy", False), (model.backend, True)):
        tiny = type(model)(n_users=5, n_movies=6, n_factors=3, **config, dtype=np.float64,
                           seed=0, backend=backend)
        tiny.compile(copy.copy(model.optimizer))
        tiny.optimizer.reset()
        xp = tiny.xp
        u, m, y = to_xp(users, xp), to_xp(movies, xp), to_xp(ratings, xp, np.float64)
        batches = Batches(u, m, y, to_xp(np.arange(len(users)), xp), 8)
        regularisers = training_regularisers(tiny, u, m, 8)
        runner = (FusedRunner(tiny, module, adapter, regularisers) if fused
                  else LayerRunner(tiny, regularisers))
        runner.run(batches, np.full(3, 0.01), 0, 3)
        weights.append({k: to_numpy(p) for k, p in tiny.params.items()})
    return all(np.allclose(weights[0][k], weights[1][k], rtol=1e-9, atol=1e-12) for k in weights[0])
