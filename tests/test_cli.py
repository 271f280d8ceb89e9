"""The minirec command: help, gradcheck, train -> save -> evaluate, and one-line errors."""
import json
import os

import numpy as np
import pytest

from minirec.tools.cli import main
from minirec.data.synthetic import synthetic_movielens, write_ratings_csv, write_release


@pytest.fixture
def tiny_release(tmp_path):
    return write_release(synthetic_movielens(40, 60, 3000, seed=2), tmp_path / "tiny")


def test_gradcheck_exits_zero_and_prints_a_table(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "NeuralNet (dense_1.W)" in out and "0 failed" in out


def test_train_save_evaluate(tiny_release, tmp_path, capsys):
    weights = tmp_path / "w.npz"
    assert main(["train", "--model", "bias", "--data", str(tiny_release), "--epochs", "2",
                 "--improved", "--save", str(weights), "-q", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    val = float(out.split("validation MSE ")[1].split()[0])
    assert main(["evaluate", "--weights", str(weights), "--data", str(tiny_release),
                 "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "DotProductBias" in out and f"validation MSE {val:.4f}" in out


def test_lesson4_json(tiny_release, tmp_path, capsys):
    path = tmp_path / "m.json"
    assert main(["lesson4", "--data", str(tiny_release), "--improved", "-q", "--json", str(path),
                 "--weights-dir", str(tmp_path), "--backend", "numpy"]) == 0
    metrics = json.loads(path.read_text())
    assert set(metrics["models"]) == {"bias", "nn"}
    assert all(np.isfinite(m["val_mse"]) and m["epochs"] == 5 for m in metrics["models"].values())
    assert "the tracked prediction (user 3, movie 6) is the same" in capsys.readouterr().out


def test_bad_input_is_one_line_and_exit_two(tmp_path, capsys):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,9,3\n")
    assert main(["train", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("minirec: error:") and "line 2" in err
    assert main(["evaluate", "--weights", str(tmp_path / "none.npz"), "--data", str(tmp_path)]) == 2


def test_weights_for_another_data_set_are_refused(tiny_release, tmp_path, capsys):
    weights = tmp_path / "w.npz"
    main(["train", "--model", "dot", "--data", str(tiny_release), "--epochs", "1", "-q",
          "--save", str(weights), "--backend", "numpy"])
    other = tmp_path / "other"
    other.mkdir()
    write_ratings_csv(synthetic_movielens(10, 12, 200, seed=2), other / "ratings.csv")
    capsys.readouterr()
    assert main(["evaluate", "--weights", str(weights), "--data", str(other)]) == 2
    assert "users" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "lesson4" in capsys.readouterr().out


def test_pca_recommend_similar_commands(tiny_release, tmp_path, capsys):
    weights = tmp_path / "w.npz"
    main(["train", "--model", "bias", "--data", str(tiny_release), "--epochs", "1", "-q",
          "--save", str(weights), "--backend", "numpy"])
    common = ["--weights", str(weights), "--data", str(tiny_release), "--backend", "numpy"]
    png = tmp_path / "map.png"
    assert main(["pca", *common, "--among", "50", "--plot", str(png)]) == 0
    assert "component 3" in capsys.readouterr().out and png.stat().st_size > 0
    assert main(["recommend", *common, "--user", "1", "-k", "3"]) == 0
    assert capsys.readouterr().out.count("Synthetic movie") == 3
    assert main(["similar", *common, "--movie", "Synthetic movie 1", "-k", "2"]) == 0
    assert "movies most like Synthetic movie 1" in capsys.readouterr().out
    assert main(["similar", *common, "--movie", "movie 5"]) == 2  # 5 and 50..59 match
    assert "match" in capsys.readouterr().err
    assert main(["recommend", *common, "--user", "100000"]) == 2
    assert "unknown user id 100000" in capsys.readouterr().err


def test_lesson4_course_schedule_with_plots(tiny_release, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="plots need matplotlib (the plot extra)")
    path, plots = tmp_path / "m.json", tmp_path / "plots"
    assert main(["lesson4", "--data", str(tiny_release), "--course-schedule", "-q", "--json",
                 str(path), "--plots", str(plots), "--weights-dir", str(tmp_path),
                 "--backend", "numpy"]) == 0
    metrics = json.loads(path.read_text())
    assert metrics["schedule"] == "course schedule"
    assert {k: m["epochs"] for k, m in metrics["models"].items()} == {"dot": 10, "bias": 22, "nn": 8}
    assert sorted(p.name for p in plots.iterdir()) == ["bias.png", "dot.png", "nn.png"]
    assert main(["lesson4", "--data", str(tiny_release), "--improved", "--keras1-schedule"]) == 2


def test_lr_find_and_ranking_commands(tiny_release, tmp_path, capsys):
    assert main(["lr-find", "--model", "bias", "--improved", "--data", str(tiny_release),
                 "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    lowest = float(out.split("lowest at lr ")[1].split(";")[0])
    # both printed to three digits (%.2e): each within 5e-3 of its value
    assert float(out.split("suggested rate ")[1].split()[0]) == pytest.approx(lowest / 10, rel=1e-2)
    weights = tmp_path / "w.npz"
    main(["train", "--model", "bias", "--data", str(tiny_release), "--epochs", "1", "-q",
          "--save", str(weights), "--backend", "numpy"])
    capsys.readouterr()
    assert main(["evaluate", "--weights", str(weights), "--data", str(tiny_release), "--ranking",
                 "-k", "5", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "precision@k" in out and "popularity" in out and "k = 5" in out


def test_threads_option_reaches_the_model_for_this_command_only(tiny_release, tmp_path,
                                                                monkeypatch, capsys):
    numba = pytest.importorskip("numba")
    monkeypatch.delenv("MINIREC_THREADS", raising=False)
    # Numba starts as many threads as the process may use: one on a one-core machine (or under
    # `taskset -c 1`), where --threads 2 must say it was capped and still give the same numbers
    available = numba.config.NUMBA_NUM_THREADS
    results = {}
    for threads in ("1", "2"):
        path = tmp_path / f"threads{threads}.json"
        assert main(["lesson4", "--data", str(tiny_release), "--improved", "--backend", "numba",
                     "--threads", threads, "--json", str(path)]) == 0
        out = capsys.readouterr().out  # the summary names the threads that really run
        assert ("and 2 for the dense Adam step" in out) == (threads == "2" and available >= 2), out
        assert ("capped from 2 at this machine's 1" in out) == (threads == "2" and available == 1), out
        results[threads] = {kind: (r["val_mse"], r["train_mse"])
                            for kind, r in json.loads(path.read_text())["models"].items()}
    assert results["1"] == results["2"]  # the count changes the speed, not the numbers
    assert "MINIREC_THREADS" not in os.environ
    with pytest.raises(SystemExit) as stop:
        main(["train", "--data", str(tiny_release), "--threads", "0"])
    assert stop.value.code == 2
    assert "--threads" in capsys.readouterr().err


def test_lesson4_as_written_trains_the_bias_model_in_the_neural_net_cells(tiny_release, tmp_path, capsys):
    """The homework's nn cells call model.fit: as written, the bias model trains 25 + 10 epochs,
    the net none, and the PCA reads the untrained net's movie embeddings."""
    from minirec.tools import lesson4
    from minirec.data.movielens import load_movielens
    path = tmp_path / "m.json"
    assert main(["lesson4", "--data", str(tiny_release), "--as-written", "--json", str(path),
                 "--weights-dir", str(tmp_path), "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    models = json.loads(path.read_text())["models"]
    assert {k: m["epochs"] for k, m in models.items()} == {"dot": 10, "bias": 35, "nn": 0}
    ds = load_movielens(tiny_release)
    train, valid = ds.split(0.8, seed=42)
    untrained = lesson4.build("nn", ds, 42, "numpy", train)
    assert models["nn"]["val_mse"] == untrained.evaluate(valid.x, valid.y)  # the same net, evaluated alike
    assert "PCA of the movie embeddings of the neural net, which was never trained" in out
    assert "-- 3 epoch(s) at lr 0.001" in out and "at lr 0.01" not in out  # Keras ignored lr = 0.01
    assert main(["lesson4", "--data", str(tiny_release), "--as-written", "--course-schedule"]) == 2


def test_train_ranking_models_and_judge_them_by_ranking(tiny_release, tmp_path, capsys):
    """--loss bpr and --model ease train models of scores: the CLI reports NDCG, evaluate and
    recommend know they are scores (the weights record the objective), and no MSE is printed."""
    for args, name in ((["--model", "dot", "--loss", "bpr", "--epochs", "2"], "bpr"), (["--model", "ease"], "ease")):
        path = tmp_path / f"{name}.npz"
        assert main(["train", "--data", str(tiny_release), *args, "-q", "--save", str(path),
                     "--backend", "numpy"]) == 0
        out = capsys.readouterr().out
        assert f"({name}): validation NDCG@10" in out and "MSE" not in out
        assert main(["evaluate", "--weights", str(path), "--data", str(tiny_release), "--backend", "numpy"]) == 0
        out = capsys.readouterr().out
        assert f"trained to rank ({name})" in out and "NDCG@k" in out and "MSE" not in out
        assert main(["recommend", "--weights", str(path), "--data", str(tiny_release), "--user", "1",
                     "-k", "2", "--backend", "numpy"]) == 0
        assert "not ratings" in capsys.readouterr().out
    assert main(["train", "--data", str(tiny_release), "--model", "ease", "--epochs", "3"]) == 2
    assert "fitted without Adam (its closed form" in capsys.readouterr().err


def test_train_the_models_beyond_the_notebook_by_name(tiny_release, tmp_path, capsys):
    """svdpp and svdpp-flipped train with their recipes, bpmf by Gibbs sampling; each saves and
    evaluates back to the MSE it printed."""
    for args in (["--model", "svdpp", "--improved", "--epochs", "1"],
                 ["--model", "svdpp-flipped", "--improved", "--epochs", "1"], ["--model", "bpmf"]):
        path = tmp_path / f"{args[1]}.npz"
        assert main(["train", "--data", str(tiny_release), *args, "-q", "--save", str(path),
                     "--backend", "numpy"]) == 0
        val = float(capsys.readouterr().out.split("validation MSE ")[1].split()[0])
        assert main(["evaluate", "--weights", str(path), "--data", str(tiny_release), "--backend", "numpy"]) == 0
        assert f"validation MSE {val:.4f}" in capsys.readouterr().out
