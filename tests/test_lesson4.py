"""The improved recipes on real data meet their bounds (slow: about ten seconds with Numba)."""
import pytest

from minirec.tools import lesson4
from minirec.data.movielens import load_movielens


@pytest.mark.slow
@pytest.mark.parametrize("kind, bound", [("bias", 0.765), ("nn", 0.780)])
def test_improved_recipe_beats_the_notebook(movielens_2016, kind, bound):
    ds = load_movielens(movielens_2016)
    train, valid = ds.split(0.8, seed=42)
    recipe = lesson4.IMPROVED[kind]
    model = lesson4.build(kind, ds, seed=42, **recipe["model"])
    lesson4.train_improved(model, train, valid, recipe, verbose=0)
    assert model.evaluate(valid.x, valid.y) <= bound
