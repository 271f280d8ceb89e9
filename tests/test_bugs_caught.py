"""Bugs the default run once let through (issue 31: planted one line at a time, each passed the
whole data-free suite). One test per bug, named after what it holds; its docstring names the
bug it fails on. Each was seen to fail with its bug planted by hand, and to pass without it.
"""
import hashlib
import json
import os
import zipfile

import numpy as np
import pytest

from minirec import BPR, EASE, Adam, DotProduct, DotProductBias, SVDpp
from minirec.backend import numba_available
from minirec.data import checksums, download
from minirec.data.movielens import Ratings
from minirec.data.synthetic import synthetic_movielens, write_release
from minirec.io.files import refuse_overlaps
from minirec.io.weights import WeightsError, digest
from minirec.models import bpmf, recipes
from minirec.models.ease import ease_scores
from minirec.models.registry import KINDS, TITLES, register
from minirec.models.saved import model_from_weights
from minirec.nn.layers import Dot
from minirec.tools.cli import main
from minirec.train import loop
from minirec.train.metrics import ranking_metrics
from minirec.train.runners import training_regularisers


def rewrite(src, dst, record=None, arrays=None, keep_digest=False):
    """A copy of weights file ``src`` with ``record(rec)`` and ``arrays(members)`` applied, and
    its digest worked out again unless ``keep_digest``."""
    with np.load(src) as z:
        members = {k: z[k] for k in z.files}
    rec = json.loads(str(members.pop("__config__")[()]))
    if record:
        record(rec)
    if arrays:
        arrays(members)
    if not keep_digest:
        rec["digest"] = digest(members, rec)
    np.savez(dst, **members, __config__=np.array(json.dumps(rec)))
    return dst


# ----- BPR ----------------------------------------------------------------------------------------

def test_bpr_never_draws_a_movie_the_user_rated_low_as_a_negative():
    """Bug: the movies a negative may not be, recomputed from the kept positives only."""
    users, movies = np.zeros(4, int), np.array([0, 1, 2, 3])
    objective = BPR(positive_at=4)
    objective.prepare(users, movies, np.array([5.0, 5.0, 1.0, 2.0]), 6, np.random.default_rng(0))
    negatives = objective.sample(np.zeros(2000, int))
    assert set(negatives.tolist()) == {4, 5}  # movies 2 and 3 were rated, however low


def test_ranking_validation_excludes_every_training_pair(monkeypatch):
    """Bug: ranking validation excluding only the positives, so low-rated training movies are
    recommended and scored."""
    ds = synthetic_movielens(20, 30, 600, seed=0)
    train, valid = ds.split(0.8, seed=0)
    seen = []
    real = loop.ranking_metrics
    monkeypatch.setattr(loop, "ranking_metrics", lambda model, rated, *rest, **kw: (
        seen.append({(int(u), int(m)) for u, m in zip(rated.user, rated.movie)}),
        real(model, rated, *rest, **kw))[1])
    model = DotProduct(ds.n_users, ds.n_movies, n_factors=3, backend="numpy")
    model.compile(Adam(), loss=BPR(positive_at=4)).fit(train.x, train.y, validation_data=(valid.x, valid.y),
                                                       verbose=0)
    assert seen and seen[0] == {(int(u), int(m)) for u, m in zip(train.user, train.movie)}
    assert (train.rating < 4).any()  # so the low-rated training pairs are among them


# ----- EASE ---------------------------------------------------------------------------------------

def test_ease_positive_at_keeps_ratings_at_the_threshold():
    """Bug: ``positive_at`` keeping ratings strictly above the threshold."""
    users, movies = np.array([0, 0, 1, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2, 3])
    y = np.array([4.0, 3.0, 4.0, 5.0, 4.0, 2.0, 4.5])
    model = EASE(3, 4, l2=2.0, positive_at=4, dtype=np.float64)
    model.fit([users, movies], y, verbose=0)
    X = np.zeros((3, 4))
    X[users[y >= 4], movies[y >= 4]] = 1.0
    np.testing.assert_array_equal(model.scores.params["S"], ease_scores(X, 2.0))  # the same ops


