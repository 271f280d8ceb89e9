"""Side information (data/side.py) on tiny releases written here: bags line up with the data
set's rows, missing features give empty bags, and malformed side files name the file and line."""
import numpy as np
import pytest

from minirec import DataError, load_movielens
from minirec.data import side


def latest(tmp_path, movies=None, tags=None):
    """A tiny ml-latest-small layout: movie 30 is rated first, so it is index 0."""
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,30,4.0,1\n1,10,3.0,2\n2,20,5.0,3\n2,30,2.0,4\n")
    (tmp_path / "movies.csv").write_text(movies if movies is not None else
                                         "movieId,title,genres\n"
                                         "10,Heat (1995),Action|Crime|Thriller\n"
                                         '20,"Bird, The (1972)",(no genres listed)\n'
                                         "30,Toy Story (1995),Animation|Comedy\n")
    if tags is not None:
        (tmp_path / "tags.csv").write_text(tags)
    return load_movielens(tmp_path)


def hundred_k(tmp_path, users="7|24|M|technician|85711\n9|60|F|other|V3N4P\n"):
    """A tiny ml-100k layout with u.item's 19 genre flags and u.user."""
    (tmp_path / "u.data").write_text("9\t2\t4\t1\n7\t1\t3\t2\n")
    flags = ["0"] * 19
    toy = list(flags)
    toy[3] = toy[5] = "1"     # Animation, Comedy
    (tmp_path / "u.item").write_text(
        "1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(toy) + "\n"
        "2|Unknown film|||http://y|" + "|".join(flags) + "\n")
    (tmp_path / "u.user").write_text(users)
    return load_movielens(tmp_path)


def test_genres_years_and_tags_follow_the_rows_of_the_data_set(tmp_path):
    ds = latest(tmp_path, tags="userId,movieId,tag,timestamp\n1,30,Pixar,1\n2,30, pixar ,2\n"
                                "1,10,pixar,3\n2,20,one-off,4\n")
    assert list(ds.movie_ids) == [30, 10, 20]
    genres = side.movie_genres(ds)
    assert genres.of(0) == ["genre:Animation", "genre:Comedy"]
    assert genres.of(1) == ["genre:Action", "genre:Crime", "genre:Thriller"]
    assert genres.of(2) == []                            # "(no genres listed)": an empty bag
    years = side.movie_years(ds, width=5)
    assert [years.of(j) for j in range(3)] == [["year:1995-1999"], ["year:1995-1999"], ["year:1970-1974"]]
    tags = side.movie_tags(ds, min_movies=2)            # "pixar" on movies 30 and 10; the rest on one
    assert [tags.of(j) for j in range(3)] == [["tag:pixar"], ["tag:pixar"], []]
    assert side.movie_tags(ds, min_movies=3).of(0) == []
    both = side.combine(genres, years)
    assert both.of(1) == ["genre:Action", "genre:Crime", "genre:Thriller", "year:1995-1999"]
    assert list(both.sizes()) == [3, 4, 1]


def test_a_movie_the_movie_file_does_not_list_and_a_release_without_tags_get_empty_bags(tmp_path):
    ds = latest(tmp_path, movies="movieId,title,genres\n10,Heat (1995),Action\n")
    assert side.movie_genres(ds).of(0) == [] and side.movie_genres(ds).of(1) == ["genre:Action"]
    assert side.movie_years(ds).of(0) == []
    tags = side.movie_tags(ds)
    assert tags.names == [] and list(tags.sizes()) == [0, 0, 0]
    assert list(side.user_demographics(ds).sizes()) == [0, 0]


def test_ml_100k_genre_flags_and_demographics(tmp_path):
    ds = hundred_k(tmp_path)
    assert list(ds.movie_ids) == [2, 1] and list(ds.user_ids) == [9, 7]
    genres = side.movie_genres(ds)
    assert genres.of(0) == [] and genres.of(1) == ["genre:Animation", "genre:Comedy"]
    people = side.user_demographics(ds)
    assert people.of(0) == ["age:56+", "gender:F", "occupation:other", "zip:other"]
    assert people.of(1) == ["age:18-24", "gender:M", "occupation:technician", "zip:8"]
    offsets, ids = people.bags
    assert offsets.dtype == np.int64 and ids.dtype == np.int64 and offsets[-1] == len(ids) == 8


@pytest.mark.parametrize("bad, line, words", [
    ("movieId,title,genres\n10,Heat (1995),Action\nx,Up (2009),Comedy\n", 3, "not an integer id"),
    ("movieId,title,genres\n10,Heat (1995),Action,extra\n", 2, "4 fields, expected 3"),
    ("movieId,name\n10,Heat\n", 1, "missing column(s) title, genres"),
])
def test_a_malformed_movies_file_names_the_file_and_line(tmp_path, bad, line, words):
    ds = latest(tmp_path)
    (tmp_path / "movies.csv").write_text(bad)  # damaged after loading (loading reads titles)
    with pytest.raises(DataError, match=rf"movies.csv: line {line}: .*{words.replace('(', '.').replace(')', '.')}"):
        side.movie_genres(ds)


def test_malformed_ml_100k_side_files_name_the_file_and_line(tmp_path):
    ds = hundred_k(tmp_path, users="7|24|M|technician|85711\n\n9|sixty|F|other|V3N4P\n")
    with pytest.raises(DataError, match=r"u.user: line 3: age is 'sixty'"):
        side.user_demographics(ds)
    (tmp_path / "u.user").write_text("7|24|M|technician\n")
    with pytest.raises(DataError, match=r"u.user: line 1: 4 fields, expected 5"):
        side.user_demographics(ds)
    (tmp_path / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join("2" * 19) + "\n")
    with pytest.raises(DataError, match=r"u.item: line 1: the genre flags must be 0 or 1"):
        side.movie_genres(ds)


def test_combine_refuses_features_of_different_row_counts(tmp_path):
    ds = latest(tmp_path)
    with pytest.raises(ValueError, match="different numbers of rows"):
        side.combine(side.movie_genres(ds), side.user_demographics(ds))
