"""Mult-VAE (Liang, Krishnan, Hoffman and Jebara 2018, "Variational Autoencoders for
Collaborative Filtering"): a user's whole row of interactions in, a softmax over every movie out.

Letters: N users in a batch, M movies, H hidden units, K latent dimensions (``n_factors``).
x_i (M,) is user i's row: 1 for each movie they rated in training, else 0.

    encoder   h = tanh(W_e ᵀ drop(x_i / ||x_i||) + b_e)          (H,)   inverted dropout, p
              μ_i = W_μ ᵀ h + b_μ,   log σ²_i = W_σ ᵀ h + b_σ      (K,)   q(z | x_i) = N(μ_i, σ²_i)
    sample    z = μ_i + σ_i ⊙ ε,   ε ~ N(0, I)                     (K,)   (z = μ_i at evaluation)
    decoder   a = W_o ᵀ tanh(W_d ᵀ z + b_d) + b_o                  (M,)
              π_i = softmax(a)                                     (M,)   where the user's next
                                                                           rating goes
    loss      -(1/N) Σ_i Σ_j x_ij log π_ij  +  β (1/N) Σ_i KL(N(μ_i, σ²_i) || N(0, I))

The first term is the multinomial log-likelihood of the rows (every rated movie is one draw
from π_i); the second keeps each user's code near the prior. At optimiser step t,
β = min(``beta``, t / ``anneal_steps``): it grows by 1/``anneal_steps`` a step until it reaches
``beta`` (Liang et al.'s KL annealing, capped; 0: β = ``beta`` from the start). A movie's score
for ranking is log π_ij at z = μ_i, from the user's training row.

The backward pass, in ``backward_rows``, is the forward read from the bottom up; every step is
``nn/layers.py``'s ``Dense`` or a piece of ``nn/variational.py`` (``SparseDense``: the first
layer, with the input's normalisation and dropout, summed over the movies each user rated;
``Tanh``, ``Reparameterise``, ``LogSoftmax``, the two loss terms), each gradient-checked on its
own (``minirec gradcheck``), and the whole model is checked too.

How it trains. The examples are *users*, not ratings: ``fit(x, y)`` takes the training pairs
like every model, makes them each user's row (``UserRows``), and then runs the same loop, runner
and optimiser as the rating models (``train/loop.py``, ``LayerRunner``, ``Adam``) over batches
of users: the ``ELBO`` objective below turns the pairs into one example per user, and a batch's
loss and gradients come from ``MultVAE.elbo``. (There is no whole-model kernel: the work is in
matrix products, which NumPy's BLAS already runs at speed on both CPU backends; on numba the
Adam step and ``SparseDense``'s scatter-adds are the compiled twins.) ``forward(users,
movies)`` gives log π for (user, movie) pairs, so ``predict``, ``ranking_metrics``,
``recommend`` and saving work as for any model.
"""
import numpy as np

from .. import inputs
from ..backend import get_array_module, to_numpy, to_xp
from ..nn.layers import Dense
from ..nn.losses import L2
from ..nn.variational import (LogSoftmax, Reparameterise, SparseDense, Tanh, UserRows,
                              kl_to_standard_normal, multinomial_nll)
from ..train import guards
from .model import Model
from .registry import register
from .svdpp import rated_by


# The recipe ``minirec train --model multvae`` and benchmarks/bench_recommenders.py use: chosen on
# a validation cut of the ml-100k training split under the Recommenders protocol
# (benchmarks/recommenders_choice.py; docs/recommenders-protocol.md). Liang et al.'s own
# settings (K 200, H 600, dropout 0.5, β 0.2) overfit there after about 30 epochs (0.2675, then
# 0.2270 at 100); K 100, H 300, β 0.5 reached 0.2718 after 60.
RECIPE = dict(model=dict(n_factors=100, hidden=300, dropout=0.5, beta=0.5, l2=0.0),
              lr=1e-3, batch_size=100, epochs=60)


