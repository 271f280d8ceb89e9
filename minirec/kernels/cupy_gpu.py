"""CuPy on the GPU: data, weights and optimiser state all on the device.

For the neural net the forward and backward passes are the layers' own code (``xp`` is CuPy),
what the NumPy tests check on every machine. For the two matrix-factorisation models one
kernel (``mf_step``) does a batch's forward pass, loss and scatter-add backward at once: with
the layers, a batch costs some fifty small CuPy calls, and at batch 1,024 on 25M ratings the
Python overhead of those calls, not the GPU, set the pace. What else differs from
``Model.reference_batches``:

* **No host round trip per batch.** A batch's MSE stays on the device, in ``losses``; a
  non-finite one sets the device flag ``stopped``, and every later Adam kernel of the epoch
  sees the flag and changes nothing. The losses (and so the flag) come back once per call:
  the epoch loop makes one call per epoch on this backend.
* **Adam is one kernel per table** (below, beside the maths of ``optim.Adam``): the dense
  update of every entry, or the lazy update of the rows a batch looked up. The bias
  correction is folded into lr_t and ε_t exactly as in the Numba kernels.
"""
import cupy as cp
import numpy as np

from ..kernels.numba_cpu import step_constants

# Dense Adam on every entry: g = G + 2λ·W; m, v, then W (same order as numba_cpu.adam_all).
# The batch loss is checked here, on the device: a non-finite one sets the sticky flag
# ``stopped`` and from then on no kernel of the epoch changes anything. G is zeroed after use.
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

# Lazy Adam on the rows a batch looked up. ``ids`` are the batch's ids *sorted*, ``first``
# marks the first of each run of equal ids, so every distinct row is updated exactly once
# (without cupy.unique, whose output size would need a copy to the host). Element i is
# (id ids[i / F], column i % F); g = G + 2λ·S[row]·W (S: the balanced-L2 row scales, or ones).
ADAM_ROWS = cp.ElementwiseKernel(
    "raw int64 ids, raw bool first, int64 F, raw T S, T l2x2, T b1, T omb1, T b2, T omb2, "
    "T lr_t, T eps_t, T lrwd, raw bool stopped",
    "raw T W, raw T G, raw T M, raw T V",
    """
    if (stopped[0] || !first[i / F]) return;
    const long long r = ids[i / F];
    const long long k = r * F + i % F;
    T w = W[k];
    T g = G[k] + (l2x2 * S[r]) * w;
    T m = b1 * M[k] + omb1 * g;
    T v = b2 * V[k] + omb2 * (g * g);
    M[k] = m;
    V[k] = v;
    W[k] = w - (lr_t * m / (sqrt(v) + eps_t) + lrwd * w);
    G[k] = 0;
    """,
    "minirec_adam_rows")


