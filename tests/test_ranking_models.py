"""Learning to rank: the BPR loss and objective, and EASE's closed form — each checked against
its maths, on every backend, through the same API as the rating models."""
import numpy as np
import pytest

import minirec
import tolerances as tol
from minirec import BPR, EASE, Adam, DotProduct, DotProductBias
from minirec.nn import gradcheck
from minirec.tools.analysis import ranking_metrics
from minirec.backend import to_numpy
from minirec.models.ease import ease_scores
from minirec.nn.losses import bpr
from minirec.models.saved import model_from_weights


def test_the_bpr_loss_and_its_gradient():
    rng = np.random.default_rng(0)
    pos, neg = rng.standard_normal(7) * 3, rng.standard_normal(7) * 3
    loss, dpos, dneg = bpr(pos, neg)
    naive = -np.mean(np.log(1 / (1 + np.exp(-(pos - neg)))))
    # log(1/(1 + e^-x)) written plainly: 1 + e^-x and 1/· each round by u, which the log turns
    # into u absolute (and exp's few ulp of e^-x at most a few u more); the logs' own rounding
    # and the 7-term mean are relative (tolerances.py)
    assert loss == pytest.approx(naive, abs=tol.rounding(8) + tol.rounding(7 + 2) * naive, rel=0)
    for x, d in ((pos, dpos), (neg, dneg)):
        num = gradcheck.numerical_gradient(lambda: bpr(pos, neg)[0], x)
        assert gradcheck.rel_error(d, num) < gradcheck.SMOOTH_BOUND
    assert np.isfinite(bpr(np.array([800.0]), np.array([-800.0]))[0])  # no overflow


@pytest.mark.parametrize("cls", [DotProduct, DotProductBias])
def test_a_model_under_bpr_passes_the_gradient_check(cls):
    model = cls(5, 6, n_factors=3, l2=1e-2, dtype=np.float64, seed=0, backend="numpy")
    model.compile(Adam(), loss="bpr")
    for label, err in gradcheck.check_model(model, f"{cls.__name__} under BPR", gradcheck.SMOOTH_BOUND).items():
        assert err < gradcheck.SMOOTH_BOUND, label


def test_negatives_are_movies_the_user_did_not_rate():
    users = np.repeat(np.arange(4), 5)
    movies = np.concatenate([np.arange(5), np.arange(5) + 2, [0, 1, 2, 3, 4], [9, 8, 7, 6, 5]])
    objective = BPR()
    objective.prepare(users, movies, np.ones(20), 10, np.random.default_rng(0))
    rated = {(u, m) for u, m in zip(users, movies)}
    for _ in range(50):
        neg = objective.sample(users)
        assert not any((u, j) in rated for u, j in zip(users, neg))
        assert neg.min() >= 0 and neg.max() < 10


def test_popularity_negatives_follow_count_to_the_three_quarters():
    movies = np.repeat(np.arange(4), [1, 8, 27, 64])
    users = np.arange(len(movies)) + 10  # nobody rated twice, so nothing is rejected
    objective = BPR(negatives="popularity")
    objective.prepare(users, movies, np.ones(len(movies)), 4, np.random.default_rng(0))
    drawn = np.bincount(objective.draw(200_000), minlength=4) / 200_000
    expected = np.array([1, 8, 27, 64]) ** 0.75 / np.sum(np.array([1, 8, 27, 64]) ** 0.75)
    # a share of 200,000 draws has a standard deviation of at most √(¼/200,000) = 0.0011:
    # 0.005 is 4.5 of them
    np.testing.assert_allclose(drawn, expected, atol=0.005)


def test_positive_at_keeps_only_the_high_ratings():
    objective = BPR(positive_at=4)
    u, m, y = objective.prepare(np.array([0, 1, 2]), np.array([3, 4, 5]), np.array([5.0, 2.0, 4.0]),
                                6, np.random.default_rng(0))
    assert u.tolist() == [0, 2] and m.tolist() == [3, 5]
    with pytest.raises(ValueError, match="no training rating is 6 or more"):
        BPR(positive_at=6).prepare(u, m, y, 6, np.random.default_rng(0))


