"""Where every tolerance in the tests comes from.

A test that compares two computations of the same maths holds them to a bound worked out from
the computation: the number of roundings between them, ε of the dtype, and, for training, what
Adam makes of a rounding. Never to a figure that passed on one machine: a tolerance fitted on
one CPU failed on another whose vector units sum in another order (issue 31).

The unit is ε, the gap between 1.0 and the next float: 2.2e-16 in float64, 1.2e-7 in float32.
One correctly rounded operation (+, -, ×, /, √) is off by at most u = ε/2 of its result.

**Exact.** The same code on the same backend (one thread against two, a kernel from the cache
against a fresh compile), or one elementwise formula made of correctly rounded operations on
either side, gives the same bits on any IEEE machine: those tests use ``np.array_equal``.

**A sum in another order** (``rounding``). NumPy sums pairwise, a Numba loop from left to right,
BLAS in blocks chosen for the CPU, SIMD code in lanes as wide as the machine's vectors.

**Linear algebra** (``backward_stable``). LAPACK's solvers and factorisations are backward
stable; what they return is the exact answer to a slightly different problem.

**Training** (``adam_run``, ``adam_near_zero``). Rounding in the gradients becomes a difference
in Adam's steps, and a difference in the weights changes later gradients. ``test_tolerances.py``
checks, on the runs these bounds serve, the one assumption behind them (``ADAM_LIPSCHITZ``).

``pytest.approx()`` with its default (relative 1e-6) is kept for closed forms of a few
operations in float64, whose rounding is below 1e-14: the default is far above any rounding
bound there and fitted to nothing.
"""
import math
from functools import lru_cache

import numpy as np

EPS64 = float(np.finfo(np.float64).eps)  # 2.2e-16
EPS32 = float(np.finfo(np.float32).eps)  # 1.2e-7


def eps(dtype):
    """ε of a float dtype."""
    return float(np.finfo(dtype).eps)


def rounding(n, dtype=np.float64):
    """How far apart n roundings can put two computations of one result, relative to the sum of
    the magnitudes of what is summed (for terms of one sign, the result itself): 2γ_n ≈ n·ε.

    A sum of n terms, in any order, lands within γ_{n-1}·Σ|x_i| of the exact sum, and a dot
    product of n terms within γ_n·Σ|x_i·y_i|, where γ_n = n·u / (1 - n·u) (Higham, *Accuracy and
    Stability of Numerical Algorithms*, 2nd ed. 2002, eqs. (3.5) and (4.4)). Two evaluations in
    different orders (or one with fused multiply-adds, one without) are each that close to the
    exact result, so within 2γ_n of each other. The same bound covers a chain of n correctly
    rounded operations against the same formula written another way.
    """
    n, u = max(int(n), 1), eps(dtype) / 2
    return 2 * n * u / (1 - n * u)


def backward_stable(m, n, dtype=np.float64, c=10):
    """Relative backward error of a LAPACK factorisation or solve of an m x n matrix: c·m·n·u.

    Householder QR, the SVD and the symmetric eigensolvers return the exact result for A + ΔA
    with ‖ΔA‖ ≤ γ̃_{mn}‖A‖, γ̃_k = c·k·u for a small integer c (Higham 2002, Theorem 19.4 and
    §20.4; Golub & Van Loan, *Matrix Computations*, 4th ed., §8.3.4 and §8.6.3); Cholesky's is
    within γ_{3n+1} (Higham, Theorem 10.3). We take c = 10. A *forward* error is this times
    the condition number of what is asked: an eigenvalue moves by at most ‖ΔA‖ (Weyl), an
    eigenvector by ‖ΔA‖ / (gap to the next eigenvalue) (Davis and Kahan), a solution of
    A x = b by κ(A) times the backward error (Higham, Theorem 7.2).
    """
    return c * m * n * eps(dtype) / 2


# ----- Adam -------------------------------------------------------------------------------------
# A weight's Adam step is lr·m̂/(√v̂ + ε_Adam). Between two runs of one training whose gradients
# differ only by rounding, the steps differ by at most:

@lru_cache(maxsize=None)
def adam_ratio(beta_1=0.9, beta_2=0.999):
    """R, the most |m̂| can be in units of √v̂: no Adam step moves a weight by more than lr·R.

    From zero moments, m̂ = Σ_k c_k g_k and v̂ = Σ_k d_k g_k², with c_k = (1-β1)β1^(t-k)/(1-β1^t)
    and d_k = (1-β2)β2^(t-k)/(1-β2^t). Cauchy–Schwarz: |m̂| ≤ Σ c_k|g_k| ≤ √(Σ c_k²/d_k)·√v̂, and

        Σ c_k²/d_k = (1-β1)²(1-β2^t) / ((1-β1^t)²(1-β2)) · (1 - r^t)/(1 - r),   r = β1²/β2 < 1,

    whose largest value over t is its limit (1-β1)² / ((1-β2)(1-r)): R = 7.27 for Keras's
    β1 = 0.9, β2 = 0.999 (``test_tolerances.py`` checks the largest over t ≤ 10^6 is the limit).
    """
    r = beta_1 ** 2 / beta_2
    if not r < 1:
        raise ValueError("the bound needs β1² < β2")
    return math.sqrt((1 - beta_1) ** 2 / ((1 - beta_2) * (1 - r)))


