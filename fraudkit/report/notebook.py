"""What the five step notebooks call to read inputs and show results.

The notebooks are thin: they tell the story and call the package. This module
holds the few things every notebook needs:

* reading a dataset table or a run artifact that may be absent
  (:func:`read_table`, :func:`read_artifact`), and writing a step's own
  artifacts into the run directory (:func:`write_artifact`);
* finding a package function that may not exist in this installation
  (:func:`require`) — a missing function or input renders a clear
  "not available: <why>" note (:func:`not_available`), never made-up content;
* showing tables with personal data masked (:func:`show`) and figures
  (:func:`show_figure`).

A module that exists but fails to import is an error, not "not available":
the step fails and the report shows the traceback.
"""

from __future__ import annotations

import html
import importlib
from pathlib import Path

import pandas as pd

from fraudkit.data import atomic
from fraudkit.data.contract import PII_COLUMNS
from fraudkit.data.dataset import read_table, table_path
from fraudkit.errors import MissingInputError
from fraudkit.report.html import embed_html, mask_html
from fraudkit.report.plots import check_labelled
from fraudkit.simulation import TRAIN_SEED_OFFSET

__all__ = [
    "require",
    "not_available",
    "note",
    "show",
    "show_figure",
    "read_table",
    "read_artifact",
    "write_artifact",
    "list_artifacts",
    "mask_frame",
    "table_path",
    "ensure_inputs",
    "as_of_day",
    "step_dir",
    "show_graph",
    "NOTE_CLASS",
]

NOTE_CLASS = "fk-note"
"""CSS class of the notes this module renders (the page template styles it)."""


def require(module: str, attr: str | None = None, *, what: str | None = None, show_note: bool = True):
    """Return ``module`` (or ``module.attr``) if this installation has it, else ``None`` and a note.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"fraudkit.evaluation.metrics"``.
    attr : str, optional
        Attribute to fetch from it, e.g. ``"evaluate_run"``.
    what : str, optional
        What the section shows, for the note ("The arms-race table").
    show_note : bool, default=True
        Display the "not available" note when missing.

    Returns
    -------
    object or None

    Raises
    ------
    ImportError
        When the module exists but one of *its* imports fails (a real bug, shown as an error).

    Examples
    --------
    >>> require("fraudkit.data.contract", "STAGES", show_note=False)
    ('behaviour', 'group', 'graph')
    >>> require("fraudkit.no_such_module", show_note=False) is None
    True
    """
    name = f"{module}.{attr}" if attr else module
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
            raise  # the module exists but a dependency of it is missing: a real error
        if show_note:
            not_available(what or name, f"`{module}` is not part of this fraudkit installation yet")
        return None
    if attr is None:
        return mod
    obj = getattr(mod, attr, None)
    if obj is None and show_note:
        not_available(what or name, f"`{module}` has no `{attr}` in this version")
    return obj


def not_available(what: str, why: str) -> None:
    """Display a clearly marked "not available" note for a section that cannot be shown."""
    _display_html(f'<div class="{NOTE_CLASS} {NOTE_CLASS}-na"><strong>Not available: {html.escape(what)}.</strong> '
                  f"{_md_code(why)}.</div>", f"Not available: {what}. {why}.")


def note(text: str, *, kind: str = "info") -> None:
    """Display a short highlighted note (``kind`` in info, warn, ok)."""
    _display_html(f'<div class="{NOTE_CLASS} {NOTE_CLASS}-{html.escape(kind)}">{_md_code(text)}</div>', text)


def show(df: pd.DataFrame, *, caption: str | None = None, max_rows: int = 20, floatfmt: str = "{:,.3f}",
         mask: bool = True) -> None:
    """Display ``df`` (first ``max_rows`` rows) with personal-data columns masked.

    The frame is not modified. Numbers are formatted for reading; the row
    count is stated when rows are cut.
    """
    view = mask_frame(df) if mask else df
    n = len(view)
    view = view.head(max_rows)
    styler = view.style.hide(axis="index").format(
        {c: floatfmt for c in view.columns if pd.api.types.is_float_dtype(view[c])}, na_rep="–")
    if caption or n > max_rows:
        cap = (caption or "") + (f" (first {max_rows} of {n:,} rows)" if n > max_rows else "")
        styler = styler.set_caption(html.escape(cap.strip()))
    # a fixed table id: pandas otherwise draws a random uuid, and the report must be reproducible
    styler = styler.set_uuid("fk")
    _display_html(styler.to_html(), view.to_string(max_rows=max_rows))


def show_figure(fig) -> None:
    """Display a figure built by :mod:`fraudkit.report.plots` (checked for title and axis labels)."""

    check_labelled(fig)
    try:
        from IPython.display import display

        display(fig)
    except ImportError:  # pragma: no cover - outside IPython
        pass






def read_artifact(run_dir, name: str, columns=None) -> pd.DataFrame | None:
    """Read ``RUN/<name>.parquet`` (``name`` may contain a sub-folder, e.g. ``"graph/communities"``).

    Returns None when the run did not write it.
    """
    if run_dir is None:
        return None
    p = Path(run_dir) / f"{name}.parquet"
    if not p.exists():
        return None
    return pd.read_parquet(p, columns=columns)