def test_ease_remap_moves_rows_for_users_and_columns_for_movies():
    """Bug: ``remap`` moving S's columns for a new user order and its rows for a new movie
    order."""
    model = EASE(4, 4, dtype=np.float64)
    S0 = np.arange(16.0).reshape(4, 4)
    model.scores.params["S"][...] = S0
    model.remap("user", np.array([2, 0, 3, 1]))
    np.testing.assert_array_equal(model.scores.params["S"], S0[[2, 0, 3, 1]])
    model.remap("movie", np.array([1, 3, 0, 2]))
    np.testing.assert_array_equal(model.scores.params["S"], S0[[2, 0, 3, 1]][:, [1, 3, 0, 2]])


# ----- Gibbs sampling -------------------------------------------------------------------------------

def test_the_normal_wishart_posterior_scale_has_the_mean_term(monkeypatch):
    """Bug: the inverse scale missing β0·n/(β0+n)·x̄x̄ᵀ. The Wishart is asked for, by hand,
    scale = (I + Σ (w - x̄)(w - x̄)ᵀ + β0 n/(β0 + n) x̄ x̄ᵀ)⁻¹ with ν = d + n degrees of freedom
    (W0 = I, ν0 = d). Rows far from 0 make the missing term large. Tolerance: a 3 x 3 inverse of
    a matrix of condition number below 10 in float64, 1e-12 relative."""
    W = np.random.default_rng(0).standard_normal((7, 3)) + np.array([3.0, -2.0, 1.0])
    asked = {}

    def wishart(rng, df, scale):
        asked.update(df=df, scale=scale)
        return np.eye(3)
    monkeypatch.setattr(bpmf, "wishart", wishart)
    prior = bpmf.Prior(beta0=2.0)
    bpmf.hyperparameters(W, prior, np.random.default_rng(1))
    n, mean = 7, W.mean(axis=0)
    by_hand = np.eye(3) + (W - mean).T @ (W - mean) + 2.0 * n / (2.0 + n) * np.outer(mean, mean)
    assert asked["df"] == 3 + n
    np.testing.assert_allclose(asked["scale"], np.linalg.inv(by_hand), rtol=1e-12, atol=0)


def test_the_noise_precision_is_drawn_with_its_rate_as_one_over_numpys_scale():
    """Bug: α drawn with the posterior rate passed as NumPy's scale."""
    class Asked:
        def gamma(self, shape, scale):
            return shape, scale
    residual = np.array([0.5, -1.0, 2.0, 0.25])
    prior = bpmf.Prior(a0=1.5, b0=0.5)
    shape, scale = bpmf.noise_precision(residual, prior, Asked())
    assert shape == 1.5 + 4 / 2 and scale == pytest.approx(1 / (0.5 + residual @ residual / 2), rel=1e-15)
    draws = [bpmf.noise_precision(residual, prior, np.random.default_rng(s)) for s in range(2000)]
    mean, sd = 3.5 / (0.5 + residual @ residual / 2), np.sqrt(3.5) / (0.5 + residual @ residual / 2)
    assert abs(np.mean(draws) - mean) < 5 * sd / np.sqrt(2000)  # the Gamma's mean, within 5 s.e.


# ----- bags ----------------------------------------------------------------------------------------

def test_the_balanced_lazy_l2_of_a_bag_table_counts_ratings_not_bags():
    """Bug: the balanced lazy L2 of a bag table counting the bags that hold a row instead of
    the ratings that touch it. User 0 (three ratings) has movies 0 and 2 in their bag, user 1
    (one rating) movie 1: c = (3, 1, 3), and row k's factor is 2λ / (1 - (1 - c_k/N)^B)."""
    users, movies = np.array([0, 0, 0, 1]), np.array([0, 2, 0, 1])
    model = SVDpp(2, 3, n_factors=2, l2=0.1, bags=(np.array([0, 2, 3]), np.array([0, 2, 1])),
                  dtype=np.float64, backend="numpy")
    model.compile(Adam(lazy=True))
    reg = training_regularisers(model, users, movies, 2)["implicit.W"]
    c = np.array([3.0, 1.0, 3.0])
    np.testing.assert_allclose(reg.coefficients(model.params["implicit.W"]),
                               2 * 0.1 / (1 - (1 - c / 4) ** 2), rtol=1e-15)


