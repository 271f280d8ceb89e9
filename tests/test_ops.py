"""The layers' operations (ops.py): the reference against the dense formulas, and each compiled
twin (fast/numba_ops.py) against the reference, on tiny shapes with repeated ids and empty
bags (hypothesis). A failure names the operation."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tolerances as tol
from minirec.nn import ops
from minirec.nn.layers import Embedding, EmbeddingBag

bag_lists = st.lists(st.lists(st.integers(0, 4), max_size=4), min_size=1, max_size=5)


def csr(bags):
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in bags])]).astype(np.intp)
    ids = np.array([i for b in bags for i in b], dtype=np.intp)
    return offsets, ids


@given(bags=bag_lists, picks=st.lists(st.integers(0, 100), min_size=1, max_size=8),
       seed=st.integers(0, 2**16))
def test_the_reference_bag_sum_is_the_sum_over_each_bag(bags, picks, seed):
    offsets, ids = csr(bags)
    rows = np.array(picks) % len(bags)
    rng = np.random.default_rng(seed)
    W, scale = rng.standard_normal((5, 3)), rng.random(len(bags))
    expected = np.array([scale[r] * W[bags[r]].sum(axis=0) if bags[r] else np.zeros(3) for r in rows])
    # a bag of at most 4 rows and its scale: 5 roundings, against the bag's Σ|W| (tolerances.py)
    size = np.array([scale[r] * np.abs(W[bags[r]]).sum(axis=0) if bags[r] else np.zeros(3) for r in rows])
    assert np.all(np.abs(ops.bag_sum(W, (offsets, ids), rows, scale) - expected) <= tol.rounding(5) * size)
    dout = rng.standard_normal((len(rows), 3))
    dW = np.zeros_like(W)
    ops.bag_scatter(dW, (offsets, ids), rows, scale, dout)
    one_hot = np.zeros((len(rows), 5))  # dW = Σ_n scale[r_n] · (counts of each id in bag r_n) ⊗ dout[n]
    for n, r in enumerate(rows):
        for k in bags[r]:
            one_hot[n, k] += scale[r]
    # an entry sums up to 4 ids of each of the rows (and one_hot's own sums of scales)
    allowed = tol.rounding(4 * len(rows) + 4) * (np.abs(one_hot).T @ np.abs(dout))
    assert np.all(np.abs(dW - one_hot.T @ dout) <= allowed)
    assert sorted(ops.bag_rows((offsets, ids), rows, 5)) == sorted({k for r in rows for k in bags[r]})


@given(bags=bag_lists, picks=st.lists(st.integers(0, 100), min_size=1, max_size=8),
       seed=st.integers(0, 2**16))
def test_every_compiled_operation_matches_its_reference(bags, picks, seed):
    numba_ops = pytest.importorskip("minirec.fast.numba_ops", reason="needs numba").NUMBA
    offsets, ids = csr(bags)
    rows = (np.array(picks) % len(bags)).astype(np.intp)
    rng = np.random.default_rng(seed)
    W, scale = rng.standard_normal((5, 3)), rng.random(len(bags))
    dout = rng.standard_normal((len(rows), 3))
    idx = (np.array(picks) % 5).astype(np.intp)

    def operations(W, dout):
        return {
            "scatter_add": lambda o: (lambda T: (o.scatter_add(T, idx, dout), T)[1])(np.zeros((5, 3))),
            "scatter_add (a bias table)": lambda o: (lambda T: (o.scatter_add(T, idx, dout[:, :1]), T)[1])(np.zeros((5, 1))),
            "distinct": lambda o: o.distinct(idx),
            "zero_rows": lambda o: (lambda T: (o.zero_rows(T, idx), T)[1])(W.copy()),
            "bag_sum": lambda o: o.bag_sum(W, (offsets, ids), rows, scale),
            "bag_scatter": lambda o: (lambda T: (o.bag_scatter(T, (offsets, ids), rows, scale, dout), T)[1])(np.ones((5, 3))),
            "bag_rows": lambda o: np.sort(o.bag_rows((offsets, ids), rows, 5)),
        }
    # Each operation is linear in W and dout (the scales are >= 0), so running it on |W|, |dout|
    # gives Σ|terms| of every entry; an entry sums at most 4 ids of each row, plus its start.
    sizes = {name: run(ops.REFERENCE) for name, run in operations(np.abs(W), np.abs(dout)).items()}
    for name, run in operations(W, dout).items():
        got, expected = run(numba_ops), run(ops.REFERENCE)
        allowed = tol.rounding(4 * len(rows) + 1) * sizes[name]
        assert got.shape == expected.shape and np.all(np.abs(got - expected) <= allowed), \
            f"numba_ops.{name} differs from ops.{name}"


@pytest.mark.parametrize("ops_name", ["reference", "numba"])
def test_a_table_gradient_holds_only_this_backwards_rows(ops_name):
    """The gradient buffer is cleared of the previous batch's rows before the next scatter:
    two backward passes give the second batch's gradient, not the sum of both."""
    layer = Embedding(6, 2, rng=np.random.default_rng(0), dtype=np.float64)
    if ops_name == "numba":
        layer.ops = pytest.importorskip("minirec.fast.numba_ops", reason="needs numba").NUMBA
    for idx in (np.array([0, 1, 1, 5]), np.array([2, 1, 3])):
        dout = np.arange(2 * len(idx), dtype=np.float64).reshape(-1, 2) + 1
        layer.forward(idx)
        layer.backward(dout)
        np.testing.assert_array_equal(layer.grads["W"], np.eye(6)[idx].T @ dout)
    bag = EmbeddingBag(4, 2, csr([[0, 1], [1, 2, 3], []]), mode="sum", dtype=np.float64)
    bag.ops = layer.ops
    for rows in (np.array([0, 1]), np.array([2, 0])):
        bag.forward(rows.astype(np.intp))
        bag.backward(np.ones((2, 2)))
        expected = np.zeros((4, 2))
        for r in rows:
            expected[[[0, 1], [1, 2, 3], []][r]] += 1
        np.testing.assert_array_equal(bag.grads["W"], expected)


