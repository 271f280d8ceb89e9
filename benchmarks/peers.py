"""The peers bench_epoch times minirec against: PyTorch eager (the same models, dense Adam or
SparseAdam) and Surprise's SVD (plain SGD), each as one epoch at a time on the same split."""
import time

import numpy as np


class TorchRun:
    def __init__(self, kind, lazy, ds, train, valid, threads=1):
        import torch
        import torch_reference as tr
        self.threads = threads
        self.name = f"PyTorch{' SparseAdam' if lazy else ' Adam'}, {threads} thread{'s' * (threads > 1)}"
        self.tr, self.torch = tr, torch
        torch.manual_seed(42)
        self.model = tr.TorchModel(kind, ds.n_users, ds.n_movies, lazy=lazy)
        self.opts = self.model.optimizers(1e-3)
        t = lambda a, dtype: torch.as_tensor(np.asarray(a), dtype=dtype)
        self.x = (t(train.user, torch.long), t(train.movie, torch.long), t(train.y, torch.float32))
        self.v = (t(valid.user, torch.long), t(valid.movie, torch.long), t(valid.y, torch.float32))
        self.gen = torch.Generator().manual_seed(42)

    def epoch(self):
        self.torch.set_num_threads(self.threads)
        start = time.perf_counter()
        self.tr.train_epoch(self.model, self.opts, *self.x, generator=self.gen)
        return time.perf_counter() - start

    def val_mse(self):
        return self.tr.evaluate(self.model, *self.v)


class SurpriseRun:
    """Surprise's SVD: biased matrix factorisation by plain SGD, 50 factors, its defaults
    otherwise. One epoch = the difference between fits of n+1 and n epochs would need two fits;
    instead each round refits with one epoch more and charges the extra time to one epoch."""

    def __init__(self, train, valid):
        import pandas as pd
        from surprise import SVD, Dataset, Reader
        self.name, self.SVD, self.epochs = "Surprise SVD (SGD, 50 factors)", SVD, 1
        df = pd.DataFrame({"u": train.user, "i": train.movie, "r": train.y})
        self.trainset = Dataset.load_from_df(df, Reader(rating_scale=(0.5, 5.0))).build_full_trainset()
        self.valid, self.last = valid, None

    def epoch(self):
        timings = []
        for epochs in (self.epochs, self.epochs + 1):
            algo = self.SVD(n_factors=50, n_epochs=epochs, random_state=42)
            start = time.perf_counter()
            algo.fit(self.trainset)
            timings.append(time.perf_counter() - start)
        self.epochs, self.last = self.epochs + 1, algo
        return max(0.0, timings[1] - timings[0])

    def val_mse(self):
        pred = [self.last.predict(int(u), int(i)).est for u, i in zip(self.valid.user, self.valid.movie)]
        return float(np.mean((np.array(pred) - self.valid.y) ** 2))


def surprise_defaults(train, valid, targets=(0.77, 0.76, 0.75)):
    """Surprise's SVD as people run it (its defaults: 100 factors, 20 epochs of SGD), fitted on
    the same split: the row time to quality compares with. Its validation MSE is known only
    after the last epoch, so a target it reaches shows as reached by the end."""
    import pandas as pd
    from surprise import SVD, Dataset, Reader
    df = pd.DataFrame({"u": train.user, "i": train.movie, "r": train.y})
    trainset = Dataset.load_from_df(df, Reader(rating_scale=(0.5, 5.0))).build_full_trainset()
    algo = SVD(random_state=42)
    start = time.perf_counter()
    algo.fit(trainset)
    seconds = time.perf_counter() - start
    pred = np.array([algo.predict(int(u), int(i)).est for u, i in zip(valid.user, valid.movie)])
    mse = float(np.mean((pred - valid.y) ** 2))
    return ("Surprise SVD, its defaults (100 factors, SGD)", 1, algo.n_epochs, f"{seconds:.2f}",
            f"{mse:.4f}", *(f"by {seconds:.2f}" if mse <= t else "not reached" for t in targets))
