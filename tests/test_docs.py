"""The README and docs/ open onto the code that is really there.

* Every relative link in README.md and docs/*.md leads to a file (and a heading) that exists,
  and every repository path they cite — ``minirec/nn/layers.py``, ``fast/numba_adam.py`` (a
  path inside the package), ``examples/00_one_batch.py``, a bare ``guards.py`` — names a file
  or folder of this checkout; a ``module.name`` they cite (``optim.adam_update``) is defined
  there. Paths in other repositories are cited beside their repository's name (``EXTERNAL``);
  URLs and paths outside the checkout (``../shared/data``) are not checked.
* The README's "One batch by hand" block, run as written, is ``fit``'s step on NumPy: the same
  weights and Adam state, bit for bit (the same code on the same arrays, so exact equality).
"""
import importlib
import os
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = {"minirec", "examples", "benchmarks", "tests", "docs"}  # folders at the repository root
SUBPACKAGES = {p.name for p in (ROOT / "minirec").iterdir() if (p / "__init__.py").exists()}
EXTENSIONS = {"py", "md", "ipynb", "toml", "cfg", "sh", "txt", "json", "yml", "yaml"}
PLACEHOLDERS = ("path/to/",)  # a reader's own path in a command line
# Files of other repositories that the pages cite, each with the repository it belongs to, which
# must be named within WINDOW characters of the path (before or after it).
EXTERNAL = {
    "deeplearning1/nbs/lesson4.ipynb": "fastai/courses",
    "setup/install-gpu.sh": "fastai/courses",
    "keras/regularizers.py": "keras-team/keras",
    "keras/engine/training.py": "keras-team/keras",
    "keras/optimizers.py": "keras-team/keras",
    "examples/06_benchmarks/movielens.ipynb": "recommenders",
    "examples/06_benchmarks/benchmark_utils.py": "recommenders",
    "GLocal_K.ipynb": "usydnlp/Glocal_K",
}
WINDOW = 600

# A path-like token: letters, digits, _ . - / (a path has no spaces), not glued to a longer word.
TOKEN = re.compile(r"(?<![\w./$~-])[\w.-]+(?:/[\w.-]*)*")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
URL = re.compile(r"[a-z]+://\S+")
DOTTED = re.compile(r"`(\w+)\.(\w+)")  # `module.name ...` at the start of a code span
NOT_MODULES = {"model"}  # `model.fit`: the reader's model, not minirec/models/model.py


def repository_files():
    """The names of every file and folder in the checkout, and minirec's modules by name."""
    skip, names = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".hypothesis"}, set()
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
        names.update(dirs, files)
    return names, {p.stem: p for p in (ROOT / "minirec").rglob("*.py")}


def slug(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page):
    return {slug(line.lstrip("#")) for line in page.read_text().splitlines()
            if re.match(r"#{1,6} ", line)}


