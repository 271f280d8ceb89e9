"""Bayesian training by Gibbs sampling — BPMF (Salakhutdinov & Mnih 2008) — for any model whose
prediction is affine in each row it looks up (the dot product, the bias model, a learner's
model of embeddings and offsets), through the model's own forward and backward.

The model: each rating is the prediction plus noise, every row of a table comes from that
table's Gaussian, and the Gaussians and the noise have conjugate priors:

    r_n ~ N(r̂_n, 1/α)                        α ~ Gamma(a0, b0)
    w_k ~ N(μ_T, Λ_T⁻¹)  for row k of table T   (μ_T, Λ_T) ~ Normal-Wishart(0, β0, ν0 = d, I)

Instead of the one best set of weights, Gibbs sampling draws weights from their posterior, one
table at a time given the rest, and predicts with the average over the draws (the posterior
mean). One sweep, for each table T in turn:

1. (μ_T, Λ_T) from their Normal-Wishart posterior given T's rows.
2. Every row of T at once from its conditional. Forward and backward with d loss/d r̂ = 1 give,
   for each rating n, h_n = ∂r̂_n/∂w_{k_n}, the gradient the table's layer receives (k_n the
   row rating n reads); r̂ being affine in that row, c_n = r̂_n - h_n · w_{k_n} is the rest of
   the prediction, and the row's posterior is Gaussian:

       Λ_k = Λ_T + α Σ_{n: k_n = k} h_n h_nᵀ          m_k = Λ_k⁻¹ (Λ_T μ_T + α Σ h_n (r_n - c_n))
       w_k = m_k + L_k⁻ᵀ z,   L_k L_kᵀ = Λ_k,   z ~ N(0, I)

   Rows of a table are independent given the others: a rating reads one row of each table.
3. α from its Gamma posterior given the residuals.

``sample`` checks what it relies on and names the piece that breaks it: every trainable table
must be read one row per rating (an ``Embedding``, or an ``Offset``: one row for everyone), and
r̂ affine in each (a ``y_range`` squash or a ReLU net is not; SVD++'s bags read many rows).
The sums over ratings are ``ops.scatter_add`` — compiled on the numba backend, like the layers'.
"""
import time

import numpy as np

from .. import inputs
from ..nn.activations import Clip
from ..backend import to_numpy, to_xp
from ..nn.layers import Embedding, Offset
from ..train.objectives import mark_trained
from .recommender import DotProductBias
from .registry import register


class Prior:
    """The conjugate priors' settings (BPMF's defaults: β0 = 2, ν0 = d, W0 = I; a vague Gamma
    on α; an offset's fixed N(0, 1/offset_precision))."""

    def __init__(self, beta0=2.0, a0=1.0, b0=1.0, offset_precision=1e-2):
        self.beta0, self.a0, self.b0, self.offset_precision = beta0, a0, b0, offset_precision


def tables(model):
    """(name, layer) of every trainable layer, refusing one Gibbs sampling cannot draw."""
    out = []
    for name, layer in model.layers.items():
        if not layer.params or not layer.trainable:
            continue
        if not isinstance(layer, (Embedding, Offset)):
            raise ValueError(f"Gibbs sampling draws tables read one row per rating (Embedding, "
                             f"Offset); layer {name!r} is a {type(layer).__name__}")
        out.append((name, layer))
    return out


def wishart(rng, df, scale):
    """One draw of a d x d Wishart(df, scale) matrix (Bartlett's decomposition)."""
    d = scale.shape[0]
    L = np.linalg.cholesky(scale)
    A = np.tril(rng.standard_normal((d, d)), -1)
    A[np.diag_indices(d)] = np.sqrt(rng.chisquare(df - np.arange(d)))
    LA = L @ A
    return LA @ LA.T


def hyperparameters(W, prior, rng):
    """(μ_T, Λ_T) drawn from their Normal-Wishart posterior given the rows W (n, d)."""
    n, d = W.shape
    mean = W.mean(axis=0)
    spread = (W - mean).T @ (W - mean)
    beta, nu = prior.beta0 + n, d + n
    scale_inv = np.eye(d) + spread + prior.beta0 * n / beta * np.outer(mean, mean)
    Lam = wishart(rng, nu, np.linalg.inv(scale_inv))
    mu = n * mean / beta + np.linalg.cholesky(np.linalg.inv(beta * Lam)) @ rng.standard_normal(d)
    return mu, Lam


