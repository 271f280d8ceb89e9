"""The CuPy stand-in (tests/cupy_standin.py) keeps CuPy's rules, and the GPU's own draws.

Each rule is checked on the stand-in in every run and, where a card is present, on real CuPy
too: the same assertions, so a stand-in that drifted from CuPy fails on the card. (These
real-CuPy checks are the gpu tests that still skip without a device: they need the real thing.)
The rules where the stand-in is stricter than CuPy on purpose are checked on the stand-in only.
"""
import numpy as np
import pytest

import cupy_standin
from minirec import Adam, NeuralNet
from minirec.backend import to_numpy
from minirec.nn.activations import Dropout
from minirec.train.loop import epoch_order


def _real_cupy():
    import cupy
    return None if getattr(cupy, "STANDIN", False) else cupy


REAL = _real_cupy()
MODULES = [pytest.param(cupy_standin, id="standin"),
           pytest.param(REAL, id="real-cupy", marks=[pytest.mark.gpu, pytest.mark.skipif(
               REAL is None, reason="checks the stand-in's rules against real CuPy: needs CuPy "
                                    "and a CUDA device")])]


@pytest.fixture(params=MODULES)
def xp(request):
    return request.param


def test_no_implicit_way_to_the_host(xp):
    a = xp.arange(3, dtype=np.float64)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError):
        a + np.ones(3)  # a host array in a device kernel
    with pytest.raises(TypeError):
        np.ones(3) + a
    with pytest.raises(TypeError):
        xp.concatenate([a, np.ones(1)])
    with pytest.raises(TypeError):
        range(xp.asarray(2))  # no __index__


def test_host_reads_cupy_allows(xp):
    a = xp.arange(4, dtype=np.float32)
    assert type(a.get()) is np.ndarray and xp.asnumpy(a).tolist() == [0.0, 1.0, 2.0, 3.0]
    assert float(a[1]) == 1.0 and int(a[2]) == 2 and bool(a[3]) and a[3].item() == 3.0
    assert isinstance(a[1], xp.ndarray) and a[1].ndim == 0  # a device array, not a number
    assert isinstance(a.sum(), xp.ndarray) and a.sum().ndim == 0
    assert f"{a.sum():.1f}" == "6.0"
    moved = xp.asarray(host := np.ones(2))
    host[0] = 5.0  # the device holds a copy, never the host's memory
    assert moved.get().tolist() == [1.0, 1.0]


def test_scalars_and_host_indices_cross(xp):
    a = xp.ones(3, dtype=np.float32)
    assert (np.float32(2) * a).dtype == np.float32 and (2.0 * a).dtype == np.float32
    assert a[np.array([0, 2])].shape == (2,)  # CuPy copies host indices over
    a[np.array([0, 1])] = np.array([7.0, 8.0])  # and, through array indices, host values
    assert a.get().tolist() == [7.0, 8.0, 1.0]
    with pytest.raises(ValueError):
        a[0:2] = np.zeros(2)  # through a slice CuPy refuses a host array


def test_scatter_add_counts_every_repeated_id(xp):
    t = xp.zeros((3, 2), dtype=np.float32)
    xp.add.at(t, xp.asarray([0, 2, 0]), xp.ones((3, 2), dtype=np.float32))
    assert t.get()[:, 0].tolist() == [2.0, 0.0, 1.0]
    with pytest.raises(TypeError):
        xp.add.at(xp.zeros(3, dtype=np.int8), xp.asarray([0, 0]), 1)  # no int8 atomics


def test_fuse_compiles_named_functions_of_device_arrays_and_scalars(xp):
    def twice_plus(x, c):
        return 2 * x + c
    a = xp.arange(3, dtype=np.float32)
    out = xp.fuse(twice_plus)(a, np.float32(1))
    assert isinstance(out, xp.ndarray) and out.dtype == np.float32 and out.get().tolist() == [1, 3, 5]
    assert xp.fuse(kernel_name="twice")(lambda x: 2 * x)(a).get().tolist() == [0, 2, 4]
    with pytest.raises(Exception):  # CuPy: ValueError "Invalid kernel name", then NVRTC fails
        xp.fuse(lambda x: 2 * x)(a)
    with pytest.raises(Exception):  # CuPy 14.2: an AssertionError; the stand-in: TypeError
        xp.fuse(twice_plus)(a, np.ones(3, np.float32))


