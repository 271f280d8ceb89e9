"""The careless and hostile user's catalogue, run through the real command in a subprocess.

Every user error must end the process with one line ``minirec: error: ...`` on stderr, no
traceback, exit status 2, and nothing written. Each section is one category of the catalogue.
"""
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minirec.data.synthetic import synthetic_movielens, write_release
from minirec.io.weights import digest
from servers import Response

TRACEBACK = "Traceback"


def minirec(*args, cwd, env=None, timeout=300):
    full_env = {**os.environ, "MINIREC_BACKEND": "numpy", **(env or {})}
    return subprocess.run([sys.executable, "-m", "minirec.tools.cli", *map(str, args)], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def refused(p, *fragments):
    """One line on stderr naming the problem, exit status 2, no traceback."""
    err = p.stderr.strip()
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert TRACEBACK not in p.stderr and err.count("\n") == 0, p.stderr
    assert err.startswith("minirec: error:"), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def files(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def release(tmp_path):
    return write_release(synthetic_movielens(60, 90, 3000, seed=1), tmp_path / "data")


@pytest.fixture
def weights(release, tmp_path):
    p = minirec("train", "--model", "bias", "--data", release, "--epochs", 1, "-q", "--seed", 7,
                "--save", tmp_path / "w.npz", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    return tmp_path / "w.npz", float(p.stdout.split("validation MSE ")[1].split()[0])


# ----- 1. saved weights know what they index --------------------------------------------------

def test_weights_refuse_the_same_ratings_in_another_order_for_evaluation(release, weights, tmp_path):
    path, _ = weights
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    lines = (release / "ratings.csv").read_text().splitlines()
    (shuffled / "ratings.csv").write_text("\n".join([lines[0], *sorted(lines[1:], reverse=True)]) + "\n")
    (shuffled / "movies.csv").write_text((release / "movies.csv").read_text())
    refused(minirec("evaluate", "--weights", path, "--data", shuffled, cwd=tmp_path),
            "are not the ones the weights were trained on", "pass --seed")
    # recommendations remap by id: the same list as on the original order
    same = [minirec("recommend", "--weights", path, "--data", d, "--user", 1, "-k", 5, cwd=tmp_path)
            for d in (release, shuffled)]
    assert same[0].returncode == same[1].returncode == 0 and same[0].stdout == same[1].stdout


def test_evaluate_uses_the_stored_split(weights, release, tmp_path):
    path, trained_mse = weights
    p = minirec("evaluate", "--weights", path, "--data", release, cwd=tmp_path)
    assert p.returncode == 0 and "its training split, seed 7" in p.stdout
    assert f"validation MSE {trained_mse:.4f}" in p.stdout


def test_weights_for_other_ids_are_refused_naming_the_difference(weights, tmp_path):
    other = write_release(synthetic_movielens(50, 90, 2000, seed=3), tmp_path / "other")
    refused(minirec("evaluate", "--weights", weights[0], "--data", other, cwd=tmp_path),
            "trained on 60 users and other has 50", "of the weights' users are not in other (ids 51")


def test_an_old_weights_file_loads_with_a_warning(release, tmp_path):
    from minirec import DotProductBias, load_movielens
    ds = load_movielens(release)
    model = DotProductBias(ds.n_users, ds.n_movies, n_factors=3, backend="numpy")
    arrays = {k: v for k, v in model.params.items()}
    config = {"class": "DotProductBias", "n_users": ds.n_users, "n_movies": ds.n_movies,
              "n_factors": 3, "l2": 1e-4, "y_range": None}
    np.savez(tmp_path / "old.npz", **arrays, __config__=np.array(json.dumps(config)))
    p = minirec("evaluate", "--weights", tmp_path / "old.npz", "--data", release, "--seed", 1, cwd=tmp_path)
    assert p.returncode == 0 and "older minirec" in p.stderr and TRACEBACK not in p.stderr


# ----- 3. the CLI keeps its promise -------------------------------------------------------------

@pytest.mark.parametrize("content, fragment", [
    (b"", "not a minirec weights file"),
    (b"garbage", "not a minirec weights file"),
    ("truncated", "not a minirec weights file"),
    ("unknown class", "describes a model class 'Wat'"),
    ("bad key", "does not build a DotProduct"),
])
def test_bad_weights_files_are_one_line(release, weights, tmp_path, content, fragment):
    bad = tmp_path / "bad.npz"
    if content == "truncated":
        bad.write_bytes(weights[0].read_bytes()[:1000])
    elif isinstance(content, str):
        with np.load(weights[0]) as data:
            arrays = {k: data[k] for k in data.files}
        record = json.loads(str(arrays.pop("__config__")))
        record.update({"class": "Wat"} if content == "unknown class" else {"class": "DotProduct", "colour": 1})
        record["digest"] = digest(arrays, record)  # a consistent file, as another program would write
        np.savez(bad, **arrays, __config__=np.array(json.dumps(record)))
    else:
        bad.write_bytes(content)
    refused(minirec("evaluate", "--weights", bad, "--data", release, cwd=tmp_path), fragment)


def test_divergence_is_one_line_and_saves_nothing(release, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    refused(minirec("train", "--data", release, "--lr", "1e6", "--save", out / "w.npz", "-q",
                    cwd=tmp_path), "diverged", "keeps the weights")
    assert files(out) == []


def test_a_missing_matplotlib_says_which_extra_to_install(weights, release, tmp_path):
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "matplotlib.py").write_text("raise ImportError('hidden for this test')\n")
    p = minirec("pca", "--weights", weights[0], "--data", release, "--among", 50, "--plot",
                tmp_path / "map.png", cwd=tmp_path, env={"PYTHONPATH": str(hide)})
    refused(p, "pip install 'minirec[plot]'")
    assert not (tmp_path / "map.png").exists()


@pytest.mark.parametrize("args, fragment", [
    (["train", "--batch-size", 0], "--batch-size: must be >= 1, got 0"),
    (["train", "--model", "dot", "--improved"], "--improved is a recipe for bias, nn, svdpp, svdpp-flipped, hybrid, not dot"),
    (["train", "--lr", 0], "--lr: must be a finite number > 0"),
    (["train", "--lr", "-0.1"], "--lr: must be a finite number > 0"),
    (["train", "--lr", "nan"], "--lr: must be a finite number > 0"),
    (["train", "--lr", "inf"], "--lr: must be a finite number > 0"),
    (["train", "--epochs", "-3"], "--epochs: must be >= 0, got -3"),
    (["recommend", "--weights", "w.npz", "--user", 1, "-k", "-2"], "-k: must be >= 1"),
    (["pca", "--weights", "w.npz", "--among", "-5"], "--among: must be >= 1"),
    (["recommend", "--weights", "w.npz", "--user", "1.9"], "--user: invalid int value: '1.9'"),
    (["train", "--model", "svd"], "--model svd: not a model kind ("),
])
def test_arguments_mean_what_they_say(tmp_path, args, fragment):
    refused(minirec(*args, cwd=tmp_path), fragment)


@pytest.mark.parametrize("option", ["--save", "--json", "--plot", "--weights-dir"])
def test_output_paths_are_checked_before_training(release, weights, tmp_path, option):
    target = tmp_path / "no-such-folder" / "x"
    command = {"--save": ["train"], "--json": ["lesson4"], "--weights-dir": ["lesson4"],
               "--plot": ["pca", "--weights", weights[0]]}[option]
    if option == "--weights-dir":
        target = tmp_path / "a-file"
        target.write_text("")
    start = time.perf_counter()
    p = minirec(*command, "--data", release, option, target, cwd=tmp_path)
    refused(p, str(target.parent if option != "--weights-dir" else target))
    assert "Epoch" not in p.stdout and time.perf_counter() - start < 20


def test_an_empty_validation_set_is_said_not_scored(tmp_path):
    seed = next(s for s in range(1000) if (np.random.default_rng(s).random(3) < 0.8).all())
    data = tmp_path / "three"
    data.mkdir()
    (data / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4,0\n1,2,3,0\n2,1,5,0\n")
    p = minirec("train", "--data", data, "--seed", seed, "--epochs", 1, "-q", cwd=tmp_path)
    assert p.returncode == 0 and "no validation ratings" in p.stdout and "MSE 0.0000" not in p.stdout


def test_similar_never_lists_the_movie_itself(weights, release, tmp_path):
    p = minirec("similar", "--weights", weights[0], "--data", release, "--movie", "Synthetic movie 1",
                "-k", 100000, cwd=tmp_path)
    lines = p.stdout.splitlines()[1:]
    assert p.returncode == 0 and len(lines) == 89 and not any(l.endswith("Synthetic movie 1") for l in lines)


def test_ctrl_c_is_one_line_and_saves_nothing(tmp_path):
    data = write_release(synthetic_movielens(2000, 3000, 400_000, seed=0), tmp_path / "big")
    proc = subprocess.Popen([sys.executable, "-m", "minirec.tools.cli", "train", "--data", str(data), "--epochs",
                             "50", "--save", str(tmp_path / "w.npz")], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MINIREC_BACKEND": "numpy", "PYTHONFAULTHANDLER": "1"},
                            # as from a terminal: a test run started in the background (`cmd &`
                            # in a script) ignores SIGINT, and a child would inherit that
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stdout.readline()  # the first epoch's line: training has begun
    assert first.startswith("Epoch 1/50"), first
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # show where it hung: faulthandler prints every thread's stack
        proc.send_signal(signal.SIGABRT)
        out, err = proc.communicate()
        pytest.fail(f"no exit within 120 s of Ctrl-C; the process was at:\n{err[-4000:]}")
    assert proc.returncode == 130 and err.strip() == "minirec: interrupted; no file was left half-written"
    assert "w.npz" not in files(tmp_path)


# ----- 5. downloads and the cache ----------------------------------------------------------------

def zipped(files_, inner="ml-1m"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files_.items():
            z.writestr(f"{inner}/{name}", text)
    return buf.getvalue()


GOOD = {"ratings.dat": "1::2::3::4\n2::2::4::5\n", "movies.dat": "2::Heat (1995)::Action\n"}


@pytest.mark.parametrize("response, fragment", [
    (Response(b"<!DOCTYPE html><html><body>Sign in to the network</body></html>"), "an HTML page"),
    (Response(zipped(GOOD), length=10_000), "cut short"),
    (Response(zipped(GOOD)[:50] + b"9" + zipped(GOOD)[51:]), "fails its CRC check"),
])
def test_bad_downloads_are_refused_and_leave_nothing(server, tmp_path, response, fragment):
    server.routes["/ml-1m.zip"] = response
    home = tmp_path / "home"
    home.mkdir()
    refused(minirec("download", "ml-1m", "--data-home", home, cwd=tmp_path,
                    env={"MINIREC_MIRROR": server.url}), fragment)
    assert files(home) == []


def test_a_damaged_cache_is_refused_with_the_way_to_fetch_it_again(server, tmp_path):
    server.routes["/ml-1m.zip"] = Response(zipped(GOOD))
    home = tmp_path / "home"
    env = {"MINIREC_MIRROR": server.url, "MINIREC_DATA": str(home)}
    home.mkdir()
    assert minirec("download", "ml-1m", cwd=tmp_path, env=env).returncode == 0
    ratings = home / "ml-1m" / "ratings.dat"
    ratings.write_text(ratings.read_text().splitlines()[0] + "\n")  # cut short in the cache
    refused(minirec("train", "--data", "ml-1m", cwd=tmp_path, env=env),
            "is not the ml-1m release", "minirec download ml-1m --force")
    assert minirec("download", "ml-1m", "--force", cwd=tmp_path, env=env).returncode == 0
    assert minirec("train", "--data", "ml-1m", "--epochs", 1, "-q", cwd=tmp_path, env=env).returncode == 0
    ratings.unlink()
    refused(minirec("train", "--data", "ml-1m", cwd=tmp_path, env=env), "holds no ratings file", "--force")


def test_another_release_under_a_known_name_is_refused(release, tmp_path):
    home = tmp_path / "home"
    (home / "ml-latest-small").mkdir(parents=True)
    for f in ("ratings.csv", "movies.csv"):
        (home / "ml-latest-small" / f).write_text((release / f).read_text())
    refused(minirec("train", cwd=tmp_path, env={"MINIREC_DATA": str(home)}),
            "is not the ml-latest-small release", "--force")


def test_a_mistyped_data_home_is_not_created(tmp_path):
    refused(minirec("train", cwd=tmp_path, env={"MINIREC_DATA": str(tmp_path / "typo")}),
            "MINIREC_DATA is set to", "not a folder")
    assert not (tmp_path / "typo").exists()


def test_a_folder_of_the_data_home_is_found_by_name(release, tmp_path):
    p = minirec("train", "--data", "data", "--epochs", 1, "-q", cwd="/", env={"MINIREC_DATA": str(tmp_path)})
    assert p.returncode == 0, p.stderr


def test_an_unwritable_cache_gives_a_hint_not_a_numba_traceback(release, tmp_path):
    pytest.importorskip("numba")
    blocked = tmp_path / "a-file"  # a folder below a file cannot be made, not even by root
    blocked.write_text("")
    env = {"MINIREC_BACKEND": "numba", "XDG_CACHE_HOME": str(blocked / "cache"),
           "HOME": str(blocked / "home"), "NUMBA_CACHE_DIR": ""}
    p = minirec("train", "--data", release, "--epochs", 1, "-q", cwd=tmp_path, env=env)
    assert p.returncode == 0 and "NUMBA_CACHE_DIR" in p.stderr and TRACEBACK not in p.stderr


# ----- 7. loaders name the file and the line -------------------------------------------------------

RATINGS = b"userId,movieId,rating,timestamp\n1,2,4,5\n"


@pytest.mark.parametrize("files, fragment", [
    ({"ratings.csv": b"userId,movieId,rating,timestamp\n1,2,4,5\n1,3,\xff4,5\n"}, "ratings.csv: line 3: not UTF-8"),
    ({"ratings.csv": b"userId,movieId,rating,timestamp\n1,2,4,5\n\n\n1,x,4,5\n"}, "ratings.csv: line 5: movieId is 'x'"),
    ({"ratings.dat": b"1::2::4::5\n1::3::4::5::6\n"}, "ratings.dat: line 2: more than 4 fields"),
    ({"ratings.csv": RATINGS + b"18446744073709551617,3,4,5\n"}, "line 3: userId"),
    ({"ratings.csv": RATINGS + b"9007199254740993.0,3,4,5\n"}, "too large to be held exactly"),
    ({"ratings.csv": RATINGS, "movies.csv": b"movieId,title,genres\n2,Heat,Action\nx,Up,Kids\n"},
     "movies.csv: line 3: movieId is 'x'"),
    ({"ratings.csv": RATINGS, "movies.csv": b"movieId,title,genres\n2,Heat \xe9t\xe9,Action\n"},
     "movies.csv: line 2: not UTF-8"),
    ({"ratings.csv": RATINGS, "movies.csv": b"id,name\n2,Heat\n"}, "movies.csv: line 1"),
    ({"ratings.dat": b"1::2::4::5\n", "movies.dat": b"2::Heat (1995)::Action\nHeat (1995)\n"},
     "movies.dat: line 2"),
])
def test_malformed_files_name_the_file_and_line(tmp_path, files, fragment):
    data = tmp_path / "data"
    data.mkdir()
    for name, content in files.items():
        (data / name).write_bytes(content)
    refused(minirec("train", "--data", data, cwd=tmp_path), fragment)


def test_duplicate_pairs_are_reported_and_the_copy_to_keep_is_chosen(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,4,5\n1,2,1,6\n2,2,3,5\n")
    for keep, fragment in (("all", "all kept"), ("first", "kept the first of each, dropped 1")):
        p = minirec("train", "--data", data, "--duplicates", keep, "--epochs", 1, "-q", cwd=tmp_path)
        assert p.returncode == 0 and "1 (user, movie) pairs are rated more than once" in p.stderr
        assert fragment in p.stderr


# ----- 8. no command writes over one of its own inputs, or over another of its outputs -----------

def test_no_command_writes_over_its_inputs_or_its_other_outputs(release, weights, tmp_path):
    ratings = (release / "ratings.csv").read_bytes()
    refused(minirec("train", "--data", release, "--save", release / "ratings.csv", "--epochs", 1,
                    cwd=tmp_path), "--save", "the data file ratings.csv this command reads")
    assert (release / "ratings.csv").read_bytes() == ratings
    out = tmp_path / "same.png"
    refused(minirec("train", "--data", release, "--save", out, "--plot-loss", out, cwd=tmp_path),
            "--save and --plot-loss are the same file")
    w = weights[0].read_bytes()
    refused(minirec("pca", "--weights", weights[0], "--data", release, "--plot", weights[0],
                    cwd=tmp_path), "the weights file this command reads")
    assert weights[0].read_bytes() == w
    p = minirec("lesson4", "--data", release, "--json", release / "movies.csv", cwd=tmp_path)
    refused(p, "--json", "the data file movies.csv")
    assert "Epoch" not in p.stdout and not (tmp_path / "same.png").exists()


# ----- 9. one validated reader of weights files -----------------------------------------------------

def rewrite(path, target, change_record=None, change_arrays=None, keep_digest=False):
    """Write ``target``: ``path``'s arrays and record, changed; its digest made to fit unless
    ``keep_digest`` (the old digest stays, as after damage)."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    record = json.loads(str(arrays.pop("__config__")))
    if change_arrays:
        change_arrays(arrays)
    if change_record:
        record = change_record(record)
    if isinstance(record, dict) and not keep_digest:
        record["digest"] = digest(arrays, record)
    np.savez(target, **arrays, __config__=np.array(json.dumps(record)))
    return target


def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def huge_header(path, target):
    """A member whose .npy header declares (10^12, 50) while holding a few bytes."""
    import zipfile as zf
    with zf.ZipFile(path) as z, zf.ZipFile(target, "w") as out:
        for info in z.infolist():
            data = z.read(info)
            if info.filename == "user_embedding.W.npy":
                header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 50), np.float32))
                header["shape"] = (10**12, 50)
                buf = io.BytesIO()
                np.lib.format.write_array_header_1_0(buf, header)
                data = buf.getvalue() + data[-200:]
            out.writestr(info.filename, data)
    return target


HOSTILE = {
    "a single .npy": (lambda w, t: (t.write_bytes(npy_bytes(np.zeros(3))), t)[1], "is a single .npy array"),
    "config not an object": (lambda w, t: rewrite(w, t, lambda r: [1, 2]), "JSON but not an object"),
    "split without a seed": (lambda w, t: rewrite(w, t, lambda r: {**r, "split": {"train_fraction": 0.8}}),
                             "its split record has no 'seed'"),
    "split of 1.5": (lambda w, t: rewrite(w, t, lambda r: {**r, "split": {"seed": 1, "train_fraction": 1.5}}),
                     "train_fraction is 1.5"),
    "no n_factors": (lambda w, t: rewrite(w, t, lambda r: {k: v for k, v in r.items() if k != "n_factors"}),
                     "does not record n_factors"),
    "format 99": (lambda w, t: rewrite(w, t, lambda r: {**r, "format": 99}), "has format 99"),
    "10^12 users": (lambda w, t: rewrite(w, t, lambda r: {**r, "n_users": 10**12}),
                    "n_users = 1,000,000,000,000"),
    "a huge header": (huge_header, "declares shape (1000000000000, 50)"),
    "NaN weights": (lambda w, t: rewrite(w, t, change_arrays=lambda a: a["movie_bias.W"].__setitem__(0, np.nan)),
                    "movie_bias.W holds NaN or infinite weights"),
    "ids as text": (lambda w, t: rewrite(w, t, change_arrays=lambda a: a.__setitem__("__user_ids__", a["__user_ids__"].astype(str))),
                    "__user_ids__ must be a 1-D array of whole-number ids"),
    "ids as floats": (lambda w, t: rewrite(w, t, change_arrays=lambda a: a.__setitem__("__user_ids__", a["__user_ids__"] + 0.5)),
                      "__user_ids__ must be a 1-D array of whole-number ids"),
    "repeated ids": (lambda w, t: rewrite(w, t, change_arrays=lambda a: a["__movie_ids__"].__setitem__(1, a["__movie_ids__"][0])),
                     "__movie_ids__ repeats ids"),
    "edited after saving": (lambda w, t: rewrite(w, t, lambda r: {**r, "y_range": [0, 9]}, keep_digest=True),
                            "do not match the digest"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_weights_file_is_one_line_naming_the_file(weights, release, tmp_path, case):
    make, fragment = HOSTILE[case]
    bad = make(weights[0], tmp_path / "bad.npz")
    refused(minirec("evaluate", "--weights", bad, "--data", release, cwd=tmp_path), str(bad), fragment)


def test_weights_with_other_settings_are_refused_naming_both_values(tmp_path):
    from minirec import DotProductBias
    DotProductBias(5, 6, n_factors=3, y_range=(0, 5.5), backend="numpy").save_weights(tmp_path / "w.npz")
    with pytest.raises(ValueError, match=r"y_range = \[0.0, 5.5\], but this DotProductBias has y_range = None"):
        DotProductBias(5, 6, n_factors=3, backend="numpy").load_weights(tmp_path / "w.npz")


def saved_model(tmp_path):
    from minirec import Adam, DotProductBias
    rng = np.random.default_rng(0)
    model = DotProductBias(6, 7, n_factors=3, seed=0, backend="numpy").compile(Adam(0.05))
    model.fit([rng.integers(0, 6, 80), rng.integers(0, 7, 80)], rng.integers(1, 6, 80) * 1.0, verbose=0)
    ds = synthetic_movielens(6, 7, 40, seed=0)
    model.save_weights(tmp_path / "good.npz", data=ds if (ds.n_users, ds.n_movies) == (6, 7) else None, seed=1)
    return model, (tmp_path / "good.npz").read_bytes()


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    return saved_model(tmp_path_factory.mktemp("good"))


def damaged(raw, how, where, value):
    data = bytearray(raw)
    if how == "truncate":
        return bytes(data[:where % len(data)])
    if how == "flip":
        data[where % len(data)] ^= 1 + value % 255
        return bytes(data)
    return bytes(data[:where % len(data)]) + bytes([value]) * 7 + bytes(data[where % len(data):])


@given(how=st.sampled_from(["truncate", "flip", "insert"]), where=st.integers(0, 10**6),
       value=st.integers(0, 255))
def test_random_damage_loads_the_same_model_or_gives_one_line(good_file, how, where, value):
    """Whatever the damage, loading gives back the saved model or a WeightsError that names the
    file in one line: never another exception, a MemoryError, or a quietly different model."""
    import tempfile
    from minirec.io.weights import WeightsError
    from minirec.models.saved import model_from_weights
    model, raw = good_file
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "w.npz")
        with open(path, "wb") as f:
            f.write(damaged(raw, how, where, value))
        try:
            back = model_from_weights(path, backend="numpy")
        except WeightsError as e:
            assert path in str(e) and "\n" not in str(e)
            return
    for name, p in model.params.items():
        np.testing.assert_array_equal(back.params[name], p)


@given(edit=st.sampled_from(["drop", "shape", "dtype", "record"]), seed=st.integers(0, 100))
def test_edited_arrays_or_records_are_refused(good_file, tmp_path_factory, edit, seed):
    from minirec.io.weights import WeightsError
    from minirec.models.saved import model_from_weights
    model, raw = good_file
    folder = tmp_path_factory.mktemp("edit")
    (folder / "w.npz").write_bytes(raw)
    name = sorted(model.params)[seed % len(model.params)]
    change = {"drop": lambda a: a.pop(name),
              "shape": lambda a: a.__setitem__(name, np.zeros((a[name].shape[0] + 1, 3), np.float32)),
              "dtype": lambda a: a.__setitem__(name, a[name].astype(np.float64)),
              "record": None}[edit]
    record = (lambda r: {**r, "l2": r["l2"] * 2}) if edit == "record" else None
    bad = rewrite(folder / "w.npz", folder / "bad.npz", record, change, keep_digest=True)
    with pytest.raises(WeightsError, match="bad.npz"):
        model_from_weights(bad, backend="numpy")


# ----- 10. the notebook's own lines, with pandas -----------------------------------------------------

def test_the_notebooks_own_calls_work_with_pandas_columns():
    """Cells 10-14 and 31 of the homework, as written (nb_epoch and all), on synthetic ratings."""
    import pandas as pd
    from minirec import Adam, DotProduct
    ds = synthetic_movielens(40, 50, 2000, seed=0)
    ratings = pd.DataFrame({"userId": ds.user_ids[ds.user], "movieId": ds.movie_ids[ds.movie],
                            "rating": ds.rating})
    users, movies = ratings.userId.unique(), ratings.movieId.unique()
    userid2idx = {o: i for i, o in enumerate(users)}
    movieid2idx = {o: i for i, o in enumerate(movies)}
    ratings.movieId = ratings.movieId.apply(lambda x: movieid2idx[x])
    ratings.userId = ratings.userId.apply(lambda x: userid2idx[x])
    n_users, n_movies = ratings.userId.nunique(), ratings.movieId.nunique()
    msk = np.random.default_rng(0).random(len(ratings)) < 0.8
    trn, val = ratings[msk], ratings[~msk]
    model = DotProduct(n_users, n_movies, 5, l2=1e-4, backend="numpy")
    model.compile(Adam(0.001), loss="mse")
    history = model.fit([trn.userId, trn.movieId], trn.rating, batch_size=64, nb_epoch=1,
                        validation_data=([val.userId, val.movieId], val.rating))
    assert len(history.epoch) == 1 and np.isfinite(history.history["val_loss"][0])
    predict = np.squeeze(model.predict([np.array([3]), np.array([6])])).item()
    assert predict == pytest.approx(model.predict([[3], [6]])[0])
    as_floats = model.predict([trn.userId.to_numpy(float), trn.movieId.to_numpy(float)])
    np.testing.assert_array_equal(as_floats, model.predict([trn.userId, trn.movieId]))
    with pytest.raises(ValueError, match=r"validation_data must be \(\[users, movies\], ratings\)"):
        model.fit([trn.userId, trn.movieId], trn.rating, validation_data=(val.userId, val.movieId, val.rating))
    with pytest.raises(ValueError, match="user ids must be whole-number indices, got dtype <U1"):
        model.predict([["x"], [1]])


# ----- 11. saving, disks and the cache -----------------------------------------------------------

def test_a_full_disk_names_the_path_and_keeps_the_old_file(tmp_path, monkeypatch):
    import errno
    from minirec import DotProduct
    path = tmp_path / "w.npz"
    model = DotProduct(3, 3, n_factors=2, backend="numpy")
    model.save_weights(path)
    old = path.read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(OSError, match=rf"cannot write {path}: the disk is full; the old file"):
        model.save_weights(path)
    assert path.read_bytes() == old and files(tmp_path) == ["w.npz"]


def test_what_a_killed_save_left_is_swept_by_the_next(release, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / f".w.npz.{dead}.abc.part").write_bytes(b"half")
    live = tmp_path / f".w.npz.{os.getpid()}.def.part"  # a writer still running keeps its file
    live.write_bytes(b"busy")
    p = minirec("train", "--data", release, "--epochs", 1, "-q", "--save", tmp_path / "w.npz", cwd=tmp_path)
    assert p.returncode == 0 and files(tmp_path) == sorted([live.name, "data", "w.npz"])


def test_a_zip_that_would_unpack_far_past_its_size_is_refused(server, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ml-1m/ratings.dat", "1::2::3::4\n" + "0" * 200_000_000)
    server.routes["/ml-1m.zip"] = Response(buf.getvalue())
    home = tmp_path / "home"
    home.mkdir()
    refused(minirec("download", "ml-1m", "--data-home", home, cwd=tmp_path,
                    env={"MINIREC_MIRROR": server.url}), "times its own size", "refusing it")
    assert files(home) == []


def test_verify_catches_an_edit_that_kept_size_and_time_and_a_mirror_may_be_a_folder(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "ml-1m.zip").write_bytes(zipped(GOOD))
    home = tmp_path / "home"
    home.mkdir()
    env = {"MINIREC_MIRROR": str(mirror), "MINIREC_DATA": str(home)}
    assert minirec("download", "ml-1m", cwd=tmp_path, env=env).returncode == 0
    ratings = home / "ml-1m" / "ratings.dat"
    st_ = ratings.stat()
    ratings.write_text(ratings.read_text().replace("3", "5"))  # same size
    os.utime(ratings, ns=(st_.st_atime_ns, st_.st_mtime_ns))   # same time
    assert minirec("train", "--data", "ml-1m", "--epochs", 1, "-q", cwd=tmp_path, env=env).returncode == 0
    refused(minirec("download", "ml-1m", "--verify", cwd=tmp_path, env=env), "is not the ml-1m release")
    refused(minirec("download", "ml-1m", cwd=tmp_path, env={"MINIREC_MIRROR": str(tmp_path / "nope"),
                                                          "MINIREC_DATA": str(tmp_path)}),
            "neither a URL nor a folder")


# ----- 12. messages that mislead ------------------------------------------------------------------

def test_messages_that_used_to_mislead(release, weights, tmp_path):
    refused(minirec("evaluate", "--weights", weights[0], "--data", release, cwd=tmp_path,
                    env={"MINIREC_THREADS": "abc"}), "MINIREC_THREADS must be a whole number")
    refused(minirec("evaluate", "--weights", weights[0], "--data", release, "--ranking", "-k", 99999,
                    cwd=tmp_path), "k = 99999 is more than the 90 movies")
    refused(minirec("pca", "--weights", weights[0], "--data", release, "--among", 1, cwd=tmp_path),
            "at most 0 components")
    p = minirec("similar", "--weights", weights[0], "--data", release, "--movie", "3", "-k", 2, cwd=tmp_path)
    assert p.returncode == 0 and "(movie id 3)" in p.stdout and "read as the movie id 3" in p.stderr


def test_ranking_without_relevant_ratings_and_recommendations_with_nothing_left(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = [f"{u},{m},{2 if u < 3 else 3},0" for u in range(1, 6) for m in range(1, 13)]
    (data / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    assert minirec("train", "--data", data, "--epochs", 1, "-q", "--save", tmp_path / "w.npz",
                   cwd=tmp_path).returncode == 0
    refused(minirec("evaluate", "--weights", tmp_path / "w.npz", "--data", data, "--ranking",
                    cwd=tmp_path), "no held-out rating is 4 or more")
    refused(minirec("recommend", "--weights", tmp_path / "w.npz", "--data", data, "--user", 1,
                    cwd=tmp_path), "has rated every one of the 12 movies")


def test_recommend_refuses_a_user_whose_every_rating_was_held_out(tmp_path):
    seed = next(s for s in range(1000) if not (np.random.default_rng(s).random(9) < 0.8)[-1])
    data = tmp_path / "data"
    data.mkdir()
    rows = [f"{u},{m},4,0" for u, m in [(1, 1), (1, 2), (2, 1), (2, 3), (3, 2), (3, 3), (4, 1), (4, 2), (5, 3)]]
    (data / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    assert minirec("train", "--data", data, "--epochs", 1, "-q", "--seed", seed, "--save",
                   tmp_path / "w.npz", cwd=tmp_path).returncode == 0
    refused(minirec("recommend", "--weights", tmp_path / "w.npz", "--data", data, "--user", 5,
                    cwd=tmp_path), "user 5 never trained (none of its ratings was a training rating)")


def test_lesson4_refuses_a_split_without_validation_before_training(tmp_path):
    seed = next(s for s in range(1000) if (np.random.default_rng(s).random(3) < 0.8).all())
    data = tmp_path / "three"
    data.mkdir()
    (data / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4,0\n1,2,3,0\n2,1,5,0\n")
    p = minirec("lesson4", "--data", data, "--seed", seed, cwd=tmp_path)
    refused(p, "leaves 3 training and 0 validation ratings")
    assert "Epoch" not in p.stdout


def test_evaluating_without_the_duplicates_setting_says_which_setting(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = [f"{u},{m},{(u * m) % 5 + 1},0" for u in range(1, 9) for m in range(1, 9)] + ["1,1,2,9"]
    (data / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    assert minirec("train", "--data", data, "--duplicates", "last", "--epochs", 1, "-q", "--save",
                   tmp_path / "w.npz", cwd=tmp_path).returncode == 0
    p = minirec("evaluate", "--weights", tmp_path / "w.npz", "--data", data, cwd=tmp_path)
    last = p.stderr.strip().splitlines()[-1]  # after the warning that the pair repeats
    assert p.returncode == 2 and TRACEBACK not in p.stderr and last.startswith("minirec: error:")
    assert "read with --duplicates last" in last


def test_the_api_says_what_it_means(tmp_path):
    import warnings
    from minirec import Adam, DotProductBias
    from minirec.models.saved import model_from_weights
    ds = synthetic_movielens(20, 30, 600, seed=0)
    model = DotProductBias(ds.n_users, ds.n_movies, n_factors=3, backend="numpy").compile(Adam())
    with pytest.raises(ValueError, match="div > 0"):
        model.fit_one_cycle(ds.x, ds.y, 1, 0.01, div=0)
    model.save_weights(tmp_path / "a.npz", data=ds, seed=42)  # the README's own form
    assert model_from_weights(tmp_path / "a.npz", ds, backend="numpy").trained_on["split"] == \
        {"seed": 42, "train_fraction": 0.8}
    model.save_weights(tmp_path / "b.npz")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model_from_weights(tmp_path / "b.npz", ds, backend="numpy")
    text = " ".join(str(w.message) for w in caught)
    assert "saved without data=" in text and "older minirec" not in text
