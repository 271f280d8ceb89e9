"""minirec: collaborative filtering from scratch (NumPy, Numba, CuPy), after fast.ai's Lesson 4."""
from .layers import Concat, Dense, Dot, Dropout, Embedding, ReLU
from .losses import l2_penalty, mse
from .models import DotProduct, DotProductBias, Model, NeuralNet
from .optim import SGD, Adam
from .training import History, TrainingDiverged

__version__ = "0.1.0"

__all__ = ["Adam", "Concat", "Dense", "Dot", "DotProduct", "DotProductBias", "Dropout",
           "Embedding", "History", "Model", "NeuralNet", "ReLU", "SGD", "TrainingDiverged",
           "l2_penalty", "mse"]