class ELBO:
    """The objective of a model trained on whole user rows (Mult-VAE): one example per user.

    ``prepare`` turns the training pairs into the users who have a row to reconstruct (at least
    one pair rated ``positive_at`` or more, if given); ``batch`` asks the model for the batch's
    negative ELBO (``MultVAE.elbo``), which also runs its backward pass. Predictions are scores.
    """
    name, predicts = "elbo", "scores"
    explosion_text = "100x the loss of a uniform π (log M per rated movie)"

    def __init__(self, positive_at=None):
        self.positive_at = positive_at

    def prepare(self, users, movies, y, n_movies, rng):
        xp = get_array_module(users)
        keep = np.ones(len(users), bool) if self.positive_at is None else to_numpy(y) >= self.positive_at
        u = to_numpy(users)[keep]
        if not len(u):
            raise ValueError(f"no training rating is {self.positive_at:g} or more: Mult-VAE has "
                             "no row to learn from")
        sizes = np.bincount(u)
        self.uniform_loss = float(sizes[sizes > 0].mean()) * float(np.log(n_movies))
        distinct = to_xp(np.unique(u), xp).astype(users.dtype)
        return distinct, xp.zeros_like(distinct), xp.zeros(len(distinct), dtype=y.dtype)

    def batch(self, model, users, movies, y, training=True):
        return model.elbo(users, training)

    def settings(self):
        return {"name": self.name, "positive_at": self.positive_at}

    def explosion(self, y):
        return 100.0 * self.uniform_loss


