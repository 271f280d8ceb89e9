"""minirec: collaborative filtering from scratch (NumPy, Numba, CuPy), after fast.ai's Lesson 4."""
from .datasets import DataError, DataNotFound, MovieLens, load_movielens
from .layers import Concat, Dense, Dot, Dropout, Embedding, ReLU, SigmoidRange
from .losses import L2, BalancedL2, mse
from .model import Model
from .models import DotProduct, DotProductBias, NeuralNet
from .optim import SGD, Adam, one_cycle_lr
from .synthetic import synthetic_movielens
from .training import History, TrainingDiverged

__version__ = "0.1.0"

__all__ = ["Adam", "BalancedL2", "Concat", "DataError", "DataNotFound", "Dense", "Dot",
           "DotProduct", "DotProductBias", "Dropout", "Embedding", "History", "L2", "Model",
           "MovieLens", "NeuralNet", "ReLU", "SGD", "SigmoidRange", "TrainingDiverged",
           "load_movielens", "mse", "one_cycle_lr", "synthetic_movielens"]
