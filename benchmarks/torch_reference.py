"""The Lesson 4 models written in PyTorch eager, for timing against minirec (the `bench` extra).

Same shapes, initialisation and L2 as minirec's models:
* dense mode: ``nn.Embedding`` with dense gradients, the whole-table penalty λ·ΣW² added to the
  loss at every batch (Keras's l2), ``torch.optim.Adam`` for every parameter;
* lazy mode: ``nn.Embedding(sparse=True)``, the penalty on the looked-up rows only, and
  ``torch.optim.SparseAdam`` for the embeddings (plain Adam for the neural net's dense layers).
"""
import torch
from torch import nn


class TorchModel(nn.Module):
    def __init__(self, kind, n_users, n_movies, n_factors=50, hidden=70, dropout=(0.3, 0.75),
                 l2=1e-4, lazy=False):
        super().__init__()
        self.kind, self.l2, self.lazy = kind, l2, lazy

        def embedding(n, width):
            e = nn.Embedding(n, width, sparse=lazy)
            nn.init.uniform_(e.weight, -0.05, 0.05)
            return e
        self.user, self.movie = embedding(n_users, n_factors), embedding(n_movies, n_factors)
        if kind == "bias":
            self.user_bias, self.movie_bias = embedding(n_users, 1), embedding(n_movies, 1)
        if kind == "nn":
            self.net = nn.Sequential(nn.Dropout(dropout[0]), nn.Linear(2 * n_factors, hidden),
                                     nn.ReLU(), nn.Dropout(dropout[1]), nn.Linear(hidden, 1))
            for layer in (self.net[1], self.net[4]):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, users, movies):
        u, m = self.user(users), self.movie(movies)
        if self.kind == "nn":
            pred = self.net(torch.cat([u, m], dim=1))[:, 0]
        else:
            pred = (u * m).sum(1)
            if self.kind == "bias":
                pred = pred + self.user_bias(users)[:, 0] + self.movie_bias(movies)[:, 0]
        if self.lazy:  # penalty on the looked-up rows only (what SparseAdam users write)
            penalty = (u * u).sum() + (m * m).sum()
        else:          # Keras: the whole tables, every batch
            penalty = (self.user.weight ** 2).sum() + (self.movie.weight ** 2).sum()
        return pred, self.l2 * penalty

    def optimizers(self, lr=1e-3):
        if not self.lazy:
            return [torch.optim.Adam(self.parameters(), lr=lr)]
        sparse = [p for name, p in self.named_parameters() if not name.startswith("net.")]
        dense = [p for name, p in self.named_parameters() if name.startswith("net.")]
        return [torch.optim.SparseAdam(sparse, lr=lr)] + ([torch.optim.Adam(dense, lr=lr)] if dense else [])


def train_epoch(model, opts, users, movies, ratings, batch_size=64, generator=None):
    """One epoch of shuffled mini-batches; returns the mean batch MSE."""
    model.train()
    order = torch.randperm(len(ratings), generator=generator)
    total = 0.0
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        pred, penalty = model(users[rows], movies[rows])
        mse = ((pred - ratings[rows]) ** 2).mean()
        for opt in opts:
            opt.zero_grad()
        (mse + penalty).backward()
        for opt in opts:
            opt.step()
        total += mse.item() * len(rows)
    return total / len(ratings)


@torch.no_grad()
def evaluate(model, users, movies, ratings):
    model.eval()
    pred, _ = model(users, movies)
    return float(((pred - ratings) ** 2).mean())
