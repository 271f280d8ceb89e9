"""MovieLens loading: real releases (through MINIREC_DATA), every file layout, malformed files,
downloads (from local file:// URLs: nothing leaves this machine), and the synthetic generator."""
import os
import zipfile

import numpy as np
import pytest

from minirec.data import download
from minirec.data.movielens import DataError, DataNotFound, load_movielens
from minirec.data.synthetic import synthetic_movielens, write_ratings_csv


def test_the_notebooks_release(movielens_2016):
    ds = load_movielens(movielens_2016)
    assert (len(ds), ds.n_users, ds.n_movies) == (100_004, 671, 9066)
    # order of first appearance, as the notebook's userid2idx: the file starts 1,31,2.5,...
    assert ds.user_ids[0] == 1 and ds.movie_ids[0] == 31
    assert ds.userid2idx[1] == 0 and ds.movieid2idx[31] == 0 and ds.user[0] == 0
    assert ds.title(ds.movieid2idx[1]) == "Toy Story (1995)"
    train, valid = ds.split(0.8, seed=42)
    mask = np.random.default_rng(42).random(len(ds)) < 0.8
    assert len(train) == mask.sum() and len(valid) == (~mask).sum()
    np.testing.assert_array_equal(train.y, ds.rating[mask])


def test_releases_by_name_from_the_data_home(shared_data):
    home = shared_data
    small = load_movielens("ml-latest-small", data_home=home, download=False)
    assert (len(small), small.n_users, small.n_movies) == (100_836, 610, 9724)
    assert download.sha256(home / "ml-latest-small" / "ratings.csv") == download.RELEASES["ml-latest-small"][2]
    k100 = load_movielens("ml-100k", data_home=home, download=False)
    assert (len(k100), k100.n_users, k100.n_movies) == (100_000, 943, 1682)
    assert set(np.unique(k100.rating)) == {1, 2, 3, 4, 5}
    assert any(not t.isascii() for t in k100.titles.values())  # Latin-1 titles decoded
    train, test = k100.fold("u1")
    assert (len(train), len(test)) == (80_000, 20_000)
    with pytest.raises(ValueError, match="only for ml-100k"):
        small.fold("u1")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = "userId,movieId,rating,timestamp\r\n1,10,4.0,5\r\n1,20,3.5,6\r\n2,10,5.0,7\r\n"


def test_a_small_csv_release_with_crlf_and_quoted_titles(tmp_path):
    write(tmp_path, "ratings.csv", GOOD)
    write(tmp_path, "movies.csv", 'movieId,title,genres\r\n10,"Good, the Bad (1966)",Western\r\n20,Up (2009),Animation\r\n')
    ds = load_movielens(tmp_path)
    assert (len(ds), ds.n_users, ds.n_movies) == (3, 2, 2)
    assert ds.title(0) == "Good, the Bad (1966)" and ds.rating.dtype == np.float32