# Whatever moves the weights apart grows by at most a factor (1 + lr·L) a step, L bounding how
# fast the normalised step m̂/(√v̂ + ε) turns with the weights. L is not derived: it is a property
# of each run's maths (its curvature over √v̂), the same on every machine, and
# test_tolerances.py measures it on every run compared with ``adam_run`` (a start nudged by
# 1e-9 of the largest weight) and fails, naming the run, where a run grows faster than this.
# The largest measured there is about 4 (SVD++ with dense steps: 100-fold over Σlr = 1.14).
ADAM_LIPSCHITZ = 6.0

# Roundings behind one gradient entry besides its sums: the loss and its derivative, σ, the L2
# term, and Adam's own update (16 operations, which a GPU may fuse in pairs).
CHAIN = 24


def gradient_terms(batch, *widths):
    """The roundings behind one gradient entry: a row's gradient sums at most ``batch``
    contributions (a batch that looks it up every time), each reached through sums of
    ``widths`` terms (F for a dot product, 2F for a concatenation into a hidden layer, H for its
    output), and ``CHAIN`` elementwise operations."""
    return batch + sum(widths) + CHAIN


def adam_run(dtype, lrs, terms, beta_1=0.9, beta_2=0.999, lipschitz=ADAM_LIPSCHITZ):
    """The most two runs of one training can end apart, in any weight (absolute), when their
    gradients differ only by the roundings of ``terms`` (``gradient_terms``); ``lrs`` are the
    rates of the steps taken.

    A relative difference ρ = rounding(terms) in every gradient moves m̂ by at most ρ·R·√v̂ and
    √v̂ by at most ρ·√v̂, so one step by at most lr·2R·ρ (ε_Adam only shrinks the step).
    Carried with growth (1 + lr·L) a step (discrete Grönwall):

        |Δw| ≤ Σ_t lr_t · 2R·ρ · exp(L·Σ_t lr_t)

    ρ is relative to the gradient's terms, so the bound assumes they do not cancel to far below
    the gradient's running scale √v̂: true of these short runs from a random start, false for a
    weight that has no gradient in exact arithmetic — see ``adam_near_zero``.
    """
    total = float(np.sum(np.asarray(lrs, np.float64)))
    return total * 2 * adam_ratio(beta_1, beta_2) * rounding(terms, dtype) * math.exp(lipschitz * total)


def adam_near_zero(lrs, residue, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """The most two runs can move apart a weight whose gradient is zero in exact arithmetic and
    a rounding residue of at most ``residue`` (absolute) in floating point, each step:

        |Δw| ≤ Σ_t lr_t · (1 + R) · 2·residue / ε_Adam

    Adam divides by √v̂ + ε_Adam, and √v̂ is the residue's own size: a difference δ in such a
    gradient moves the step by up to lr·(1 + R)·δ/ε_Adam, 10^8·lr·δ at Keras's ε — this is how
    one ulp of β^t became 4e-12 in BPR's user bias. First order, with no growth: the bound is
    for a weight that no gradient depends on (it cancels from the loss).
    """
    total = float(np.sum(np.asarray(lrs, np.float64)))
    return total * (1 + adam_ratio(beta_1, beta_2)) * 2 * residue / epsilon


def one_minus_power(q, power, dtype=np.float64):
    """Relative error of 1 - x^B (and of its reciprocal) computed from a rounded x, q = x^B: x^B
    carries x's rounding B times, and 1 - q keeps only 1 - q of q's digits, so each way of
    writing it is within rounding(B + 4)·q/(1 - q) + rounding(4) of the exact value."""
    q = np.asarray(q, np.float64)
    return rounding(power + 4, dtype) * q / (1 - q) + rounding(4, dtype)


def loss_apart(loss, pred_apart, n, dtype=np.float64):
    """How far apart two runs can log a mean-squared loss whose predictions differ by at most
    ``pred_apart``: (r̂+Δ-y)² - (r̂-y)² = 2Δ(r̂-y) + Δ², and mean|r̂-y| ≤ √loss, so
    |Δloss| ≤ 2√loss·Δ + Δ², plus the reordering of the mean of n squares (rounding(n)·loss)."""
    loss = np.asarray(loss, np.float64)
    return 2 * np.sqrt(loss) * pred_apart + pred_apart ** 2 + rounding(n, dtype) * loss


def _rating_gradients(model, users, movies):
    """∂r̂/∂w of each rating in turn, from the model's own backward (dropout off)."""
    from minirec.backend import to_numpy
    from minirec.train import guards
    for k in range(len(users)):
        guards.clear_gradients(model)
        model.forward(users[k:k + 1], movies[k:k + 1], training=False)
        model.backward(np.ones(1, model.dtype))
        yield {name: to_numpy(g) for name, g in model.grads.items()}


def prediction_slope(model, users, movies):
    """The largest Σ_w |∂r̂/∂w| over the given ratings at the model's weights: to first order,
    a prediction moves by at most this times the largest change of any weight."""
    return max(sum(float(np.abs(g).sum()) for g in grads.values())
               for grads in _rating_gradients(model, users, movies))


def prediction_size(model, users, movies):
    """Σ_w |w·∂r̂/∂w| for each rating: for a model whose r̂ is a sum of products of weights (a
    dot product, biases, SVD++'s bag), at least Σ|terms| of r̂, the magnitude ``rounding``
    is relative to."""
    from minirec.backend import to_numpy
    params = {name: to_numpy(p) for name, p in model.params.items()}
    return np.array([sum(float(np.abs(params[name] * g).sum()) for name, g in grads.items())
                     for grads in _rating_gradients(model, users, movies)])