def row_posteriors(model, name, layer, users, movies, y, alpha, mu, Lam):
    """(precisions Λ_k (R, d, d), means m_k (R, d)) of every row of one table (step 2)."""
    xp, ops = model.xp, layer.ops
    pred = model.forward(users, movies, training=False)
    for other in model.layers.values():
        other.grads.clear()
    h = gradient_handed_to(layer, lambda: model.backward(xp.ones_like(pred)))
    h = h.reshape(len(pred), -1)                               # (N, d): ∂r̂_n/∂w_{k_n}
    W = layer.params[next(iter(layer.params))].reshape(-1, h.shape[1])
    k = layer.idx if isinstance(layer, Embedding) else xp.zeros(len(pred), dtype=xp.intp)
    rest = pred - (h * W[k]).sum(axis=1)                       # c_n
    R, d = W.shape
    outer = xp.zeros((R, d * d), dtype=h.dtype)
    ops.scatter_add(outer, k, (h[:, :, None] * h[:, None, :]).reshape(len(pred), d * d))
    pulled = xp.zeros((R, d), dtype=h.dtype)
    ops.scatter_add(pulled, k, h * (y - rest)[:, None])
    Lam_x, mu_x = to_xp(Lam, xp, h.dtype), to_xp(mu, xp, h.dtype)
    precisions = Lam_x + alpha * outer.reshape(R, d, d)
    means = xp.linalg.solve(precisions, (Lam_x @ mu_x + alpha * pulled)[..., None])[..., 0]
    return precisions, means


def gradient_handed_to(layer, run):
    """The ``dout`` that ``run()`` (a model's backward) hands ``layer.backward``: for a table,
    each example's gradient for the row it read (what step 2 samples from)."""
    handed = []

    def recording(dout):
        handed.append(dout)
        return type(layer).backward(layer, dout)
    layer.backward = recording  # on this layer only, while ``run`` runs
    try:
        run()
    finally:
        del layer.backward
    return handed[-1]


def check_affine(model, name, layer, users, movies):
    """Refuse a model whose prediction is not affine in this table's rows: the second difference
    r̂(w + 2δ) - 2 r̂(w + δ) + r̂(w) must vanish."""
    p = layer.params[next(iter(layer.params))]
    saved = p.copy()
    delta = model.xp.asarray(np.random.default_rng(0).standard_normal(p.shape).astype(p.dtype))
    r = []
    for step in (0, 1, 2):
        p[...] = saved + step * delta
        r.append(to_numpy(model.forward(users, movies, training=False)).astype(np.float64))
    p[...] = saved
    curvature = np.max(np.abs(r[2] - 2 * r[1] + r[0]))
    if curvature > 1e-6 * (np.max(np.abs(r[1] - r[0])) + 1e-12):  # rounding is ~1e-15
        raise ValueError(f"Gibbs sampling needs a prediction linear in each table's rows, and "
                         f"{type(model).__name__}'s is not linear in {name}'s (a y_range squash, "
                         "or a layer such as ReLU between the table and the output?)")


def noise_precision(residual, prior, rng):
    """α from its posterior given the residuals r_n - r̂_n (step 3): Gamma with shape
    a0 + N/2 and *rate* b0 + Σ residual²/2. NumPy's ``gamma`` takes the scale, 1/rate."""
    rate = prior.b0 + residual @ residual / 2
    return rng.gamma(prior.a0 + len(residual) / 2, 1 / rate)


def sample(model, x, y, samples=200, burn_in=50, thin=1, prior=None, seed=0, callback=None):
    """Run the chain on training ratings (``x = [users, movies]``, ``y``); returns the list of
    kept draws, each {parameter: NumPy array}, and leaves the model at the last draw.
    ``callback(s, model)`` runs after each sweep (to watch a validation RMSE, say)."""
    from .. import inputs
    prior = prior or Prior()
    users, movies = inputs.pairs(x, model.n_users, model.n_movies, model.xp)
    y = inputs.ratings(y, len(users), model.xp, model.dtype)
    rng, parts, kept = np.random.default_rng(seed), tables(model), []
    for name, layer in parts:
        check_affine(model, name, layer, users, movies)
    alpha = 2.0
    for s in range(samples):
        for name, layer in parts:
            p = layer.params[next(iter(layer.params))]
            W = to_numpy(p).reshape(p.shape[0] if p.ndim > 1 else 1, -1).astype(np.float64)
            if isinstance(layer, Offset):
                mu, Lam = np.zeros(1), np.eye(1) * prior.offset_precision
            else:
                mu, Lam = hyperparameters(W, prior, rng)
            precisions, means = row_posteriors(model, name, layer, users, movies, y, alpha, mu, Lam)
            L = model.xp.linalg.cholesky(precisions)
            z = to_xp(rng.standard_normal(means.shape), model.xp, means.dtype)
            draw = means + model.xp.linalg.solve(L.transpose(0, 2, 1), z[..., None])[..., 0]
            p[...] = draw.reshape(p.shape)
        residual = to_numpy(y - model.forward(users, movies, training=False)).astype(np.float64)
        alpha = noise_precision(residual, prior, rng)
        if s >= burn_in and (s - burn_in) % thin == 0:
            kept.append({k: to_numpy(v).copy() for k, v in model.params.items()})
        if callback is not None:
            callback(s, model)
    return kept


