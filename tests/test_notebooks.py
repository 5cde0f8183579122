"""Every tutorial in notebooks/ runs top to bottom (nbclient, a real Jupyter kernel), draws at
least one figure, and is stored with its outputs cleared.

The notebooks read `MMZOO_NOTEBOOK_QUICK=1` (fewer examples and epochs) and write their files
under `MMZOO_NOTEBOOK_OUT`; the shared data comes from `MMZOO_DATA_DIR`.
"""

import glob
import os

import pytest

nbformat = pytest.importorskip("nbformat", reason="pip install -e .[notebooks]")
nbclient = pytest.importorskip("nbclient", reason="pip install -e .[notebooks]")

from conftest import DATA_DIR, ROOT  # noqa: E402

NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
# Notebooks that need data from ../shared/data (the others use the easy-vqa package's data).
NEEDS_SHARED_DATA = {"03_audio.ipynb": "fsdd", "06_real_photos.ipynb": "flickr8k_1k",
                     "07_speech_to_text.ipynb": "fsdd"}


def _name(path):
    return os.path.basename(path)


def test_every_tutorial_is_here():
    assert [_name(p) for p in NOTEBOOKS] == [
        "01_quickstart.ipynb", "02_captioning.ipynb", "03_audio.ipynb", "04_fusion.ipynb",
        "05_export_and_serve.ipynb", "06_real_photos.ipynb", "07_speech_to_text.ipynb",
        "08_your_own_data.ipynb", "09_your_own_model.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, (
            f"{_name(path)}: clear the outputs before committing "
            f"(jupyter nbconvert --clear-output --inplace {_name(path)})")
    assert any("parameters" in c.metadata.get("tags", []) for c in code), (
        f"{_name(path)} has no cell tagged 'parameters'")


def _execute(path, data_dir, tmp_path, monkeypatch):
    """Run the notebook at `path` in a fresh kernel with its quick settings; returns it run.
    Raises CellExecutionError, naming the cell, on any cell error."""
    monkeypatch.setenv("MMZOO_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MMZOO_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("MMZOO_DATA_DIR", os.path.abspath(data_dir))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": os.path.dirname(path)}}).execute()
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_notebook_runs(path, tmp_path, monkeypatch):
    needs = NEEDS_SHARED_DATA.get(_name(path))
    if needs and not os.path.isdir(os.path.join(DATA_DIR, needs)):
        pytest.skip(f"{_name(path)} needs {os.path.join(DATA_DIR, needs)}; set MMZOO_DATA_DIR")
    nb = _execute(path, DATA_DIR, tmp_path, monkeypatch)  # its time: pytest --durations
    figures = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if "image/png" in o.get("data", {})]
    assert figures, f"{_name(path)} drew no figure"


def test_audio_notebook_says_what_to_download(tmp_path, monkeypatch):
    path = os.path.join(ROOT, "notebooks", "03_audio.ipynb")
    empty = tmp_path / "data"  # no fsdd/ in it
    empty.mkdir()
    with pytest.raises(nbclient.exceptions.CellExecutionError) as error:
        _execute(path, str(empty), tmp_path, monkeypatch)
    message = str(error.value)
    assert "FileNotFoundError" in message and str(empty / "fsdd") in message
    assert "Download the Free Spoken Digit Dataset" in message and "MMZOO_DATA_DIR" in message
