"""How a model trains, batch after batch — chosen here, in one place (``runner_for``).

``LayerRunner`` trains *any* model on any backend: each batch goes forward and backward through
the model's own layers (``Model.batch_loss``, with the guard rails of ``guards.py``), and
then the optimiser steps. With Adam the step is ``adam_update`` from ``optim.py``, table by
table: called on NumPy arrays (the reference), compiled into a Numba loop
(``fast/numba_adam.py``), or compiled by ``cupy.fuse`` on the GPU. A new model, or a
subclass that changes a step, needs nothing else.

``FusedRunner`` is an optional speed-up: a whole-model kernel registered with ``fused_kernel``
for one *exact* class and backend (the registrations sit in ``models/recommender.py``, beside the classes),
which does forward, backward and Adam for many batches in one compiled call. It is used only
when the model is of that exact class (a subclass never inherits it), ``model.fused`` is true,
no layer is frozen (``trainable = False``), the objective is MSE, the optimiser is Adam, and the kernel gives the same weights as the layers on a probe — a few
batches of a tiny copy of the model with repeated ids, in float64 and in the model's own dtype
(``agrees_with_layers``, below). If the reference code was edited since (a layer, the model's forward,
``adam_update``), the probe disagrees and the layers train.

A runner's ``run(batches, lrs, first, last)`` trains batches first..last-1 and returns
(batch MSEs, the first batch whose loss was not finite — not stepped — or -1). On the numba
backend, the probe and the first ``run`` may wait for Numba to compile (once: it caches the
machine code); with ``verbose``, ``runner_for`` has them say so (``compile_notes``).
"""
import contextlib
import copy
import functools
import importlib
import json
import warnings
from typing import NamedTuple

import numpy as np

from . import guards
from ..backend import to_numpy, to_xp
from ..nn.losses import BalancedL2, touch_counts
from ..nn.optim import Adam

FUSED_KERNELS = {}  # exact class -> {backend: (kernel module, adapter)}


def fused_kernel(cls, backend, module, adapter):
    """Register a whole-model kernel for ``cls`` and no other class: ``minirec/fast/<module>.py``
    (imported on first use) trains it; ``adapter(model)`` names the parameters its maths calls
    u, m, ..."""
    FUSED_KERNELS.setdefault(cls, {})[backend] = (module, adapter)


class Batches(NamedTuple):
    """The training data and this epoch's order: batch b is order[b·size : (b+1)·size]."""
    users: object
    movies: object
    ratings: object
    order: object
    size: int


def training_regularisers(model, users, movies, batch_size):
    """The regulariser each table's *step* uses: the model's own L2, or for lazy Adam with
    ``lazy_l2="balanced"`` the ``BalancedL2`` of how often the training ratings touch each row
    (a table read directly by an input, or through the bags of one: ``model.lookups``)."""
    opt = model.optimizer
    if not (opt.lazy and getattr(opt, "lazy_l2", None) == "balanced"):
        return dict(model.regularisers)
    ids, out = {"user": users, "movie": movies}, {}
    for name, reg in model.regularisers.items():
        reads, n_rows = model.lookups.get(name), model.params[name].shape[0]
        if reads is None:  # not looked up by rows (guards.check_lookups): stepped densely
            out[name] = reg
            continue
        owner, bag_layer = reads if isinstance(reads, tuple) else (reads, None)
        counts = touch_counts(ids[owner], n_rows, bag_layer.bags if bag_layer else None)
        out[name] = BalancedL2(reg.l2, counts, len(users), batch_size, model.dtype, model.xp)
    return out


NO_NOTES = contextlib.nullcontext()


def first_call_notes(run):
    """A runner's ``run`` whose first call has its ``notes`` active (``compile_notes``): a
    compile the probe did not cause (the layers' loops, a kernel's threaded variant) speaks."""
    @functools.wraps(run)
    def first_call_speaks(self, *args):
        notes, self.notes = self.notes, NO_NOTES
        with notes:
            return run(self, *args)
    return first_call_speaks


