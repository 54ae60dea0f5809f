"""What every step notebook needs: its inputs resolved once (:func:`setup`), and the run's files.

A step notebook is thin: a parameters cell, one setup call

    ctx = nb.setup(data_dir, run_dir=run_dir, train_dir=train_dir, as_of=as_of, seed=seed,
                   previous_run_dir=previous_run_dir)

and one call per section to a view function of the report
(:mod:`fraudkit.report.perception_views` … :mod:`fraudkit.report.evaluation_views`), which
takes the :class:`Context` and returns what the section shows
(:mod:`fraudkit.report.display`). This module also holds the small readers and
writers the views share: dataset tables and run artifacts that may be absent
(:func:`read_table`, :func:`read_artifact`), a step's own artifacts
(:func:`write_artifact`, :func:`step_dir`) and :func:`list_artifacts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fraudkit.data import atomic
from fraudkit.data.dataset import read_table, table_path
from fraudkit.errors import MissingInputError
from fraudkit.evaluation.review import read_review, review_queue, write_review
from fraudkit.pipeline.own_labels import OwnLabels
from fraudkit.pipeline.score import score_dataset
from fraudkit.report.masking import mask_frame
from fraudkit.report.plots import set_style
from fraudkit.simulation import TRAIN_SEED_OFFSET, simulate

__all__ = [
    "review_files",
    "QUEUE_FILE",
    "REVIEW_FILE",
    "Context",
    "setup",
    "ensure_inputs",
    "read_table",
    "read_artifact",
    "write_artifact",
    "list_artifacts",
    "mask_frame",
    "table_path",
    "as_of_day",
    "step_dir",
    "loop_folder",
]


@dataclass(frozen=True, eq=False)
class Context:
    """The inputs of one notebook run, as :func:`setup` resolved them, and what the views computed once.

    Attributes
    ----------
    data_dir : Path
        The dataset (the data contract's tables).
    run_dir : Path
        The run directory written by ``fraudkit score``; the steps write their own tables under ``report/``.
    train_dir : Path or None
        The labelled training dataset the run's models and thresholds were fitted on.
    seed : int
    as_of : str
        ``YYYY-MM-DD`` the monitors report on (empty: the last day in the data).
    previous_run_dir : Path or None
        The previous report's run directory, for comparisons.

    Examples
    --------
    >>> ctx = Context(Path("data"), Path("run"))
    >>> ctx.memo("answer", lambda: 42), ctx.memo("answer", lambda: 0)
    (42, 42)
    """

    data_dir: Path
    run_dir: Path
    train_dir: Path | None = None
    seed: int = 0
    as_of: str = ""
    previous_run_dir: Path | None = None
    cache: dict = field(default_factory=dict, repr=False)
    """Results computed once per notebook run (see :meth:`memo`); views never modify what is in it."""

    def table(self, name: str, *, columns=None) -> pd.DataFrame | None:
        """The dataset's table ``name`` (read once), or None when the dataset does not have it."""
        key = ("table", name, tuple(columns) if columns is not None else None)
        return self.memo(key, lambda: read_table(self.data_dir, name, columns=columns))

    def artifact(self, name: str, *, columns=None) -> pd.DataFrame | None:
        """The run's artifact ``RUN/<name>.parquet`` (read once), or None when the run did not write it."""
        key = ("artifact", name, tuple(columns) if columns is not None else None)
        return self.memo(key, lambda: read_artifact(self.run_dir, name, columns=columns))

    def memo(self, key, compute):
        """``compute()`` the first time ``key`` is asked for in this notebook run; the same object afterwards."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]


QUEUE_FILE = "report/review/queue.csv"
"""Where a run's review sample is drawn for the analyst to label (in the private run directory)."""

REVIEW_FILE = "report/review/reviewed.csv"
"""Where the filled review a report was given is kept (``fraudkit report --review FILE``)."""


def setup(data_dir="", *, run_dir="", train_dir="", seed: int = 0, as_of: str = "", previous_run_dir: str = "",
          labels_path="", review_path="", scenario: str = "micro", cache=".fraudkit-cache") -> Context:
    """Resolve a step notebook's parameters into a :class:`Context` and apply the report's plot style.

    ``fraudkit report`` passes every folder. Left empty (an analyst running a
    notebook as it is in JupyterLab), the ``micro`` demo is simulated and scored
    here (:func:`ensure_inputs`).

    Parameters
    ----------
    data_dir, run_dir, train_dir : path or ""
        See :func:`ensure_inputs`.
    seed : int, default=0
    as_of : str, default=""
        ``YYYY-MM-DD`` the monitors report on (empty: the last day in the data).
    previous_run_dir : path or "", default=""
        The previous report's run directory (empty: none).
    labels_path, review_path : path or "", default=""
        See :func:`ensure_inputs` (``fraudkit report`` passes neither: it scored the run and keeps the review
        in it).
    scenario, cache
        The demo used when ``data_dir`` is empty, and where it is kept.

    Returns
    -------
    Context
    """
    set_style()
    data_dir, run_dir, train_dir = ensure_inputs(data_dir, run_dir, train_dir=train_dir, seed=seed,
                                                 labels_path=labels_path, review_path=review_path,
                                                 scenario=scenario, cache=cache)
    return Context(data_dir, run_dir, train_dir, int(seed), str(as_of or ""),
                   Path(previous_run_dir) if previous_run_dir else None)


def ensure_inputs(data_dir, run_dir, *, train_dir="", seed: int = 0, labels_path="", review_path="",
                  scenario: str = "micro", cache=".fraudkit-cache"):
    """Resolve the notebook's input folders; with empty parameters, simulate and score ``scenario`` here.

    ``fraudkit report`` always passes ``data_dir`` and ``run_dir`` (and
    ``train_dir`` when it has training data). An analyst who opens a notebook
    in JupyterLab and runs it as it is gets the small demo: ``scenario``
    simulated with ``seed`` into ``<cache>/data``, a separate *training world*
    (the same scenario with ``seed + 1000``) into ``<cache>/train``, and the
    data scored with models and thresholds fitted on the training world into
    ``<cache>/run`` (all reused on the next run).

    With ``labels_path`` (the analyst's label store) and no ``run_dir``, the data is scored on those
    labels (``fraudkit score --labels``) instead of a training world. With ``review_path`` (a filled
    review sample) the run's precision, prevalence and recall are estimated from it
    (:func:`review_files`).

    Returns
    -------
    (Path, Path, Path or None)
        ``data_dir``, ``run_dir`` and ``train_dir`` (None: no training data).

    Raises
    ------
    MissingInputError
        When a given folder does not exist.
    """
    cache = Path(cache) / f"{scenario}-seed{seed}"
    if not data_dir:
        data_dir = cache / "data"
        if not (data_dir / "accounts.parquet").exists():
            simulate(scenario, data_dir, seed=seed, progress=False)
        if not train_dir:
            train_dir = cache / "train"
            if not (train_dir / "accounts.parquet").exists():
                simulate(scenario, train_dir, seed=seed + TRAIN_SEED_OFFSET, progress=False)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise MissingInputError(f"data_dir {data_dir} is not a folder (resolved from the working directory "
                                f"{Path.cwd()} to {data_dir.resolve()}); set it in the parameters cell")
    train_dir = Path(train_dir) if train_dir else None
    if train_dir is not None and not train_dir.is_dir():
        raise MissingInputError(f"train_dir {train_dir} is not a folder (resolved from the working directory "
                                f"{Path.cwd()} to {train_dir.resolve()}); set it in the parameters cell "
                                "or leave it empty")
    own = OwnLabels.of(labels_path) if labels_path else None
    if own is not None and train_dir is not None and data_dir != cache / "data":
        raise MissingInputError("set labels_path (your own labels) or train_dir (a labelled training dataset) in "
                                "the parameters cell, not both")
    if not run_dir:
        run_dir = cache / ("run" if own is None else "run-own-labels")
        if not (run_dir / "accounts.parquet").exists():
            score_dataset(data_dir, run_dir, seed=seed, train=None if own is not None else train_dir, labels=own)
        run_dir.mkdir(parents=True, exist_ok=True)
        review_files(run_dir, review_path or None, seed=seed)
    elif review_path:
        review_files(run_dir, review_path, seed=seed)
    return data_dir, Path(run_dir), train_dir


def review_files(run_dir, review=None, *, n: int = 200, seed: int = 0) -> None:
    """Draw the run's review sample for the analyst (``RUN/report/review/queue.csv``); keep a filled review.

    ``review`` (a filled sample, checked by :func:`fraudkit.evaluation.review.read_review`) is copied to
    ``RUN/report/review/reviewed.csv``, where the pages read it (:func:`fraudkit.report.keynumbers.review_numbers`).
    """
    run_dir = Path(run_dir)
    (run_dir / QUEUE_FILE).parent.mkdir(parents=True, exist_ok=True)
    write_review(review_queue(run_dir, n=n, seed=seed), run_dir / QUEUE_FILE)
    if review:
        read_review(review)
        atomic.write_text(run_dir / REVIEW_FILE, Path(review).read_text(encoding="utf-8-sig"))


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


def as_of_day(as_of, times=None):
    """The day monitors report on: ``as_of`` (``YYYY-MM-DD``), else the last day of ``times``, else None.

    Examples
    --------
    >>> as_of_day("", pd.to_datetime(["2024-11-10 08:00", "2024-11-11 23:59"]))
    Timestamp('2024-11-11 00:00:00')
    """
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


def loop_folder(run_dir) -> Path:
    """``RUN/report/evaluation/loop``: where step 5 keeps the run's closed loop (the report starts it early,
    :func:`fraudkit.report.build.build_report`)."""
    return step_dir(run_dir, "evaluation") / "loop"