def ranking_data():
    """Users of three tastes, each rating mostly (90%) the movies of its own third, a few of
    them far more often than the rest: who rated what carries a signal popularity cannot see."""
    rng = np.random.default_rng(4)
    U, M, n = 120, 210, 6000
    users = rng.integers(0, U, n)
    own = rng.random(n) < 0.9
    group = np.where(own, users % 3, rng.integers(0, 3, n))
    movies = group * 70 + np.minimum(rng.geometric(0.05, n) - 1, 69)
    ds = minirec.MovieLens("tastes", users + 1, movies + 1, np.where(own, 5.0, 2.0))
    return ds, *ds.split(0.8, seed=0)


@pytest.mark.parametrize("lazy", [False, True], ids=["dense", "lazy"])
def test_bpr_trains_alike_on_every_backend(fast_backend, lazy):
    """The backends' weights within what rounding can do (``tolerances.py``). A batch of n = 256
    pairs scores 2n rows, so a row's gradient sums up to 2n terms. The user bias cancels from
    every pair (r̂_ij - r̂_ik), and it has no L2: its gradient is zero in exact arithmetic, a
    residue of 2k terms of size below 1/n (dpos = -dneg = -σ(-x)/n, k the user's pairs, k ≤ n)
    in floating point, and Adam divides that residue by its own size (``adam_near_zero``)."""
    ds, train, _ = ranking_data()
    models = []
    for backend in ("numpy", fast_backend):
        model = DotProductBias(ds.n_users, ds.n_movies, n_factors=4, l2=1e-4, dtype=np.float64,
                               seed=1, backend=backend)
        model.compile(Adam(0.01, lazy=lazy), loss="bpr")
        model.fit(train.x, train.y, batch_size=256, epochs=2, shuffle=False, verbose=0)
        models.append(model)
    n, lrs = 256, [0.01] * models[0].optimizer.iterations
    # the user bias's residue: 2k terms of Σ|terms| = 2·Σ_k σ(-x_k)/n < 2k/n ≤ 2
    bounds = {"user_bias.W": tol.adam_near_zero(lrs, residue=tol.rounding(2 * n) * 2)}
    for name, p in models[0].params.items():
        bound = bounds.get(name, tol.adam_run(np.float64, lrs, tol.gradient_terms(2 * n, 4)))
        d = float(np.max(np.abs(to_numpy(models[1].params[name]) - p)))
        assert d <= bound, f"{name} differs by {d:.2e}, more than rounding can ({bound:.2e})"


def test_bpr_learns_to_rank_and_logs_ndcg(capsys):
    ds, train, valid = ranking_data()
    model = DotProductBias(ds.n_users, ds.n_movies, n_factors=8, l2=1e-5, seed=0, backend="numpy")
    model.compile(Adam(0.01, lazy=True), loss="bpr")
    history = model.fit(train.x, train.y, batch_size=256, epochs=6, validation_data=(valid.x, valid.y))
    out = capsys.readouterr().out
    assert "val_ndcg@10" in out and "val_loss" not in out
    assert history.history["loss"][-1] < history.history["loss"][0] < np.log(2) + 0.05
    ndcg = ranking_metrics(model, train, valid, ds.n_movies)["ndcg"]
    assert ndcg == pytest.approx(history.history["val_ndcg@10"][-1])
    assert ndcg > ranking_metrics(None, train, valid, ds.n_movies)["ndcg"]
    with pytest.raises(ValueError, match="scores, not ratings"):
        model.evaluate(valid.x, valid.y)


def interactions(U, M, seed):
    rng = np.random.default_rng(seed)
    return (rng.random((U, M)) < 0.4).astype(np.float64)


def ease_apart(X, lam, B):
    """How far apart two backward-stable routes to EASE's S = X B can land (0/1 entries in X).

    Either side solves a system whose matrix (XᵀX + λI, or XXᵀ + λI: the same nonzero
    eigenvalues) has condition κ ≤ (σ_max(X)² + λ)/λ, within η = backward_stable(n, n); P moves
    by at most κη‖P‖ and P_jj ≥ ‖P‖/κ, so each entry of B = I - P/diag(P) by at most
    2κ²η(1 + max|B|) (the users' side finds diag(P) as (1 - Σ X∘A)/λ, losing the same κ); S = X B
    adds M terms of these, and their own rounding."""
    U, M = X.shape
    kappa = (np.linalg.norm(X, 2) ** 2 + lam) / lam
    b = float(np.max(np.abs(B)))
    dB = 2 * kappa ** 2 * tol.backward_stable(max(U, M), max(U, M)) * (1 + b)
    return dB, M * dB + tol.rounding(M) * M * b


