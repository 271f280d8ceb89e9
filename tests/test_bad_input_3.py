"""The careful user, round 3: the bad inputs of the new models (EASE, BPMF, BPR, SVD++), one
section per class of issue 31, each fixed once at its depth and tested here without data.

The commands run in this process (``cli.main``), which prints a user error as one line on stderr
and returns 2; the memory tests set what the machine "has" (``inputs.available_memory``), so they
say the same on a laptop and on a server.
"""
from types import SimpleNamespace
import errno
import json
import tempfile

import numpy as np
import pytest

from minirec import BPMF, BPR, EASE, Adam, DotProduct, DotProductBias, FlippedSVDpp, SVDpp
from minirec import inputs
from minirec.data import checksums, download
from minirec.data.movielens import DataError, DataNotFound, Ratings, load_movielens
from minirec.data.synthetic import synthetic_movielens, write_release
from minirec.io.weights import WeightsError, digest
from minirec.models.saved import model_from_weights
from minirec.nn import gradcheck
from minirec.tools import analysis
from minirec.tools.cli import main
from minirec.tools.cli_options import TRAIN_FLAGS, build_parser
from minirec.train.objectives import MSE

GiB = 2 ** 30


def run(capsys, *args):
    """``minirec ARGS`` in this process: (exit status, stdout, stderr); argparse's refusals
    exit (``Parser.error``), the commands' return."""
    try:
        status = main([str(a) for a in args])
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def refused(capsys, *args, says=()):
    """The command ends with one line ``minirec: error: ...`` naming ``says``, exit status 2,
    and nothing on stdout (it checked before printing anything)."""
    status, out, err = run(capsys, *args)
    line = err.strip().splitlines()[-1] if err.strip() else ""
    assert status == 2 and line.startswith("minirec: error:"), (status, out, err)
    assert out == "", out
    for fragment in (says if isinstance(says, tuple) else (says,)):
        assert fragment in line, (fragment, line)
    return line


def rewrite(src, dst, record=None, arrays=None, keep_digest=False, drop_digest=False):
    """A copy of weights file ``src`` with ``record(rec)`` and ``arrays(members)`` applied, and
    its digest worked out again (what a user who edits a file can always do) unless told."""
    with np.load(src) as z:
        members = {k: z[k] for k in z.files}
    rec = json.loads(str(members.pop("__config__")[()]))
    if record:
        record(rec)
    if arrays:
        arrays(members)
    if drop_digest:
        rec.pop("digest")
    elif not keep_digest:
        rec["digest"] = digest(members, rec)
    np.savez(dst, **members, __config__=np.array(json.dumps(rec)))
    return dst


@pytest.fixture
def release(tmp_path):
    return write_release(synthetic_movielens(40, 60, 2500, seed=3), tmp_path / "data")


def small_ratings(rows):
    """A Ratings of (user, movie, rating) triples (indices)."""
    u, m, r = (np.array(c) for c in zip(*rows))
    return Ratings(u, m, r.astype(np.float64))


# ----- 1. memory taken on trust --------------------------------------------------------------

def test_ease_checks_the_memory_of_both_sides_before_allocating(monkeypatch):
    """20,000 users x 60,000 movies: the smaller side passed the old check (<= 20,000) while the
    U x M arrays need tens of GiB; now the one estimate is checked, with the figure in the
    message, before anything is allocated."""
    assert EASE.weights_implied(20_000, 60_000) * 4 > 4 * GiB
    monkeypatch.setattr(inputs, "available_memory", lambda xp=np: 2 * GiB)
    with pytest.raises(inputs.NotEnoughMemory, match=r"20,000 users x 60,000 movies needs about "
                                                     r"4\.5 GiB, more than the 2\.0 GiB available"):
        EASE(20_000, 60_000)
    # the fit's own arrays: U x M in float64 several times over, plus min(U, M)² matrices
    model = EASE(2_000, 6_000)  # its scores: 46 MiB
    assert model.fit_memory() == 36 * 2_000 * 6_000 + 24 * 2_000 ** 2
    monkeypatch.setattr(inputs, "available_memory", lambda xp=np: 200 * 2 ** 20)
    with pytest.raises(inputs.NotEnoughMemory, match=r"EASE's fit .* needs about 503\.5 MiB, more "
                                                     r"than the 200\.0 MiB available"):
        model.fit([np.array([0, 1]), np.array([0, 1])], np.array([5.0, 5.0]), verbose=0)


