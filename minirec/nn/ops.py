"""The few array operations the layers need that NumPy does slowly, each written once here as
the reference (NumPy or CuPy, whichever owns the arrays), with a compiled twin on the Numba
backend (``fast/numba_ops.py``: the same loops, proven equal by ``tests/test_ops.py``).

=================================  ==========================================================
scatter_add(T, idx, V)             T[idx[n]] += V[n] for every n, repeated ids included
distinct(idx)                      the distinct values of idx, sorted (the rows a batch saw)
zero_rows(T, rows)                 T[rows] = 0
bag_sum(W, bags, rows, scale)      out[n] = scale[r] · Σ_{k ∈ bag r} W[k],  r = rows[n]
bag_scatter(dW, bags, rows,        dW[k] += scale[r] · dout[n]  for every k in bag r
            scale, dout)
bag_rows(bags, rows, n)            the distinct ids in the bags of ``rows`` (ids < n), any order
=================================  ==========================================================

A *bag* is a ragged list of ids per row, stored as CSR: ``bags = (offsets, ids)``, bag r holds
``ids[offsets[r]:offsets[r + 1]]`` (an empty bag sums to zero). The scatters take one row of
values per id (per row of the batch for ``bag_scatter``) and refuse any other shape, on every
backend (``one_row_per_id``).

A layer calls these through ``self.ops``: ``REFERENCE`` (this module) unless a model on the
numba backend gave it the compiled set. Nothing here imports Numba: the compiled set registers
itself in ``TWINS`` when ``minirec/fast/numba_ops.py`` is imported (by the model, on the numba
backend), so the maths never reaches up into the fast path.
"""
import types

from ..backend import get_array_module


def one_row_per_id(target, idx, values, what="scatter_add"):
    """Refuse ``values`` that are not one row of ``target`` per id, shape (N,) + target's row
    shape — on every backend alike (NumPy would broadcast some shapes; a compiled loop would
    read past the end of a row)."""
    need = (len(idx),) + tuple(target.shape[1:])
    if tuple(values.shape) != need:
        raise ValueError(f"{what}: {len(idx)} ids into a table of shape {tuple(target.shape)} "
                         f"need values of shape {need}, got {tuple(values.shape)}")


def scatter_add(target, idx, values):
    """``target[idx[n]] += values[n]`` for every n, repeated ids included (in place).

    ``np.add.at`` on the CPU; on the GPU ``cupy.add.at`` (atomic adds), or
    ``cupyx.scatter_add`` on CuPy versions older than 13. (``target[idx] += values`` would be
    wrong: with a repeated id, fancy assignment keeps only one of the rows.)
    """
    one_row_per_id(target, idx, values)
    xp = get_array_module(target)
    if hasattr(xp.add, "at"):
        xp.add.at(target, idx, values)
    else:
        import cupyx
        cupyx.scatter_add(target, idx, values)


def distinct(idx):
    return get_array_module(idx).unique(idx)


def zero_rows(target, rows):
    target[rows] = 0


def _members(bags, rows):
    """(which example each looked-up id belongs to, the looked-up ids), for ``rows``."""
    offsets, ids = bags
    xp = get_array_module(ids)
    starts, lengths = offsets[rows], offsets[rows + 1] - offsets[rows]
    owner = xp.repeat(xp.arange(len(rows)), lengths)
    # position of each looked-up id in ``ids``: its bag's start plus its place in the bag
    first_of_owner = xp.cumsum(lengths) - lengths
    position = starts[owner] + xp.arange(len(owner)) - first_of_owner[owner]
    return owner, ids[position]


def bag_sum(W, bags, rows, scale):
    owner, looked_up = _members(bags, rows)
    out = get_array_module(W).zeros((len(rows), W.shape[1]), W.dtype)
    scatter_add(out, owner, W[looked_up])
    return out * scale[rows][:, None]


def bag_scatter(dW, bags, rows, scale, dout):
    one_row_per_id(dW, rows, dout, "bag_scatter")
    owner, looked_up = _members(bags, rows)
    scatter_add(dW, looked_up, (dout * scale[rows][:, None])[owner])


def bag_rows(bags, rows, n):
    return distinct(_members(bags, rows)[1])


REFERENCE = types.SimpleNamespace(name="reference", scatter_add=scatter_add, distinct=distinct,
                                  zero_rows=zero_rows, bag_sum=bag_sum, bag_scatter=bag_scatter,
                                  bag_rows=bag_rows)


TWINS = {}  # backend name -> its compiled twins of REFERENCE (filled by minirec/fast/numba_ops.py)


def ops_for(backend):
    """The operations a model on ``backend`` gives its layers: the compiled twins registered for
    it, else the reference."""
    return TWINS.get(backend, REFERENCE)