# ----- weights files and output paths -----------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    ds = synthetic_movielens(20, 30, 600, seed=1)
    model = DotProductBias(ds.n_users, ds.n_movies, n_factors=3, backend="numpy")
    model.save_weights(tmp_path / "w.npz", data=ds)
    return ds, tmp_path / "w.npz"


def test_the_digest_covers_the_array_bytes(saved, tmp_path):
    """Bug: the digest hashing names, dtypes and shapes but not the array bytes."""
    ds, path = saved

    def edit(members):  # +100 on every movie bias: finite, same shape and dtype
        members["movie_bias.W"] = members["movie_bias.W"] + 100
    rewrite(path, tmp_path / "edited.npz", arrays=edit, keep_digest=True)
    with pytest.raises(WeightsError, match="do not match the digest"):
        model_from_weights(tmp_path / "edited.npz", ds, backend="numpy")


def test_an_unknown_objective_in_a_record_is_refused(saved, tmp_path):
    """Bug: an unknown objective in a record accepted."""
    ds, path = saved

    def edit(rec):
        rec["objective"] = {"name": "warp"}
    rewrite(path, tmp_path / "warp.npz", record=edit)
    with pytest.raises(WeightsError, match="its objective 'warp' is not one minirec knows"):
        model_from_weights(tmp_path / "warp.npz", ds, backend="numpy")


def test_outputs_that_do_not_exist_yet_are_compared_resolved(tmp_path):
    """Bug: ``refuse_overlaps`` comparing a not-yet-existing path as a string."""
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path, tmp_path / "link")
    for other in (tmp_path / "sub" / ".." / "out.npz", tmp_path / "link" / "out.npz"):
        with pytest.raises(OSError, match="are the same file"):
            refuse_overlaps({"--save": str(tmp_path / "out.npz"), "--plot-loss": str(other)})
        with pytest.raises(OSError, match="is the weights file this command reads"):
            refuse_overlaps({"--plot": str(other)}, {"the weights file": str(tmp_path / "out.npz")})
    assert not (tmp_path / "out.npz").exists()


# ----- the probe ---------------------------------------------------------------------------------------

@pytest.mark.skipif(not numba_available(), reason="the fused kernels need numba")
def test_the_probe_key_changes_when_a_layer_is_edited(monkeypatch):
    """Bug: the probe's key leaving the layers' classes out, so a layer edited at run time
    reuses the old verdict. ``Dot`` is a layer of the model that neither the model's classes
    nor the kernel module name."""
    from minirec.train.runners import probe_key
    model = DotProductBias(5, 6, n_factors=2, backend="numba").compile(Adam())
    before = probe_key(model, "numba_mf", model.optimizer)
    monkeypatch.setattr(Dot, "forward", lambda self, a, b: 2 * (a * b).sum(axis=1))
    assert probe_key(model, "numba_mf", model.optimizer) != before


# ----- ranking metrics ---------------------------------------------------------------------------------

class Scores:
    """A stand-in model scoring movie j as -j for everyone (movie 0 first)."""

    def predict(self, x):
        return -np.asarray(x[1], np.float64)


def test_recall_divides_by_every_relevant_movie():
    """Bug: recall@k dividing by min(k, #relevant). User 0 holds out movies 0, 3 and 4 (all
    relevant); at k = 1 the list is [0]: one hit of three, recall 1/3 (precision 1, NDCG 1)."""
    train = Ratings(np.array([1]), np.array([1]), np.array([3.0]))
    test = Ratings(np.array([0, 0, 0]), np.array([0, 3, 4]), np.array([5.0, 4.0, 5.0]))
    r = ranking_metrics(Scores(), train, test, 5, k=1)
    assert r["recall"] == pytest.approx(1 / 3) and r["precision"] == 1.0 and r["ndcg"] == 1.0


# ----- registry and recipes -----------------------------------------------------------------------------