def test_bpmf_checks_its_memory_before_allocating(monkeypatch):
    monkeypatch.setattr(inputs, "available_memory", lambda xp=np: 1 * GiB)
    with pytest.raises(inputs.NotEnoughMemory, match=r"rank 1,130 x 540 kept draws = 610,200 factors"
                                                     r".* needs about 22\.1 GiB"):
        BPMF(671, 9066, rank=1130, samples=1130)


def test_a_weights_file_whose_record_implies_gigabytes_is_refused_before_building(tmp_path, monkeypatch):
    """Each field of the record is plausible alone (1,130 is less than the file's largest array);
    together rank = samples = 1,130 imply 610,200 factors a row: refused naming the figure,
    and no BPMF is ever built."""
    ds = synthetic_movielens(30, 4000, 9000, seed=0)
    assert ds.n_movies > 1130  # so each field alone passes the per-field check
    model = BPMF(ds.n_users, ds.n_movies, rank=2, samples=6, burn_in=2, thin=2, seed=0, backend="numpy")
    model.fit(ds.x, ds.y, verbose=0)
    model.save_weights(tmp_path / "b.npz", data=ds)

    def hostile(rec):
        rec["rank"] = rec["samples"] = 1130
    rewrite(tmp_path / "b.npz", tmp_path / "hostile.npz", record=hostile)

    def never(*args, **kwargs):
        raise AssertionError("the BPMF was built before its record was checked")
    monkeypatch.setattr(BPMF, "__init__", never)
    with pytest.raises(WeightsError, match=r"hostile.npz: the BPMF its record describes .*rank = "
                                           r"1130.* needs about [\d.]+ GiB, more than the [\d.]+ KiB "
                                           r"of weights the file holds; the record is damaged"):
        model_from_weights(tmp_path / "hostile.npz", ds, backend="numpy")


def test_every_kind_says_at_least_the_weights_it_holds():
    """The estimate ``model_from_weights`` checks a record by never exceeds what a real model of
    those settings holds (it would refuse good files), and is exact where a kind states it."""
    from minirec.models.registry import KINDS
    from minirec.models.saved import implied_weights
    train = small_ratings([(0, 0, 4), (1, 2, 3), (2, 1, 5), (3, 3, 2)])
    ds = SimpleNamespace(n_users=4, n_movies=5, user=train.user, movie=train.movie,
                         timestamp=np.full(len(train.user), 17000 * 86400))  # the timed kinds' days
    for kind, cls in KINDS.items():
        if not cls.__module__.startswith("minirec."):
            continue  # a learner's class another test registered
        model = cls.for_data(ds, train, backend="numpy")
        settings = {k: v for k, v in model.config().items() if k != "class"}
        implied = implied_weights(cls, {**settings, "dtype": "float32"})
        assert implied <= model.count_params(), kind
        if hasattr(cls, "weights_implied"):
            assert implied == model.count_params(), kind


@pytest.mark.parametrize("backend", ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    not __import__("minirec").backend.numba_available(), reason="needs numba"))])
def test_one_batch_size_door_refuses_below_one_and_clamps_to_the_data(backend):
    """fit, predict, evaluate and lr_find take any batch >= 1 and never size a buffer past the
    data (the fused kernel's batch state would ask for 8 TB at 10^12); -1 and 0 are refused, not
    an empty answer."""
    ds = synthetic_movielens(20, 30, 500, seed=1)
    model = DotProductBias(ds.n_users, ds.n_movies, n_factors=3, backend=backend).compile(Adam())
    model.fit(ds.x, ds.y, batch_size=10 ** 12, verbose=0)
    assert model.predict(ds.x, batch_size=10 ** 12).shape == (len(ds),)
    finder = model.lr_find(ds.x, ds.y, batch_size=10 ** 12, num_it=3)
    assert len(finder.lrs) >= 1
    for bad in (-1, 0):
        for call in (lambda b: model.predict(ds.x, batch_size=b),
                     lambda b: model.evaluate(ds.x, ds.y, batch_size=b),
                     lambda b: model.fit(ds.x, ds.y, batch_size=b, verbose=0),
                     lambda b: model.lr_find(ds.x, ds.y, batch_size=b)):
            with pytest.raises(ValueError, match=f"batch_size must be >= 1, got {bad}"):
                call(bad)
    assert inputs.batch_size(10 ** 12, 500) == 500 and inputs.batch_size(64, 500) == 64


