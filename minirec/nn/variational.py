"""The pieces of a variational autoencoder for collaborative filtering (Mult-VAE, Liang et al.
2018; the model is ``models/multvae.py``), each a forward/backward pair in the conventions of
``layers.py`` (shapes in the docstring, ``dout`` never modified in place) or, for a loss, a
function that returns its value and its gradients (as ``losses.mse`` does).

Letters: N users in a batch, M movies, H hidden units, K latent dimensions.

=====================  ========================================================================
UserRows               each user's row of interactions, x (N, M): 1 where they rated the movie
SparseDense            drop(x / ||x||₂) @ W + b, summed over the movies each user rated
Tanh                   out = tanh(a)
Reparameterise         z = μ + σ ⊙ ε,  σ = exp(½ log σ²),  ε ~ N(0, I) from an explicit RNG
LogSoftmax             log π = a - log Σ_j exp(a_j), row by row
multinomial_nll        -(1/N) Σ_i Σ_j x_ij log π_ij            (the reconstruction term)
kl_to_standard_normal  (1/N) Σ_i KL(N(μ_i, σ_i²) || N(0, I))     (the prior term)
=====================  ========================================================================

The loss Mult-VAE minimises per batch is  multinomial_nll + β · kl_to_standard_normal: the
negative of the evidence lower bound (ELBO), with the prior term weighed by β.
"""
import numpy as np

from ..backend import get_array_module, to_numpy, to_xp
from .layers import Layer, Table, check_bags
from .ops import _members


class UserRows(Layer):
    """Each user's row of the interaction matrix, built from CSR bags (``bags = (offsets, ids)``:
    user u rated the movies ``ids[offsets[u]:offsets[u+1]]``, as ``svdpp.rated_by`` builds them).

    forward: users (N,) int  ->  x (N, M),  x[n, j] = 1 if user users[n] rated movie j, else 0

    No parameters and no gradient: the rows are the data. Kept as bags, not as a dense U x M
    matrix, so a large catalogue costs memory per rating, not per (user, movie) pair; the bags
    are saved with the weights (``buffers``), so a loaded model still knows each user's row.
    """

    def __init__(self, n_users, n_movies, bags, dtype=np.float32, xp=np):
        super().__init__()
        self.n_users, self.n_movies, self.dtype = n_users, n_movies, np.dtype(dtype)
        self.set_bags(bags, xp)

    def set_bags(self, bags, xp=None):
        offsets, ids = (np.asarray(to_numpy(a)) for a in bags)
        check_bags(offsets, ids, self.n_movies)
        if len(offsets) != self.n_users + 1:
            raise ValueError(f"UserRows needs one bag per user ({self.n_users}), got {len(offsets) - 1}")
        xp = xp or get_array_module(self.bags[1])
        self.bags = (xp.asarray(offsets.astype(np.intp)), xp.asarray(ids.astype(np.intp)))

    @property
    def buffers(self):
        return {"offsets": self.bags[0], "ids": self.bags[1]}

    def load_buffers(self, buffers):
        self.set_bags((buffers["offsets"], buffers["ids"]))

    def move(self, xp):
        self.bags = tuple(to_xp(a, xp) for a in self.bags)

    def sizes(self, users):
        """How many movies each of ``users`` rated, (N,)."""
        offsets = self.bags[0]
        return offsets[users + 1] - offsets[users]

    def forward(self, users):
        xp = get_array_module(self.bags[1])
        owner, movies = _members(self.bags, users)  # (n-th user of the batch, a movie they rated)
        x = xp.zeros((len(users), self.n_movies), dtype=self.dtype)
        x[owner, movies] = 1.0
        return x


