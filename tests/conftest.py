import os
from pathlib import Path

import pytest
from hypothesis import settings

from minirec.backend import cupy_available, numba_available


def _a_real_gpu():
    """True where real CuPy imports and sees a CUDA device (the gpu tests then run on the card)."""
    try:
        import cupy
        return not getattr(cupy, "STANDIN", False) and cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, or CUDA driver/runtime errors
        return False


# The gpu tests run everywhere: on a card where there is one, else on the strict CPU stand-in
# tests/cupy_standin.py, installed here as ``cupy`` for this test run only (never for minirec
# itself), with "standin" in each test's id. MINIREC_CUPY_STANDIN=1 picks the stand-in even
# beside a card. It proves the Python side of the GPU path, never a GPU figure.
ON_A_CARD = _a_real_gpu() and not os.environ.get("MINIREC_CUPY_STANDIN")
if not ON_A_CARD:
    import cupy_standin
    cupy_standin.install()
GPU_ID = "cupy" if ON_A_CARD else "cupy-standin"

# The default run (and CI) is derandomised: hypothesis draws the same examples every time, from
# the test's name, and keeps no database to replay old failures from, so a submission never
# passes or fails on a lucky draw. HYPOTHESIS_PROFILE=explore draws fresh examples, to hunt.
settings.register_profile("minirec", max_examples=40, deadline=None, derandomize=True, database=None)
settings.register_profile("explore", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "minirec"))

# Every backend, parametrised: the ones missing here are skipped with the reason.
BACKENDS = [
    "numpy",
    pytest.param("numba", marks=pytest.mark.skipif(not numba_available(),
                                                   reason="the numba backend needs numba")),
    pytest.param("cupy", id=GPU_ID, marks=[pytest.mark.gpu, pytest.mark.skipif(
        not cupy_available(), reason="needs CuPy and a CUDA device")]),
]
FAST_BACKENDS = BACKENDS[1:]  # the backends compared against the NumPy reference


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(params=FAST_BACKENDS)
def fast_backend(request):
    return request.param


def data_home():
    """The folder that holds real MovieLens copies (``MINIREC_DATA``), or None."""
    home = os.environ.get("MINIREC_DATA")
    return Path(home) if home and Path(home).is_dir() else None


@pytest.fixture
def shared_data():
    """The MINIREC_DATA folder with ml-latest-small/ and ml-100k/, or a skip with the reason."""
    home = data_home()
    if home is None or not (home / "ml-100k").is_dir() or not (home / "ml-latest-small").is_dir():
        pytest.skip("real MovieLens data not found: set MINIREC_DATA to a folder holding "
                    "ml-latest-small/ and ml-100k/ (CI uses ../shared/data)")
    return home


@pytest.fixture
def movielens_2016():
    """The 2016 ml-latest-small release, or a skip that says how to provide it."""
    home = data_home()
    folder = home / "ml-latest-small-2016" if home else None
    if folder is None or not (folder / "ratings.csv").exists():
        pytest.skip("real MovieLens data not found: set MINIREC_DATA to a folder holding "
                    "ml-latest-small-2016/ (CI uses ../shared/data)")
    return folder


@pytest.fixture
def server():
    """A local HTTP server (tests/servers.py) for download tests."""
    from servers import Server
    s = Server()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def fresh_probe_verdicts():
    """Each test probes the fused kernels itself: a verdict cached by an earlier test (say, on
    code another test had patched) must never decide this one's outcome."""
    from minirec.train import runners
    runners._VERDICTS.clear()
    yield
    runners._VERDICTS.clear()


@pytest.fixture(autouse=True)
def gpu_device(request):
    """Where a ``gpu`` test runs: "cupy" (a card) or "cupy-standin"; ``None`` for the rest.
    (Autouse so that ``pytest_generate_tests`` can give every gpu test that has no backend
    parameter one of its own, which puts the place it ran in its id.)"""
    return getattr(request, "param", None)


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("gpu") and "gpu_device" in metafunc.fixturenames:
        metafunc.parametrize("gpu_device", ["cupy"], ids=[GPU_ID], indirect=True)


@pytest.fixture
def host_draws(monkeypatch):
    """On the GPU minirec draws the epoch's permutation and the dropout masks on the device
    (``loop.epoch_order``, ``Dropout.scale``): reproducible, but not NumPy's draws. A test that
    compares a GPU run with the NumPy reference weight for weight asks for this fixture: the
    GPU then takes the host's draws, copied over, so both runs see the same batches and masks.
    (tests/test_cupy_standin.py checks the device's own draws.)"""
    import numpy as np
    from minirec.nn import activations
    from minirec.train import loop, lr_find

    def epoch_order(n, rng, shuffle=True, xp=np):
        return original_order(n, rng, shuffle) if xp is np else xp.asarray(original_order(n, rng, shuffle))

    def scale(self, shape, dtype, xp=np):
        mask = original_scale(self, shape, dtype)
        return mask if xp is np else xp.asarray(mask)

    original_order, original_scale = loop.epoch_order, activations.Dropout.scale
    monkeypatch.setattr(loop, "epoch_order", epoch_order)
    monkeypatch.setattr(lr_find, "epoch_order", epoch_order)
    monkeypatch.setattr(activations.Dropout, "scale", scale)
