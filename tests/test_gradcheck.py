"""Every backward pass against central differences (float64), and proof the checks can fail."""
import numpy as np
import pytest

from minirec.nn import gradcheck
from minirec.tools import check_all
from minirec.nn.layers import Dot, Embedding


@pytest.mark.parametrize("check", check_all.CHECKS, ids=lambda c: c.__name__)
def test_gradient_check_passes(check):
    results = check(0)
    assert results, "a check must compare at least one gradient"
    for label, err in results.items():
        bound = check_all.bound_for(label)
        assert err < bound, f"{label}: {err:.3e} >= {bound:.0e}"


@pytest.mark.parametrize("seed", [1, 2])
def test_model_checks_hold_for_other_seeds(seed):
    for label, err in check_all.check_models(seed).items():
        assert err < gradcheck.RELU_BOUND, label


def test_rel_error_formula():
    a = np.array([1.0, 0.0, -2.0])
    n = np.array([1.0, 1e-3, -2.0])
    # max|a - n| = 1e-3; max(|a| + |n|) = 4
    assert gradcheck.rel_error(a, n) == pytest.approx(1e-3 / 4)
    assert gradcheck.rel_error(np.zeros(3), np.zeros(3)) == 0.0


def test_a_broken_backward_is_caught(monkeypatch):
    """Swap Dot's two gradients on purpose: the check must fail and show the worst entries."""
    def wrong(self, dout):
        return dout[:, None] * self.a, dout[:, None] * self.b
    monkeypatch.setattr(Dot, "backward", wrong)
    with pytest.raises(gradcheck.GradientCheckError, match="worst entries"):
        gradcheck.check_dot(0)
    with pytest.raises(gradcheck.GradientCheckError):
        check_all.check_models(0)


def test_fancy_assignment_embedding_is_caught(monkeypatch):
    """``dW[idx] += dout`` drops repeated ids: the embedding check must catch it."""
    def lossy(self, dout):
        dW = np.zeros_like(self.params["W"])
        dW[self.idx] += dout
        self.grads["W"] = dW
    monkeypatch.setattr(Embedding, "backward", lossy)
    with pytest.raises(gradcheck.GradientCheckError):
        gradcheck.check_embedding(0)


def test_run_all_reports_every_check():
    rows = check_all.run_all()
    assert len(rows) >= 25 and all(r.passed for r in rows)
