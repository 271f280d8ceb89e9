import os
from pathlib import Path

import pytest
from hypothesis import settings

from minirec.backend import cupy_available, numba_available

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
    pytest.param("cupy", marks=[pytest.mark.gpu, pytest.mark.skipif(
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
