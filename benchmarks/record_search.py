"""How the ml-100k record's settings were chosen: each step and each idea tried, on folds u2-u5.

Run:  python benchmarks/record_search.py [--data DIR] [--configs 'NAME|NAME|...'] [--write]

Every configuration runs the Gibbs sampler of Bayesian SVD++ flipped (``models/bayes_flipped.py``,
``models/bayes_timed.py``) on each of ml-100k's folds u2-u5, seed 0, burn-in 50, every draw
after it averaged, and prints the posterior mean's test RMSE (clipped to [1, 5]) after 200, 300
and 400 sweeps, the mean over the folds, and the CPU seconds of 400 sweeps. Fold u1 is never
read. The ideas that did not pay are defined here, as small subclasses of the chains, so that
their figures can be rerun; the ones that paid are in the package. ``--write`` rewrites the
record_search section of benchmarks/RESULTS.md (docs/ml100k-record.md quotes it).
"""
import argparse
import os
import re
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core, set before NumPy starts BLAS
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import minirec  # noqa: E402
from minirec.models.bayes_flipped import Chain  # noqa: E402
from minirec.models.bayes_timed import DAY, TimedChain, day_keys  # noqa: E402
from minirec.models.bpmf import Prior  # noqa: E402
from results import RESULTS, machine_line, table, write_section  # noqa: E402

HERE = Path(__file__).resolve().parent
CHECKS = (200, 300, 400)


class MoviePrecision(TimedChain):
    """Noise precision α τ_i κ_j: a precision per movie too, κ_j ~ Gamma(a, a)."""

    def draw_noise(self):
        super().draw_noise()
        a, e = self.user_noise, self.e
        n = np.bincount(self.movies, minlength=self.M)
        kappa = self.rng.gamma(a + n / 2, 1 / (a + self.alpha * np.bincount(
            self.movies, self.tau[self.users] * e * e, minlength=self.M) / 2))
        self.w = self.tau[self.users] * kappa[self.movies]


class StudentT(Chain):
    """Student-t noise as a scale mixture: precision α λ_n, λ_n ~ Gamma(ν/2, ν/2), ν = 5."""
    nu = 5.0

    def draw_noise(self):
        super().draw_noise()
        self.w = self.rng.gamma((self.nu + 1) / 2, 2 / (self.nu + self.alpha * self.e ** 2))


class MovieBins(TimedChain):
    """timeSVD++'s movie bias by time bin, b_{j,bin(t)}, 4 bins over the data's time span, as a
    second set of group biases with its own precision (drawn like the day biases)."""

    def setup_bins(self, groups, n_groups):
        self.bin_groups, self.bin_b, self.bin_lam = groups, np.zeros(n_groups), 10.0
        self.e = self.residuals()

    def residuals(self):
        r = super().residuals()
        return r - self.bin_b[self.bin_groups] if hasattr(self, "bin_b") else r

    def draw_noise(self):
        rng, a, w, G = self.rng, self.alpha, self.w, len(self.bin_b)
        e_plus = self.e + self.bin_b[self.bin_groups]
        precision = self.bin_lam + a * np.bincount(self.bin_groups, w, minlength=G)
        new = a * np.bincount(self.bin_groups, w * e_plus, minlength=G) / precision
        new += rng.standard_normal(G) / np.sqrt(precision)
        self.e, self.bin_b = e_plus - new[self.bin_groups], new
        self.bin_lam = float(rng.gamma(1.0 + G / 2, 1 / (1.0 + new @ new / 2)))
        super().draw_noise()


class Drift(TimedChain):
    """timeSVD++'s drift of a user's bias, a_i · dev_i(t), dev_i(t) = sign(t - t_i) |t - t_i|^0.4
    (t in days, t_i the mean day of user i's training ratings), a_i ~ N(0, 1/λ_a): a regression
    on one covariate per user, drawn for all users at once like the day biases."""

    def setup_drift(self, days, test_users, test_days):
        mean_day = np.bincount(self.users, days, minlength=self.U) / np.maximum(np.bincount(self.users, minlength=self.U), 1)
        self.dev = self.deviation(self.users, days, mean_day)
        self.test_dev = self.deviation(test_users, test_days, mean_day)
        self.a, self.a_lam = np.zeros(self.U), 10.0
        self.e = self.residuals()

    @staticmethod
    def deviation(users, days, mean_day):
        t = days - mean_day[users]
        return np.sign(t) * np.abs(t) ** 0.4

    def residuals(self):
        r = super().residuals()
        return r - self.a[self.users] * self.dev if hasattr(self, "a") else r

    def draw_noise(self):
        rng, al, w, U, x = self.rng, self.alpha, self.w, self.U, self.dev
        e_plus = self.e + self.a[self.users] * x
        precision = self.a_lam + al * np.bincount(self.users, w * x * x, minlength=U)
        new = al * np.bincount(self.users, w * x * e_plus, minlength=U) / precision
        new += rng.standard_normal(U) / np.sqrt(precision)
        self.e, self.a = e_plus - new[self.users] * x, new
        self.a_lam = float(rng.gamma(1.0 + U / 2, 1 / (1.0 + new @ new / 2)))
        super().draw_noise()