def write_artifact(run_dir, step: str, name: str, df: pd.DataFrame) -> Path:
    """Write a step's own table to ``RUN/report/<step>/<name>.parquet`` (atomically) and return the path."""
    return atomic.write_parquet(df, Path(run_dir) / "report" / step / f"{name}.parquet")


def list_artifacts(run_dir) -> pd.DataFrame:
    """Every Parquet artifact of a run: ``artifact`` (relative name), ``rows``, ``columns``."""
    import pyarrow.parquet as pq

    rows = []
    root = Path(run_dir)
    for p in sorted(root.rglob("*.parquet")):
        meta = pq.ParquetFile(p).metadata
        rows.append({"artifact": p.relative_to(root).with_suffix("").as_posix(),
                     "rows": meta.num_rows, "columns": meta.num_columns})
    return pd.DataFrame(rows, columns=["artifact", "rows", "columns"])


def mask_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Mask personal data for display: :func:`fraudkit.report.masking.mask_frame` when installed.

    Without it, every contract PII column (and ``entity_id`` of PII entity
    types) is replaced by a short keyed hash, so equal values stay equal.
    """
    masking = require("fraudkit.report.masking", "mask_frame", show_note=False)
    if masking is not None:
        return masking(df)
    import hashlib

    out = df.copy()
    for c in out.columns:
        if c in PII_COLUMNS:
            out[c] = out[c].map(lambda v: v if pd.isna(v) else
                                "#" + hashlib.sha256(f"fraudkit:{v}".encode()).hexdigest()[:8])
    return out


def ensure_inputs(data_dir, run_dir, *, train_dir="", seed: int = 0, scenario: str = "micro",
                  cache=".fraudkit-cache"):
    """Resolve the notebook's input folders; with empty parameters, simulate and score ``scenario`` here.

    ``fraudkit report`` always passes ``data_dir`` and ``run_dir`` (and
    ``train_dir`` when it has training data). An analyst who opens a notebook
    in JupyterLab and runs it as it is gets the small demo: ``scenario``
    simulated with ``seed`` into ``<cache>/data``, a separate *training world*
    (the same scenario with ``seed + 1000``) into ``<cache>/train``, and the
    data scored with models and thresholds fitted on the training world into
    ``<cache>/run`` (all reused on the next run).

    Returns
    -------
    (Path, Path, Path or None)
        ``data_dir``, ``run_dir`` and ``train_dir`` (None: no training data).
    """

    cache = Path(cache) / f"{scenario}-seed{seed}"
    demo = not data_dir
    if demo:
        simulate = require("fraudkit.simulation", "simulate", show_note=False)
        if simulate is None:
            raise MissingInputError("set data_dir in the parameters cell: the demo needs fraudkit.simulation")
        data_dir = cache / "data"
        if not (data_dir / "accounts.parquet").exists():
            simulate(scenario, data_dir, seed=seed, progress=False)
        if not train_dir:

            train_dir = cache / "train"
            if not (train_dir / "accounts.parquet").exists():
                simulate(scenario, train_dir, seed=seed + TRAIN_SEED_OFFSET, progress=False)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise MissingInputError(f"data_dir {data_dir} is not a folder; set it in the parameters cell")
    train_dir = Path(train_dir) if train_dir else None
    if train_dir is not None and not train_dir.is_dir():
        raise MissingInputError(f"train_dir {train_dir} is not a folder; set it in the parameters cell or leave it empty")
    if not run_dir:
        run_dir = cache / "run"
        score = require("fraudkit.pipeline.score", "score_dataset", show_note=False)
        if score is not None and not (run_dir / "accounts.parquet").exists():
            score(data_dir, run_dir, seed=seed, train=train_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    return data_dir, Path(run_dir), train_dir


def as_of_day(as_of, times=None):
    """The day monitors report on: ``as_of`` (``YYYY-MM-DD``), else the last day of ``times``, else None."""
    if as_of:
        return pd.Timestamp(as_of).normalize()
    if times is None or not len(times):
        return None
    return pd.to_datetime(pd.Series(times)).max().normalize()


def step_dir(run_dir, step: str) -> Path:
    """``RUN/report/<step>``: where a step keeps its own artifacts (created)."""
    d = Path(run_dir) / "report" / step
    d.mkdir(parents=True, exist_ok=True)
    return d


def show_graph(document: str, *, title: str, height: int = 560) -> None:
    """Display a whole HTML document (a pyvis graph) in a sandboxed iframe, offline and masked."""

    markup = mask_html(embed_html(document, title=title, height=height))
    _display_html(markup, f"[interactive graph: {title}]")


def _md_code(text: str) -> str:
    """Escape ``text`` for HTML and render `backticks` as <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _display_html(markup: str, plain: str) -> None:
    try:
        from IPython.display import display

        display({"text/html": markup, "text/plain": plain}, raw=True)
    except ImportError:  # pragma: no cover - outside IPython
        print(plain)
