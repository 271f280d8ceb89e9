"""Cold start: a new user folded in from a handful of ratings without retraining, and what each
prediction was made from.

``fold_in(model, movies, ratings)`` returns a copy of the model with one more user — the new
user, at index ``model.n_users`` — whose own rows (in every table looked up by user: u_i, b_i,
the neural net's user embedding) are fitted to the given ratings with everything else held
fixed:

    min over the new rows θ:   (1/k) Σ_{j rated} (r̂(new user, j; θ) - r_j)²  +  λ·|θ|²

by full-batch Adam on those rows alone, through the model's own forward and backward (so it
works for any model whose users are rows of tables; the Gibbs models, whose user bias carries
μ, refuse: ``fold_in_refused``). The user's bags are filled too: N(i) (the
movies rated, SVD++'s implicit feedback) and, for the hybrid model, their side features (age
band, gender, ... : ``user_side`` ids). With no ratings at all, nothing is fitted: the new
user is scored from their bags alone (the demographics of a new ml-100k user).

``scored_from(model, what)`` says, row by row, which case a user or movie is in (trained, scored
from side features, or neither), for ``recommend`` and the messages of ``minirec recommend``.
"""
import copy

import numpy as np

from .. import inputs
from ..backend import to_numpy
from ..nn.layers import EmbeddingBag, Table


def add_user(model, rated=(), side=()):
    """A copy of ``model`` with one more user row (zeros) in every table looked up by user,
    and one more bag in every bag owned by users: the ``rated`` movies for a bag of movies
    (N(i)), the ``side`` feature ids for a bag of user features, else empty."""
    new = copy.copy(model)  # the same settings; its own layers (below) and arrays where they grow
    object.__setattr__(new, "layers", {})
    copies = {}
    for name, layer in model.layers.items():
        mine = copies[id(layer)] = copy.copy(layer)
        mine.params, mine.grads = dict(layer.params), {}
        if isinstance(layer, Table):  # a gradient buffer of its own (Table.zeroed_gradient)
            mine.dW, mine.written = None, None
        new.layers[name] = mine
    for attr, value in vars(model).items():  # self.user etc. name the copies
        if id(value) in copies:
            object.__setattr__(new, attr, copies[id(value)])
    xp = new.xp
    for name, layer in new.layers.items():
        W = layer.params.get("W")
        if isinstance(layer, EmbeddingBag):
            if getattr(layer, "row_kind", None) == "user":       # rows are users: one more
                layer.params["W"] = xp.concatenate([W, xp.zeros((1, W.shape[1]), W.dtype)])
                layer.n += 1
            if getattr(layer, "bag_owner", None) == "user":      # one bag per user: one more
                offsets, ids = (to_numpy(a) for a in layer.bags)
                kind = getattr(layer, "row_kind", None)
                mine = {"movie": rated, "user_feature": side}.get(kind, ())
                mine = np.unique(np.asarray(mine, np.int64))
                layer.set_bags((np.append(offsets, offsets[-1] + len(mine)),
                                np.concatenate([ids, mine]).astype(np.int64)), xp)
        elif new.lookups.get(f"{name}.W") == "user":
            layer.params["W"] = xp.concatenate([W, xp.zeros((1, W.shape[1]), W.dtype)])
        layer.grads = {}
    new.n_users = model.n_users + 1
    trained = getattr(model, "trained_rows", None)
    if trained is not None:  # the new user is served from what was folded in
        new.trained_rows = {"user": np.append(trained["user"], True), "movie": trained["movie"]}
    return new


