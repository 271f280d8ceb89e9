"""CuPy on the GPU: data, weights and optimiser state all on the device.

For the neural net the forward and backward passes are the layers' own code (``xp`` is CuPy),
what the NumPy tests check on every machine. For the two matrix-factorisation models one
kernel (``mf_step``) does a batch's forward pass, loss and scatter-add backward at once: with
the layers a batch costs some fifty small CuPy calls, and at batch 1,024 on 25M ratings the
Python overhead of those calls, not the GPU, set the pace. Beyond that:

* **No host round trip per batch.** A batch's loss stays on the device, in ``losses``; the
  Adam kernels check it there, and a non-finite one sets the device flag ``stopped``, after
  which no kernel of the epoch changes anything. The losses (and so the verdict) come back
  once per call, and the epoch loop makes one call per epoch on this backend.
* **Adam is one kernel per table**, beside the maths of ``optim.Adam``: ``ADAM_DENSE`` for
  every entry (Keras), ``adam_rows`` for the rows a batch looked up (lazy). Which rows? Every
  rating stamps its row with the batch's tick (``atomicExch``); the rating that finds another
  tick there *owns* the row, so a row seen twice is updated once. The bias correction is
  folded into lr_t and ε_t, as in the Numba kernels (``numba_cpu.step_constants``).
"""
import cupy as cp
import numpy as np

from .numba_cpu import step_constants

# Dense Adam on every entry: g = G + 2λ·W; m, v, then W (same order as numba_cpu.adam_all);
# G is zeroed after use. ``loss`` is the batch's loss: non-finite -> set ``stopped``, no change.
ADAM_DENSE = cp.ElementwiseKernel(
    "T l2x2, T b1, T omb1, T b2, T omb2, T lr_t, T eps_t, T lrwd, raw float64 loss",
    "T G, T W, T M, T V, raw bool stopped",
    """
    if (stopped[0] || !isfinite(loss[0])) { stopped[0] = true; return; }
    T g = G + l2x2 * W;
    T m = b1 * M + omb1 * g;
    T v = b2 * V + omb2 * (g * g);
    M = m;
    V = v;
    W = W - (lr_t * m / (sqrt(v) + eps_t) + lrwd * W);
    G = 0;
    """,
    "minirec_adam_dense")

# T is replaced by float or double when the module is compiled (see ``kernels``).
SOURCE = r"""
// Matrix factorisation, one thread per rating k of the batch (the same equations as
// numba_cpu.mf_batches): z = P[u]·Q[m] (+ BU[u] + BM[m]); r̂ = z or lo + span·σ(z); the squared
// error goes into *loss, the gradient into G* by atomic adds (repeated ids accumulate).
// The batch's ids are written to ids_u/ids_m and each row is claimed for the Adam kernel.
extern "C" __global__ void mf_step(
        const long long* users, const long long* movies, const T* y, const long long* order,
        long long start, long long n, int F, int has_bias, int has_range, T lo, T span,
        T two_over_n, const T* P, const T* Q, const T* BU, const T* BM,
        T* GP, T* GQ, T* GBU, T* GBM, long long* ids_u, long long* ids_m,
        unsigned long long* stamp_u, unsigned long long* stamp_m, bool* own_u, bool* own_m,
        unsigned long long tick, double* loss) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= n) return;
    long long r = order[start + k];
    long long u = users[r], m = movies[r];
    const T* p = P + u * F;
    const T* q = Q + m * F;
    T z = p[0] * q[0];
    for (int f = 1; f < F; f++) z += p[f] * q[f];
    if (has_bias) z = z + BU[u] + BM[m];
    T pred = z, s = 0;
    if (has_range) {
        s = (T)1 / ((T)1 + exp(-z));
        pred = lo + span * s;
    }
    T err = pred - y[r];
    atomicAdd(loss, (double)(err * err));
    T dz = err * two_over_n;
    if (has_range) dz = dz * ((span * s) * ((T)1 - s));      // dσ/dz = σ(1-σ)
    for (int f = 0; f < F; f++) {
        atomicAdd(GP + u * F + f, dz * q[f]);
        atomicAdd(GQ + m * F + f, dz * p[f]);
    }
    if (has_bias) {
        atomicAdd(GBU + u, dz);
        atomicAdd(GBM + m, dz);
    }
    ids_u[k] = u;
    ids_m[k] = m;
    own_u[k] = atomicExch(stamp_u + u, tick) != tick;
    own_m[k] = atomicExch(stamp_m + m, tick) != tick;
}

// Claim rows for the lazy Adam kernel when the gradient came from the layers (neural net).
extern "C" __global__ void claim_rows(const long long* ids, long long n,
                                      unsigned long long* stamp, bool* own, unsigned long long tick) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k < n) own[k] = atomicExch(stamp + ids[k], tick) != tick;
}

// Lazy Adam: thread i updates column i % F of row ids[i / F], if that rating owns the row.
// g = G + 2λ·S[row]·W (S: the balanced-L2 row scales, or ones); then G's entry is zeroed.
extern "C" __global__ void adam_rows(
        const long long* ids, const bool* own, long long n, int F, T* W, T* G, T* M, T* V,
        const T* S, T l2x2, T b1, T omb1, T b2, T omb2, T lr_t, T eps_t, T lrwd,
        const double* loss, bool* stopped) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * F) return;
    if (stopped[0] || !isfinite(*loss)) { stopped[0] = true; return; }
    long long k = i / F;
    if (!own[k]) return;                   // another rating of this batch owns the row
    long long row = ids[k];
    long long e = row * F + i % F;
    T w = W[e];
    T g = G[e] + (l2x2 * S[row]) * w;
    T mo = b1 * M[e] + omb1 * g;
    T ve = b2 * V[e] + omb2 * (g * g);
    M[e] = mo;
    V[e] = ve;
    W[e] = w - (lr_t * mo / (sqrt(ve) + eps_t) + lrwd * w);
    G[e] = 0;
}
"""
_MODULES = {}
THREADS = 256


