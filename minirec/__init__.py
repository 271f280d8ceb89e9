"""minirec: collaborative filtering from scratch (NumPy, Numba, CuPy), after fast.ai's Lesson 4."""
from .nn.activations import Clip, Dropout, ReLU, SigmoidRange
from .data.movielens import DataError, DataNotFound, MovieLens, load_movielens
from .models.ease import EASE
from .models.bpmf import BPMF
from .models.multvae import MultVAE
from .train.guards import ModelError
from .nn.layers import Concat, Dense, Dot, Embedding, EmbeddingBag, Layer, Offset
from .nn.losses import L2, BalancedL2, mse
from .models.model import Model
from .models.recommender import DotProduct, DotProductBias, NeuralNet, Recommender
from .models.svdpp import SVDpp
from .train.objectives import BPR, MSE
from .nn.optim import SGD, Adam, one_cycle_lr
from .models.registry import register
from .models.svdpp_flipped import FlippedSVDpp
from .models.hybrid import Hybrid
from .data.synthetic import synthetic_movielens
from .train.loop import History, TrainingDiverged

__version__ = "0.2.0"

__all__ = ["Adam", "BPMF", "BPR", "BalancedL2", "EASE", "MSE", "Clip", "Concat", "DataError", "DataNotFound", "Dense", "Dot",
           "DotProduct", "DotProductBias", "Dropout", "Embedding", "EmbeddingBag", "FlippedSVDpp", "History", "L2",
           "Layer", "Model", "ModelError", "MovieLens", "MultVAE", "NeuralNet", "Offset", "ReLU",
           "Recommender", "SGD", "SVDpp", "SigmoidRange", "TrainingDiverged", "load_movielens",
           "mse", "one_cycle_lr", "register", "synthetic_movielens"]