def test_seeded_draws_repeat_and_are_not_numpys(xp):
    p1, p2 = (xp.random.RandomState(7).permutation(1000) for _ in range(2))
    assert (p1 == p2).all() and sorted(p1.get().tolist()) == list(range(1000))
    assert p1.dtype == np.int64
    assert not np.array_equal(p1.get(), np.random.RandomState(7).permutation(1000))
    u1, u2 = (xp.random.default_rng(3).random((4, 5)) for _ in range(2))
    assert (u1 == u2).all() and u1.dtype == np.float64
    assert not np.array_equal(u1.get(), np.random.default_rng(3).random((4, 5)))


def test_the_standin_refuses_numpys_functions_on_device_arrays():
    """Stricter than CuPy, which forwards ``np.sqrt(a)`` to ``cupy.sqrt`` (NEP 13/18)."""
    a = cupy_standin.arange(3, dtype=np.float64)
    for call in (np.sqrt, np.isfinite, np.mean, np.unique, lambda a: np.concatenate([a, a])):
        with pytest.raises(TypeError, match="was called on a device array"):
            call(a)
    with pytest.raises(TypeError, match="inside cupy.fuse"):
        cupy_standin.fuse(kernel_name="read")(lambda x: float(x.sum()))(a)


# ----- the GPU's own draws ---------------------------------------------------------------------

@pytest.mark.gpu
def test_the_gpu_draws_its_own_permutations_and_masks_from_the_seed(gpu_device):
    import cupy
    n = 20_000
    order = epoch_order(n, np.random.default_rng(5), True, cupy)
    assert isinstance(order, cupy.ndarray)
    assert np.array_equal(np.sort(order.get()), np.arange(n))
    assert np.array_equal(order.get(), epoch_order(n, np.random.default_rng(5), True, cupy).get())
    drop = Dropout(0.3, rng=np.random.default_rng(1))
    mask = drop.scale((n,), np.float32, cupy).get()
    assert set(np.unique(mask).tolist()) <= {0.0, np.float32(1) / np.float32(0.7)}
    # kept fraction 0.7, binomial sd sqrt(0.3·0.7/n) = 0.0032; 5 sd
    assert abs(np.mean(mask > 0) - 0.7) < 5 * np.sqrt(0.3 * 0.7 / n)


@pytest.mark.gpu
def test_a_gpu_run_repeats_from_its_seed(gpu_device):
    """Shuffled batches and dropout drawn on the device: the same seed trains to the same
    weights (to float64 reordering: CuPy's scatter-adds are atomic, in no fixed order, a few
    terms per row per batch, so 1e-9 over a few hundred Adam steps), another seed does not,
    and the draws are not NumPy's (the CPU run differs)."""
    rng = np.random.default_rng(0)
    users, movies, y = rng.integers(0, 20, 600), rng.integers(0, 30, 600), rng.integers(1, 11, 600) / 2

    def run(backend, seed):
        model = NeuralNet(20, 30, n_factors=3, hidden=4, dropout=(0.3, 0.5), dtype=np.float64,
                          seed=seed, backend=backend)
        model.compile(Adam(0.01)).fit([users, movies], y, batch_size=16, epochs=2, verbose=0)
        return to_numpy(model.params["user_embedding.W"])

    first, again, other, cpu = run("cupy", 1), run("cupy", 1), run("cupy", 2), run("numpy", 1)
    np.testing.assert_allclose(again, first, rtol=1e-9, atol=1e-12)
    for different in (other, cpu):
        assert np.max(np.abs(different - first)) > 1e-3 * np.max(np.abs(first))
