"""examples/lesson4.ipynb runs top to bottom: on the 2016 MovieLens release where MINIREC_DATA
holds it, else on a small synthetic set (its parameter cell says which)."""
import re
from pathlib import Path

import pytest

from conftest import data_home

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "lesson4.ipynb"


def test_the_lesson4_notebook_runs_top_to_bottom(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="needs nbformat (the test extra)")
    nbclient = pytest.importorskip("nbclient", reason="needs nbclient (the test extra)")
    pytest.importorskip("matplotlib", reason="the notebook draws (the plot extra)")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "the notebook needs one cell tagged 'parameters'"
    real = data_home() and (data_home() / "ml-latest-small-2016" / "ratings.csv").exists()
    params[0].source = (f"DATA = {str(data_home() / 'ml-latest-small-2016')!r}\nSYNTHETIC = False\nSEED = 42"
                        if real else "DATA = None\nSYNTHETIC = True\nSEED = 42")
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []) if o.get("output_type") == "stream")
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                 for o in c.get("outputs", []))
    assert images >= 6  # three loss curves, the movie map, the finder, the one cycle
    reloaded = re.search(r"reloaded: ([\d.]+) \(before saving: ([\d.]+)\)", text)
    assert reloaded and reloaded.group(1) == reloaded.group(2)
    assert text.count("Epoch 6/6") == 3 and "Epoch 10/10" in text  # every fit cell ran
    table = [line for line in text.splitlines() if re.match(r"(dot product|neural net|improved|popularity)", line)]
    assert len(table) == 5
    if real:  # the notebook's schedule on the notebook's data lands where minirec lesson4 does
        bias_mse = float(next(l for l in table if l.startswith("dot product + biases")).split()[4])
        assert bias_mse == pytest.approx(0.8021, abs=2e-4)