class LayerRunner:
    """Any model: its layers' forward/backward, then the optimiser's step, table by table."""
    notes = NO_NOTES

    def __init__(self, model, regularisers):
        self.model, self.regularisers = model, regularisers
        self.tables = [(f"{ln}.{pn}", layer, pn) for ln, layer in model.layers.items()
                       if layer.trainable for pn in layer.params]
        self.gradient_seen = False  # a gradient not all 0 since fit last looked (guards.some_gradient)
        self.numba_adam = model.backend == "numba" and isinstance(model.optimizer, Adam)
        if self.numba_adam:
            from ..fast import numba_adam, use_threads
            self.kernels, self.use_threads = numba_adam, use_threads
            self.no_rows = np.empty(0, np.intp)
            self.l2 = {}  # each table's (2λ in its dtype, the rows' L2 factors)
            for name, layer, pn in self.tables:
                p = layer.params[pn]
                l2, rows = numba_adam.l2_factors(regularisers.get(name), p)
                self.l2[name] = (p.dtype.type(l2), rows)

    @first_call_notes
    def run(self, batches, lrs, first, last):
        model, opt = self.model, self.model.optimizer
        order, losses = to_xp(batches.order, model.xp), []
        if self.numba_adam:  # the constants of every step of this call, worked out at once
            steps = self.kernels.adam_steps(opt, model.dtype, lrs[first:last], opt.iterations)
            threads = self.use_threads(model.threads)
        for b in range(first, last):
            rows = order[b * batches.size:(b + 1) * batches.size]
            loss, _ = model.batch_loss(batches.users[rows], batches.movies[rows],
                                       batches.ratings[rows], training=True)
            losses.append(loss)
            self.gradient_seen = self.gradient_seen or guards.some_gradient(model)
            if not np.isfinite(loss):
                return np.array(losses), b
            opt.lr = float(lrs[b])
            if self.numba_adam:
                self.numba_step(steps, b - first, threads)
            else:
                self.step()
        return np.array(losses), -1

    def step(self):
        """The optimiser's own ``step`` (the reference): L2 added to each gradient, and under
        lazy updates only the rows the batch looked up."""
        params, grads, looked_up = {}, {}, {}
        for name, layer, pn in self.tables:
            params[name], g = layer.params[pn], layer.grads[pn]
            reg = self.regularisers.get(name)
            grads[name] = g + reg.gradient(params[name]) if reg is not None else g
            if hasattr(layer, "rows"):
                looked_up[name] = layer.rows()
        self.model.optimizer.step(params, grads, looked_up)

    def numba_step(self, steps, b, threads):
        """``Adam.step`` with each table's update in a Numba loop (``fast/numba_adam.py``),
        at the constants ``steps[b]``."""
        opt, step_arrays, two_d = self.model.optimizer, self.kernels.step_arrays, self.kernels.two_d
        opt.iterations += 1
        for name, layer, pn in self.tables:
            p = layer.params[pn]
            lazy = opt.lazy and hasattr(layer, "rows")
            rows = layer.rows() if lazy else self.no_rows
            step_arrays(two_d(p), two_d(layer.grads[pn]), two_d(opt.slot(name, "m", p)),
                        two_d(opt.slot(name, "v", p)), *self.l2[name], rows, steps, b,
                        *self.kernels.compile_time(lazy, threads))


class FusedRunner:
    """A registered whole-model kernel (``fast/<module>.py``'s ``Trainer``)."""
    notes = NO_NOTES

    def __init__(self, model, module, adapter, regularisers):
        self.module = module
        kernel = importlib.import_module(f"minirec.fast.{module}")
        self.trainer = kernel.Trainer(model, adapter, regularisers)

    @first_call_notes
    def run(self, batches, lrs, first, last):
        return self.trainer.run(batches, lrs, first, last)


def registered_kernel(model, optimizer=None):
    """The (module, adapter) of the whole-model kernel that may train ``model`` with
    ``optimizer`` (default: its own), or None."""
    optimizer = optimizer or model.optimizer
    frozen = any(not layer.trainable for layer in model.layers.values())  # kernels train all
    mse = model.objective.name == "mse"  # the kernels compute the MSE's gradient only
    if not model.fused or frozen or not mse or not isinstance(optimizer, Adam):
        return None
    return FUSED_KERNELS.get(type(model), {}).get(model.backend)  # type(): the exact class


def runner_for(model, users, movies, batch_size, verbose=0):
    """The runner that trains ``model`` in this ``fit``: the one place the choice is made.
    With ``verbose``, a Numba compile in the probe or the first ``run`` says what it compiles."""
    guards.unregistered_layers(model)
    guards.check_lookups(model, model.optimizer)
    regularisers = training_regularisers(model, users, movies, batch_size)
    entry = registered_kernel(model)
    notes = compile_notes(model, entry) if verbose and model.backend == "numba" else NO_NOTES
    with notes:
        fused = entry is not None and agrees_with_layers(model, *entry)
    runner = FusedRunner(model, *entry, regularisers) if fused else LayerRunner(model, regularisers)
    runner.notes = notes
    return runner