def test_every_reference_operation_has_a_compiled_twin():
    numba_ops = pytest.importorskip("minirec.fast.numba_ops", reason="needs numba").NUMBA
    assert set(vars(numba_ops)) == set(vars(ops.REFERENCE))


def test_bags_are_checked():
    with pytest.raises(ValueError, match="rise from 0"):
        EmbeddingBag(4, 2, (np.array([0, 3, 2]), np.array([0, 1, 2])))
    with pytest.raises(KeyError, match="bag id 7 is outside the table's rows 0..3"):
        EmbeddingBag(4, 2, (np.array([0, 1]), np.array([7])))
    with pytest.raises(ValueError, match="mode"):
        EmbeddingBag(4, 2, (np.array([0, 1]), np.array([1])), mode="max")


@pytest.mark.parametrize("mode, scale", [("sqrt", lambda n: n ** -0.5), ("mean", lambda n: 1 / n),
                                         ("sum", lambda n: 1.0)])
def test_each_bag_mode_scales_as_it_says(mode, scale):
    """out = s_r · Σ W[bag r] with s_r = 1/√n_r, 1/n_r or 1; an empty bag gives zeros."""
    bags = [[0, 1, 1, 3], [2], []]
    layer = EmbeddingBag(4, 2, csr(bags), mode=mode, rng=np.random.default_rng(0), dtype=np.float64)
    W = layer.params["W"]
    out = layer.forward(np.array([0, 1, 2], dtype=np.intp))
    # four rows summed and scaled (the scale itself one or two roundings): 6 roundings
    allowed = tol.rounding(6) * scale(4) * np.abs(W[[0, 1, 1, 3]]).sum(axis=0)
    assert np.all(np.abs(out[0] - scale(4) * W[[0, 1, 1, 3]].sum(axis=0)) <= allowed)
    assert np.all(np.abs(out[1] - scale(1) * W[2]) <= tol.rounding(2) * np.abs(W[2]))
    np.testing.assert_array_equal(out[2], 0)