def fold_in(model, movies, ratings, side=(), l2=0.3, steps=60, lr=0.2):
    """(the model with the new user added, its index): the new user's rows fitted to
    ``ratings`` of movie *indices* ``movies`` (see the module docstring); ``side``: the new
    user's side-feature ids, for a model with user features. The defaults (λ 0.3, 60 steps of
    Adam at 0.2) were chosen on the 2016 ml-latest-small new-user protocol of
    ``benchmarks/bench_side.py`` (k = 10: RMSE 0.8991 against 0.9827 at λ 0.01, with the hybrid's
    recipe before cold dropout joined it)."""
    movies = inputs.index_array(movies, model.n_movies, "movie")
    ratings = np.asarray(inputs.as_array(ratings, "ratings"), np.float64)
    if len(ratings) != len(movies):
        raise ValueError(f"{len(movies)} movies but {len(ratings)} ratings: give one rating per movie")
    if not np.all(np.isfinite(ratings)):
        raise ValueError("ratings must be finite numbers")
    l2 = inputs.finite_positive("l2", l2) if l2 else 0.0
    reason = getattr(model, "fold_in_refused", None)
    if reason:
        raise ValueError(f"{type(model).__name__} cannot fold a new user in: {reason}")
    reads_side = any(isinstance(layer, EmbeddingBag) and getattr(layer, "row_kind", None) == "user_feature"
                     and getattr(layer, "bag_owner", None) == "user" for layer in model.layers.values())
    if len(side) and not reads_side:
        raise ValueError(f"{type(model).__name__} reads no user side features (no bag of user "
                         "features a new user's demographics could fill), so they would change "
                         "nothing: give ratings alone, or use a model that reads them (hybrid)")
    new = add_user(model, rated=movies, side=side)
    user = model.n_users
    own = [f"{name}.W" for name, layer in new.layers.items()
           if not isinstance(layer, EmbeddingBag) and new.lookups.get(f"{name}.W") == "user"]
    if len(movies) == 0 or not own:
        return new, user
    xp = new.xp
    users = xp.full(len(movies), user, dtype=xp.intp)
    movies_x = xp.asarray(movies)
    y = xp.asarray(ratings.astype(new.dtype))
    m = {name: np.zeros(new.params[name].shape[1]) for name in own}
    v = {name: np.zeros(new.params[name].shape[1]) for name in own}
    for t in range(1, steps + 1):
        pred = new.forward(users, movies_x, training=False)
        new.backward(2.0 * (pred - y) / len(movies))
        for name in own:  # Adam (bias-corrected) on the new row alone, with its L2
            layer_name = name.split(".")[0]
            row = new.params[name][user]
            g = to_numpy(new.layers[layer_name].grads["W"][user]).astype(np.float64)
            g += 2.0 * l2 * to_numpy(row)
            m[name] = 0.9 * m[name] + 0.1 * g
            v[name] = 0.999 * v[name] + 0.001 * g * g
            step = lr * (m[name] / (1 - 0.9 ** t)) / (np.sqrt(v[name] / (1 - 0.999 ** t)) + 1e-8)
            new.params[name][user] = row - xp.asarray(step.astype(new.dtype))
    return new, user


NOTES = {  # what a row in each case is scored from, as the outputs say it
    ("movie", "side"): "no training ratings: scored from its genres, year and tags",
    ("user", "side"): "no training ratings: scored from their age band, gender, occupation "
                      "and region",
}


def scored_from(model, what):
    """Per row of ``what`` ("user" or "movie"), what the model scores it from: "trained" (the
    row had training ratings), "side" (none, but side features the model reads: the hybrid's
    ``movie_side`` / ``user_side`` bags, non-empty), or "nothing" (neither: its rows are their
    start, random or zero, so any score of it is noise and is not served). A file that does not
    record its trained rows (an older one) counts every row as trained."""
    n = model.n_users if what == "user" else model.n_movies
    masks = getattr(model, "trained_rows", None)
    trained = np.ones(n, bool) if masks is None else np.asarray(masks[what], bool)
    layer = getattr(model, f"{what}_side", None)
    has_side = (np.diff(to_numpy(layer.bags[0])) > 0 if isinstance(layer, EmbeddingBag)
                else np.zeros(n, bool))
    return np.where(trained, "trained", np.where(has_side, "side", "nothing"))
