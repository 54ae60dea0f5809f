"""The five step notebooks: one source (notebooks/), committed clean, thin, and each runs under papermill on micro."""

from __future__ import annotations

import ast
import importlib
import json
import shutil
from pathlib import Path

import nbformat
import pytest
from _report_build import micro_data, micro_report

from fraudkit.report.build import STEPS, _run_step, mask_key, notebook_dir

ROOT = Path(__file__).resolve().parents[2]


def _code_cells(step):
    nbk = nbformat.read(notebook_dir() / f"{step}.ipynb", as_version=4)
    return [c for c in nbk.cells if c.cell_type == "code"]


def test_the_report_runs_the_notebooks_analysts_open():
    """One source: the checkout's notebooks/ (no generator script, no packaged copy to keep identical)."""
    assert notebook_dir() == ROOT / "notebooks"
    assert all((notebook_dir() / f"{s.name}.ipynb").is_file() for s in STEPS)
    assert not list(ROOT.glob("fraudkit/**/*.ipynb")) and not list(notebook_dir().glob("*.py"))


@pytest.mark.parametrize("step", [s.name for s in STEPS])
def test_notebook_is_committed_without_outputs_and_has_parameters(step):
    nbk = nbformat.read(notebook_dir() / f"{step}.ipynb", as_version=4)
    nbformat.validate(nbk)
    code = [c for c in nbk.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("data_dir", "run_dir", "as_of", "seed", "previous_run_dir"):
        assert f"{name} =" in tagged[0].source
    extra = next(s for s in STEPS if s.name == step).extra
    assert all(f"{name} =" in tagged[0].source for name in extra)


@pytest.mark.parametrize("step", [s.name for s in STEPS])
def test_notebooks_are_thin_and_call_views_that_exist(step):
    """No definitions, branches, loops or import guards in a notebook; every `views.x` / `nb.x` it calls exists."""
    modules = {}
    for cell in _code_cells(step):
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Lambda, ast.If, ast.IfExp, ast.For,
                                         ast.While, ast.Try, ast.With, ast.comprehension)), (step, cell.source)
            if isinstance(node, ast.Import):
                raise AssertionError(f"{step}: import the kit's report modules with `from fraudkit.report import`")
            if isinstance(node, ast.ImportFrom):
                assert node.module == "fraudkit.report", (step, node.module)
                for alias in node.names:
                    modules[alias.asname or alias.name] = importlib.import_module(f"fraudkit.report.{alias.name}")
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
                mod = modules[node.value.id]
                assert node.attr in mod.__all__, f"{step}: {mod.__name__} has no public {node.attr}"
        assert "require(" not in cell.source and "importlib" not in cell.source
    assert set(modules) == {"nb", "views"}


def test_every_step_runs_under_papermill_on_micro():
    res = micro_report()
    assert res.ok, res.describe() + "\n" + "\n".join(s.error or "" for s in res.steps)
    for s in res.steps:
        executed = nbformat.read(res.report_dir / "notebooks" / f"{s.step.name}.ipynb", as_version=4)
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.output_type == "error"]
        assert not errors
        assert executed.metadata["papermill"]["parameters"]["run_dir"]
        assert (res.report_dir / s.step.page).stat().st_size > 2000


def test_steps_show_real_sections_on_full_data():
    """On a full simulated dataset the core sections render content, not 'not available'."""
    res = micro_report()
    p1 = (res.report_dir / "01_risk_perception.html").read_text()
    assert "Tables of the dataset" in p1 and "Registrations per day by channel" not in p1  # plots are images
    assert p1.count("<img") >= 3
    assert "Not available: the red-team drill" in p1  # skipped here (redteam_scenario=""), said so
    assert p1.count("Not available") == 1
    p3 = (res.report_dir / "03_risk_identification.html").read_text()
    assert "Recall (fraud) and false-positive rate" in p3 and "Operating point" in p3
    assert "on the training world" in p3
    assert "<iframe" in p3  # the community picture
    p4 = (res.report_dir / "04_risk_mitigation.html").read_text()
    for caption in ("What each action does and what it changes", "Fake engagement removed, by action",
                    "touched and burned", "Demoted notes", "Authors whose commercial rights are restricted",
                    "refusals, by risk tier", "Keys listed for promotion", "Immediate vs delayed interception",
                    "by typology and look-alike group"):
        assert caption in p4, caption
    assert "Not available" not in p4
    p5 = (res.report_dir / "05_effect_evaluation.html").read_text()
    assert "Leakage and interception over the whole period" in p5 and "Resources tied to flagged accounts" in p5
    assert "The loop, window by window (2 windows)" in p5 and "watched products" in p5
    assert "Closed loop: orders intercepted per day with the band" in p5
    assert "This is the first report with its run data in this reports folder" in p5 and "Not available" not in p5
    for s in STEPS:
        assert "Traceback" not in (res.report_dir / s.page).read_text()
    manifest = json.loads((res.report_dir / "manifest.json").read_text())
    assert manifest["ok"] and {s["name"] for s in manifest["steps"]} == {s.name for s in STEPS}


def test_an_analysts_edit_runs_as_it_is(tmp_path):
    """An analyst edits a notebook (adds a note and a cell, drops a section): the step still runs and shows it."""
    res = micro_report()
    folder = tmp_path / "notebooks"
    shutil.copytree(notebook_dir(), folder)
    step = STEPS[1]  # capability building: fast
    path = folder / f"{step.name}.ipynb"
    nbk = nbformat.read(path, as_version=4)
    nbk.cells = [c for c in nbk.cells if "views.lists(ctx)" not in c.source]
    nbk.cells.append(nbformat.v4.new_markdown_cell("## Analyst's note\nThe top accounts of this run."))
    nbk.cells.append(nbformat.v4.new_code_cell('views.risk_portraits(ctx)'))
    nbformat.write(nbk, path)
    run = tmp_path / "run"
    shutil.copytree(res.run_dir, run)
    params = {"data_dir": str(micro_data()), "run_dir": str(run), "train_dir": str(micro_data(1000)),
              "as_of": "2024-11-11", "seed": 0, "previous_run_dir": ""}
    out = tmp_path / "page"
    out.mkdir()
    result = _run_step(step, path, out, params, run_id="edit", timeout=600, key=mask_key(tmp_path),
                       run_dir=tmp_path / "private")
    assert result.ok, result.error
    page = (out / step.page).read_text()
    assert "Analyst&#39;s note" in page or "Analyst's note" in page
    assert "List entries by list" not in page
    assert page.count("Most frequent reasons among flagged accounts") == 2