def path_problems(text, page, names, modules):
    """What is wrong with the paths and links cited in ``text`` (the contents of ``page``)."""
    problems = []
    for target in LINK.findall(text):
        if URL.match(target) or target.startswith("mailto:"):
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if ROOT not in dest.parents and dest != ROOT:
            continue  # outside the checkout (../shared/...)
        if not dest.exists():
            problems.append(f"link {target}: no {dest.relative_to(ROOT)}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"link {target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    plain = URL.sub(" ", LINK.sub(lambda m: " " + m.group(0).split("](")[0] + " ", text))
    for match in TOKEN.finditer(plain):
        token = match.group(0).rstrip(".,:;")
        first, ext = token.split("/")[0], token.rsplit(".", 1)[-1] if "." in token else ""
        if token.startswith(("../", "~", "$", "/")) or token.startswith(PLACEHOLDERS):
            continue
        if token in EXTERNAL:
            if EXTERNAL[token] not in plain[max(0, match.start() - WINDOW):match.end() + WINDOW]:
                problems.append(f"{token}: another repository's file, but "
                                f"{EXTERNAL[token]} is not named beside it")
            continue
        if "/" in token and first in TOP:
            candidates = [ROOT / token]
        elif "/" in token and first in SUBPACKAGES:
            candidates = [ROOT / "minirec" / token]
        elif "/" in token and ext in EXTENSIONS:
            candidates = [ROOT / token, ROOT / "minirec" / token]
        elif "/" not in token and ext in EXTENSIONS:
            if token not in names:
                problems.append(f"{token}: no file of that name in the repository")
            continue
        else:
            continue  # not a path into this repository (a data folder, a fraction, prose)
        if not any(c.exists() for c in candidates):
            problems.append(f"{token}: not in the repository")
    for module, name in DOTTED.findall(" ".join(text.split())):
        if module in modules and module not in NOT_MODULES and name not in EXTENSIONS:
            dotted = ".".join(modules[module].relative_to(ROOT).with_suffix("").parts)
            if not hasattr(importlib.import_module(dotted), name):
                problems.append(f"{module}.{name}: {dotted} defines no {name}")
    return list(dict.fromkeys(problems))  # a link's text and target may name the same path


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_cited_path_exists(page):
    names, modules = repository_files()
    problems = path_problems(page.read_text(), page, names, modules)
    assert not problems, f"{page.relative_to(ROOT)} cites what is not there:\n  " + "\n  ".join(problems)


def test_the_path_check_catches_wrong_paths():
    """A made-up page: each wrong path is reported, each right one is not."""
    names, modules = repository_files()
    page = ROOT / "docs" / "made-up.md"
    text = """
Read `minirec/nn/layers.py`, then `minirec/nn/layer.py` and `fast/numba_adm.py`; `guards.py` is
there, `checks.py` is not. See [the map](../README.md#reading-order), [a page](nope.md),
[a section](notebook.md#no-such-section) and [data](../../shared/data/MANIFEST.md). Run
`python examples/99_missing.py --data path/to/ml-latest-small-2016` or `python benchmarks/bench_epoch.py`.
Keras keeps its rate in `keras/optimizers.py`; `optim.adam_update` is real, `optim.adam_updat`
is not; https://example.org/minirec/nn/nothing.py is a URL.
"""
    problems = "\n".join(path_problems(text, page, names, modules))
    for wrong in ["minirec/nn/layer.py", "fast/numba_adm.py", "checks.py", "nope.md",
                  "#no-such-section", "examples/99_missing.py", "keras/optimizers.py",
                  "optim.adam_updat"]:
        assert wrong in problems, f"{wrong} was not reported:\n{problems}"
    for right in ["minirec/nn/layers.py", "guards.py", "README.md", "MANIFEST", "path/to",
                  "bench_epoch", "optim.adam_update:", "nothing.py"]:
        assert right not in problems, f"{right} was reported:\n{problems}"


# ----- one batch by hand ---------------------------------------------------------------------
STEP = ["loss, grads = model.loss_and_grads([users, movies], ratings)",
        "model.optimizer.step(model.params, grads)"]


def one_batch_block():
    """The first python block under the README's heading "One batch by hand"."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## One batch by hand", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def run(code):
    namespace = {}
    exec(compile(code, "README.md (one batch by hand)", "exec"), namespace)
    return namespace


def state(model):
    opt = model.optimizer
    return ({k: v.copy() for k, v in model.params.items()},
            {name: {k: a.copy() for k, a in slots.items()} for name, slots in opt.state.items()},
            opt.iterations)


def assert_same(a, b):
    (params_a, slots_a, t_a), (params_b, slots_b, t_b) = a, b
    assert t_a == t_b == 1
    assert params_a.keys() == params_b.keys() and slots_a.keys() == slots_b.keys() == params_a.keys()
    for name in params_a:
        assert np.array_equal(params_a[name], params_b[name]), f"{name} differs from fit's"
        for key in ("m", "v"):
            assert np.array_equal(slots_a[name][key], slots_b[name][key]), f"{name}'s Adam {key}"


def test_one_batch_by_hand_is_fits_step():
    code = one_batch_block()
    lines = [line.split("#")[0].strip() for line in code.splitlines()]
    assert all(step in lines for step in STEP), "the block no longer shows the two-line step"
    by_hand = run(code)
    model = by_hand["model"]
    assert model.backend == "numpy" and not model.optimizer.lazy

    setup = code.split(STEP[0])[0]  # the same model and batch, not yet stepped
    fitted = run(setup)
    start = state(fitted["model"])
    users, movies, ratings = by_hand["users"], by_hand["movies"], by_hand["ratings"]
    fitted["model"].fit([users, movies], ratings, batch_size=len(ratings), shuffle=False, verbose=0)

    assert_same(state(model), state(fitted["model"]))
    moved = [n for n in start[0] if not np.array_equal(start[0][n], model.params[n])]
    assert sorted(moved) == sorted(start[0]), "a parameter did not move: the check would be empty"


def test_the_lazy_step_by_hand_with_the_rows_seen():
    """The README's lazy variant: ``step`` given each table's looked-up rows equals ``fit``
    with ``lazy_l2="seen"`` (the plain L2 of ``loss_and_grads`` on the rows seen)."""
    import minirec
    setup = one_batch_block().split(STEP[0])[0]
    models = []
    for _ in range(2):
        namespace = run(setup)
        namespace["model"].compile(minirec.Adam(1e-3, lazy=True, lazy_l2="seen"))
        models.append(namespace)
    by_hand, fitted = models
    model, users, movies, ratings = (by_hand[k] for k in ("model", "users", "movies", "ratings"))
    loss, grads = model.loss_and_grads([users, movies], ratings)
    rows = {f"{name}.W": layer.rows() for name, layer in model.layers.items() if hasattr(layer, "rows")}
    assert rows, "the model has no tables looked up by rows"
    model.optimizer.step(model.params, grads, rows)
    fitted["model"].fit([users, movies], ratings, batch_size=len(ratings), shuffle=False, verbose=0)
    assert_same(state(model), state(fitted["model"]))


def test_the_code_tour_has_a_line_for_every_module():
    """docs/code-tour.md promises a line per module: a module added without one is named here."""
    tour = (ROOT / "docs" / "code-tour.md").read_text()
    missing = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "minirec").rglob("*.py"))
               if p.name != "__init__.py" and f"`{p.relative_to(ROOT).as_posix()}`" not in tour]
    assert not missing, "docs/code-tour.md has no line for:\n  " + "\n  ".join(missing)