# The matrix-factorisation batch step (DotProduct, DotProductBias) as one kernel: one thread
# per rating does the forward pass, adds its squared error to the batch loss, and scatter-adds
# its gradient with atomicAdd (repeated ids accumulate). The same equations as
# numba_cpu.mf_batches. It also claims each row for the Adam kernel: the first thread to stamp
# row u with this step's number t owns it (own_u[k]), so a row seen twice is updated once.
MF_STEP_SOURCE = r"""
extern "C" __global__ void mf_step(
        const long long* users, const long long* movies, const T* y, const long long* order,
        long long start, long long n, int F, int has_bias, int has_range, T lo, T span,
        T two_over_n, const T* P, const T* Q, const T* BU, const T* BM,
        T* GP, T* GQ, T* GBU, T* GBM, unsigned long long* stamp_u, unsigned long long* stamp_m,
        bool* own_u, bool* own_m, unsigned long long t, double* loss) {
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
    if (has_range) dz = dz * ((span * s) * ((T)1 - s));
    for (int f = 0; f < F; f++) {
        atomicAdd(GP + u * F + f, dz * q[f]);
        atomicAdd(GQ + m * F + f, dz * p[f]);
    }
    if (has_bias) {
        atomicAdd(GBU + u, dz);
        atomicAdd(GBM + m, dz);
    }
    own_u[k] = atomicExch(stamp_u + u, t) != t;
    own_m[k] = atomicExch(stamp_m + m, t) != t;
}

extern "C" __global__ void adam_owned_rows(
        const long long* ids, const long long* order, long long start, long long n,
        const bool* own, int F, T* W, T* G, T* M, T* V, const T* S, T l2x2,
        T b1, T omb1, T b2, T omb2, T lr_t, T eps_t, T lrwd, const double* loss, bool* stopped) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * F) return;
    if (stopped[0] || !isfinite(*loss)) { stopped[0] = true; return; }
    long long k = i / F;
    if (!own[k]) return;                   // another rating of this batch owns the row
    long long row = ids[order[start + k]];
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


def mf_kernels(dtype):
    """The two kernels above, compiled for float or double (T), once per process."""
    name = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}[np.dtype(dtype)]
    if name not in _MODULES:
        module = cp.RawModule(code=MF_STEP_SOURCE.replace("T ", f"{name} ").replace("(T)", f"({name})")
                              .replace("T*", f"{name}*"))
        _MODULES[name] = (module.get_function("mf_step"), module.get_function("adam_owned_rows"))
    return _MODULES[name]


class Workspace:
    """Device buffers reused across calls: gradient tables (kept zero), row stamps, owners."""

    def __init__(self, model, batch_size):
        self.grads = {k: cp.zeros_like(p) for k, p in model.params.items()}
        self.stamp_u = cp.full(model.n_users, np.iinfo(np.uint64).max, cp.uint64)
        self.stamp_m = cp.full(model.n_movies, np.iinfo(np.uint64).max, cp.uint64)
        self.own_u = cp.zeros(batch_size, cp.bool_)
        self.own_m = cp.zeros(batch_size, cp.bool_)
        self.dummy = cp.zeros((1, 1), model.dtype)
        self.batch_size = batch_size
        self.clock = 0  # one tick per batch, never reused: the stamp that marks "seen now"


def workspace(model, batch_size):
    ws = getattr(model, "_cupy_workspace", None)
    if ws is None or ws.batch_size < batch_size or any(
            ws.grads[k].shape != p.shape or ws.grads[k].dtype != p.dtype for k, p in model.params.items()):
        ws = model._cupy_workspace = Workspace(model, batch_size)
    return ws


def mf_batches(model, users, movies, y, order, batch_size, steps, first, last, losses, stopped):
    """Matrix factorisation on the GPU: per batch one fused step kernel, then one Adam kernel
    per table (lazy: the owned rows; dense: every entry)."""
    opt = model.optimizer
    ws = workspace(model, batch_size)
    dt = model.dtype.type
    c = [dt(v) for v in (opt.beta_1, 1 - opt.beta_1, opt.beta_2, 1 - opt.beta_2)]
    params = model.params
    has_bias = "user_bias.W" in params
    names = ["user_embedding.W", "movie_embedding.W", "user_bias.W", "movie_bias.W"]
    W = [params.get(k, ws.dummy) for k in names]
    G = [ws.grads.get(k, ws.dummy) for k in names]
    lo, hi = model.y_range if model.y_range is not None else (0.0, 1.0)
    step, adam_rows = mf_kernels(model.dtype)
    F = model.n_factors
    n = len(order)
    tables = [  # (parameter, the ids that index it, their owner flags, its layer)
(name, ids, ws.own_u if who == "user" else ws.own_m, model.layers[name.split(".")[0]])
              for name, ids, who in (("user_embedding.W", users, "user"), ("movie_embedding.W", movies, "movie"),
                                     ("user_bias.W", users, "user"), ("movie_bias.W", movies, "movie"))
              if name in params]
    for b in range(first, last):
        start = b * batch_size
        nb = min(n, start + batch_size) - start
        loss = losses[b - first:b - first + 1]
        ws.clock += 1
        t = np.uint64(ws.clock)
        step(((nb + 255) // 256,), (256,),
             (users, movies, y, order, np.int64(start), np.int64(nb), np.int32(F),
              np.int32(has_bias), np.int32(model.y_range is not None), dt(lo), dt(hi - lo),
              dt(2.0 / nb), *W, *G, ws.stamp_u, ws.stamp_m, ws.own_u, ws.own_m, t, loss))
        lr_t, eps_t, lrwd = (dt(v) for v in steps[b - first])
        for name, ids, own, layer in tables:
            p, g = params[name], ws.grads[name]
            m, v = opt._slot(name, "m", p), opt._slot(name, "v", p)
            l2x2 = dt(2.0 * layer.l2)
            if opt.lazy:
                scale = layer.row_scale if layer.row_scale is not None else ones(p.shape[0], p.dtype)
                width = p.shape[1]
                adam_rows(((nb * width + 255) // 256,), (256,),
                          (ids, order, np.int64(start), np.int64(nb), own, np.int32(width),
                           p, g, m, v, scale, l2x2, *c, lr_t, eps_t, lrwd, loss, stopped))
            else:
                ADAM_DENSE(l2x2, *c, lr_t, eps_t, lrwd, loss, g, p, m, v, stopped)
    if bool(stopped.get()[0]):  # the epoch stopped: leave no stale gradient behind
        for g in ws.grads.values():
            g.fill(0)


_ONES = {}


def ones(n, dtype):
    key = (n, np.dtype(dtype))
    if key not in _ONES:
        _ONES[key] = cp.ones(n, dtype)
    return _ONES[key]


def run_batches(model, users, movies, y, order, batch_size, lrs, first, last):
    """The GPU epoch runner: same contract as ``Model.run_batches``."""
    opt = model.optimizer
    order = cp.asarray(order, dtype=cp.int64)
    steps = step_constants(model.dtype, opt, lrs[first:last], opt.iterations)  # host scalars
    losses = cp.zeros(last - first, cp.float64)
    stopped = cp.zeros(1, cp.bool_)
    if "dense_1.W" not in model.params:
        mf_batches(model, users, movies, y, order, batch_size, steps, first, last, losses, stopped)
        losses = cp.asnumpy(losses) / np.diff(np.minimum(len(order), batch_size * np.arange(first, last + 1)))
    else:
        for b in range(first, last):
            rows = order[b * batch_size:(b + 1) * batch_size]
            pred = model.forward(users[rows], movies[rows], training=True)
            diff = pred - y[rows]
            losses[b - first] = (diff * diff).mean()
            stopped |= ~cp.isfinite(losses[b - first])
            model.backward(diff * (2.0 / len(rows)))
            adam_step(model, steps[b - first], losses[b - first:b - first + 1], stopped)
        losses = cp.asnumpy(losses)  # the one copy back to the host
    bad_batches = np.flatnonzero(~np.isfinite(losses))
    bad = first + int(bad_batches[0]) if len(bad_batches) else -1
    done = last - first if bad < 0 else bad - first
    opt.iterations += done
    return losses[:done + (bad >= 0)], bad


def adam_step(model, st, loss, stopped):
    """One fused Adam kernel per parameter (the looked-up rows of embeddings in lazy mode)."""
    opt = model.optimizer
    dt = model.dtype.type
    lr_t, eps_t, lrwd = (dt(v) for v in st)
    c = [dt(v) for v in (opt.beta_1, 1 - opt.beta_1, opt.beta_2, 1 - opt.beta_2)]
    embeddings = model.embeddings()
    for name, p in model.params.items():
        layer_name, param = name.split(".")
        grad = model.layers[layer_name].grads[param]
        m, v = opt._slot(name, "m", p), opt._slot(name, "v", p)
        table = embeddings.get(layer_name)
        l2x2 = dt(2.0 * table.l2) if table is not None else dt(0)
        if opt.lazy and table is not None:
            ids = cp.sort(table.idx).astype(cp.int64)
            first = cp.ones(ids.size, cp.bool_)
            first[1:] = ids[1:] != ids[:-1]
            scale = table.row_scale if table.row_scale is not None else ones(p.shape[0], p.dtype)
            ADAM_ROWS(ids, first, p.shape[1], scale, l2x2, *c, lr_t, eps_t, lrwd, stopped,
                      p, grad, m, v, size=ids.size * p.shape[1])
        else:
            ADAM_DENSE(l2x2, *c, lr_t, eps_t, lrwd, loss, grad, p, m, v, stopped)
