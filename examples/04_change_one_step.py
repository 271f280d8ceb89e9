"""Step 4: change one step of a built-in model — and the trap in clipping its output.

Run:  python examples/04_change_one_step.py [--data ml-latest-small] [--seed 42] [--quick]

The built-in models are compositions of three steps (``minirec/models/recommender.py``):

    r̂ = output(biases(score(users, movies)))

and each step is a method that returns its value and its own backward. Step 3 wrote a model
whole; here a subclass of ``DotProductBias`` changes one step, ``output``, to keep predictions
on the rating scale with ``Clip(0.5, 5)``: r̂ = min(max(z, 0.5), 5).

The trap: Clip passes a gradient only where its input is inside (0.5, 5) — a clamped prediction
does not move with z. The embeddings start uniform in ±0.05, so z = u_i · m_j + b_i + b_j starts
near 0, below 0.5, for every rating: every prediction is clamped, every gradient of the loss is
exactly zero, and the model never trains. No error, no NaN: its validation MSE simply stays where
it started, epoch after epoch. Two fixes, side by side:

* an offset that starts the inputs inside: z + μ, μ a learned ``Offset`` starting at the
  training mean — then Clip passes gradients, and only clamped predictions stop;
* a smooth range instead of a clamp: ``SigmoidRange(0, 5.5)``, r̂ = 5.5·σ(z), whose gradient is
  never zero (the built-in ``y_range=(0, 5.5)`` is this same ``output`` step).

--quick (or MINIREC_QUICK=1): a small synthetic data set on the NumPy backend, a few seconds.
"""
import argparse
import os

import numpy as np

import minirec
from minirec import Adam, Clip, DotProductBias, Offset, SigmoidRange
from minirec.backend import to_numpy


class Clipped(DotProductBias):
    """r̂ = clip(u_i · m_j + b_i + b_j, 0.5, 5): one step, ``output``, changed."""

    def __init__(self, n_users, n_movies, **kwargs):
        super().__init__(n_users, n_movies, **kwargs)
        self.clip = Clip(0.5, 5.0)

    def output(self, z):
        return self.clip.forward(z), self.clip.backward


class ClippedFromMean(Clipped):
    """r̂ = clip(μ + u_i · m_j + b_i + b_j, 0.5, 5), μ learned, starting at ``global_mean``."""

    def __init__(self, n_users, n_movies, global_mean, **kwargs):
        super().__init__(n_users, n_movies, **kwargs)
        self.mu = Offset(global_mean, self.dtype, self.xp)

    def output(self, z):
        r, back_clip = super().output(self.mu.forward(z))
        return r, lambda dr: self.mu.backward(back_clip(dr))


class Squashed(DotProductBias):
    """r̂ = 0 + 5.5·σ(u_i · m_j + b_i + b_j): a SigmoidRange as the ``output`` step."""

    def __init__(self, n_users, n_movies, **kwargs):
        super().__init__(n_users, n_movies, **kwargs)
        self.range = SigmoidRange(0.0, 5.5)

    def output(self, z):
        return self.range.forward(z), self.range.backward


parser = argparse.ArgumentParser(description="one step of a built-in model changed: Clip's trap")
parser.add_argument("--data", default="ml-latest-small", help="a release name or a folder")
parser.add_argument("--seed", type=int, default=42)
parser.add_argument("--quick", action="store_true", default=os.environ.get("MINIREC_QUICK") == "1",
                    help="a small synthetic data set, a few seconds (also MINIREC_QUICK=1)")
args = parser.parse_args()
backend = "numpy" if args.quick else None

ds = (minirec.synthetic_movielens(n_users=100, n_movies=150, n_ratings=3000, seed=0)
      if args.quick else minirec.load_movielens(args.data))
train, valid = ds.split(0.8, seed=args.seed)
kw = dict(n_factors=50, l2=1e-4, seed=args.seed, backend=backend)
models = {"Clip(0.5, 5)": Clipped(ds.n_users, ds.n_movies, **kw),
          "Clip(0.5, 5) after z + μ": ClippedFromMean(ds.n_users, ds.n_movies,
                                                      global_mean=float(np.mean(train.y)), **kw),
          "SigmoidRange(0, 5.5)": Squashed(ds.n_users, ds.n_movies, **kw)}

first = [train.user[:64], train.movie[:64]], train.rating[:64]  # a first batch, to look inside
for label, model in models.items():
    model.compile(Adam(0.001))
    model.loss_and_grads(*first)  # forward and backward once; model.grads: the loss's alone
    biggest = max(float(np.max(np.abs(to_numpy(g)))) for g in model.grads.values())
    inside = (f"{np.mean(to_numpy(model.clip.inside)):.0%} of the first batch's z inside "
              "(0.5, 5)" if isinstance(model, Clipped) else "σ'(z) > 0 for every z")
    before = model.evaluate(valid.x, valid.y)
    history = model.fit(train.x, train.y, batch_size=64, epochs=3,
                        validation_data=(valid.x, valid.y), verbose=0)
    curve = " -> ".join(f"{v:.4f}" for v in [before] + history.history["val_loss"])
    print(f"{label}:\n  at the start {inside}; largest |d MSE / d weight| {biggest:.3g}\n"
          f"  validation MSE before training, then by epoch: {curve}")
    if biggest == 0:
        print("  every gradient of the loss is exactly 0: the model never trains (only the L2 "
              "shrinks its embeddings); no error, no NaN")
