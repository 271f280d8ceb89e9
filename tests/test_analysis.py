"""PCA maths, rankings, similar movies, recommendations, unknown ids and the movie map."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tolerances as tol
from minirec import Adam, DotProduct, DotProductBias, MovieLens, NeuralNet
from minirec.data.synthetic import synthetic_movielens
from minirec.tools.analysis import (bias_ranking, components_text, find_movie, movie_components, pca,
                              predict_ids, recommend, similar_movies, top_movies)
from minirec.tools.plots import plot_movie_map


@given(n=st.integers(5, 30), F=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_pca_matches_the_covariance_eigendecomposition(n, F, seed):
    X = np.random.default_rng(seed).standard_normal((n, F)) * np.arange(1, F + 1)
    k = min(F, n - 1)
    result = pca(X, k)
    Xc = X - X.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(Xc.T @ Xc / (n - 1))
    eigval, eigvec = eigval[::-1][:k], eigvec[:, ::-1][:, :k]
    # Two backward-stable routes (the SVD of Xc, eigh of XcᵀXc): each eigenvalue within
    # ‖ΔA‖ of the exact one (Weyl), ‖ΔA‖ the Gram product's n-term sums and the solvers'
    # backward errors, all relative to the trace (the sum of the eigenvalues); each route's
    # ratio within that, so the two within twice (tolerances.py)
    trace = np.trace(Xc.T @ Xc / (n - 1))
    moved = tol.rounding(n) + 2 * tol.backward_stable(n, F)  # ‖ΔA‖ / trace
    np.testing.assert_allclose(result.explained_variance_ratio, eigval / trace, rtol=0, atol=4 * moved)
    distinct = np.abs(np.diff(eigval)) > 1e-6 * eigval[0]  # a repeated eigenvalue has no unique vector
    full = np.concatenate([[np.inf], eigval, [np.inf] if k == F else [np.linalg.eigvalsh(Xc.T @ Xc / (n - 1))[::-1][k]]])
    for c in range(k):
        if (c == 0 or distinct[c - 1]) and (c == k - 1 or distinct[c]):
            # an eigenvector turns by at most sin θ ≤ 2‖ΔA‖/gap (Davis–Kahan, both routes), and
            # 1 - |cos θ| ≤ sin²θ, plus the F-term dot product's rounding
            gap = min(full[c] - full[c + 1], full[c + 1] - full[c + 2])
            sin = 2 * moved * trace / gap
            assert abs(abs(result.components[c] @ eigvec[:, c]) - 1) <= sin ** 2 + tol.rounding(F)
    # the sign convention: each component's largest-magnitude loading is positive
    biggest = np.abs(result.components).argmax(axis=1)
    assert (result.components[np.arange(k), biggest] > 0).all()


def test_pca_reconstruction_error_is_the_discarded_variance():
    X = np.random.default_rng(0).standard_normal((200, 6)) @ np.diag([5, 3, 2, 1, 0.5, 0.1])
    full = pca(X, 6)
    # the SVD's backward error ‖E‖ ≤ backward_stable(200, 6)·‖Xc‖ bounds every entry, then the
    # mean plus a 6-term product (tolerances.py)
    Xc = X - X.mean(axis=0)
    allowed = (tol.backward_stable(200, 6) * np.linalg.norm(Xc, 2)
               + tol.rounding(8) * (np.abs(full.mean) + np.abs(full.scores) @ np.abs(full.components)))
    assert np.all(np.abs(full.mean + full.scores @ full.components - X) <= allowed)
    two = pca(X, 2)
    residual = X - (two.mean + two.scores @ two.components)
    total = ((X - X.mean(0)) ** 2).sum()
    assert (residual ** 2).sum() == pytest.approx(total * (1 - two.explained_variance_ratio.sum()))
    with pytest.raises(ValueError, match="at most 6 components; asked for 7"):
        pca(X, 7)
    with pytest.raises(ValueError, match="no variance"):
        pca(np.ones((5, 3)), 2)


def test_pca_signs_are_stable_under_row_order_and_negation():
    X = np.random.default_rng(1).standard_normal((50, 4))
    a, b, c = pca(X, 3), pca(X[::-1].copy(), 3), pca(-X, 3)
    # the same matrix, its rows in another order: each SVD within backward_stable·‖Xc‖ of it, so
    # a right singular vector turns by at most that over its gap to the next singular value
    # (Wedin), on each side
    s = np.linalg.svd(X - X.mean(axis=0), compute_uv=False)
    gaps = np.minimum(np.abs(s[:3] - s[1:4]), np.abs(s[:3] - np.concatenate([[np.inf], s[:2]])))
    allowed = (2 * tol.backward_stable(50, 4) * s[0] / gaps + tol.rounding(50))[:, None]
    assert np.all(np.abs(a.components - b.components) <= allowed)
    assert np.all(np.abs(np.abs(a.components) - np.abs(c.components)) <= allowed)


@pytest.fixture
def small():
    """6 users, 5 movies; movie 1 has the most ratings, then movie 0."""
    users = [1, 1, 2, 2, 3, 3, 4, 5, 6, 6]
    movies = [10, 20, 20, 30, 20, 10, 40, 20, 50, 10]
    titles = {10: "Alien (1979)", 20: "Toy Story (1995)", 30: "Toy Story 2 (1999)",
              40: "Heat (1995)", 50: "Up (2009)"}
    return MovieLens("small", users, movies, np.arange(10) % 5 + 1.0, titles)


def test_top_movies_orders_by_count(small):
    assert list(top_movies(small, 3)) == [small.movieid2idx[20], small.movieid2idx[10],
                                          small.movieid2idx[30]]


def test_bias_ranking(small):
    model = DotProductBias(small.n_users, small.n_movies, n_factors=2, backend="numpy")
    model.params["movie_bias.W"][:, 0] = [0.5, -1.0, 2.0, 0.0, -0.2]
    low, high = bias_ranking(model, small, n=2, among=5)
    assert [t for _, t in low] == [small.title(1), small.title(4)]
    assert [t for _, t in high] == [small.title(2), small.title(0)]
    assert low[0][0] == -1.0


def test_similar_movies_by_cosine(small):
    model = DotProduct(small.n_users, small.n_movies, n_factors=2, backend="numpy")
    model.params["movie_embedding.W"][:] = [[1, 0], [0, 1], [2, 0.1], [-1, 0], [1, 1]]
    result = similar_movies(model, 0, k=3)
    assert [j for j, _ in result] == [2, 4, 1] and 0 not in [j for j, _ in result]
    assert result[1][1] == pytest.approx(1 / np.sqrt(2))
    with pytest.raises(KeyError, match="unknown movie index 9"):
        similar_movies(model, 9)


def test_recommend_excludes_what_the_user_has_seen(small):
    model = DotProductBias(small.n_users, small.n_movies, n_factors=2, backend="numpy", dtype=np.float64)
    model.params["user_embedding.W"][:] = 0
    model.params["user_bias.W"][:] = 0
    model.params["movie_bias.W"][:, 0] = [5, 4, 3, 2, 1]  # a movie's score is its bias
    user = small.userid2idx[1]  # rated movies 10 and 20 (indices 0 and 1)
    assert [j for j, _ in recommend(model, small, user, k=2)] == [2, 3]
    assert [j for j, _ in recommend(model, small, user, k=2, exclude_seen=False)] == [0, 1]
    assert len(recommend(model, small, user, k=10)) == 3  # only unseen movies come back
    with pytest.raises(KeyError, match="unknown user index 6"):
        recommend(model, small, 6)


def test_unknown_ids_are_named_or_fall_back_to_the_models_typical_prediction(small):
    model = DotProductBias(small.n_users, small.n_movies, n_factors=2, backend="numpy", dtype=np.float64)
    with pytest.raises(KeyError, match="unknown user id 99"):
        predict_ids(model, small, [99], [10])
    with pytest.raises(KeyError, match="unknown movie id 77"):
        predict_ids(model, small, [1], [77])
    pred, fell_back = predict_ids(model, small, [1, 99, 1, 99], [10, 10, 77, 77], unknown="fallback")
    assert list(fell_back) == [False, True, True, True]
    assert pred[0] == pytest.approx(model.predict([np.array([0]), np.array([0])])[0])
    users, movies = np.arange(small.n_users), np.arange(small.n_movies)
    by_user = np.bincount(small.user, minlength=small.n_users)
    by_movie = np.bincount(small.movie, minlength=small.n_movies)
    on_movie_10 = model.predict([users, np.zeros_like(users)])   # movie id 10 is index 0
    for_user_1 = model.predict([np.zeros_like(movies), movies])   # user id 1 is index 0
    assert pred[1] == pytest.approx(np.average(on_movie_10, weights=by_user))
    assert pred[2] == pytest.approx(np.average(for_user_1, weights=by_movie))
    assert pred[3] == pytest.approx(small.rating.mean())


@pytest.mark.parametrize("cls, kwargs", [(DotProductBias, {}), (DotProductBias, {"y_range": (0, 5.5)}),
                                         (NeuralNet, {"dropout": (0.1, 0.1)})])
@pytest.mark.parametrize("unknown", ["movie", "user"])
def test_cold_start_beats_the_global_mean_on_held_out_ratings(cls, kwargs, unknown):
    """Train, then predict the held-out ratings as if each one's movie (or user) were new:
    the fallback must be closer to the truth than the global mean."""
    ds = synthetic_movielens(300, 500, 30_000, seed=4)
    train, valid = ds.split(0.8, seed=0)
    model = cls(ds.n_users, ds.n_movies, n_factors=8, seed=0, backend="numpy", **kwargs)
    model.compile(Adam(0.01)).fit(train.x, train.y, batch_size=256, epochs=3, verbose=0)
    user_ids, movie_ids = ds.user_ids[valid.user], ds.movie_ids[valid.movie]
    if unknown == "movie":
        movie_ids = np.full(len(valid), 10**9)
    else:
        user_ids = np.full(len(valid), 10**9)
    pred, fell_back = predict_ids(model, ds, user_ids, movie_ids, unknown="fallback")
    assert fell_back.all()
    fallback_mse = np.mean((pred - valid.y) ** 2)
    global_mse = np.mean((train.y.mean() - valid.y) ** 2)
    assert fallback_mse < 0.95 * global_mse, (fallback_mse, global_mse)


def test_ids_are_whole_numbers_and_come_in_pairs(small):
    model = DotProduct(small.n_users, small.n_movies, n_factors=2, backend="numpy")
    with pytest.raises(ValueError, match="whole numbers, got 1.9"):
        predict_ids(model, small, [1.9], [10])
    with pytest.raises(ValueError, match="2 user ids but 1 movie ids"):
        predict_ids(model, small, [1, 2], [10])
    assert predict_ids(model, small, [1.0], [10])[1].tolist() == [False]


def test_find_movie_by_title_or_id(small):
    assert find_movie(small, "Toy Story (1995)") == small.movieid2idx[20]
    assert find_movie(small, "30") == small.movieid2idx[30]
    assert find_movie(small, "heat") == small.movieid2idx[40]
    with pytest.raises(KeyError, match=r"2 movies match 'Toy Story'.*Toy Story 2 \(1999\) \(id 30\)"):
        find_movie(small, "Toy Story")
    with pytest.raises(KeyError, match="no movie"):
        find_movie(small, "Casablanca")


def test_movie_components_and_the_map_png(tmp_path):
    pytest.importorskip("matplotlib", reason="the movie map needs matplotlib (the plot extra)")
    from minirec.data.synthetic import synthetic_movielens
    ds = synthetic_movielens(60, 120, 4000, seed=0)
    model = DotProduct(ds.n_users, ds.n_movies, n_factors=5, seed=0, backend="numpy")
    result, movies, extremes = movie_components(model, ds, n_components=3, among=100, n=10)
    assert result.scores.shape == (100, 3) and len(extremes) == 3
    assert all(len(top) == 10 and len(bottom) == 10 for top, bottom in extremes)
    path = plot_movie_map(model, ds, tmp_path / "map.png", among=100)
    data = (tmp_path / "map.png").read_bytes()
    assert path.endswith("map.png") and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.png"]


def test_components_text_lists_each_component_with_its_share_and_extremes():
    ds = synthetic_movielens(60, 120, 4000, seed=0)
    model = DotProduct(ds.n_users, ds.n_movies, n_factors=5, seed=0, backend="numpy")
    result, _, extremes = movie_components(model, ds, n_components=2, among=100, n=4)
    lines = components_text(result, extremes, n=3).splitlines()
    assert len(lines) == 6
    for c in range(2):
        share = f"{result.explained_variance_ratio[c]:.1%}"
        assert lines[3 * c] == f"component {c + 1} ({share} of the variance)"
        assert lines[3 * c + 1] == "  top:    " + " | ".join(extremes[c][0][:3])
        assert lines[3 * c + 2] == "  bottom: " + " | ".join(extremes[c][1][:3])


def test_map_labels_do_not_overlap():
    from minirec.tools.plots import label_positions
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(500), rng.standard_normal(500)
    placed = label_positions(x, y, 30, width=0.1, height=0.05)
    assert len(placed) == 30 and placed[0] == 0  # the most-rated movie is always labelled
    w, h = 0.1 * np.ptp(x), 0.05 * np.ptp(y)
    for a in placed:
        for b in placed:
            assert a == b or abs(x[a] - x[b]) > w or abs(y[a] - y[b]) > h