def test_a_class_defined_again_at_the_same_place_replaces_itself():
    """Bug: the registry refusing a class defined again at the same place (a notebook cell run
    twice)."""
    made = []
    try:
        for _ in range(2):
            @register("defined-twice")
            class Twice(DotProduct):
                pass
            made.append(Twice)
        assert KINDS["defined-twice"] is made[1]
    finally:
        KINDS.pop("defined-twice", None)
        TITLES.pop("defined-twice", None)


def test_recipes_build_keeps_the_recipes_own_l2():
    """Bug: ``recipes.build`` putting the notebook's L2 over the recipe's own."""
    ds = synthetic_movielens(10, 12, 100, seed=0)
    model = recipes.build("bias", ds, 0, backend="numpy", l2=3e-5, n_factors=4)
    assert model.l2 == 3e-5 and model.regularisers["user_embedding.W"].l2 == 3e-5
    assert model.n_factors == 4
    plain = recipes.build("bias", ds, 0, backend="numpy")
    assert plain.l2 == recipes.L2 and plain.n_factors == recipes.FACTORS


# ----- evaluate rebuilds the split the weights record -----------------------------------------------------

def test_evaluate_rebuilds_the_recorded_training_fraction(tmp_path, capsys):
    """Bug: ``evaluate`` rebuilding a stored split with 0.8 instead of the recorded fraction."""
    ds = synthetic_movielens(30, 40, 1500, seed=2)
    folder = write_release(ds, tmp_path / "data")
    train, valid = ds.split(0.6, seed=3)
    model = DotProductBias(ds.n_users, ds.n_movies, n_factors=3, backend="numpy").compile(Adam(0.01))
    model.fit(train.x, train.y, epochs=2, verbose=0)
    model.save_weights(tmp_path / "w.npz", data=ds, seed=3, train_fraction=0.6)
    assert main(["evaluate", "--weights", str(tmp_path / "w.npz"), "--data", str(folder),
                 "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert (f"validation MSE {model.evaluate(valid.x, valid.y):.4f}, training MSE "
            f"{model.evaluate(train.x, train.y):.4f}") in out


# ----- downloads ---------------------------------------------------------------------------------------------

def test_sha256_hashes_the_whole_file(tmp_path):
    """Bug: sha256 over only the first MiB."""
    data = np.random.default_rng(0).bytes(3 * 2 ** 20 + 17)
    (tmp_path / "big").write_bytes(data)
    assert checksums.sha256(tmp_path / "big") == hashlib.sha256(data).hexdigest()


def test_the_ledger_hashes_again_when_the_time_changed(tmp_path, monkeypatch):
    """Bug: the hash ledger trusting an unchanged size whatever the modification time."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "ratings.csv"
    path.write_text("1,2,3.5,0\n")
    assert checksums.file_hash(path) == checksums.sha256(path)
    stat = path.stat()
    path.write_text("1,2,4.5,0\n")  # the same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))  # another time
    assert checksums.file_hash(path) == hashlib.sha256(b"1,2,4.5,0\n").hexdigest()


def test_fetch_hashes_the_ratings_file_not_the_zip(tmp_path, monkeypatch):
    """Bug: ``fetch`` hashing the zip instead of the ratings file. A release with a recorded
    checksum of its ratings file installs; one without is held to its ratings file's hash, so
    ``--verify`` of the untouched copy passes."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    mirror, home = tmp_path / "mirror", tmp_path / "home"
    mirror.mkdir()
    home.mkdir()
    release = write_release(synthetic_movielens(10, 12, 100, seed=0), tmp_path / "release")
    for name, inner in (("ml-100k", "ml-100k"), ("ml-1m", "ml-1m")):
        with zipfile.ZipFile(mirror / f"{name}.zip", "w") as z:
            for f in release.iterdir():
                z.write(f, f"{inner}/{f.name}")
    monkeypatch.setenv("MINIREC_MIRROR", str(mirror))
    monkeypatch.setitem(download.RELEASES, "ml-100k",
                        ("ml-100k.zip", "ml-100k", checksums.sha256(release / "ratings.csv")))
    assert download.fetch("ml-100k", home) == home / "ml-100k"
    folder = download.fetch("ml-1m", home)
    checksums.verify(folder, "ml-1m", None, again=True)  # the hash it arrived with: its own
