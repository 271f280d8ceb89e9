"""The hybrid model (models/hybrid.py) and cold start (models/coldstart.py), data-free: gradients,
parity between backends, saving with its bags, movies scored from their side features, and new
users folded in from their ratings and their demographics."""
from types import SimpleNamespace

import numpy as np
import pytest

from minirec import Adam, Hybrid
from minirec.backend import numba_available
from minirec.data.movielens import Ratings
from minirec.models import coldstart, recipes
from minirec.models.saved import model_from_weights
from minirec.nn import gradcheck

BACKENDS = ["numpy"] + (["numba"] if numba_available() else [])


def tiny(backend="numpy", dtype=np.float64, seed=0, **kw):
    """5 users, 6 movies; movie 5 and user 4 have no ratings in ``TRAIN`` (cold)."""
    return Hybrid.for_data(SimpleNamespace(n_users=5, n_movies=6), TRAIN, n_factors=3, l2=1e-2,
                           y_range=(0.0, 5.5), movie_features=["a", "b", "c"],
                           user_features=["x", "y"],
                           movie_side=(np.array([0, 2, 3, 3, 4, 5, 7]), np.array([0, 1, 2, 0, 1, 0, 2])),
                           user_side=(np.array([0, 1, 1, 2, 3, 4]), np.array([0, 1, 0, 1])),
                           dtype=dtype, seed=seed, backend=backend, **kw)


TRAIN = Ratings(np.array([0, 0, 1, 1, 2, 3, 3, 0, 2]), np.array([0, 1, 1, 2, 3, 4, 0, 2, 2]),
                np.array([4.0, 3.5, 2.0, 5.0, 3.0, 1.0, 4.5, 2.5, 3.5], np.float32))


@pytest.mark.parametrize("cold_dropout", [0.0, 0.5])
def test_every_gradient_of_the_hybrid_matches_central_differences(cold_dropout):
    model = tiny(cold_dropout=cold_dropout)
    for name, p in model.params.items():  # move the zeroed cold rows off zero: check them too
        p += np.random.default_rng(3).uniform(-0.1, 0.1, p.shape)
    errors = gradcheck.check_model(model, "Hybrid", gradcheck.SMOOTH_BOUND)
    assert len(errors) == len(model.params) and max(errors.values()) < gradcheck.SMOOTH_BOUND