def test_the_command_line_batch_is_clamped_too(release, capsys):
    status, out, _ = run(capsys, "train", "--data", release, "--epochs", 1, "-q",
                         "--batch-size", 1_000_000_000_000, "--backend", "numpy")
    assert status == 0 and "validation MSE" in out


# ----- 2. rows that never trained are not served ----------------------------------------------

def test_a_bpr_user_without_a_positive_is_refused_not_served(tmp_path, capsys):
    """BPR(positive_at=4) never trains a user whose ratings are all below 4: the mask comes
    from the rows the objective kept, survives saving and loading, and recommend refuses the
    user instead of printing a list from the row's random start."""
    ds = synthetic_movielens(30, 40, 1200, seed=4)
    low = int(np.argmin([ds.rating[ds.user == u].max() for u in range(ds.n_users)]))
    ds.rating[ds.user == low] = np.minimum(ds.rating[ds.user == low], 3.0)
    model = DotProduct(ds.n_users, ds.n_movies, n_factors=4, backend="numpy")
    model.compile(Adam(lazy=True), loss=BPR(positive_at=4)).fit(ds.x, ds.y, verbose=0)
    kept = ds.rating >= 4
    assert np.array_equal(model.trained_rows["user"], np.isin(np.arange(ds.n_users), ds.user[kept]))
    assert not model.trained_rows["user"][low]
    with pytest.raises(ValueError, match=f"user {ds.user_ids[low]} never trained \\(positive_at 4 "
                                         "kept none of its training ratings\\)"):
        analysis.recommend(model, ds, low)
    assert analysis.recommend(model, ds, int(np.flatnonzero(model.trained_rows["user"])[0]))
    model.save_weights(tmp_path / "r.npz", data=ds)
    back = model_from_weights(tmp_path / "r.npz", ds, backend="numpy")
    assert np.array_equal(back.trained_rows["user"], model.trained_rows["user"])
    folder = write_release(ds, tmp_path / "data")
    refused(capsys, "recommend", "--weights", tmp_path / "r.npz", "--data", folder, "--user",
            ds.user_ids[low], "--backend", "numpy", says=f"user {ds.user_ids[low]} never trained")


def test_similar_refuses_a_movie_whose_ratings_were_all_held_out(tmp_path, capsys):
    ds = synthetic_movielens(30, 200, 1200, seed=5)
    seed = next(s for s in range(100)  # a split that holds out every rating of some movie
                if set(range(ds.n_movies)) - set(ds.split(0.8, seed=s)[0].movie.tolist()))
    train, _ = ds.split(0.8, seed=seed)
    absent = sorted(set(range(ds.n_movies)) - set(train.movie.tolist()))
    model = DotProductBias(ds.n_users, ds.n_movies, n_factors=4, backend="numpy").compile(Adam())
    model.fit(train.x, train.y, verbose=0)
    with pytest.raises(ValueError, match="never trained \\(none of its ratings was a training rating\\)"):
        analysis.similar_movies(model, absent[0])
    neighbours = analysis.similar_movies(model, int(train.movie[0]), k=ds.n_movies)
    assert not set(absent) & {j for j, _ in neighbours}  # noise is nobody's neighbour
    model.save_weights(tmp_path / "s.npz", data=ds, seed=seed)
    folder = write_release(ds, tmp_path / "data")
    refused(capsys, "similar", "--weights", tmp_path / "s.npz", "--data", folder, "--movie",
            ds.title(absent[0]), "--backend", "numpy", says="never trained")


# ----- 3. fits with nothing to learn from ------------------------------------------------------