# name -> (chain class, rank F, user_noise a); a TimedChain has the day biases
CONFIGS = {
    "one noise precision; F=10": (Chain, 10, None),
    "one noise precision; F=20": (Chain, 20, None),
    "Student-t noise (nu=5); F=10": (StudentT, 10, None),
    "noise per user (a=5); F=10": (Chain, 10, 5.0),
    "day biases + one noise precision; F=10": (TimedChain, 10, None),
    "day biases + noise per user (a=2); F=10": (TimedChain, 10, 2.0),
    "day biases + noise per user (a=5); F=10": (TimedChain, 10, 5.0),
    "day biases + noise per user (a=10); F=10": (TimedChain, 10, 10.0),
    "day biases + noise per user (a=20); F=10": (TimedChain, 10, 20.0),
    "day biases + noise per user and per movie (a=5); F=10": (MoviePrecision, 10, 5.0),
    "day biases + movie bins, noise per user (a=5); F=10": (MovieBins, 10, 5.0),
    "day biases + noise per user (a=10); F=15": (TimedChain, 15, 10.0),
    "day biases + drift a_i dev_i(t) + noise per user (a=10); F=10": (Drift, 10, 10.0),
}


def days_of(folder, fold):
    """The days (since 1970-01-01) of a fold's training and test ratings, in file order."""
    read = [pd.read_csv(folder / f"{fold}.{part}", sep="\t", names=["u", "i", "r", "t"])
            for part in ("base", "test")]
    return [frame.t.to_numpy(np.int64) // DAY for frame in read]


def run(name, ds, folder, folds):
    cls, rank, user_noise = CONFIGS[name]
    scores, cpu = {c: [] for c in CHECKS}, []
    for fold in folds:
        train, test = ds.fold(fold)
        start = time.process_time()
        kwargs = dict(prior=Prior(), seed=0, backend="numba", user_noise=user_noise)
        args = (train.user, train.movie, train.y, ds.n_users, ds.n_movies, rank)
        train_days, test_days = days_of(folder, fold)
        if issubclass(cls, TimedChain):
            keys, groups = np.unique(day_keys(train.user, train_days), return_inverse=True)
            chain = cls(*args, groups, keys, **kwargs)
            if cls is Drift:
                chain.setup_drift(train_days, test.user, test_days)
            if cls is MovieBins:
                t = np.concatenate([train_days, test_days])
                span = (t - t.min()) * 4 // (t.max() + 1 - t.min())
                bins, code = np.unique(np.concatenate([train.movie, test.movie]) * 4 + span, return_inverse=True)
                chain.setup_bins(code[:len(train.y)], len(bins))
                test_bins = code[len(train.y):]
        else:
            chain = cls(*args, **kwargs)
        total, count = np.zeros(len(test.y)), 0
        for s in range(max(CHECKS)):
            chain.sweep()
            if s >= 50:
                pred = (chain.predict(test.user, test.movie, test_days) if issubclass(cls, TimedChain)
                        else chain.predict(test.user, test.movie))
                if cls is MovieBins:
                    pred = pred + chain.bin_b[test_bins]
                if cls is Drift:
                    pred = pred + chain.a[test.user] * chain.test_dev
                total += pred
                count += 1
            if s + 1 in scores:
                scores[s + 1].append(float(np.sqrt(np.mean((np.clip(total / count, 1, 5) - test.y) ** 2))))
        cpu.append(time.process_time() - start)
        print(f"{name} | {fold} | " + ", ".join(f"{c}: {v[-1]:.4f}" for c, v in scores.items())
              + f" | CPU {cpu[-1]:.1f} s", flush=True)
    return [name, *(f"{np.mean(scores[c]):.4f}" for c in CHECKS), f"{np.mean(cpu):.1f}"]


def carried_rows():
    """{configuration: cells} of the table in RESULTS.md's record_search section (the rows a run
    of fewer configurations keeps)."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    section = re.search(r"<!-- record_search -->(.*?)<!-- /record_search -->", text, re.S)
    lines = [line for line in (section.group(1).splitlines() if section else []) if line.startswith("| ")]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines[1:]]
    return {c[0].replace(" (carried over)", ""): c[1:] for c in cells}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("MINIREC_DATA") or HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--configs", default="|".join(CONFIGS), help="names separated by |")
    parser.add_argument("--folds", default="u2,u3,u4,u5")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    folds = args.folds.split(",")
    if "u1" in folds:
        raise ValueError("fold u1 is the out-of-sample fold: nothing is chosen on it")
    ds = minirec.load_movielens(args.data / "ml-100k")
    rows = {name: run(name, ds, args.data / "ml-100k", folds) for name in args.configs.split("|")}
    earlier = {name: row for name, row in carried_rows().items() if name not in rows}
    rows = [rows.get(name) or [f"{name} (carried over)", *earlier[name]] for name in CONFIGS
            if name in rows or name in earlier]
    text = "\n\n".join([
        "## Choosing the ml-100k record's settings (record_search.py)",
        f"Machine: {machine_line()}; one core, shared with other work. Bayesian SVD++ flipped "
        f"(Gibbs sampling), seed 0, burn-in 50, every later draw averaged; the posterior mean's "
        f"test RMSE, mean over folds {', '.join(folds)}, after 200, 300 and 400 sweeps; CPU "
        "seconds of 400 sweeps on one fold (the mean). Fold u1 is not read. Rows marked "
        "*carried over* come from an earlier run of this script (same settings).",
        table(("configuration", *(f"{c} sweeps" for c in CHECKS), "CPU s"), rows)])
    print("\n" + text)
    if args.write:
        write_section("record_search", text)


if __name__ == "__main__":
    main()
