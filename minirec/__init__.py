"""minirec: collaborative filtering from scratch (NumPy, Numba, CuPy), after fast.ai's Lesson 4."""
from .activations import Clip, Dropout, ReLU, SigmoidRange
from .datasets import DataError, DataNotFound, MovieLens, load_movielens
from .ease import EASE
from .gibbs import BPMF
from .guards import ModelError
from .layers import Concat, Dense, Dot, Embedding, EmbeddingBag, Layer, Offset
from .losses import L2, BalancedL2, mse
from .model import Model
from .models import DotProduct, DotProductBias, NeuralNet, Recommender, SVDpp
from .objectives import BPR, MSE
from .optim import SGD, Adam, one_cycle_lr
from .registry import register
from .svdpp_flipped import FlippedSVDpp
from .synthetic import synthetic_movielens
from .training import History, TrainingDiverged

__version__ = "0.2.0"

__all__ = ["Adam", "BPMF", "BPR", "BalancedL2", "EASE", "MSE", "Clip", "Concat", "DataError", "DataNotFound", "Dense", "Dot",
           "DotProduct", "DotProductBias", "Dropout", "Embedding", "EmbeddingBag", "FlippedSVDpp", "History", "L2",
           "Layer", "Model", "ModelError", "MovieLens", "NeuralNet", "Offset", "ReLU",
           "Recommender", "SGD", "SVDpp", "SigmoidRange", "TrainingDiverged", "load_movielens",
           "mse", "one_cycle_lr", "register", "synthetic_movielens"]