def test_fits_without_signal_are_refused():
    ds = synthetic_movielens(20, 30, 500, seed=6)
    with pytest.raises(ValueError, match="no training rating is 6 or more \\(positive_at\\), and "
                                         "the highest is 5"):
        EASE(ds.n_users, ds.n_movies, positive_at=6).fit(ds.x, ds.y, verbose=0)
    for cls in (SVDpp, FlippedSVDpp):  # built without their bags: N(i) would be nothing
        model = cls(ds.n_users, ds.n_movies, n_factors=3, backend="numpy").compile(Adam())
        with pytest.raises(ValueError, match="bag of .* is empty.*for_data"):
            model.fit(ds.x, ds.y, verbose=0)
        cls.for_data(ds, ds, n_factors=3, backend="numpy").compile(
            Adam()).fit(ds.x, ds.y, verbose=0)
    one = [np.array([0, 1, 2]), np.array([0, 0, 0])]
    with pytest.raises(ValueError, match="1 movie: nothing to rank"):
        EASE(3, 1).fit(one, np.array([5.0, 4.0, 3.0]), verbose=0)
    with pytest.raises(ValueError, match="1 movie: nothing to rank"):
        DotProduct(3, 1, backend="numpy").compile(Adam(), loss="bpr").fit(one, np.ones(3), verbose=0)