class SparseDense(Table):
    """The encoder's first layer: a ``Dense`` layer on each user's 0/1 row, normalised to length
    1 and with inverted dropout (drop probability p) on its entries — Liang et al.'s
    ``drop(x / ||x||) @ W + b`` — computed from the movies the user rated, not the whole row:

        out_i = s_i Σ_{j ∈ kept(i)} W[j] + b,    s_i = 1 / ((1 - p) √n_i)

    n_i is how many movies user i rated (||x_i|| = √n_i for a 0/1 row) and kept(i) those the
    dropout kept, each with probability 1 - p (at evaluation: all of them, and s_i = 1 / √n_i).
    A dense product would spend M·H multiplications per user on a row that is mostly zeros; this
    spends n_i·H (as ``EmbeddingBag`` does for SVD++'s bag of movies).

    W (M, H) Glorot-uniform as ``Dense``'s, b (H,) zeros; ``rows`` is the ``UserRows`` layer
    that holds the users' bags; the dropout draws come from ``rng`` (an explicit Generator).

    forward:  users (N,) int  ->  out (N, H)
    backward: dout (N, H)     ->  dW[j] += s_i · dout_i for every kept movie j of user i (a
                                  scatter-add; repeated movies across users add up),
                                  db = Σ_i dout_i; the users' ids have no gradient
    """

    def __init__(self, rows, n_out, p, rng=None, drop_rng=None, dtype=np.float32, xp=np):
        super().__init__(rows.n_movies, n_out, rng, dtype, xp,
                         scale=np.sqrt(6.0 / (rows.n_movies + n_out)))
        self.params["b"] = xp.zeros(n_out, dtype=dtype)
        self.source, self.p = rows, float(p)
        self.rng = drop_rng if drop_rng is not None else np.random.default_rng()
        self.device_rng = None

    def keep(self, n, xp):
        """Which of n looked-up entries dropout keeps (a fresh draw; all of them when p = 0)."""
        if xp is np:
            return self.rng.random(n, dtype=np.float32) >= self.p
        if self.device_rng is None:
            self.device_rng = xp.random.default_rng(int(self.rng.integers(2**63)))
        return self.device_rng.random(n) >= self.p

    def forward(self, users, training=True):
        W = self.params["W"]
        xp = get_array_module(W)
        owner, movies = _members(self.source.bags, users)   # (n-th user of the batch, a movie)
        n_rated = self.source.sizes(users).astype(W.dtype)
        s = 1.0 / xp.sqrt(xp.maximum(n_rated, 1))
        if training and self.p > 0:
            kept = self.keep(len(movies), xp)
            owner, movies, s = owner[kept], movies[kept], s / W.dtype.type(1.0 - self.p)
        self.owner, self.movies, self.s = owner, movies, s
        out = xp.zeros((len(users), W.shape[1]), W.dtype)
        self.ops.scatter_add(out, owner, W[movies])          # Σ_{j ∈ kept(i)} W[j]
        return out * s[:, None] + self.params["b"]

    def backward(self, dout):
        self.grads["W"] = dW = self.zeroed_gradient(self.movies)
        self.ops.scatter_add(dW, self.movies, (dout * self.s[:, None])[self.owner])
        self.grads["b"] = dout.sum(axis=0)
        return None


class Tanh(Layer):
    """out = tanh(a), elementwise.

    forward:  a (N, D)     ->  out (N, D)
    backward: dout (N, D)  ->  da = dout · (1 - tanh(a)²)
    """

    def forward(self, a):
        self.out = get_array_module(a).tanh(a)
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out * self.out)


class Reparameterise(Layer):
    """The reparameterisation trick: a draw from q(z|x) = N(μ, σ²) written as a function of
    μ and log σ² plus noise that does not depend on them, so the gradient flows through:

        z = μ + σ ⊙ ε,   σ = exp(½ log σ²),   ε ~ N(0, I)  drawn from ``self.rng``

    forward:  mu (N, K), logvar (N, K)  ->  z (N, K)    (``training=False``: z = μ, no noise)
    backward: dz (N, K)                 ->  dmu = dz,   dlogvar = dz ⊙ ε ⊙ σ / 2

    ``rng`` is a NumPy Generator: setting the same state before two forward passes draws the
    same ε, which is how gradient checks repeat the step exactly (as ``Dropout`` does). On the
    GPU ε is drawn on the device from a CuPy generator seeded once from ``rng``.
    """

    def __init__(self, rng=None):
        super().__init__()
        self.rng = rng if rng is not None else np.random.default_rng()
        self.device_rng = None

    def noise(self, shape, dtype, xp):
        if xp is np:
            return self.rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
        if self.device_rng is None:
            self.device_rng = xp.random.default_rng(int(self.rng.integers(2**63)))
        return self.device_rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)

    def forward(self, mu, logvar, training=True):
        if not training:
            self.eps = None
            return mu
        xp = get_array_module(mu)
        self.sigma = xp.exp(0.5 * logvar)
        self.eps = self.noise(mu.shape, mu.dtype, xp)
        return mu + self.sigma * self.eps

    def backward(self, dz):
        if self.eps is None:
            return dz, dz * 0
        return dz, dz * self.eps * self.sigma * 0.5


class LogSoftmax(Layer):
    """log π = log softmax(a), row by row: π_ij = exp(a_ij) / Σ_k exp(a_ik), a distribution
    over the M movies for each user.

    forward:  a (N, M)     ->  logp (N, M),  logp_ij = a_ij - log Σ_k exp(a_ik)
    backward: dout (N, M)  ->  da_ij = dout_ij - π_ij Σ_k dout_ik

    (∂ logp_ik / ∂a_ij = [j = k] - π_ij.) The row's largest a is taken out before exp, so no
    exp overflows: log Σ exp(a) = max + log Σ exp(a - max).
    """

    def forward(self, a):
        xp = get_array_module(a)
        shifted = a - a.max(axis=1, keepdims=True)
        logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        self.p = xp.exp(logp)
        return logp

    def backward(self, dout):
        return dout - self.p * dout.sum(axis=1, keepdims=True)


