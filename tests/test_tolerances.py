"""The bounds of ``tolerances.py`` checked, not trusted: Adam's ratio R, and the one assumption
the training bounds rest on — that a difference in the weights grows by at most
exp(ADAM_LIPSCHITZ · Σ lr) over a run — measured on the runs the parity tests compare."""
from types import SimpleNamespace
import math

import numpy as np
import pytest

import tolerances as tol
from minirec import Adam, DotProductBias, FlippedSVDpp, SVDpp
from minirec.models.model import Model


@pytest.mark.parametrize("beta_1, beta_2", [(0.9, 0.999), (0.8, 0.99), (0.5, 0.999)])
def test_adams_ratio_is_the_largest_over_every_step(beta_1, beta_2):
    """R is the limit of √(Σ c_k²/d_k); no step count t ≤ 10^6 goes above it, and no gradient
    sequence makes |m̂|/√v̂ exceed it."""
    R = tol.adam_ratio(beta_1, beta_2)
    t = np.arange(1, 10**6 + 1, dtype=np.float64)
    r = beta_1 ** 2 / beta_2
    worst = (1 - beta_1) ** 2 * (1 - beta_2 ** t) / ((1 - beta_1 ** t) ** 2 * (1 - beta_2)) * (1 - r ** t) / (1 - r)
    assert np.sqrt(worst.max()) <= R * (1 + 1e-12)
    rng = np.random.default_rng(0)
    for _ in range(200):
        g = rng.standard_normal(int(rng.integers(1, 500))) * np.exp(3 * rng.standard_normal())
        m = v = 0.0
        for x in g:
            m, v = beta_1 * m + (1 - beta_1) * x, beta_2 * v + (1 - beta_2) * x * x
        T = len(g)
        assert abs(m / (1 - beta_1 ** T)) <= R * math.sqrt(v / (1 - beta_2 ** T)) * (1 + 1e-12)


NUDGE = 1e-9  # of the largest weight: far above rounding (1e-16), far below anything nonlinear


def nudge_at_compile(monkeypatch):
    """Every model compiled from now on starts with each weight moved by ±NUDGE of the largest."""
    compile_ = Model.compile

    def compile(self, *args, **kwargs):
        out = compile_(self, *args, **kwargs)
        if not getattr(self, "_nudged", False):
            self._nudged = True
            scale = max(float(np.max(np.abs(p))) for p in self.params.values())
            rng = np.random.default_rng(0)
            for p in self.params.values():
                p[...] += NUDGE * scale * rng.choice([-1.0, 1.0], p.shape)
        return out
    monkeypatch.setattr(Model, "compile", compile)
    return lambda model: NUDGE * max(float(np.max(np.abs(p))) for p in model.params.values())


def growth_within_bound(run, lrs, monkeypatch, label):
    plain = run()
    start = nudge_at_compile(monkeypatch)
    nudged = run()
    # the nudge's size, from the plain run's start (its weights at construction, seeded alike)
    moved = max(float(np.max(np.abs(p - nudged.params[n]))) for n, p in plain.params.items())
    growth = moved / start(plain) if moved else 0.0
    allowed = math.exp(tol.ADAM_LIPSCHITZ * float(np.sum(lrs)))
    assert growth <= allowed, (f"{label}: a difference in the weights grew {growth:.0f}-fold over "
                               f"Σlr = {np.sum(lrs):.2f}, more than tolerances.ADAM_LIPSCHITZ allows "
                               f"({allowed:.0f}): the parity tests' bounds do not hold for this run")


import test_backends as backends  # noqa: E402  (the runs the parity tests compare)
import test_ranking_models as ranking  # noqa: E402
import test_your_model as yours  # noqa: E402


@pytest.mark.parametrize("lazy", [False, True], ids=["dense", "lazy"])
@pytest.mark.parametrize("cls, kwargs", backends.CASES, ids=backends.ids)
def test_the_backend_runs_grow_no_faster_than_assumed(cls, kwargs, lazy, monkeypatch):
    growth_within_bound(lambda: backends.train(cls, kwargs, "numpy", np.float64, lazy)[0],
                        backends.train_rates(), monkeypatch, f"test_backends.train({cls.__name__})")


@pytest.mark.parametrize("lazy", [False, True], ids=["dense", "lazy"])
def test_the_bpr_run_grows_no_faster_than_assumed(lazy, monkeypatch):
    ds, train, _ = ranking.ranking_data()

    def run():
        model = DotProductBias(ds.n_users, ds.n_movies, n_factors=4, l2=1e-4, dtype=np.float64,
                               seed=1, backend="numpy")
        model.compile(Adam(0.01, lazy=lazy), loss="bpr")
        model.fit(train.x, train.y, batch_size=256, epochs=2, shuffle=False, verbose=0)
        return model
    steps = run().optimizer.iterations
    growth_within_bound(run, [0.01] * steps, monkeypatch, "BPR (test_ranking_models)")


@pytest.mark.parametrize("cls", [SVDpp, FlippedSVDpp], ids=["SVDpp", "FlippedSVDpp"])
@pytest.mark.parametrize("lazy", [False, True], ids=["dense", "lazy"])
def test_the_svdpp_runs_grow_no_faster_than_assumed(cls, lazy, monkeypatch):
    train = yours.svdpp_train()

    def run():
        model = cls.for_data(SimpleNamespace(n_users=20, n_movies=25), train, n_factors=4, l2=1e-3, dtype=np.float64, seed=2, backend="numpy")
        model.compile(Adam(0.01, lazy=lazy, weight_decay=0.01))
        model.fit(train.x, train.y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        return model
    growth_within_bound(run, [0.01] * 2 * -(-len(train.y) // 16), monkeypatch, f"{cls.__name__} (test_your_model)")