def compile_notes(model, entry):
    """What prints while Numba compiles for ``model`` (``fast.CompileNotes``): the kernel of
    ``entry`` (module, adapter) in each dtype its probe needs, or the layers' loops."""
    from ..fast import SECONDS_PER_DTYPE, CompileNotes
    name = type(model).__name__
    if entry is None:
        return CompileNotes(f"Numba is compiling Adam's table step (minirec/fast/numba_adam.py) "
                            f"and the layers' loops (numba_ops.py) for {name} in {model.dtype}",
                            SECONDS_PER_DTYPE["layers"])
    dtypes = probe_dtypes(model)
    why = (" (float64 for the probe that checks it against the layers)" if len(dtypes) > 1 else "")
    return CompileNotes(f"Numba is compiling the fused kernel minirec/fast/{entry[0]}.py for "
                        f"{name} in {' and '.join(map(str, dtypes))}{why}",
                        SECONDS_PER_DTYPE.get(entry[0], 5) * len(dtypes))


def describe(model):
    """What will train ``model`` (for ``summary``): the runner, and the CPU threads that really
    run. Before ``compile`` it says what ``fit`` would choose for Adam, the default."""
    if getattr(model, "trained_by", None):  # a model fitted another way (EASE's closed form)
        return model.trained_by
    optimizer = model.optimizer if model.optimizer is not None else Adam()
    when = "" if model.optimizer is not None else " (no optimiser yet: this is for Adam)"
    entry = registered_kernel(model, optimizer)
    if entry is not None:
        kernel = f"the fused kernel minirec/fast/{entry[0]}.py (registered for {type(model).__name__})"
        agreed = verdict(model, *entry, optimizer)
        if agreed is False:
            return (f"the layers' forward/backward on numba, then Adam compiled by Numba, table by "
                    f"table{threads_used(model, optimizer)}: {kernel} disagreed with the layers "
                    f"on its probe{when}")
        check = ("it agreed with the layers on its probe" if agreed else
                 "if it agrees with the layers on the probe fit runs first, else the layers")
        return f"{kernel}{threads_used(model, optimizer, entry)}, {check}{when}"
    layers = f"the layers' forward/backward on {model.backend}, then"
    if not isinstance(optimizer, Adam):
        return f"{layers} {type(optimizer).__name__}.step"
    return {"numba": f"{layers} Adam compiled by Numba, table by table"
                     f"{threads_used(model, optimizer)}{when}",
            "cupy": f"{layers} Adam compiled by cupy.fuse{when}"}.get(
        model.backend, f"{layers} Adam.step on NumPy arrays{when}")


def threads_used(model, optimizer, entry=None):
    """The threads the Numba kernels really use: dense Adam steps of a big table are split over
    ``model.threads``, capped at the threads Numba has; lazy steps run on one, except where the
    kernel of ``entry`` (module, adapter) has a ``lazy_threads`` rule (``numba_mf``: a batch
    split by table, for big tables)."""
    from ..fast import available_threads
    n = min(model.threads, available_threads())
    capped = f", capped from {model.threads} at this machine's {n}" if n < model.threads else ""
    if optimizer.lazy:
        rule = entry and getattr(importlib.import_module(f"minirec.fast.{entry[0]}"),
                                 "lazy_threads", None)
        if rule and rule(model, entry[1], n) == 2:
            return (f" on 2 CPU threads, one for the users' table and one for the movies'{capped}, "
                    "while that is faster than one thread (both timed as the epoch runs: "
                    "fast/split.py)")
        if model.threads == 1 or n == 1:
            return f" on 1 CPU thread{capped}"
        why = ("its tables are too small to split between threads" if rule else
               "lazy steps run on one here")
        return f" on 1 CPU thread ({model.threads} asked for; {why})"
    if n == 1:
        return f" on 1 CPU thread{capped}"
    from ..fast.numba_adam import PARALLEL_ABOVE
    return (f" on 1 CPU thread, and {n} for the dense Adam step of each table of "
            f"{PARALLEL_ABOVE:,} entries or more{capped}")


# ----- the probe: a fused kernel is used only where it gives the layers' numbers ---------------
# Tolerances, relative to each array's largest entry, after three Adam steps: float64, 1e-9
# (only the order of sums differs: ~1e-15 a step); float32, 1e-4: its ε is 1.2e-7, and the
# kernels sum rows and products in another order than NumPy, so a few hundred operations may
# differ by some hundred ε — while a real bug (a lost factor, a gradient left in a buffer)
# moves a weight by a step, 1e-2 at the probe's rate, against weights of about 5e-2.
TOLERANCE = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}
_VERDICTS = {}