class BiasedMF(DotProductBias):
    """r̂ = μ + u_i · m_j + b_i + b_j: the bias model with a global offset (``Offset``), the
    model the chain draws (without μ, the two bias tables would share the mean rating between
    them along a ridge that Gibbs sampling crosses slowly)."""

    def __init__(self, n_users, n_movies, n_factors=10, global_mean=0.0, dtype=np.float64,
                 seed=None, backend=None):
        super().__init__(n_users, n_movies, n_factors, 0.0, None, dtype, seed, backend)
        self.global_mean = float(global_mean)
        self.offset = Offset(self.global_mean, self.dtype, self.xp)

    def biases(self, z, users, movies):
        """z + b_i + b_j + μ"""
        z, back = super().biases(z, users, movies)
        return self.offset.forward(z), lambda dz: back(self.offset.backward(dz))


@register("bpmf", title="Bayesian MF (Gibbs sampling)")
class BPMF(DotProductBias):
    """The bias model, r̂ = u_i · m_j + b_i + b_j, trained by Gibbs sampling (``sample``) instead
    of Adam: BPMF with biases. Its prediction is the posterior mean over the kept draws,

        r̂ = clip( (1/S) Σ_s (u_i^s · m_j^s + b_i^s + b_j^s),  lo, hi )

    held exactly as one ``DotProductBias``: the S draws' tables side by side, each scaled by
    1/√S (so the dot products average), the biases averaged, and a ``Clip`` into (lo, hi) as
    the output step: ``clip``, or by default the training ratings' range, which ``fit`` sets
    (and the weights file records). ``rank`` is F of one draw; ``samples`` sweeps are run,
    the first ``burn_in`` discarded, then every ``thin``-th kept.
    """
    trained_by = "Gibbs sampling (gibbs.sample): no optimiser; fit draws from the posterior"
    # coldstart.fold_in fits a new user's rows from zero by gradient steps; here the user's bias
    # carries μ (and a new user's rows should start at the prior mean, not at zero), so a fold-in
    # would score every movie far too low: it is refused with this reason.
    fold_in_refused = ("its user bias carries the global mean μ, and a user it never saw has "
                       "the prior's rows, not zeros: fold-in would score every movie far too low. "
                       "Refit with the new user's ratings, or fold into a model trained by "
                       "gradient steps (bias, svdpp, svdpp-flipped, hybrid)")

    def __init__(self, n_users, n_movies, rank=10, samples=200, burn_in=50, thin=2,
                 clip=None, dtype=np.float32, seed=None, backend=None):
        self.rank, self.samples = inputs.whole_number("rank", rank, 1), inputs.whole_number("samples", samples, 1)
        self.burn_in, self.thin = inputs.whole_number("burn_in", burn_in, 0), inputs.whole_number("thin", thin, 1)
        if self.burn_in >= self.samples:
            raise ValueError(f"burn_in ({burn_in}) must be less than samples ({samples})")
        self.kept = len(range(self.burn_in, self.samples, self.thin))
        U, M = inputs.whole_number("n_users", n_users, 1), inputs.whole_number("n_movies", n_movies, 1)
        implied = self.weights_implied(U, M, self.rank, self.samples, self.burn_in, self.thin)
        inputs.memory(f"BPMF's posterior mean (rank {self.rank:,} x {self.kept:,} kept draws = "
                      f"{self.rank * self.kept:,} factors, for {U:,} users and {M:,} movies)",
                      implied * np.dtype(dtype).itemsize)  # checked before the tables exist
        super().__init__(n_users, n_movies, self.rank * self.kept, 0.0, None, dtype, seed, backend)
        self.clip = None
        if clip is not None:
            self.set_clip(clip)

    @staticmethod
    def weights_implied(n_users, n_movies, rank=10, samples=200, burn_in=50, thin=2, **settings):
        """The numbers the posterior mean holds: (U + M) rows of F = rank x kept draws, and a
        bias each."""
        kept = len(range(burn_in, samples, thin))
        return (n_users + n_movies) * (rank * kept + 1)

    def set_clip(self, clip):
        """Clip the predictions into ``clip = (lo, hi)``."""
        lo, hi = (float(v) for v in clip)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
            raise ValueError(f"BPMF's clip must be (lo, hi) with lo <= hi, got {clip!r}")
        self.clip, self.squash = (lo, hi), Clip(lo, hi)

    def fit_memory(self, n_ratings):
        """Bytes the chain needs besides this model (float64): its own tables and every kept draw
        ((kept + 1)(U + M)(rank + 1)), each table's row posteriors (4 arrays of R x rank²) and
        the per-rating outer products (2 of N x rank²)."""
        d, rows = self.rank + 1, self.n_users + self.n_movies
        return 8 * ((self.kept + 1) * rows * d + 4 * max(self.n_users, self.n_movies) * d * d
                    + 2 * n_ratings * d * d)

    def fit(self, x, y, validation_data=None, verbose=1, prior=None):
        """Draw the chain from training ratings ``x``, ``y`` and set the posterior mean. Prints
        the validation RMSE of the running posterior mean every 25 sweeps with
        ``validation_data`` and ``verbose``. Returns a one-entry ``History``."""
        from ..train.loop import History
        start = time.perf_counter()
        y_seen = to_numpy(inputs.ratings(y, len(to_numpy(y)), np, np.float64))
        if len(y_seen) == 0:
            raise ValueError("BPMF needs at least one training rating")
        inputs.memory(f"BPMF's chain ({self.samples:,} sweeps keeping {self.kept:,} draws of rank "
                      f"{self.rank:,})", self.fit_memory(len(y_seen)))
        if self.clip is None:  # the training ratings' range
            self.set_clip((y_seen.min(), y_seen.max()))
        chain = BiasedMF(self.n_users, self.n_movies, self.rank, float(np.mean(to_numpy(y))),
                         dtype=np.float64, seed=self.seed, backend=self.backend)
        watch = self.progress(validation_data) if (validation_data is not None and verbose) else None
        draws = sample(chain, x, y, self.samples, self.burn_in, self.thin, prior, self.seed or 0, watch)
        self.set_posterior_mean(draws)
        mark_trained(self, *inputs.pairs(x, self.n_users, self.n_movies, np))
        history = History()
        val = self.evaluate(*validation_data) if validation_data is not None else None
        history.append(1, loss=None, lr=None, seconds=time.perf_counter() - start, val_loss=val)
        return history

    def set_posterior_mean(self, draws):
        """The S draws of a ``BiasedMF(rank)`` as this model's one set of tables (the offset μ
        joins the user biases: b_i + μ)."""
        S = len(draws)
        scale = 1.0 / np.sqrt(S)
        self.set_params({
            "user_embedding.W": np.concatenate([d["user_embedding.W"] for d in draws], axis=1) * scale,
            "movie_embedding.W": np.concatenate([d["movie_embedding.W"] for d in draws], axis=1) * scale,
            "user_bias.W": np.mean([d["user_bias.W"] + d["offset.b"] for d in draws], axis=0),
            "movie_bias.W": np.mean([d["movie_bias.W"] for d in draws], axis=0)})

    def progress(self, validation_data):
        """A callback printing the running posterior mean's validation RMSE every 25 sweeps."""
        (vu, vm), vy = validation_data
        vu, vm, vy = to_numpy(vu), to_numpy(vm), to_numpy(vy).astype(np.float64)
        total, count = np.zeros(len(vy)), [0]

        def watch(s, chain):
            if s >= self.burn_in and (s - self.burn_in) % self.thin == 0:
                total[...] += to_numpy(chain.predict([vu, vm]))
                count[0] += 1
            if (s + 1) % 25 == 0 and count[0]:
                pred = np.clip(total / count[0], *self.clip)
                print(f"sweep {s + 1}/{self.samples}: validation RMSE of the posterior mean "
                      f"{np.sqrt(np.mean((pred - vy) ** 2)):.4f} ({count[0]} draws)", flush=True)
        return watch
