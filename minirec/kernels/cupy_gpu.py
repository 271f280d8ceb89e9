"""CuPy on the GPU: the reference loop with the data, the weights and the optimiser state all
on the device, and Adam as one fused kernel per table.

The forward and backward passes are the layers' own code (``xp`` is CuPy), so what runs here is
what the NumPy tests check on every machine. Two things differ from ``Model.reference_batches``:

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
ADAM_DENSE = cp.ElementwiseKernel(
    "T G, T l2x2, T b1, T omb1, T b2, T omb2, T lr_t, T eps_t, T lrwd, raw bool stopped",
    "T W, T M, T V",
    """
    if (stopped[0]) return;           // a batch of this epoch went non-finite: change nothing
    T g = G + l2x2 * W;
    T m = b1 * M + omb1 * g;
    T v = b2 * V + omb2 * (g * g);
    M = m;
    V = v;
    W = W - (lr_t * m / (sqrt(v) + eps_t) + lrwd * W);
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


def run_batches(model, users, movies, y, order, batch_size, lrs, first, last):
    """The GPU epoch runner: same contract as ``Model.run_batches``."""
    opt = model.optimizer
    order = cp.asarray(order)
    steps = step_constants(model.dtype, opt, lrs[first:last], opt.iterations)  # host scalars
    losses = cp.zeros(last - first, cp.float64)
    stopped = cp.zeros(1, cp.bool_)
    for b in range(first, last):
        rows = order[b * batch_size:(b + 1) * batch_size]
        pred = model.forward(users[rows], movies[rows], training=True)
        diff = pred - y[rows]
        losses[b - first] = (diff * diff).mean()
        stopped |= ~cp.isfinite(losses[b - first])
        model.backward(diff * (2.0 / len(rows)))
        adam_step(model, steps[b - first], stopped)
    losses = cp.asnumpy(losses)  # the one copy back to the host
    bad_batches = np.flatnonzero(~np.isfinite(losses))
    bad = first + int(bad_batches[0]) if len(bad_batches) else -1
    done = last - first if bad < 0 else bad - first
    opt.iterations += done
    return losses[:done + (bad >= 0)], bad


def adam_step(model, st, stopped):
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
            scale = table.row_scale if table.row_scale is not None else cp.ones(p.shape[0], p.dtype)
            ADAM_ROWS(ids, first, p.shape[1], scale, l2x2, *c, lr_t, eps_t, lrwd, stopped,
                      p, grad, m, v, size=ids.size * p.shape[1])
        else:
            ADAM_DENSE(grad, l2x2, *c, lr_t, eps_t, lrwd, stopped, p, m, v)