def test_a_small_catalogue_is_ranked_at_the_k_it_has_not_a_k_nobody_gave(tmp_path, capsys):
    data = tmp_path / "one"
    data.mkdir()
    rows = [f"{u},1,{1 + u % 5},0" for u in range(1, 40)]
    (data / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    for args in (["--model", "ease"], ["--loss", "bpr", "--epochs", "1"]):
        line = refused(capsys, "train", "--data", data, *args, "-q", "--backend", "numpy",
                       says="1 movie: nothing to rank")
        assert "k = 10" not in line
    three = write_release(synthetic_movielens(30, 3, 80, seed=1), tmp_path / "three")
    status, out, _ = run(capsys, "train", "--data", three, "--model", "ease", "-q", "--save",
                         tmp_path / "e.npz", "--backend", "numpy")
    assert status == 0 and "validation NDCG@3" in out
    status, out, _ = run(capsys, "evaluate", "--weights", tmp_path / "e.npz", "--data", three,
                         "--backend", "numpy")
    assert status == 0 and "k = 3" in out


# ----- 4. flags: not given means not given, and one table says who takes which -----------------

def test_a_flag_given_is_a_flag_used(release, capsys, monkeypatch):
    """--batch-size 64 with --loss bpr trains batches of 64 (the parser's default used to read
    as "not given", and the recipe's 1,024 replaced it); without the flag the recipe's 1,024."""
    from minirec.models import model as model_module
    seen = []
    real = model_module.fit
    monkeypatch.setattr(model_module, "fit", lambda m, x, y, batch_size, *rest: (
        seen.append(batch_size), real(m, x, y, batch_size, *rest))[1])
    for given, used in ((["--batch-size", 64], 64), ([], 1024)):
        status, _, err = run(capsys, "train", "--data", release, "--loss", "bpr", "--epochs", 1,
                             *given, "-q", "--backend", "numpy")
        assert status == 0, err
        assert seen.pop() == used


@pytest.mark.parametrize("args, says", [
    (["--lazy", "--dense"], "argument --dense: not allowed with argument --lazy"),
    (["--model", "ease", "--batch-size", 10], "fitted without Adam (its closed form"),
    (["--model", "ease", "--dense"], "it takes none of --dense"),
    (["--model", "bpmf", "--batch-size", 10, "--lazy"], "it takes none of --batch-size, --lazy"),
    (["--model", "bpmf", "--loss", "mse"], "it takes none of --loss"),
    (["--loss", "bpr", "--improved"], "--loss bpr trains the ranking recipe: it takes none of --improved"),
])
def test_flags_a_kind_does_not_take_are_refused_by_name(release, capsys, args, says):
    refused(capsys, "train", "--data", release, *args, says=says)


def test_the_flags_table_names_only_flags_train_has():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    options = {s for a in train._actions for s in a.option_strings}
    assert {f for flags in TRAIN_FLAGS.values() for f in flags} <= options


# ----- 5. commands check what a model kind offers before printing anything ---------------------

def test_commands_refuse_what_a_kind_does_not_offer_before_printing(release, tmp_path, capsys):
    for kind in ("bpmf", "ease"):
        refused(capsys, "lr-find", "--model", kind, "--data", release, says=(
            f"{kind} is fitted without Adam", "no learning rate to find"))
    assert run(capsys, "train", "--model", "ease", "--data", release, "-q", "--save",
               tmp_path / "e.npz", "--backend", "numpy")[0] == 0
    refused(capsys, "similar", "--weights", tmp_path / "e.npz", "--data", release, "--movie", 1,
            "--backend", "numpy", says="EASE has no movie embedding")
    refused(capsys, "pca", "--weights", tmp_path / "e.npz", "--data", release, "--backend",
            "numpy", says="EASE has no movie embedding")


# ----- 6. load_weights applies the objective the file records ----------------------------------

def test_bpr_weights_loaded_into_a_model_stay_a_ranker(tmp_path):
    ds = synthetic_movielens(20, 30, 600, seed=7)
    ranker = DotProductBias(ds.n_users, ds.n_movies, n_factors=3, backend="numpy")
    ranker.compile(Adam(), loss=BPR(positive_at=4, negatives="popularity")).fit(ds.x, ds.y, verbose=0)
    ranker.save_weights(tmp_path / "r.npz")
    plain = DotProductBias(ds.n_users, ds.n_movies, n_factors=3, backend="numpy").compile(Adam())
    plain.load_weights(tmp_path / "r.npz")
    assert isinstance(plain.objective, BPR) and plain.objective.settings() == ranker.objective.settings()
    with pytest.raises(ValueError, match="trained with bpr: its predictions are scores"):
        plain.evaluate(ds.x, ds.y)
    rater = DotProductBias(ds.n_users, ds.n_movies, n_factors=3, backend="numpy")
    rater.save_weights(tmp_path / "m.npz")
    plain.load_weights(tmp_path / "m.npz")
    assert isinstance(plain.objective, MSE) and np.isfinite(plain.evaluate(ds.x, ds.y))


# ----- 7. integrity ---------------------------------------------------------------------------

def test_a_format_3_record_without_its_digest_is_refused(tmp_path):
    ds = synthetic_movielens(20, 30, 600, seed=8)
    model = DotProductBias(ds.n_users, ds.n_movies, n_factors=3, backend="numpy")
    model.save_weights(tmp_path / "w.npz", data=ds)

    def edit(members):  # the biases +100, then the digest deleted to switch the check off
        members["movie_bias.W"] = members["movie_bias.W"] + 100
    rewrite(tmp_path / "w.npz", tmp_path / "edited.npz", arrays=edit, drop_digest=True)
    with pytest.raises(WeightsError, match="format-3 record has no digest"):
        model_from_weights(tmp_path / "edited.npz", ds, backend="numpy")
    with pytest.raises(WeightsError, match="format-3 record has no digest"):
        model.load_weights(tmp_path / "edited.npz")
    model.compile(Adam()).fit(ds.x, ds.y, verbose=0)  # now it records its trained rows
    model.save_weights(tmp_path / "t.npz", data=ds)

    def short(members):
        members["__trained_users__"] = members["__trained_users__"][:-1]
    rewrite(tmp_path / "t.npz", tmp_path / "short.npz", arrays=short)
    with pytest.raises(WeightsError, match=f"__trained_users__ must be one true/false per row "
                                           f"\\(n_users = {ds.n_users}\\), got bool of shape "
                                           f"\\({ds.n_users - 1},\\)"):
        model_from_weights(tmp_path / "short.npz", ds, backend="numpy")


def test_ids_are_checked_before_they_are_converted():
    """A uint64 id of 2^63 was cast to int64 first and reported as -9223372036854775808."""
    model = DotProduct(4, 5, n_factors=2, backend="numpy")
    huge = np.array([2 ** 63], dtype=np.uint64)
    with pytest.raises(KeyError) as caught:
        model.predict([huge, np.array([0])])
    assert "unknown user index 9223372036854775808" in str(caught.value)
    assert "-9223372036854775808" not in str(caught.value)
    with pytest.raises(KeyError, match="unknown movie index 1000000000000000019884624838656"):
        model.predict([np.array([0]), np.array([1e30])])
    ds = synthetic_movielens(4, 5, 12, seed=0)
    with pytest.raises(KeyError, match="unknown movie id 9223372036854775808"):
        analysis.predict_ids(model, ds, [int(ds.user_ids[0])], huge)


# ----- 8. messages that name what they are about --------------------------------------------------

def test_gradcheck_refuses_float32_instead_of_calling_a_correct_gradient_wrong():
    with pytest.raises(ValueError, match="needs a model built in float64, and this DotProduct is "
                                         "float32: build it with dtype=np.float64"):
        gradcheck.check_model(DotProduct(5, 6, n_factors=2, backend="numpy"), "dot", 1e-7)
    errors = gradcheck.check_model(DotProduct(5, 6, n_factors=2, dtype=np.float64, backend="numpy"),
                                   "dot", gradcheck.SMOOTH_BOUND)
    assert max(errors.values()) < gradcheck.SMOOTH_BOUND


def test_a_date_is_not_called_an_integer_id(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,4,2016-01-01\n")
    with pytest.raises(DataError) as caught:
        load_movielens(str(tmp_path))
    message = str(caught.value)
    assert "line 2: timestamp is '2016-01-01', not a Unix time" in message
    assert "integer id" not in message


def test_a_read_only_data_home_is_named_not_a_hidden_temporary(tmp_path, monkeypatch, capsys):
    """As root a chmod does not stop writes, so the read-only file system is the one the
    temporary folder meets (the first write into the data home)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def read_only(prefix, dir):
        raise OSError(errno.EROFS, "Read-only file system", f"{dir}/{prefix}abc123")
    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    home = tmp_path / "home"
    home.mkdir()
    with pytest.raises(DataNotFound, match=f"cannot write the download of ml-100k into {home} "
                                           r"\(Read-only file system\)\. Point minirec"):
        download.locate("ml-100k", data_home=home)
    line = refused(capsys, "download", "ml-100k", "--data-home", home, says="Read-only file system")
    assert ".ml-100k-" not in line and "Errno" not in line


def test_a_negative_seed_names_the_seed(release, capsys):
    for command in (["train", "--data", release], ["gradcheck"]):
        refused(capsys, *command, "--seed", -1, says="argument --seed: must be >= 0, got -1")


def test_a_cached_release_trusted_by_size_and_time_says_so(tmp_path, monkeypatch, capsys):
    """A file edited in place with its size and time kept is not hashed again: the load says so
    and names the command that hashes it; that command then refuses the edit."""
    import os
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    home = tmp_path / "home"
    folder = write_release(synthetic_movielens(20, 30, 300, seed=9), home / "ml-100k")
    ratings = folder / "ratings.csv"
    monkeypatch.setitem(download.RELEASES, "ml-100k",
                        ("ml-100k.zip", "ml-100k", checksums.sha256(ratings)))
    monkeypatch.setenv("MINIREC_DATA", str(home))
    first = run(capsys, "train", "--data", "ml-100k", "--epochs", 1, "-q", "--backend", "numpy")
    assert first[0] == 0 and "note" not in first[2]  # hashed now: nothing to say
    stat = ratings.stat()
    text = ratings.read_text()
    ratings.write_text(text.replace(",4,", ",3,", 1) if ",4," in text else text.replace(",3,", ",4,", 1))
    os.utime(ratings, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert ratings.stat().st_size == stat.st_size
    status, _, err = run(capsys, "train", "--data", "ml-100k", "--epochs", 1, "-q", "--backend", "numpy")
    assert status == 0 and "minirec: note:" in err
    assert "was not hashed again; `minirec download ml-100k --verify` hashes it anew" in err
    refused(capsys, "download", "ml-100k", "--verify", says="is not the ml-100k release")


def test_bpmf_clips_to_the_training_ratings_range_as_its_docstring_says():
    ds = synthetic_movielens(20, 30, 500, seed=10)
    y = np.clip(ds.y, 0.5, 3.0)  # half stars, none over 3
    lo, hi = float(y.min()), float(y.max())
    assert hi == 3.0 and lo < 1.0  # the old fixed clip (1, 5) would have cut both ends wrong
    model = BPMF(ds.n_users, ds.n_movies, rank=2, samples=6, burn_in=2, seed=0, backend="numpy")
    model.fit(ds.x, y, verbose=0)
    assert model.clip == (lo, hi) and model.config()["clip"] == [lo, hi]
    pred = model.predict(ds.x)
    assert pred.min() >= lo and pred.max() <= hi
    fixed = BPMF(ds.n_users, ds.n_movies, rank=2, samples=6, burn_in=2, clip=(1, 5), backend="numpy")
    fixed.fit(ds.x, y, verbose=0)
    assert fixed.clip == (1.0, 5.0)  # a clip given is kept
