"""The guard rails round a learner's model: it trains right or stops, naming the piece.

* ``clear_gradients``: every step starts with no gradient in any layer, so a gradient found
  after ``backward`` was made by this backward — never one left from an earlier batch.
* ``check_gradients``: after ``backward`` every trainable parameter holds a gradient of its
  own shape and dtype; a missing one names the layer its backward skipped.
* ``unregistered_layers``: a layer with parameters that the model holds (in an attribute, a
  list, a dict) but has not registered would never train; ``compile`` and ``fit`` refuse it.
* ``some_gradient`` / ``no_gradient``: an epoch in which every gradient of every batch was
  exactly 0 (a step flat where the model stands: a ``Clip`` whose inputs all lie below its
  floor) trains nothing; ``fit`` warns, naming the model's steps.
* ``check_lookups``: lazy Adam balances each table's L2 by how often its rows are looked up,
  so every regularised table it updates row by row must say which input it reads.

micrograd gets the first two for free (backward is a closure made beside forward); minirec's
layers are objects, so it checks.
"""
from ..nn.layers import Layer, ModelError  # noqa: F401  (ModelError: the layers raise it too)


def clear_gradients(model):
    for layer in model.layers.values():
        layer.grads.clear()


def check_gradients(model):
    """Refuse a backward that left a trainable parameter without a fresh gradient of its shape
    and dtype, or filled a gradient for a parameter that does not exist."""
    name = type(model).__name__
    for ln, layer in model.layers.items():
        if not layer.trainable:
            continue
        for pn, p in layer.params.items():
            g = layer.grads.get(pn)
            if g is None:
                raise ModelError(
                    f"{ln}.{pn} got no gradient from {name}.backward: the forward pass used "
                    f"layer {ln!r} (it is registered), but backward never called "
                    f"{ln}.backward(...) — or skipped it for this batch. Pass every layer the "
                    f"gradient of its output, or set {ln}.trainable = False to freeze it.")
            if tuple(g.shape) != tuple(p.shape) or g.dtype != p.dtype:
                raise ModelError(f"{ln}.{pn}: backward gave a gradient of shape "
                                 f"{tuple(g.shape)}, {g.dtype}, but the parameter is "
                                 f"{tuple(p.shape)}, {p.dtype}")
        extra = set(layer.grads) - set(layer.params)
        if extra:
            raise ModelError(f"layer {ln!r} filled gradients for {sorted(extra)}, which are not "
                             f"among its parameters {sorted(layer.params)}")


def held_layers(value, path, seen):
    """(path, layer) for every Layer reachable from ``value`` through lists, tuples and dicts."""
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, Layer):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for k, item in enumerate(value):
            yield from held_layers(item, f"{path}[{k}]", seen)
    elif isinstance(value, dict):
        for k, item in value.items():
            yield from held_layers(item, f"{path}[{k!r}]", seen)


def unregistered_layers(model):
    """Refuse a model that holds a layer with parameters it has not registered."""
    registered = {id(layer) for layer in model.layers.values()}
    seen = {id(model.layers)}
    for attribute, value in vars(model).items():
        for path, layer in held_layers(value, f"self.{attribute}", seen):
            if id(layer) not in registered and layer.params:
                raise ModelError(
                    f"{type(model).__name__} holds a {type(layer).__name__} with parameters at "
                    f"{path} that it has not registered, so it would never train (and the "
                    "gradient check would skip it). Give it an attribute of its own "
                    "(self.name = layer registers it) or call self.add_layer('name', layer).")


def check_lookups(model, optimizer):
    """Under lazy Adam with the balanced L2, refuse a regularised table that a lazy step
    updates row by row but whose input the model never declared."""
    if not (optimizer.lazy and getattr(optimizer, "lazy_l2", None) == "balanced"):
        return
    for name in model.regularisers:
        layer = model.layers[name.split(".")[0]]
        if hasattr(layer, "rows") and name not in model.lookups:
            raise ModelError(
                f"lazy Adam balances the L2 of {name} by how often each of its rows is looked "
                f"up, so it needs to know which input the table reads. Declare it in "
                f"{type(model).__name__}.__init__: self.lookups[{name!r}] = 'user' (or "
                "'movie'), or build the table with self.embedding(...) / self.bag(...), which "
                "declare it; or use Adam(lazy=True, lazy_l2='seen').")


def some_gradient(model):
    """True when the last backward left a gradient that is not exactly 0 somewhere (in a table,
    only the rows the batch looked up can be), or when nothing is trainable."""
    trainable = False
    for layer in model.layers.values():
        for g in (layer.grads.values() if layer.trainable else ()):
            trainable = True
            if bool((g[layer.rows()] if hasattr(layer, "rows") else g).any()):
                return True
    return not trainable


def no_gradient(model, epoch, users, movies):
    """The warning for an epoch in which every gradient of every batch was exactly 0, naming
    the model's steps (and the first one, going backward, that passes back only zeros, found
    on the training rows ``users``, ``movies``)."""
    name = type(model).__name__
    if hasattr(model, "step_names"):  # a Recommender: score, biases, output
        steps = f"its steps {', '.join(model.step_names())}"
        flat = model.flat_step(users, movies)
        clear_gradients(model)
        if flat is not None:
            steps += (f"; going backward, {getattr(type(model), flat).__qualname__} already "
                      "hands back nothing but zeros")
    else:
        steps = f"{name}.backward, through its layers {', '.join(model.layers)}"
    return (f"epoch {epoch}: every gradient of every batch was exactly 0, so {name} learned "
            f"nothing from the ratings (only a penalty or weight decay moved its weights). The "
            f"gradient dies on its way back through {steps}. A step that is flat where the "
            "model stands passes back zeros: a Clip(lo, hi) whose inputs all lie outside "
            "(lo, hi), a ReLU that is never on. Start the model where that step has a slope, "
            "or use a smooth one (SigmoidRange).")