@register("multvae", title="Mult-VAE (variational autoencoder)")
class MultVAE(Model):
    """Mult-VAE (module docstring). ``n_factors`` is K, the latent code's size; ``hidden`` H;
    ``dropout`` the drop probability on the input row; ``beta`` the KL weight, reached after
    ``beta`` · ``anneal_steps`` Adam steps (β grows by 1/``anneal_steps`` a step); ``l2``
    Keras's λ·ΣW² on the five weight matrices (not the biases); ``positive_at`` the rating from which a training pair enters a user's row (default:
    every rated pair). ``bags``: the users' rows as CSR (``svdpp.rated_by``); ``fit`` builds them
    from its training pairs, and saved weights bring them back.
    """
    not_in_config = ("bags",)  # saved as the rows layer's buffers

    def __init__(self, n_users, n_movies, n_factors=200, hidden=600, dropout=0.5, beta=0.2,
                 anneal_steps=0, l2=0.0, positive_at=None, bags=None, dtype=np.float32, seed=None,
                 backend=None):
        super().__init__(n_users, n_movies, n_factors, dtype, seed, backend)
        self.hidden = inputs.whole_number("hidden", hidden, 1)
        self.dropout = inputs.probability("dropout", dropout)
        self.beta, self.anneal_steps, self.l2 = float(beta), int(anneal_steps), float(l2)
        if not (np.isfinite(self.beta) and self.beta >= 0 and self.anneal_steps >= 0):
            raise ValueError(f"beta must be >= 0 and anneal_steps >= 0, got {beta!r}, {anneal_steps!r}")
        self.positive_at = positive_at
        if bags is None:  # nobody has a row yet: fit, or a weights file, brings them
            bags = (np.zeros(self.n_users + 1, np.int64), np.zeros(0, np.int64))
        M, H, K = self.n_movies, self.hidden, self.n_factors
        rng, dt, xp = self.init_rng, self.dtype, self.xp
        self.rows = UserRows(self.n_users, M, bags, dt, xp)
        self.encoder = SparseDense(self.rows, H, self.dropout, rng, self.dropout_rng, dt, xp)
        self.encoder_tanh = Tanh()
        self.mu, self.logvar = Dense(H, K, rng, dt, xp), Dense(H, K, rng, dt, xp)
        self.sample = Reparameterise(rng=self.dropout_rng)
        self.decoder, self.decoder_tanh = Dense(K, H, rng, dt, xp), Tanh()
        self.out, self.log_softmax = Dense(H, M, rng, dt, xp), LogSoftmax()
        if self.l2:
            for name in ("encoder", "mu", "logvar", "decoder", "out"):
                self.regularisers[f"{name}.W"] = L2(self.l2)
        self.objective = ELBO(positive_at)

    # ----- the maths ----------------------------------------------------------------------
    def forward_rows(self, users, training=True):
        """The users' rows x (N, M), their codes' μ and log σ² (N, K), and log π (N, M)."""
        x = self.rows.forward(users)
        h = self.encoder_tanh.forward(self.encoder.forward(users, training))  # drop(x/||x||) W_e + b_e
        mu, logvar = self.mu.forward(h), self.logvar.forward(h)
        z = self.sample.forward(mu, logvar, training)
        h = self.decoder_tanh.forward(self.decoder.forward(z))
        logp = self.log_softmax.forward(self.out.forward(h))
        return x, mu, logvar, logp

    def backward_rows(self, dlogp, dmu, dlogvar):
        """Backpropagate d loss / d log π (N, M), plus the KL term's own d loss / dμ and
        d loss / d log σ² (N, K), through every layer: the forward read from the bottom up."""
        dh = self.out.backward(self.log_softmax.backward(dlogp))
        dz = self.decoder.backward(self.decoder_tanh.backward(dh))
        dmu_sample, dlogvar_sample = self.sample.backward(dz)       # z = μ + σ ε
        dh = self.mu.backward(dmu + dmu_sample) + self.logvar.backward(dlogvar + dlogvar_sample)
        self.encoder.backward(self.encoder_tanh.backward(dh))      # (the rows are data: no gradient)

    def beta_now(self):
        """β for this step: min(``beta``, t / ``anneal_steps``) at optimiser step t."""
        if not self.anneal_steps:
            return self.beta
        steps = self.optimizer.iterations if self.optimizer is not None else 0
        return min(self.beta, steps / self.anneal_steps)

    def elbo(self, users, training=True):
        """The batch's loss, -ELBO with the KL weighed by β (module docstring), after running
        its backward pass: every layer's gradient is filled."""
        x, mu, logvar, logp = self.forward_rows(users, training)
        nll, dlogp = multinomial_nll(logp, x)
        kl, dmu, dlogvar = kl_to_standard_normal(mu, logvar)
        beta = self.beta_now()
        self.backward_rows(dlogp, beta * dmu, beta * dlogvar)
        return nll + beta * kl

    def forward(self, users, movies, training=False):
        """log π_ij for each (user, movie) pair (N,): each distinct user's row goes through the
        network once."""
        distinct, row = self.xp.unique(users, return_inverse=True)
        logp = self.forward_rows(distinct, training)[3]
        return logp[row.ravel(), movies]

    def backward(self, dpred):
        raise TypeError("Mult-VAE trains on whole user rows (its ELBO objective, MultVAE.elbo), "
                        "not on (user, movie) pairs: it has no backward for single predictions")

    def score_rows(self, users):
        """log π (N, M) of ``users`` at z = μ (no dropout, no noise), as NumPy: every movie's
        score at once (what a top-k list needs)."""
        users = inputs.index_array(users, self.n_users, "user")
        return to_numpy(self.forward_rows(to_xp(users, self.xp), training=False)[3])

    # ----- training -----------------------------------------------------------------------
    def compile(self, optimizer, loss="elbo"):
        """Attach an optimiser (Adam, say); the objective is always the ELBO."""
        if not (loss == "elbo" or isinstance(loss, ELBO)):
            raise ValueError(f"Mult-VAE trains on its ELBO (loss='elbo'), not {loss!r}")
        self.objective = loss if isinstance(loss, ELBO) else ELBO(self.positive_at)
        guards.unregistered_layers(self)
        self.optimizer = optimizer
        return self

    def fit(self, x, y, batch_size=500, epochs=1, validation_data=None, shuffle=True, verbose=1,
            lr_schedule=None, nb_epoch=None):
        """Make each user's row from the training pairs ``x`` (those rated ``positive_at`` or
        more, if set), then train as any model does — on batches of ``batch_size`` *users*."""
        users, movies = inputs.pairs(x, self.n_users, self.n_movies, np)
        y_np = inputs.ratings(y, len(users), np, self.dtype)
        keep = np.ones(len(users), bool) if self.positive_at is None else y_np >= self.positive_at
        self.rows.set_bags(rated_by(users[keep], movies[keep], self.n_users), self.xp)
        return super().fit(x, y, batch_size, epochs, validation_data, shuffle, verbose,
                           lr_schedule, nb_epoch)

    def remap(self, what, order):
        """Follow a new order of the data's ids: ``order[k]`` is the old index of new index k.
        Users own the rows; movies are the encoder's input rows, the output's columns and the
        ids inside every row."""
        offsets, ids = (to_numpy(a) for a in self.rows.bags)
        if what == "user":
            sizes = np.diff(offsets)[order]
            ids = np.concatenate([ids[offsets[r]:offsets[r + 1]] for r in order] or [ids[:0]])
            offsets = np.concatenate([[0], np.cumsum(sizes)])
        else:
            index = self.xp.asarray(order)
            W_e, W_o, b_o = self.encoder.params["W"], self.out.params["W"], self.out.params["b"]
            W_e[...], W_o[...], b_o[...] = W_e[index], W_o[:, index], b_o[index]
            new_of_old = np.empty(len(order), np.int64)
            new_of_old[order] = np.arange(len(order))
            ids = new_of_old[ids]
            u = np.repeat(np.arange(self.n_users), np.diff(offsets))
            offsets, ids = rated_by(u, ids, self.n_users)  # each row's ids sorted again
        self.rows.set_bags((offsets, ids))