def probe_key(model, module, optimizer):
    """What a verdict depends on: the class and its settings, the optimiser's settings, the
    dtype, and the identity of the code on both sides (the model's and its layers' methods, the
    kernel module's functions, ``adam_update``), so an edit made at run time is probed anew.
    (The probe's tiny tables never reach the threaded paths, so the thread count is not part of
    it: tests hold those paths to the one-thread numbers bit for bit.)"""
    from ..nn import optim
    config = {k: v for k, v in model.config().items()
              if k not in ("class", "n_users", "n_movies", "n_factors")}
    settings = {k: v for k, v in vars(optimizer).items() if k not in ("state", "lr", "iterations")}
    kernel = importlib.import_module(f"minirec.fast.{module}")
    classes = (set(type(model).__mro__) | {type(layer) for layer in model.layers.values()}
               | {c for c in vars(kernel).values() if isinstance(c, type)})
    code = sorted(id(f) for cls in classes for f in vars(cls).values() if callable(f))
    code += sorted(id(f) for f in vars(kernel).values() if callable(f)) + [id(optim.adam_update)]
    return (type(model), model.backend, module, str(model.dtype), json.dumps(config, sort_keys=True),
            json.dumps(settings, sort_keys=True), tuple(code))


def verdict(model, module, adapter, optimizer):
    """True or False once the probe has run for this model's configuration, else None."""
    return _VERDICTS.get(probe_key(model, module, optimizer))


def agrees_with_layers(model, module, adapter):
    """True when the kernel, on tiny copies of ``model`` (same class and settings, same optimiser
    settings) in float64 and in the model's dtype, ends three batches with the same weights as
    the layers (``TOLERANCE``). A disagreement warns once, naming the dtype."""
    key = probe_key(model, module, model.optimizer)
    if key not in _VERDICTS:
        failed = [dt for dt in probe_dtypes(model) if not _probe(model, module, adapter, dt)]
        _VERDICTS[key] = not failed
        if failed:
            warnings.warn(f"the fused kernel minirec/fast/{module}.py does not give the same "
                          f"numbers as {type(model).__name__}'s layers in "
                          f"{' and '.join(map(str, failed))} (was the reference code changed?); "
                          "training through the layers instead", RuntimeWarning, stacklevel=4)
    return _VERDICTS[key]


def probe_dtypes(model):
    """The dtypes the probe runs in: float64 (where a slip shows above rounding) and the
    model's own (float32: what trains); once for a float64 model."""
    return sorted({np.dtype(np.float64), model.dtype}, key=str)


def _probe(model, module, adapter, dtype):
    users = np.array([0, 0, 1, 3, 2, 4, 0, 1, 4, 4, 2, 0, 3, 3, 1, 0, 2, 2, 4, 1, 0, 3, 1, 2])
    movies = np.array([2, 2, 2, 5, 0, 1, 3, 2, 5, 4, 0, 1, 1, 2, 3, 4, 5, 5, 0, 2, 3, 1, 0, 4])
    ratings = np.linspace(0.5, 5.0, len(users))
    config = {k: v for k, v in model.config().items()
              if k not in ("class", "n_users", "n_movies", "n_factors")}
    weights = []
    for backend, fused in (("numpy", False), (model.backend, True)):
        tiny = type(model)(n_users=5, n_movies=6, n_factors=3, **config, dtype=dtype, seed=0,
                           backend=backend)
        tiny.threads = model.threads  # so the probe compiles the kernel the run will use
        tiny.compile(copy.copy(model.optimizer))
        tiny.optimizer.reset()
        xp = tiny.xp
        u, m, y = to_xp(users, xp), to_xp(movies, xp), to_xp(ratings, xp, dtype)
        batches = Batches(u, m, y, to_xp(np.arange(len(users)), xp), 8)
        regularisers = training_regularisers(tiny, u, m, 8)
        runner = (FusedRunner(tiny, module, adapter, regularisers) if fused
                  else LayerRunner(tiny, regularisers))
        runner.run(batches, np.full(3, 0.01), 0, 3)
        weights.append({k: to_numpy(p) for k, p in tiny.params.items()})
    tol = TOLERANCE[np.dtype(dtype)]
    return all(np.max(np.abs(weights[0][k] - weights[1][k])) <= tol * np.max(np.abs(weights[0][k]))
               for k in weights[0])