def multinomial_nll(logp, x):
    """The multinomial log-likelihood of each user's row under π, negated and averaged over
    the batch — the reconstruction term of Mult-VAE's loss — and its gradient:

        loss = -(1/N) Σ_i Σ_j x_ij log π_ij          dlogp = -x / N

    logp (N, M), x (N, M)  ->  loss (float), dlogp (N, M). With ``LogSoftmax`` before it the
    gradient of the scores a is (π_ij Σ_k x_ik - x_ij) / N: raise the rated movies' share.
    """
    n = logp.shape[0]
    return -float((x * logp).sum()) / n, x * (-1.0 / n)


def kl_to_standard_normal(mu, logvar):
    """KL(q || p) for q = N(μ, diag σ²), p = N(0, I), summed over the K dimensions and
    averaged over the N users, and its gradients:

        KL   = (1/N) Σ_i Σ_k ½ (σ²_ik + μ²_ik - 1 - log σ²_ik)
        dmu  = μ / N                 dlogvar = ½ (σ² - 1) / N

    mu (N, K), logvar (N, K)  ->  kl (float), dmu (N, K), dlogvar (N, K). It is 0 exactly when
    q is the prior (μ = 0, log σ² = 0), and pulls every user's code towards it.
    """
    xp = get_array_module(mu)
    n = mu.shape[0]
    var = xp.exp(logvar)
    kl = 0.5 * float((var + mu * mu - 1.0 - logvar).sum()) / n
    return kl, mu * (1.0 / n), (var - 1.0) * (0.5 / n)


# ----- gradient checks (``tools/check_all.py`` runs them with the rest of the catalogue) --------

def check_variational(seed=0):
    """Each piece above against central differences, in float64 (``gradcheck.py``'s method:
    the vector-Jacobian product with a random upstream gradient, bound 1e-7, all smooth)."""
    from .gradcheck import SMOOTH_BOUND, _vjp_check, compare, numerical_gradient
    rng = np.random.default_rng(seed)
    out = {}
    a, dout = rng.standard_normal((4, 6)) * 2, rng.standard_normal((4, 6))
    tanh = Tanh()
    tanh.forward(a)
    out.update(_vjp_check("Tanh", tanh.forward, tanh.backward, [a], dout, SMOOTH_BOUND))
    soft = LogSoftmax()
    soft.forward(a)
    out.update(_vjp_check("LogSoftmax", soft.forward, soft.backward, [a], dout, SMOOTH_BOUND))
    x = (rng.random((4, 6)) < 0.4).astype(np.float64)  # rows of 0/1, one of them may be empty
    num = numerical_gradient(lambda: multinomial_nll(soft.forward(a), x)[0], a)
    soft.forward(a)
    analytic = soft.backward(multinomial_nll(soft.forward(a), x)[1])
    out["multinomial NLL through LogSoftmax (da)"] = compare("multinomial_nll", analytic, num,
                                                             SMOOTH_BOUND)
    mu, logvar = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)) * 0.5
    for k, name in ((1, "dmu"), (2, "dlogvar")):
        arg = mu if k == 1 else logvar
        num = numerical_gradient(lambda: kl_to_standard_normal(mu, logvar)[0], arg)
        out[f"KL to N(0, I) ({name})"] = compare(f"kl.{name}", kl_to_standard_normal(mu, logvar)[k],
                                                 num, SMOOTH_BOUND)
    users = np.array([0, 3, 1, 3, 4])  # user 3 twice, user 1 with no movie; movies shared
    bags = (np.array([0, 2, 2, 5, 6, 9]), np.array([2, 5, 0, 1, 2, 3, 0, 4, 5]))
    dense = SparseDense(UserRows(5, 6, bags, np.float64), 3, 0.4, rng, None, np.float64)
    dense.params["b"][:] = rng.standard_normal(3)
    dh = rng.standard_normal((5, 3))

    def encode():  # the same dropout mask every call: reset the layer's generator first
        dense.rng = np.random.default_rng(seed)
        return dense.forward(users, training=True)

    encode()
    dense.backward(dh)
    for p in ("W", "b"):
        num = numerical_gradient(lambda: float(np.sum(encode() * dh)), dense.params[p])
        out[f"SparseDense (d{p}, fixed dropout, repeated movies, an empty row)"] = compare(
            f"SparseDense.{p}", dense.grads[p], num, SMOOTH_BOUND)
    sample = Reparameterise(np.random.default_rng(seed))
    dz = rng.standard_normal((4, 3))

    def forward(mu, logvar):  # the same ε every call: reset the layer's generator first
        sample.rng = np.random.default_rng(seed)
        return sample.forward(mu, logvar, training=True)

    forward(mu, logvar)
    out.update(_vjp_check("Reparameterise (fixed ε; input 0 is μ, 1 log σ²)", forward,
                          sample.backward, [mu, logvar], dz, SMOOTH_BOUND))
    return out
