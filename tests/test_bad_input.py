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

from minirec.synthetic import synthetic_movielens, write_release
from servers import Response

TRACEBACK = "Traceback"


def minirec(*args, cwd, env=None, timeout=300):
    full_env = {**os.environ, "MINIREC_BACKEND": "numpy", **(env or {})}
    return subprocess.run([sys.executable, "-m", "minirec.cli", *map(str, args)], cwd=cwd,
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
        record = json.loads(str(arrays["__config__"]))
        record.update({"class": "Wat"} if content == "unknown class" else {"class": "DotProduct", "colour": 1})
        arrays["__config__"] = np.array(json.dumps(record))
        np.savez(bad, **arrays)
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
    (["train", "--model", "dot", "--improved"], "--improved is a recipe for bias, nn, svdpp, not dot"),
    (["train", "--lr", 0], "--lr: must be a finite number > 0"),
    (["train", "--lr", "-0.1"], "--lr: must be a finite number > 0"),
    (["train", "--epochs", "-3"], "--epochs: must be >= 0, got -3"),
    (["recommend", "--weights", "w.npz", "--user", 1, "-k", "-2"], "-k: must be >= 1"),
    (["pca", "--weights", "w.npz", "--among", "-5"], "--among: must be >= 1"),
    (["recommend", "--weights", "w.npz", "--user", "1.9"], "--user: invalid int value: '1.9'"),
    (["train", "--model", "svd"], "invalid choice: 'svd'"),
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
    proc = subprocess.Popen([sys.executable, "-m", "minirec.cli", "train", "--data", str(data), "--epochs",
                             "50", "--save", str(tmp_path / "w.npz")], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MINIREC_BACKEND": "numpy"})
    proc.stdout.readline()  # the first epoch's line: training has begun
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
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