def kernels(dtype):
    """The kernels of ``SOURCE`` compiled for float or double, once per process."""
    name = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}[np.dtype(dtype)]
    if name not in _MODULES:
        code = SOURCE.replace("T ", f"{name} ").replace("(T)", f"({name})").replace("T*", f"{name}*")
        module = cp.RawModule(code=code)
        _MODULES[name] = {k: module.get_function(k) for k in ("mf_step", "claim_rows", "adam_rows")}
    return _MODULES[name]


def launch(kernel, n, *args):
    """Run ``kernel`` over n threads in blocks of THREADS."""
    kernel(((n + THREADS - 1) // THREADS,), (THREADS,), args)


class Workspace:
    """Device buffers reused across calls: gradient tables (kept at zero between batches), the
    batch's ids, row stamps and owner flags, and a tick that never repeats."""

    def __init__(self, model, batch_size):
        self.grads = {k: cp.zeros_like(p) for k, p in model.params.items()}
        self.ids = {who: cp.zeros(batch_size, cp.int64) for who in ("user", "movie")}
        self.own = {who: cp.zeros(batch_size, cp.bool_) for who in ("user", "movie")}
        never = np.iinfo(np.uint64).max
        self.stamps = {"user": cp.full(model.n_users, never, cp.uint64),
                       "movie": cp.full(model.n_movies, never, cp.uint64)}
        self.dummy = cp.zeros((1, 1), model.dtype)
        self.batch_size = batch_size
        self.clock = 0
        self.ones = {}

    def tick(self):
        self.clock += 1
        return np.uint64(self.clock)

    def row_scale(self, layer, n, dtype):
        if layer.row_scale is not None:
            return layer.row_scale
        if n not in self.ones:
            self.ones[n] = cp.ones(n, dtype)
        return self.ones[n]


def workspace(model, batch_size):
    ws = getattr(model, "_cupy_workspace", None)
    if ws is None or ws.batch_size < batch_size or any(
            ws.grads[k].shape != p.shape or ws.grads[k].dtype != p.dtype for k, p in model.params.items()):
        ws = model._cupy_workspace = Workspace(model, batch_size)
    return ws


def run_batches(model, users, movies, y, order, batch_size, lrs, first, last):
    """The GPU epoch runner: same contract as ``Model.run_batches``."""
    opt = model.optimizer
    order = cp.asarray(order, dtype=cp.int64)
    steps = step_constants(model.dtype, opt, lrs[first:last], opt.iterations)  # host scalars
    ws = workspace(model, batch_size)
    losses = cp.zeros(last - first, cp.float64)  # per batch: the sum of squared errors
    stopped = cp.zeros(1, cp.bool_)
    n = len(order)
    for b in range(first, last):
        start = b * batch_size
        nb = min(n, start + batch_size) - start
        loss = losses[b - first:b - first + 1]
        if "dense_1.W" in model.params:
            grads = layer_batch(model, users, movies, y, order[start:start + nb], loss, ws)
        else:
            grads = mf_batch(model, users, movies, y, order, start, nb, loss, ws)
        adam_step(model, ws, grads, steps[b - first], nb, loss, stopped)
    sizes = np.diff(np.minimum(n, batch_size * np.arange(first, last + 1)))
    losses = cp.asnumpy(losses) / sizes  # the one copy back to the host: the batch MSEs
    bad_batches = np.flatnonzero(~np.isfinite(losses))
    bad = first + int(bad_batches[0]) if len(bad_batches) else -1
    if bad >= 0:  # stopped mid-epoch: leave no stale gradient behind
        for g in ws.grads.values():
            g.fill(0)
    done = last - first if bad < 0 else bad - first
    opt.iterations += done
    return losses[:done + (bad >= 0)], bad


def mf_batch(model, users, movies, y, order, start, nb, loss, ws):
    """One batch of DotProduct / DotProductBias: forward, loss and backward in one kernel."""
    dt = model.dtype.type
    names = ["user_embedding.W", "movie_embedding.W", "user_bias.W", "movie_bias.W"]
    W = [model.params.get(k, ws.dummy) for k in names]
    G = [ws.grads.get(k, ws.dummy) for k in names]
    lo, hi = model.y_range if model.y_range is not None else (0.0, 1.0)
    tick = ws.tick()
    launch(kernels(model.dtype)["mf_step"], nb, users, movies, y, order, np.int64(start),
           np.int64(nb), np.int32(model.n_factors), np.int32("user_bias.W" in model.params),
           np.int32(model.y_range is not None), dt(lo), dt(hi - lo), dt(2.0 / nb), *W, *G,
           ws.ids["user"], ws.ids["movie"], ws.stamps["user"], ws.stamps["movie"],
           ws.own["user"], ws.own["movie"], tick, loss)
    return ws.grads


def layer_batch(model, users, movies, y, rows, loss, ws):
    """One batch of the neural net through the layers; returns the layers' gradients."""
    u, m = users[rows], movies[rows]
    diff = model.forward(u, m, training=True) - y[rows]
    loss += (diff * diff).sum()
    model.backward(diff * (2.0 / len(rows)))
    tick = ws.tick()
    for who, ids in (("user", u), ("movie", m)):
        ws.ids[who][:len(ids)] = ids
        launch(kernels(model.dtype)["claim_rows"], len(ids), ws.ids[who], np.int64(len(ids)),
               ws.stamps[who], ws.own[who], tick)
    return model.grads


def adam_step(model, ws, grads, st, nb, loss, stopped):
    """One Adam kernel per parameter: the owned rows of an embedding table in lazy mode,
    every entry otherwise. The kernels leave the gradients they read at zero."""
    opt = model.optimizer
    dt = model.dtype.type
    lr_t, eps_t, lrwd = (dt(v) for v in st)
    c = [dt(v) for v in (opt.beta_1, 1 - opt.beta_1, opt.beta_2, 1 - opt.beta_2)]
    embeddings = model.embeddings()
    for name, p in model.params.items():
        g, m, v = grads[name], opt._slot(name, "m", p), opt._slot(name, "v", p)
        table = embeddings.get(name.split(".")[0])
        l2x2 = dt(2.0 * table.l2) if table is not None else dt(0)
        if opt.lazy and table is not None:
            who = "user" if name.startswith("user") else "movie"
            F = p.shape[1]
            launch(kernels(model.dtype)["adam_rows"], nb * F, ws.ids[who], ws.own[who],
                   np.int64(nb), np.int32(F), p, g, m, v, ws.row_scale(table, p.shape[0], p.dtype),
                   l2x2, *c, lr_t, eps_t, lrwd, loss, stopped)
        else:
            ADAM_DENSE(l2x2, *c, lr_t, eps_t, lrwd, loss, g, p, m, v, stopped)