@pytest.mark.skipif(not numba_available(), reason="needs numba")
def test_the_hybrid_trains_alike_on_numpy_and_numba():
    """Three epochs of lazy-free Adam on each backend, float64. Bound: the same operations in
    another order (compiled bag sums and scatters), a few hundred float64 terms per entry, each
    step's rounding carried through Adam: 1e-9 relative is orders above 1e-16 · 10^3 · steps."""
    out = []
    for backend in ("numpy", "numba"):
        model = tiny(backend).compile(Adam(0.01))
        model.fit(TRAIN.x, TRAIN.y, batch_size=4, epochs=3, verbose=0)
        out.append({k: np.asarray(v) for k, v in model.params.items()})
    for name in out[0]:
        np.testing.assert_allclose(out[1][name], out[0][name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_cold_rows_start_at_zero_and_a_cold_movie_is_scored_from_its_side_features():
    model = tiny()
    assert not model.params["movie_embedding.W"][5].any() and not model.params["movie_bias.W"][5].any()
    assert not model.params["user_embedding.W"][4].any() and not model.params["user_bias.W"][4].any()
    before = model.predict([np.array([0]), np.array([5])])
    model.movie_side.set_bags((np.array([0, 2, 3, 3, 4, 5, 6]), np.array([0, 1, 2, 0, 1, 0])))
    after = model.predict([np.array([0]), np.array([5])])  # movie 5's genre changed: c -> a
    assert abs(after[0] - before[0]) > 1e-6
    model.params["movie_side.W"][...] = 0
    model.params["movie_side_bias.W"][...] = 0
    flat = model.predict([np.array([0, 0]), np.array([5, 5])])  # no side information left
    assert flat[0] == flat[1]


def test_the_hybrid_saves_and_loads_with_its_bags_and_feature_names(tmp_path):
    model = tiny(dtype=np.float32)
    model.save_weights(tmp_path / "h.npz")
    back = model_from_weights(tmp_path / "h.npz", backend="numpy")
    assert type(back) is Hybrid and back.movie_features == ["a", "b", "c"]
    users, movies = np.array([0, 1, 4, 2]), np.array([5, 2, 0, 1])
    np.testing.assert_array_equal(back.predict([users, movies]), model.predict([users, movies]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fold_in_fits_the_new_users_row_and_leaves_the_model_alone(backend):
    model = tiny(backend)
    before = {k: np.array(v) for k, v in model.params.items()}
    movies, ratings = np.array([0, 1, 2]), np.array([5.0, 5.0, 4.5])
    new, u = coldstart.fold_in(model, movies, ratings, l2=1e-3, steps=200, lr=0.1)
    assert u == 5 and new.n_users == 6 and model.n_users == 5
    for k, v in model.params.items():  # the original is untouched
        np.testing.assert_array_equal(np.asarray(v), before[k])
    zero, _ = coldstart.fold_in(model, movies, ratings, steps=0)
    error = np.abs(new.predict([np.full(3, u), movies]) - ratings).mean()
    error_unfitted = np.abs(zero.predict([np.full(3, u), movies]) - ratings).mean()
    assert error < 0.5 * error_unfitted  # the row was fitted: a forgotten row would not move
    for name, p in new.params.items():  # only the new user's rows moved
        old = before[name]
        rows = min(len(old), p.shape[0])
        np.testing.assert_array_equal(np.asarray(p)[:rows], old[:rows], err_msg=name)


def test_a_new_user_with_no_ratings_is_scored_from_their_demographics():
    model = tiny()
    model.params["user_side.W"][...] = np.array([[0.5, 0.5, 0.5], [-0.5, -0.5, -0.5]])
    model.params["user_side_bias.W"][...] = np.array([[0.3], [-0.3]])
    as_x, u = coldstart.fold_in(model, [], [], side=[0])
    as_y, _ = coldstart.fold_in(model, [], [], side=[1])
    movies = np.arange(6)
    px, py = (m.predict([np.full(6, u), movies]) for m in (as_x, as_y))
    assert np.all(np.abs(px - py) > 1e-6)
    assert as_x.user_side.bags[1][-1] == 0 and as_y.user_side.bags[1][-1] == 1


def test_fold_in_refuses_what_it_cannot_use():
    model = tiny()
    with pytest.raises(ValueError, match="3 movies but 2 ratings"):
        coldstart.fold_in(model, [0, 1, 2], [4.0, 3.0])
    with pytest.raises((KeyError, ValueError), match="movie"):
        coldstart.fold_in(model, [0, 9], [4.0, 3.0])
    with pytest.raises(ValueError, match="finite"):
        coldstart.fold_in(model, [0], [np.nan])
    plain = recipes.build("bias", SimpleNamespace(n_users=5, n_movies=6), 0, "numpy")
    with pytest.raises(ValueError, match="reads no user side features"):
        coldstart.fold_in(plain, [], [], side=[0])      # demographics it cannot read: not ignored


@pytest.mark.parametrize("kind", ["bpmf", "bayes-flipped", "bayes-hybrid"])
def test_fold_in_refuses_a_model_held_as_a_posterior_mean(kind):
    """A Gibbs model's user bias carries μ: a new user folded in from zero rows would be scored
    about μ too low (every pick clipped to the lowest rating, as ``recommend --side`` once
    printed for bayes-hybrid). It is refused, saying why."""
    from minirec.models import bayes_flipped, bayes_hybrid  # noqa: F401  (the kinds)
    from minirec.models.registry import KINDS
    model = KINDS[kind](5, 6, backend="numpy")
    with pytest.raises(ValueError, match="cannot fold a new user in: its user bias carries the global mean"):
        coldstart.fold_in(model, [0, 1], [4.0, 3.0])


def test_the_cli_trains_the_hybrid_and_folds_a_new_user_in(tmp_path, capsys):
    from minirec.data.synthetic import synthetic_movielens, write_release
    from minirec.tools.cli import main
    ds = synthetic_movielens(40, 30, 600, seed=1)
    write_release(ds, tmp_path / "data")
    (tmp_path / "data" / "movies.csv").write_text(
        "movieId,title,genres\n" + "".join(f"{m},Film {m} ({1990 + m % 20}),{'Comedy' if m % 2 else 'Drama'}\n"
                                         for m in ds.movie_ids))
    weights = tmp_path / "h.npz"
    assert main(["train", "--model", "hybrid", "--data", str(tmp_path / "data"), "--epochs", "1",
                 "--backend", "numpy", "--save", str(weights)]) == 0
    first, second = (int(m) for m in ds.movie_ids[:2])
    capsys.readouterr()
    assert main(["recommend", "--weights", str(weights), "--data", str(tmp_path / "data"),
                 "--rated", f"{first}=5,{second}=1", "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "A new user, folded in from 2 rating(s), without retraining" in out
    assert len(out.strip().splitlines()) == 4 and f"Film {first} " not in out  # rated: left out
    assert main(["recommend", "--weights", str(weights), "--data", str(tmp_path / "data"),
                 "--rated", "999999=4"]) == 2
    assert "unknown movie id 999999" in capsys.readouterr().err


def served(model, n_users=5, n_movies=6):
    """A stand-in data set for ``recommend`` over TRAIN (its ids are the indices)."""
    return SimpleNamespace(n_users=n_users, n_movies=n_movies, user=TRAIN.user, movie=TRAIN.movie,
                           user_ids=np.arange(n_users), title=lambda j: f"Film {j}")


def test_a_movie_that_never_trained_is_served_only_when_side_features_score_it(capsys):
    """Movie 5 has no training rating. The bias model's row for it is its random start: even
    with the largest score it is left out of every list. The hybrid scores it from its genres:
    it is served, and the line says so. A bug that serves noise, or hides a side-scored movie,
    or drops the note, fails here."""
    from minirec import DotProductBias
    from minirec.tools.analysis import recommend
    from minirec.tools.new_user import print_picks
    plain = DotProductBias(5, 6, n_factors=3,
                                    backend="numpy", seed=0).compile(Adam(0.01))
    plain.fit(TRAIN.x, TRAIN.y, batch_size=4, epochs=1, verbose=0)
    plain.params["movie_bias.W"][5] = 100.0  # noise that would top the list if served
    assert 5 not in [j for j, _ in recommend(plain, served(plain), 0, k=6)]
    assert list(coldstart.scored_from(plain, "movie")) == ["trained"] * 5 + ["nothing"]

    model = tiny().compile(Adam(0.01))
    model.fit(TRAIN.x, TRAIN.y, batch_size=4, epochs=1, verbose=0)
    assert list(coldstart.scored_from(model, "movie")) == ["trained"] * 5 + ["side"]
    model.params["movie_side_bias.W"][2] = 50.0  # feature c: movie 5's, and movie 4's (trained)
    picks = recommend(model, served(model), 0, k=6)
    assert 5 in [j for j, _ in picks]
    print_picks(model, served(model), picks)
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if "Film 5" in line][0].endswith(
        "(no training ratings: scored from its genres, year and tags)")
    assert not any("scored from" in line for line in lines if "Film 5" not in line)

    model.movie_side.set_bags((np.array([0, 2, 3, 3, 4, 5, 5]), np.array([0, 1, 2, 0, 1])))
    assert coldstart.scored_from(model, "movie")[5] == "nothing"  # no side features left
    assert 5 not in [j for j, _ in recommend(model, served(model), 0, k=6)]


def test_a_user_who_never_trained_is_served_from_demographics_or_refused(capsys):
    from minirec.tools.analysis import recommend
    from minirec.tools.new_user import print_picks
    model = tiny().compile(Adam(0.01))
    model.fit(TRAIN.x, TRAIN.y, batch_size=4, epochs=1, verbose=0)
    assert list(coldstart.scored_from(model, "user")) == ["trained"] * 4 + ["side"]
    picks = recommend(model, served(model), 4, k=3)
    assert len(picks) == 3
    print_picks(model, served(model), picks, user=4)
    assert capsys.readouterr().out.startswith(
        "user 4: no training ratings: scored from their age band, gender, occupation and region")
    model.user_side.set_bags((np.array([0, 1, 1, 2, 3, 3]), np.array([0, 1, 0])))
    with pytest.raises(ValueError, match="user 4 never trained"):
        recommend(model, served(model), 4)
