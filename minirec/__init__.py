"""minirec: collaborative filtering from scratch (NumPy, Numba, CuPy), after fast.ai's Lesson 4."""
from .datasets import DataError, DataNotFound, MovieLens, load_movielens
from .layers import Concat, Dense, Dot, Dropout, Embedding, ReLU
from .losses import l2_penalty, mse
from .models import DotProduct, DotProductBias, Model, NeuralNet
from .optim import SGD, Adam, one_cycle_lr
from .synthetic import synthetic_movielens
from .training import History, TrainingDiverged

__version__ = "0.1.0"

__all__ = ["Adam", "Concat", "DataError", "DataNotFound", "Dense", "Dot", "DotProduct",
           "DotProductBias", "Dropout", "Embedding", "History", "Model", "MovieLens", "NeuralNet",
           "ReLU", "SGD", "TrainingDiverged", "l2_penalty", "load_movielens", "mse",
           "one_cycle_lr", "synthetic_movielens"]