@pytest.mark.parametrize("U, M", [(7, 5), (5, 7)], ids=["items' side", "users' side"])
def test_ease_solves_its_problem(U, M):
    """S = X B where B has a zero diagonal and (XᵀX + λI) B - XᵀX is diagonal: the optimality
    conditions of min ||X - XB||² + λ||B||² with diag(B) = 0 (the diagonal holds the multipliers)."""
    X, lam = interactions(U, M, 0), 3.0
    S = ease_scores(X, lam)
    B = np.linalg.lstsq(X, S, rcond=None)[0] if np.linalg.matrix_rank(X) == M else None
    G = X.T @ X
    P = np.linalg.inv(G + lam * np.eye(M))
    B_ref = np.eye(M) - P / np.diag(P)
    dB, dS = ease_apart(X, lam, B_ref)
    assert np.max(np.abs(S - X @ B_ref)) <= dS
    assert np.all(np.diag(B_ref) == 0)  # 1 - P_jj/P_jj: x/x is exactly 1
    # (G + λI)·P = I + E, |E| ≤ κη (the residual of a backward-stable inverse), so off the
    # diagonal (G + λI)·B_ref - G = -E·diag(P)⁻¹, at most κ²η·‖G + λI‖, plus the products' M terms
    residual = (G + lam * np.eye(M)) @ B_ref - G
    A_norm = np.linalg.norm(G + lam * np.eye(M), 2)
    allowed = dB * A_norm + tol.rounding(M) * M * A_norm * (1 + np.max(np.abs(B_ref)))
    assert np.max(np.abs(residual - np.diag(np.diag(residual)))) <= allowed
    if B is not None:
        # B = X⁺ S: S's error through ‖X⁺‖ = 1/σ_min(X), and the least-squares solve's own
        # backward error through κ(X) (the residual S - X B is zero, so κ, not κ²)
        sigma = np.linalg.svd(X, compute_uv=False)
        allowed = (np.sqrt(U * M) * dS / sigma[-1]
                   + sigma[0] / sigma[-1] * tol.backward_stable(U, M) * np.linalg.norm(B_ref, 2) + dB)
        assert np.max(np.abs(B - B_ref)) <= allowed


def test_the_two_sides_of_ease_agree():
    X = interactions(6, 9, 1)
    wide = ease_scores(X, 2.0)                     # 6 users < 9 movies: the users' side
    tall = ease_scores(np.vstack([X, np.zeros((4, 9))]), 2.0)[:6]  # 10 users: the items' side
    P = np.linalg.inv(X.T @ X + 2.0 * np.eye(9))
    _, dS = ease_apart(np.vstack([X, np.zeros((4, 9))]), 2.0, np.eye(9) - P / np.diag(P))
    assert np.max(np.abs(wide - tall)) <= 2 * dS  # each within dS of the exact S


def test_ease_fits_saves_loads_and_recommends(tmp_path, backend):
    ds, train, valid = ranking_data()
    model = EASE(ds.n_users, ds.n_movies, l2=50.0, backend=backend)
    history = model.fit(train.x, train.y, validation_data=(valid.x, valid.y), verbose=0)
    assert history.history["val_ndcg@10"][0] > ranking_metrics(None, train, valid, ds.n_movies)["ndcg"]
    model.save_weights(tmp_path / "e.npz", data=ds, seed=0)
    back = model_from_weights(tmp_path / "e.npz", ds, backend="numpy")
    assert type(back) is EASE and "closed form" in minirec.train.runners.describe(back)
    np.testing.assert_array_equal(back.predict(valid.x), model.predict(valid.x))  # S, looked up
    assert back.objective.predicts == "scores"
    with pytest.raises(ValueError, match="scores, not ratings"):
        back.evaluate(valid.x, valid.y)


def test_lr_find_runs_on_the_bpr_loss_and_leaves_the_model_alone():
    ds, train, _ = ranking_data()
    model = DotProductBias(ds.n_users, ds.n_movies, n_factors=4, seed=0, backend="numpy")
    model.compile(Adam(1e-3, lazy=True), loss="bpr")
    before = {k: v.copy() for k, v in model.params.items()}
    negatives = model.negative_rng.bit_generator.state
    finder = model.lr_find(train.x, train.y, num_it=40, batch_size=64)
    assert len(finder.lrs) >= 10 and finder.losses[0] == pytest.approx(np.log(2), abs=0.05)
    for k, v in before.items():
        np.testing.assert_array_equal(model.params[k], v)
    assert model.negative_rng.bit_generator.state == negatives
