"""The registry of model kinds: the one place that says which models exist, by short name.

A model class joins with the ``register`` decorator::

    @minirec.register("gmf", title="generalised matrix factorisation")
    class GMF(minirec.Model):
        ...

and from then on the CLI (``minirec train --model gmf``), ``lesson4``, the benchmarks and the
weights loader (``model_from_weights`` rebuilds a saved model from the class name in its file)
all know it. The built-in models register themselves in ``models/recommender.py``; a learner's class,
registered in their own script, saves and loads by name the same way.

This module imports nothing from minirec, so every other module may read it.
"""

KINDS = {}    # short name -> class        ("bias" -> DotProductBias)
TITLES = {}   # short name -> what a table calls it ("dot product + biases")


def register(name, title=None):
    """Class decorator: make ``cls`` known as ``name`` (a short name, as the CLI spells it)."""
    if not (isinstance(name, str) and name.replace("_", "").replace("-", "").isalnum()):
        raise ValueError(f"a model kind's name must be a short word, got {name!r}")

    def add(cls):
        known = KINDS.get(name)
        if known is not None and where(known) != where(cls):
            raise ValueError(f"the model kind {name!r} is already {known.__qualname__}; choose "
                             f"another name for {cls.__qualname__}")
        clash = class_named(cls.__name__)
        if clash is not None and clash is not known and where(clash) != where(cls):
            raise ValueError(f"a model class named {cls.__name__} is already registered (as "
                             f"{kind_of(clash)!r}); saved weights name their class, so two "
                             "registered classes may not share a name")
        KINDS[name] = cls
        TITLES[name] = title or cls.__name__
        return cls
    return add


def where(cls):
    """Where a class is defined: a class defined again there (a notebook cell run twice)
    replaces its earlier self."""
    return cls.__module__, cls.__qualname__


def class_named(class_name):
    """The registered class called ``class_name`` (what a weights file records), or None."""
    return next((cls for cls in KINDS.values() if cls.__name__ == class_name), None)


def kind_of(cls):
    """The short name ``cls`` is registered under, or None."""
    return next((name for name, known in KINDS.items() if known is cls), None)


def title_of(kind):
    return TITLES.get(kind, kind)
