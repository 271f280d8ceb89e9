"""Step 9: a variational autoencoder for recommendation (Mult-VAE), its backprop read in one sitting.

Run:  python examples/09_multvae.py [--data ml-100k] [--seed 42] [-k 10] [--quick]

Step 6 ranked with a bias model trained on choices (BPR) and with EASE. Mult-VAE (Liang et al.
2018; ``minirec/models/multvae.py``) reads a user's *whole row* of choices at once:

    h = tanh(drop(x / ||x||) W_e + b_e)           x: the user's row, 1 for each movie rated
    μ = h W_μ + b_μ,  log σ² = h W_σ + b_σ         the user's code, a Gaussian q(z | x)
    z = μ + σ ⊙ ε,  ε ~ N(0, I)                    one draw (z = μ when recommending)
    π = softmax(tanh(z W_d + b_d) W_o + b_o)       where the user's next choice goes
    loss = -Σ_j x_j log π_j + β KL(q(z | x) || N(0, I))

Each line is a layer with a forward and a backward (``minirec/nn/variational.py``: SparseDense,
Tanh, Reparameterise, LogSoftmax, the two loss terms). The script prints them in forward order
(the backward pass, ``MultVAE.backward_rows``, runs them from the bottom up), gradient-checks
the whole model on a tiny copy, shows one step of the backward by hand (the softmax's gradient
is π·n - x), then trains it with
its recipe (``multvae.RECIPE``) through the same loop and Adam as every model and ranks beside
EASE and popularity, as step 6 did.

--quick (or MINIREC_QUICK=1): a small synthetic data set on the NumPy backend, a few seconds
(a synthetic user's movies follow popularity alone: the table says nothing about real data).
"""
import argparse
import os

import numpy as np

import minirec
from minirec import Adam
from minirec.models import multvae, recipes
from minirec.models.multvae import MultVAE
from minirec.nn import gradcheck
from minirec.nn.variational import multinomial_nll
from minirec.tools.analysis import ranking_metrics

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--data", default="ml-100k")
parser.add_argument("--seed", type=int, default=42)
parser.add_argument("-k", type=int, default=10)
parser.add_argument("--quick", action="store_true", default=os.environ.get("MINIREC_QUICK") == "1",
                    help="a small synthetic data set, a few seconds (also MINIREC_QUICK=1)")
args = parser.parse_args()
backend = "numpy" if args.quick else None

# ---- 1. the layers, in forward order ------------------------------------------------------------------
rows = (np.array([0, 2, 2, 5, 6, 9]), np.array([2, 5, 0, 1, 2, 3, 0, 4, 5]))  # 5 users' rows, 6 movies
tiny = MultVAE(5, 6, n_factors=3, hidden=4, dropout=0.3, beta=0.7, bags=rows, dtype=np.float64,
               seed=0, backend="numpy")
print("layers, forward:", " -> ".join(f"{name} ({type(layer).__name__})"
                                       for name, layer in tiny.layers.items()))
print("the backward pass (MultVAE.backward_rows) runs them from the bottom up; mu and logvar both")
print("feed the sample, so the encoder's tanh receives the sum of their two backward outputs")

# ---- 2. every gradient of the whole model against central differences --------------------------------
result = gradcheck.check_model(tiny, "MultVAE", gradcheck.SMOOTH_BOUND)
worst = max(result.values())
print(f"gradient check of {len(result)} weight arrays: largest relative error {worst:.1e} "
      f"(bound {gradcheck.SMOOTH_BOUND:g})")

# ---- 3. the first step of the backward, by hand -----------------------------------------------------
x, mu, logvar, logp = tiny.forward_rows(np.arange(5), training=False)
loss, dlogp = multinomial_nll(logp, x)
pi, n = np.exp(logp), x.sum(axis=1, keepdims=True)
by_hand = (pi * n - x) / len(x)  # d loss / d a, the softmax's input: π·n - x, over the batch
print("d loss / d logits by hand equals LogSoftmax.backward:",
      np.allclose(tiny.log_softmax.backward(dlogp), by_hand, rtol=1e-12, atol=1e-15))

# ---- 4. train it, and rank ---------------------------------------------------------------------------
ds = (minirec.synthetic_movielens(n_users=100, n_movies=150, n_ratings=3000, seed=0)
      if args.quick else minirec.load_movielens(args.data))
train, valid = ds.split(0.8, seed=args.seed)
r = dict(multvae.RECIPE, epochs=5) if args.quick else multvae.RECIPE
vae = recipes.build("multvae", ds, args.seed, backend, train=train, **r["model"])
vae.compile(Adam(r["lr"]))
vae.fit(train.x, train.y, batch_size=r["batch_size"], epochs=r["epochs"], verbose=0)

ease = recipes.build("ease", ds, args.seed, backend, train=train, **recipes.RANKING["ease"]["model"])
ease.fit(train.x, train.y, verbose=0)

print(f"\n{ds}, split 80/20 with seed {args.seed}; relevant: held-out ratings >= 4; k = {args.k}\n")
print(f"| model | precision@{args.k} | recall@{args.k} | NDCG@{args.k} |")
print("| --- | ---: | ---: | ---: |")
for label, model in {"Mult-VAE": vae, "EASE (closed form)": ease, "popularity (baseline)": None}.items():
    m = ranking_metrics(model, train, valid, ds.n_movies, k=args.k)
    print(f"| {label} | {m['precision']:.4f} | {m['recall']:.4f} | {m['ndcg']:.4f} |")