def test_the_dat_layout(tmp_path):
    write(tmp_path, "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    write(tmp_path, "movies.dat", "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::Star Wars: Episode I (1999)::Sci-Fi\n")
    ds = load_movielens(tmp_path)
    assert list(ds.movie_ids) == [1193, 661] and list(ds.rating) == [5, 3, 4]
    assert ds.title(1) == "Star Wars: Episode I (1999)"


@pytest.mark.parametrize("text, message", [
    ("userId,movieId,timestamp\n1,2,3\n", r"ratings.csv: line 1: missing column\(s\) rating"),
    ("userId,movieId,rating,timestamp\n1,2,4.0,5\nx,2,4.0,5\n", r"ratings.csv: line 3: userId is 'x'"),
    ("userId,movieId,rating,timestamp\n1,2,4.0,5\n1,3,7.5,5\n", r"ratings.csv: line 3: rating 7.5 is outside"),
    ("userId,movieId,rating,timestamp\n1,2,4.0,5\n1,3,4.0,5\n1,4\n", r"ratings.csv: line 4: rating is .*truncated"),
    ("", r"ratings.csv: the file is empty"),
    ("userId,movieId,rating,timestamp\n", r"ratings.csv: the file holds no ratings"),
    ("userId,movieId,rating,timestamp\n1,2,4.0,5\n1,2.5,4.0,5\n", r"line 3: movieId is 2.5, not an integer id"),
    ("userId,movieId,rating,timestamp\n1,2,4.0,5\n1,2,4.0,5,9\n", r"ratings.csv: line 3: more than 4 fields"),
    ("userId,movieId,rating,timestamp\n1,2,4.0,5,9\n1,2,4.0,5\n", r"ratings.csv: line 2: more than 4 fields"),
])
def test_malformed_files_are_refused_naming_file_and_line(tmp_path, text, message):
    write(tmp_path, "ratings.csv", text)
    with pytest.raises(DataError, match=message):
        load_movielens(tmp_path)


def test_malformed_u_data_counts_lines_without_a_header(tmp_path):
    write(tmp_path, "u.data", "1\t2\t3\t4\n1\t3\t9\t4\n")
    with pytest.raises(DataError, match=r"u.data: line 2: rating 9"):
        load_movielens(tmp_path)


def test_unknown_release_and_missing_files(tmp_path):
    with pytest.raises(DataNotFound, match="neither a folder, nor a folder in .*, nor a known release"):
        load_movielens("ml-7k", data_home=tmp_path)
    with pytest.raises(DataNotFound, match="holds no ratings"):
        load_movielens(tmp_path)


def test_offline_without_a_copy_says_what_was_tried_and_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(DataNotFound, match="download=False.*MINIREC_DATA"):
        load_movielens("ml-1m", data_home=tmp_path, download=False)
    monkeypatch.setattr(download, "GROUPLENS", "http://127.0.0.1:9/")  # nothing listens there
    with pytest.raises(DataNotFound, match=r"could not download http://127.0.0.1:9/ml-1m.zip.*MINIREC_DATA"):
        load_movielens("ml-1m", data_home=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def make_zip(tmp_path, inner, files):
    archive = tmp_path / "release.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name, text in files.items():
            z.writestr(f"{inner}/{name}", text)
    return archive


def test_download_unpacks_atomically_into_the_cache(tmp_path):
    archive = make_zip(tmp_path, "ml-1m", {"ratings.dat": "1::2::3::4\n", "movies.dat": "2::Heat (1995)::Action\n"})
    home = tmp_path / "home"
    folder = download.fetch("ml-1m", home, url=archive.as_uri())
    assert folder == home / "ml-1m" and sorted(p.name for p in home.iterdir()) == ["ml-1m"]
    ds = load_movielens("ml-1m", data_home=home, download=False)
    assert ds.title(0) == "Heat (1995)"


def test_a_checksum_mismatch_is_refused_and_leaves_nothing(tmp_path):
    archive = make_zip(tmp_path, "ml-latest-small", {"ratings.csv": GOOD, "movies.csv": "movieId,title\n"})
    home = tmp_path / "home"
    with pytest.raises(DataError, match="sha256"):
        download.fetch("ml-latest-small", home, url=archive.as_uri())
    assert list(home.iterdir()) == []


def test_a_corrupt_zip_is_refused_and_leaves_nothing(tmp_path):
    archive = make_zip(tmp_path, "ml-1m", {"ratings.dat": "1::2::3::4\n" * 100})
    data = bytearray(archive.read_bytes())
    data[60:70] = b"XXXXXXXXXX"  # inside the compressed member
    archive.write_bytes(bytes(data))
    home = tmp_path / "home"
    with pytest.raises((DataError, zipfile.BadZipFile)):
        download.fetch("ml-1m", home, url=archive.as_uri())
    assert list(home.iterdir()) == []


def test_synthetic_data_is_shaped_like_movielens():
    ds = synthetic_movielens(500, 2000, 50_000, seed=3)
    assert len(ds) == 50_000 and ds.n_users <= 500 and ds.n_movies <= 2000
    assert set(np.unique(ds.rating)) <= set(np.arange(1, 11) / 2)
    counts = np.sort(np.bincount(ds.movie))[::-1]
    assert counts[: len(counts) // 10].sum() > 0.4 * len(ds)  # popularity is heavy-tailed
    again = synthetic_movielens(500, 2000, 50_000, seed=3)
    np.testing.assert_array_equal(ds.rating, again.rating)
    # the planted structure is learnable: user and movie means explain part of the variance
    movie_mean = np.bincount(ds.movie, ds.rating) / np.maximum(1, np.bincount(ds.movie))
    assert np.var(ds.rating - movie_mean[ds.movie]) < 0.9 * np.var(ds.rating)


def test_synthetic_ratings_round_trip_through_a_ratings_csv(tmp_path):
    ds = synthetic_movielens(50, 80, 3000, seed=1)
    write_ratings_csv(ds, tmp_path / "ratings.csv")
    back = load_movielens(tmp_path)
    np.testing.assert_array_equal(back.rating, ds.rating)
    np.testing.assert_array_equal(back.user_ids[back.user], ds.user_ids[ds.user])


def test_two_downloads_at_once_both_succeed_and_fetch_once(server, tmp_path):
    import threading
    from servers import Response
    server.routes["/ml-1m.zip"] = Response(make_zip(tmp_path, "ml-1m", {"ratings.dat": "1::2::3::4\n"}).read_bytes(),
                                           delay=0.5)
    home, results = tmp_path / "home", []
    threads = [threading.Thread(target=lambda: results.append(
        download.fetch("ml-1m", home, url=server.url + "/ml-1m.zip"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [home / "ml-1m"] * 2 and server.hits["/ml-1m.zip"] == 1
    assert sorted(p.name for p in home.iterdir()) == ["ml-1m"]


def test_what_a_killed_download_left_is_cleared(tmp_path):
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    home = tmp_path / "home"
    (home / f".ml-1m-{dead}-abc123" / "unpacked").mkdir(parents=True)
    mine = home / f".ml-1m-{os.getpid()}-def456"  # a live process's folder stays
    mine.mkdir()
    archive = make_zip(tmp_path, "ml-1m", {"ratings.dat": "1::2::3::4\n"})
    download.fetch("ml-1m", home, url=archive.as_uri())
    assert sorted(p.name for p in home.iterdir()) == [mine.name, "ml-1m"]


def test_ids_are_indexed_in_order_of_first_appearance_and_duplicates_keep_what_they_say(tmp_path):
    """The notebook's userid2idx: index 0 is the first id in the file, not the smallest (its
    tracked prediction for user 3, movie 6 depends on it). 'first'/'last' keep those ratings."""
    write(tmp_path, "ratings.csv", "userId,movieId,rating,timestamp\n9,30,1,0\n2,10,2,0\n9,10,3,0\n5,30,4,0\n2,10,5,0\n")
    ds = load_movielens(tmp_path)
    assert list(ds.user_ids) == [9, 2, 5] and list(ds.movie_ids) == [30, 10]
    assert list(ds.user) == [0, 1, 0, 2, 1] and ds.userid2idx[2] == 1
    for keep, rating in (("first", 2.0), ("last", 5.0)):
        kept = load_movielens(tmp_path, duplicates=keep)
        rows = (kept.user_ids[kept.user] == 2) & (kept.movie_ids[kept.movie] == 10)
        assert len(kept) == 4 and kept.rating[rows].tolist() == [rating]
