"""``fraudkit report``: score once, run the five step notebooks, publish an offline HTML report.

:func:`build_report` resolves the dataset (the built-in demo by default) and a
labelled training dataset (for the demo: a separate simulation of the same
scenario with another seed), scores the dataset once with
:func:`fraudkit.pipeline.score.score_dataset` (models and thresholds fitted on the
training dataset only) into the private run directory ``<out>/.runs/<run-id>/``
so every notebook reads the same Parquet artifacts, executes the five step
notebooks with papermill, renders them without code, and writes
``<out>/<run-id>/index.html`` (a summary for stakeholders and the run manifest),
``manifest.json`` and masked copies of the executed notebooks. Nothing with raw
personal data (the run's Parquet files, the executed notebooks as run) is
published in ``<out>/<run-id>/``.

The report is built in a temporary folder and swapped in only when every step
succeeded (:func:`fraudkit.data.atomic.atomic_directory`); a failed build goes to
``<out>/<run-id>.failed/`` with the error on its pages and the last good
report stays where it was. ``<out>/latest.html`` redirects to the newest good
report. Same data and parameters give byte-identical step pages: only the
manifest records times.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import html
import json
import os
import platform
import re
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from importlib import metadata
from pathlib import Path

from fraudkit import __version__
from fraudkit.data import atomic
from fraudkit.data.contract import STAGES
from fraudkit.data.dataset import dataset_fingerprint
from fraudkit.errors import FraudkitError, MissingInputError, OutputError
from fraudkit.evaluation.loop import start_closed_loop
from fraudkit.evaluation.review import read_review
from fraudkit.pipeline.own_labels import OwnLabels
from fraudkit.pipeline.progress import Progress
from fraudkit.pipeline.score import score_dataset
from fraudkit.report.html import mask_html, mask_notebook, render_notebook_body, render_page
from fraudkit.report.notebook import loop_folder, review_files
from fraudkit.report.summary import summarise_run
from fraudkit.report.views import training_note
from fraudkit.simulation import TRAIN_SEED_OFFSET, simulate

__all__ = [
    "STEPS",
    "Step",
    "StepResult",
    "ReportResult",
    "build_report",
    "notebook_dir",
    "make_run_id",
    "kernel_manager_class",
    "install_kernel",
    "previous_good_report",
    "mask_key",
    "prune_runs",
    "error_reason",
    "LOCK",
]

LOCK = ".fraudkit-report.lock"
"""The lock file in the reports folder: one ``fraudkit report`` builds into a folder at a time."""


@dataclass(frozen=True)
class Step:
    """One step notebook: file stem, number, title, one-line description."""

    name: str
    number: str
    title: str
    blurb: str
    extra: tuple = ()
    """Names of the step's own papermill parameters (beyond the common ones)."""

    @property
    def page(self) -> str:
        return f"{self.name}.html"


STEPS = (
    Step("01_risk_perception", "1", "Risk perception",
         "Data health, anomaly monitors, black-market intelligence, red-team drill.",
         ("redteam_scenario", "redteam_size")),
    Step("02_capability_building", "2", "Capability building",
         "Features, accumulation factors, portraits, device fingerprints, lists."),
    Step("03_risk_identification", "3", "Risk identification",
         "The three stages, the arms-race table, look-alike false positives, communities."),
    Step("04_risk_mitigation", "4", "Risk mitigation",
         "Layered decisions; governance actions and what they change: fake engagement removed, bans and "
         "burned resources, demotion, purchase limits, scoped lists, delayed interception."),
    Step("05_effect_evaluation", "5", "Effect evaluation",
         "Leakage, precision and recall per typology, interception per day, cost to attackers, the closed loop.",
         ("loop_windows",)),
)
"""The five step notebooks, in order (see ``GLOSSARY.md``)."""


_VERSIONED = ("fraudkit", "numpy", "pandas", "pyarrow", "duckdb", "ibis-framework", "scikit-learn", "scipy",
              "networkx", "igraph", "leidenalg", "pyvis", "matplotlib", "seaborn", "papermill", "nbconvert",
              "nbclient", "ipykernel")


@dataclass(frozen=True)
class StepResult:
    """Outcome of one step: ``ok``, ``seconds``, ``page`` (relative) and the masked ``error`` text."""

    step: Step
    ok: bool
    seconds: float
    error: str | None = None

    @property
    def name(self):
        return self.step.name


@dataclass(frozen=True)
class ReportResult:
    """What :func:`build_report` produced.

    Attributes
    ----------
    ok : bool
        Every step succeeded and the report was published.
    run_id : str
    report_dir : Path
        ``<out>/<run-id>`` on success, ``<out>/<run-id>.failed`` on failure.
    run_dir : Path
        The scored run (Parquet artifacts with raw keys): ``<out>/.runs/<run-id>``, not published.
    index_path : Path
        The index page (of the failure page when ``ok`` is False).
    steps : tuple of StepResult
    manifest : dict
    """

    ok: bool
    run_id: str
    report_dir: Path
    index_path: Path
    steps: tuple = ()
    manifest: dict = field(default_factory=dict)
    run_dir: Path | None = None
    """The private run directory (``<out>/.runs/<run-id>``, or ``<run-id>.failed``): raw, never published."""

    def describe(self) -> str:
        """What the command prints: the outcome, each step, and why what failed failed (masked)."""
        lines = [f"report {self.run_id}: {'ok' if self.ok else 'FAILED'} -> {self.index_path}"]
        scoring = self.manifest.get("scoring") or {}
        if scoring.get("error"):
            lines.append("  scoring failed: " + error_reason(scoring["error"]).replace("\n", "\n    "))
        for s in self.steps:
            lines.append(f"  {s.step.name:26s} {'ok' if s.ok else 'failed':6s} {s.seconds:6.1f} s")
            if not s.ok and s.error and not scoring.get("error"):
                lines.append("    why: " + error_reason(s.error).replace("\n", "\n    "))
        if not self.ok:
            lines.append("the previous good report (if any) was left in place")
        return "\n".join(lines)


def build_report(*, data=None, train=None, scenario: str = "demo-small", out="reports", run_id: str | None = None,
                 as_of: str | None = None, seed: int = 0, stages=STAGES, loop_windows: int = 4, notebooks_dir=None,
                 parameters: dict | None = None, timeout: int = 1800, progress: bool = True,
                 keep_runs: int | None = 10, labels=None, review=None, review_n: int = 200) -> ReportResult:
    """Score a dataset once, run the five step notebooks and publish the HTML report.

    Parameters
    ----------
    data : path, optional
        Dataset folder. Default: the ``scenario`` simulated with ``seed`` into ``<out>/.cache/``.
    train : path, optional
        Labelled training dataset: stage-1 models are fitted and every stage's threshold is set on
        it, never on ``data``. Default for the demo: the same scenario simulated with
        ``seed + TRAIN_SEED_OFFSET`` (the *training world*). With ``data`` and no ``train``: models
        are skipped and each stage uses its unsupervised default; the report says so.
    scenario : str, default="demo-small"
        Demo scenario used when ``data`` is not given.
    out : path, default="reports"
        Reports folder; the report goes to ``<out>/<run-id>/``.
    run_id : str, optional
        Default ``<date>-<data fingerprint>-<parameter hash>``.
    as_of : str, optional
        ``YYYY-MM-DD``: the day monitors report on (default: the last day in the data).
    seed : int, default=0
    stages : sequence of str, default=all stages
    loop_windows : int, default=4
        Windows of the closed loop in step 5 (each scores the data up to its end: the loop's cost
        grows with it; 0 skips the loop).
    notebooks_dir : path, optional
        Folder with the step notebooks ``01_risk_perception.ipynb`` … ``05_effect_evaluation.ipynb``
        (default: :func:`notebook_dir`, the checkout's ``notebooks/``).
    parameters : dict, optional
        Papermill parameters of the steps that declare them (e.g. ``{"redteam_scenario": ""}`` skips
        the drill, ``{"redteam_size": ""}`` runs it at the attack scenario's own size).
    timeout : int, default=1800
        Seconds a single notebook cell may run.
    progress : bool, default=True
        Progress lines on stderr.
    keep_runs : int or None, default=10
        After a good report, keep the private run data (raw keys) of only this many newest good
        reports (:func:`prune_runs`); published reports are never deleted. None keeps everything.
    labels : path, optional
        The analyst's label store (:mod:`fraudkit.data.labels`): the run trains on it and its fraud
        verdicts seed the graph stage (``fraudkit score --labels``); every page names it as the source.
    review : path, optional
        A filled review sample (``fraudkit review``, or the sample an earlier report drew): precision,
        prevalence and recall of this run, of each stage and of each action's collateral are estimated
        from its verdicts (:func:`fraudkit.evaluation.review.estimate_share`) — the figures a dataset
        without labels gets.
    review_n : int, default=200
        Accounts in the review sample the report draws for the analyst (``RUN/report/review/queue.csv``).

    Returns
    -------
    ReportResult
    """
    t_start = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = Path(out)
    say = (lambda msg: print(f"[fraudkit report] {msg}", file=sys.stderr, flush=True)) if progress else (lambda m: None)
    # the scoring's own phases (stage, step, rows, elapsed), as plain lines between the report's
    tracker = Progress("report", enabled=bool(progress), animate=False)
    if as_of is not None:
        try:
            as_of = date.fromisoformat(str(as_of)).isoformat()
        except ValueError:
            raise FraudkitError(f"--date must be YYYY-MM-DD, got {as_of!r}") from None
    stages = tuple(stages)
    timings: dict[str, float] = {}

    if keep_runs is not None and int(keep_runs) < 1:
        raise FraudkitError(f"--keep-runs must be at least 1 (the newest run is needed for comparison), got {keep_runs}")
    if int(loop_windows) == 1 or int(loop_windows) < 0:
        raise FraudkitError(f"--loop-windows must be 0 (no loop) or at least 2, got {loop_windows}")
    if run_id is not None:
        atomic.check_name(run_id, what="run id")
    if data is not None and not Path(data).is_dir():
        raise MissingInputError(f"dataset folder {data} does not exist; pass --data DIR or omit it for the demo")
    if train is not None and not Path(train).is_dir():
        raise MissingInputError(f"training dataset folder {train} does not exist; pass --train DIR "
                                "(a labelled dataset) or omit it")
    if labels is not None and train is not None:
        raise FraudkitError("pass --labels (your own labels) or --train (a labelled training dataset), not both")
    own = None if labels is None else OwnLabels.of(labels)
    if review is not None:
        read_review(review)   # a malformed review fails now, before any scoring
    if int(review_n) < 1:
        raise FraudkitError(f"--review-n must be at least 1, got {review_n}")
    # the reports folder is published and pruned: it may not be, be inside or contain a dataset it reads
    atomic.check_output(out, kind="reports", inputs=(data, train), force=True)
    with _reports_lock(out):
        _remove_leftovers(out)
        return _build_locked(data=data, train=train, scenario=scenario, out=out, run_id=run_id, as_of=as_of,
                             seed=seed, stages=stages, loop_windows=loop_windows, notebooks_dir=notebooks_dir,
                             parameters=parameters, timeout=timeout, keep_runs=keep_runs, say=say,
                             timings=timings, t_start=t_start, started_at=started_at, tracker=tracker,
                             own=own, review=None if review is None else Path(review), review_n=int(review_n))


def _build_locked(*, data, train, scenario, out, run_id, as_of, seed, stages, loop_windows, notebooks_dir,
                  parameters, timeout, keep_runs, say, timings, t_start, started_at, tracker=None, own=None,
                  review=None, review_n=200) -> ReportResult:
    """:func:`build_report` once its arguments are checked and the reports folder is locked."""
    t = time.perf_counter()
    data_dir = Path(data) if data is not None else _demo_data(scenario, out / ".cache", seed, say)
    if train is not None:
        train_dir = Path(train)
    elif own is not None:
        train_dir = None
        say(f"training on your own labels {own.path}")
    elif data is None:
        train_dir = _demo_data(scenario, out / ".cache", seed + TRAIN_SEED_OFFSET, say, role="training world")
    else:
        train_dir = None
        say("no --train: models skipped, every stage uses its unsupervised default threshold")
    fingerprint = dataset_fingerprint(data_dir)
    train_fp = dataset_fingerprint(train_dir) if train_dir is not None else None
    timings["data"] = time.perf_counter() - t
    params = {"seed": int(seed), "stages": list(stages), "as_of": as_of, "train": train_fp,
              "loop_windows": int(loop_windows), "extra": dict(sorted((parameters or {}).items()))}
    # the labels and the review change the run: they change its id (the files' content, not their names)
    for name, path in (("labels", own.path if own is not None else None), ("review", review)):
        if path is not None:
            params[name] = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    run_id = atomic.check_name(run_id or make_run_id(as_of, fingerprint, params), what="run id")
    say(f"run {run_id}: data {data_dir} (fingerprint {fingerprint})"
        + (f", training data {train_dir} (fingerprint {train_fp})" if train_dir is not None else ""))
    # an earlier report to compare with; on a rerun with the same run id, the report it replaces
    previous = previous_good_report(out, exclude=run_id) or _same_id_report(out, run_id)
    notebooks = _notebooks(notebooks_dir)

    final, failed_dir = out / run_id, out / f"{run_id}.failed"
    runs = out / ".runs"
    run_dir, run_failed = runs / run_id, runs / f"{run_id}.failed"
    building = runs / f".{run_id}.building"
    runs.mkdir(parents=True, exist_ok=True)
    runs.chmod(0o700)  # raw, unmasked run data: for this user only
    results = []
    try:
        with atomic.atomic_directory(final, keep_failed=True) as tmp:
            results, manifest = _build_into(tmp, run_id=run_id, data_dir=data_dir, train_dir=train_dir,
                                            train_fingerprint=train_fp, run_dir=building,
                                            scenario=None if data is not None else scenario, fingerprint=fingerprint,
                                            as_of=as_of, seed=seed, stages=stages, loop_windows=int(loop_windows),
                                            previous=previous, notebooks=notebooks, parameters=parameters or {},
                                            timeout=timeout, timings=timings, t_start=t_start, started_at=started_at,
                                            say=say, tracker=tracker, own=own, review=review, review_n=review_n)
            _readable(tmp)
            if not manifest["ok"]:
                raise _StepsFailed()
    except _StepsFailed:
        shutil.rmtree(failed_dir, ignore_errors=True)
        os.replace(out / f".{run_id}.failed", failed_dir)
        _swap(building, run_failed)
        say(f"FAILED: see {failed_dir / 'index.html'}; the previous report was left in place")
        return ReportResult(False, run_id, failed_dir, failed_dir / "index.html", tuple(results), manifest,
                            run_failed)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    shutil.rmtree(failed_dir, ignore_errors=True)
    shutil.rmtree(run_failed, ignore_errors=True)
    _swap(building, run_dir)
    _write_latest(out, run_id)
    if keep_runs is not None:
        removed = prune_runs(out, keep_runs)
        if removed:
            say(f"removed the private run data of {len(removed)} older run(s) (--keep-runs {keep_runs})")
    say(f"done: {final / 'index.html'} ({manifest['timings']['total']:.1f} s)")
    return ReportResult(True, run_id, final, final / "index.html", tuple(results), manifest, run_dir)


def notebook_dir() -> Path:
    """The folder of the step notebooks ``fraudkit report`` runs by default.

    The notebooks have one source: the plain ``.ipynb`` files (without outputs) in
    the ``notebooks/`` folder of the checkout, next to the ``fraudkit`` package —
    what analysts open and edit in JupyterLab, and what the editable install
    (``scripts/setup.sh``) runs. A non-editable install has them in
    ``<prefix>/share/fraudkit/notebooks`` (installed from that folder). Pass
    ``notebooks_dir`` to :func:`build_report` (``fraudkit report --notebooks DIR``)
    to run others.

    Raises
    ------
    MissingInputError
        When neither folder holds the notebooks.
    """
    candidates = (Path(__file__).resolve().parents[2] / "notebooks",
                  Path(sys.prefix) / "share" / "fraudkit" / "notebooks")
    for folder in candidates:
        if (folder / f"{STEPS[0].name}.ipynb").is_file():
            return folder
    raise MissingInputError(f"the step notebooks are in none of {', '.join(map(str, candidates))}; "
                            "pass --notebooks DIR (the checkout's notebooks/ folder)")


def make_run_id(as_of: str | None, fingerprint: str, params: dict) -> str:
    """``<YYYY-MM-DD>-<fingerprint[:8]>-<parameter hash[:6]>``; the date is ``as_of`` or today.

    Examples
    --------
    >>> make_run_id("2024-11-11", "abcdef123456", {"seed": 0})
    '2024-11-11-abcdef12-de7d77'
    """
    day = as_of or date.today().isoformat()
    ph = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return f"{day}-{fingerprint[:8]}-{ph}"


def mask_key(out) -> str:
    """The secret that keys masked identifiers in the reports under ``out``.

    ``FRAUDKIT_MASK_KEY`` if set; otherwise a random key kept in
    ``<out>/.mask-key`` (mode 0600, never inside a published report). Every
    page of every report in ``out`` masks a device or phone the same way, so
    a reader can follow it from page to page, and rebuilding gives the same pages.
    """
    import secrets

    if os.environ.get("FRAUDKIT_MASK_KEY"):
        return os.environ["FRAUDKIT_MASK_KEY"]
    path = Path(out) / ".mask-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # created private, never world-readable
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(16))
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)  # a key written readable by an earlier version
    return path.read_text().strip()


def error_reason(error: str) -> str:
    r"""Why a step failed: the exception and its whole message, from a (masked) traceback or step error.

    Examples
    --------
    >>> error_reason('Traceback (most recent call last):\n  File "x.py", line 1\n    f()\n'
    ...              'fraudkit.errors.DataValidationError: 2 problems:\n  - no accounts\n  - no interactions')
    'DataValidationError: 2 problems:\n  - no accounts\n  - no interactions'
    >>> error_reason("ValueError: bad value\n\nTraceback ...")
    'ValueError: bad value'
    """
    lines = str(error).strip("\n").splitlines()
    if not any(ln.strip() for ln in lines):
        return "unknown error (see the failed page)"
    files = [i for i, ln in enumerate(lines) if ln.startswith('  File "')]
    if lines[0].startswith("Traceback") and files:
        i = files[-1] + 1
        while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
            i += 1  # the source line and its ^^^ markers
        reason = lines[i:] or lines[-1:]
    else:
        reason = lines[:next((i for i, ln in enumerate(lines) if not ln.strip()), len(lines))]
    name, sep, rest = reason[0].partition(":")
    if sep and " " not in name:
        reason[0] = name.rsplit(".", 1)[-1] + sep + rest  # fraudkit.errors.DataValidationError -> DataValidationError
    return "\n".join(ln.rstrip() for ln in reason).strip()


def prune_runs(out, keep: int = 10) -> list[Path]:
    """Delete the private run data (raw keys) of all but the newest ``keep`` good reports.

    Published report folders (masked) are never touched. A good report's
    ``<out>/.runs/<run-id>`` is kept while it is among the ``keep`` newest (by
    its manifest's finish time), so the next report can still compare itself
    with the previous run; older ones, private data of failed attempts
    (``<run-id>.failed``) other than the newest ``keep``, and run folders
    whose report is gone are removed. Folders still being built are left alone.

    Parameters
    ----------
    out : path
        Reports folder.
    keep : int, default=10
        How many good runs keep their private data; must be at least 1.

    Returns
    -------
    list of Path
        The removed run folders, oldest first.
    """
    if int(keep) < 1:
        raise FraudkitError(f"--keep-runs must be at least 1 (the newest run is needed for comparison), got {keep}")
    out = Path(out)
    runs = out / ".runs"
    if not runs.is_dir():
        return []
    finished = {}
    for m in out.glob("*/manifest.json"):
        try:
            man = json.loads(m.read_text())
        except (OSError, ValueError):
            continue
        finished[m.parent.name] = (str(man.get("finished_at", "")), bool(man.get("ok")))
    good = sorted((t, name) for name, (t, ok) in finished.items() if ok and not name.endswith(".failed"))
    failed = sorted((t, name) for name, (t, ok) in finished.items() if name.endswith(".failed"))
    keep_names = {name for _, name in good[-int(keep):]} | {name for _, name in failed[-int(keep):]}
    removed = []
    for d in sorted(runs.iterdir(), key=lambda p: finished.get(p.name, ("", False))[0]):
        if not d.is_dir() or d.name.startswith(".") or d.name in keep_names:
            continue
        shutil.rmtree(d)
        removed.append(d)
    return removed


def previous_good_report(out, *, exclude: str | None = None) -> Path | None:
    """The newest successful report folder in ``out`` (by its manifest's finish time), or None.

    Its run directory is ``<out>/.runs/<its run id>`` (see :func:`_previous_run_dir`).
    """
    best = None
    for m in Path(out).glob("*/manifest.json"):
        d = m.parent
        if d.name == exclude or d.name.endswith(".failed") or d.name.startswith("."):
            continue
        try:
            man = json.loads(m.read_text())
        except (OSError, ValueError):
            continue
        if man.get("ok") and (best is None or man.get("finished_at", "") > best[0]):
            best = (man.get("finished_at", ""), d)
    return None if best is None else best[1]


def package_versions() -> dict:
    """Versions of Python and the packages a report depends on."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def kernel_manager_class(env: dict | None = None):
    """A Jupyter kernel manager that starts the kernel with *this* interpreter.

    papermill runs the notebooks on the interpreter running ``fraudkit report``
    (the project venv), whatever kernels are or are not registered on the
    machine: nothing is written to the user's home, so it works on a fresh
    machine and under cron. ``PYTHONHASHSEED=0`` keeps set ordering, and so the
    pages, reproducible; ``env`` adds variables (the report's masking key). The
    kernel talks over IPC sockets, not unencrypted TCP.
    """
    kernel_env = {"PYTHONHASHSEED": "0", "MPLBACKEND": "module://matplotlib_inline.backend_inline", **(env or {})}
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class FraudkitKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            # local IPC sockets (files readable by this user only) instead of plain-text TCP on localhost
            kwargs.setdefault("transport", "ipc")
            super().__init__(**kwargs)

        @property
        def kernel_spec(self):
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                              display_name=f"fraudkit ({sys.executable})", language="python",
                              env=kernel_env,
                              resource_dir="")

    return FraudkitKernelManager


def install_kernel(*, user: bool = True, name: str = "fraudkit") -> str:
    """Register this interpreter as the Jupyter kernel ``name`` (for analysts in JupyterLab).

    Returns the kernelspec folder. Reports do not need it (see :func:`kernel_manager_class`).
    """
    from ipykernel.kernelspec import install

    return install(user=user, kernel_name=name, display_name=f"Python (fraudkit, {Path(sys.executable).parent.parent.name})")


# --- private ------------------------------------------------------------------


class _StepsFailed(Exception):
    pass


def _build_into(tmp: Path, *, run_id, data_dir, train_dir, train_fingerprint, run_dir, scenario, fingerprint, as_of,
                seed, stages, loop_windows, previous, notebooks, parameters, timeout, timings, t_start, started_at,
                say, tracker=None, own=None, review=None, review_n=200):
    """Score into ``run_dir``, run every step, write pages, manifest and index into ``tmp``.

    Returns ``(results, manifest)``.
    """
    results, score_error, score_notes = [], None, []
    key = mask_key(tmp.parent)
    source = training_source(train_dir)
    t = time.perf_counter()
    try:
        with _phase(say, "scoring the dataset once for every step"
                    + (" (models and thresholds fitted on the training data)" if train_dir is not None else "")):
            score_notes = _score(data_dir, run_dir, stages=stages, seed=seed, train=train_dir, progress=tracker,
                                 labels=own)
        review_files(run_dir, review, n=review_n, seed=seed)
        if own is not None:
            source = _run_source(run_dir)
    except Exception:
        score_error = mask_html(traceback.format_exc(), key=key)
        say(f"scoring FAILED: {error_reason(score_error)}")
    timings["scoring"] = time.perf_counter() - t
    previous_run = _previous_run_dir(previous)
    nb_params = {"data_dir": str(data_dir.resolve()), "run_dir": str(Path(run_dir).resolve()),
                 "train_dir": str(train_dir.resolve()) if train_dir is not None else "",
                 "as_of": as_of or "", "seed": int(seed),
                 "previous_run_dir": str(previous_run.resolve()) if previous_run else "",
                 "loop_windows": int(loop_windows), **parameters}
    loop = None
    try:
        for i, step in enumerate(STEPS):
            if score_error is not None:
                results.append(StepResult(step, False, 0.0, "not run: scoring failed (see the summary page)"))
                continue
            if i == 1:
                loop = _start_loop(nb_params, Path(run_dir), say)
            say(f"step {i + 1}/{len(STEPS)} {step.name} started: {step.blurb}")
            waited = 0.0
            if loop is not None and "loop_windows" in step.extra:
                waited, loop = _wait_loop(loop, say, f"step {i + 1}/{len(STEPS)} {step.name}"), None
            with _heartbeat(say, f"step {i + 1}/{len(STEPS)} {step.name}"):
                res = _run_step(step, notebooks[step.name], tmp, nb_params, run_id=run_id, timeout=timeout, key=key,
                                run_dir=Path(run_dir), source=source)
            res = replace(res, seconds=res.seconds + waited)  # the step took the wait too
            results.append(res)
            timings[step.name] = res.seconds
            say(f"step {i + 1}/{len(STEPS)} {step.name} {'ok' if res.ok else 'FAILED'} ({res.seconds:.1f} s)"
                + ("" if res.ok else f": {error_reason(res.error or '')}"))
    finally:
        if loop is not None:
            loop.cancel()
    ok = score_error is None and all(r.ok for r in results)
    for r in results:  # a page for every step, even one that never produced a notebook
        if not (tmp / r.step.page).exists():
            _write_error_page(tmp, r, run_id, results, key=key, source=source)
    timings["total"] = time.perf_counter() - t_start
    manifest = {
        "run_id": run_id, "ok": ok, "fraudkit_version": __version__,
        "parameters": {"data": str(data_dir.resolve()), "scenario": scenario, "seed": int(seed),
                       "train": str(train_dir.resolve()) if train_dir is not None else None,
                       "stages": list(stages), "as_of": as_of, "loop_windows": int(loop_windows),
                       "previous_report": str(previous) if previous else None,
                       "labels": str(own.path.resolve()) if own is not None else None,
                       "review": str(Path(review).resolve()) if review is not None else None, **parameters},
        "data_fingerprint": fingerprint,
        "train_fingerprint": train_fingerprint,
        "run_dir": str(Path(run_dir).parent / run_id),
        "steps": [{"name": r.step.name, "ok": r.ok, "seconds": round(r.seconds, 2), "error": r.error}
                  for r in results],
        "scoring": {"ok": score_error is None, "notes": score_notes, "error": score_error},
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "started_at": started_at, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
    }
    errors = ([{"title": "Scoring failed", "text": score_error}] if score_error else []) + \
             [{"title": f"Step {r.step.number} {r.step.title} failed", "text": r.error}
              for r in results if not r.ok and score_error is None]
    previous_key = os.environ.get("FRAUDKIT_MASK_KEY")
    os.environ["FRAUDKIT_MASK_KEY"] = key  # the index masks like the step pages
    try:
        if score_error is None:
            with _phase(say, "writing the summary page"):
                summary = summarise_run(run_dir, data_dir, previous_run_dir=previous_run)
        else:
            summary = None
    finally:
        if previous_key is None:
            os.environ.pop("FRAUDKIT_MASK_KEY", None)
        else:
            os.environ["FRAUDKIT_MASK_KEY"] = previous_key
    atomic.write_text(tmp / "manifest.json", json.dumps(manifest, indent=2, default=str))
    atomic.write_text(tmp / "index.html", _index_page(manifest, results, summary, errors, data_dir, key=key,
                                                      source=source))
    return results, manifest


def _start_loop(nb_params: dict, run_dir: Path, say):
    """Start step 5's closed loop in a second process, to run while steps 2 to 4 do (None with no loop).

    Started once step 1 has ended: step 1 uses both cores itself (the drill scores two worlds side by side). The
    loop depends on the data, its windows and the seed alone; step 5 reads what it wrote
    (:func:`fraudkit.report.evaluation_views.closed_loop`), or runs it itself when it failed.
    """
    windows = int(nb_params.get("loop_windows") or 0)
    if not windows:
        return None
    say(f"closed loop ({windows} windows, for step 5) started in a second process while steps 2-4 run")
    return start_closed_loop(nb_params["data_dir"], loop_folder(run_dir), n_windows=windows, seed=nb_params["seed"])


def _wait_loop(loop, say, what: str) -> float:
    """Wait for the closed loop :func:`_start_loop` started; the seconds waited."""
    t = time.perf_counter()
    if not loop.done():
        say(f"{what}: waiting for the closed loop to finish")
    try:
        with _heartbeat(say, f"{what}: the closed loop"):
            loop.join()  # step 5 reads what it wrote
    except FraudkitError as e:
        say(f"{what}: {e}; the step runs the loop itself")
    return time.perf_counter() - t


def _notebooks(notebooks_dir) -> dict:
    """``{step name: notebook path}`` in ``notebooks_dir`` (default :func:`notebook_dir`); all five must exist."""
    root = Path(notebooks_dir) if notebooks_dir is not None else notebook_dir()
    found = {s.name: root / f"{s.name}.ipynb" for s in STEPS}
    missing = [p.name for p in found.values() if not p.exists()]
    if missing:
        raise MissingInputError(f"step notebook(s) {', '.join(missing)} not found in {root}; pass the folder "
                                "that holds all five (the checkout's notebooks/)")
    return found


def _demo_data(scenario: str, cache: Path, seed: int, say, *, role: str = "demo") -> Path:
    target = cache / f"{Path(str(scenario)).stem}-seed{int(seed)}"
    if not (target / ".complete").exists():
        with _phase(say, f"simulating the {scenario} {role} (seed {seed}) into {target}"):
            simulate(scenario, target, seed=seed, progress=False)
        atomic.write_text(target / ".complete", "")
    return target


def _score(data_dir: Path, run_dir: Path, *, stages, seed, train=None, progress=None, labels=None) -> list:
    """Run the pipeline (its phases reported to ``progress``); returns its notes."""
    result = score_dataset(data_dir, run_dir, stages=list(stages), seed=seed, train=train, progress=progress,
                           labels=labels)
    notes = getattr(result, "notes", None)
    return list(notes) if notes else []


def _run_source(run_dir: Path) -> str:
    """The pages' training-source line from the run's manifest (an own-labels run)."""
    from_manifest = training_note(run_dir)[1]
    return from_manifest.split(". ")[0] + "."


def _run_step(step: Step, notebook: Path, tmp: Path, params: dict, *, run_id: str, timeout: int,
              key: str, run_dir: Path | None = None, source: str | None = None) -> StepResult:
    """Execute one step into the private run directory; publish its page and a masked copy of the notebook."""
    import papermill as pm

    private = Path(run_dir if run_dir is not None else params["run_dir"]) / "report" / "notebooks"
    executed = private / f"{step.name}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    common = ("data_dir", "run_dir", "train_dir", "as_of", "seed", "previous_run_dir")
    params = {k: v for k, v in params.items() if k in common or k in step.extra}
    t = time.perf_counter()
    error = None
    try:
        pm.execute_notebook(str(notebook), str(executed), parameters=params, kernel_name="fraudkit",
                            kernel_manager_class=kernel_manager_class({"FRAUDKIT_MASK_KEY": key}),
                            progress_bar=False,
                            cwd=str(tmp), execution_timeout=timeout, log_output=False)
    except Exception as e:  # papermill's execution error carries the cell traceback
        error = mask_html(_describe_error(e), key=key)
    seconds = time.perf_counter() - t
    res = StepResult(step, error is None, seconds, error)
    if executed.exists():
        try:
            masked = mask_notebook(executed, key=key)
            atomic.write_text(tmp / "notebooks" / f"{step.name}.ipynb", _nb_text(masked))
            body = render_notebook_body(masked)
        except Exception:
            body = None
            res = StepResult(step, False, seconds, mask_html(traceback.format_exc(), key=key))
        if body is not None:
            if not res.ok:
                body = _error_banner(res) + body
            atomic.write_text(tmp / step.page, render_page(
                body, title=f"{step.number}. {step.title}", run_id=run_id, steps=_nav(None),
                current=step.name, version=__version__, key=key, source=source))
    return res


def _describe_error(e: Exception) -> str:
    if type(e).__name__ == "PapermillExecutionError":
        tb = "\n".join(getattr(e, "traceback", []) or [])
        tb = re.sub(r"\x1b\[[0-9;]*m", "", tb)
        return f"{e.ename}: {e.evalue}\n\n{tb}"
    return "".join(traceback.format_exception(e))


def _error_banner(res: StepResult) -> str:
    return (f'<div class="fk-error"><strong>This step failed.</strong> The traceback is below and, with the '
            f'cell that raised it, further down the page.<pre>{html.escape(res.error or "")}</pre></div>')


def _write_error_page(tmp: Path, res: StepResult, run_id: str, results, *, key=None, source=None) -> None:
    body = f"<h1>{res.step.number}. {res.step.title}</h1>" + _error_banner(res)
    atomic.write_text(tmp / res.step.page, render_page(body, title=f"{res.step.number}. {res.step.title}",
                                                       run_id=run_id, steps=_nav(results),
                                                       current=res.step.name, version=__version__, key=key,
                                                       source=source))


def _nav(results):
    ok = {r.step.name: r.ok for r in (results or [])}
    return [{"name": s.name, "number": s.number, "title": s.title, "page": s.page, "ok": ok.get(s.name, True)}
            for s in STEPS]


def _index_page(manifest, results, summary, errors, data_dir, *, key=None, source=None) -> str:
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(loader=jinja2.PackageLoader("fraudkit.report", "templates"), autoescape=True)
    steps = [{**n, "blurb": s.step.blurb, "seconds": s.seconds, "ok": s.ok}
             for n, s in zip(_nav(results), results)]
    p = manifest["parameters"]
    notes = [{"kind": n["kind"], "html": Markup(_md_code(n["text"]))} for n in (summary.notes if summary else [])]
    sections = [{**sec, "html": Markup(sec["html"])} if sec.get("html") else sec
                for sec in (summary.sections if summary else [])]
    body = env.get_template("index_body.html.j2").render(
        run_id=manifest["run_id"], ok=manifest["ok"], data_name=Path(data_dir).name,
        train_name=Path(p["train"]).name if p.get("train") else None, train_fingerprint=manifest.get("train_fingerprint"),
        fingerprint=manifest["data_fingerprint"], as_of=p.get("as_of"), errors=errors,
        cards=summary.cards if summary else [], notes=notes, sections=sections,
        steps=steps, parameters=[(_PARAMETER_LABELS.get(k, k.replace("_", " ").capitalize()), _shown(v))
                                 for k, v in p.items()],
        timings=[(_phase_label(k), v) for k, v in manifest["timings"].items()],
        started_at=_to_minute(manifest["started_at"]), finished_at=_to_minute(manifest["finished_at"]),
        versions=list(manifest["versions"].items()))
    return render_page(str(body), title="Summary", run_id=manifest["run_id"], steps=_nav(results),
                       current="index", version=__version__, key=key, source=source)


_PARAMETER_LABELS = {"data": "Data", "scenario": "Demo scenario", "seed": "Seed", "train": "Training data",
                     "stages": "Stages", "as_of": "As of", "loop_windows": "Closed-loop windows",
                     "previous_report": "Previous report", "labels": "Own labels", "review": "Review sample",
                     "redteam_scenario": "Red-team attack scenario", "redteam_size": "Red-team world size"}
"""How the index names the manifest's parameters (others: their name in words)."""


def _shown(value) -> str:
    """A manifest parameter as the index shows it: no quotes, lists as words, ``None`` as "not set".

    Examples
    --------
    >>> _shown(None), _shown(["behaviour", "group"]), _shown(True), _shown(4)
    ('not set', 'behaviour, group', 'yes', '4')
    """
    if value is None or value == "":
        return "not set"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def _phase_label(phase: str) -> str:
    """A manifest timing's phase in words: a step by its number and title.

    Examples
    --------
    >>> _phase_label("01_risk_perception"), _phase_label("scoring"), _phase_label("total")
    ('1. Risk perception', 'Scoring the dataset', 'Total')
    """
    step = next((s for s in STEPS if s.name == phase), None)
    if step is not None:
        return f"{step.number}. {step.title}"
    return {"data": "Preparing the data", "scoring": "Scoring the dataset", "total": "Total"}.get(
        phase, phase.replace("_", " ").capitalize())


def _to_minute(stamp) -> str:
    """An ISO timestamp of the manifest to the minute, in UTC (``2026-12-04 14:31 UTC``)."""
    try:
        t = datetime.fromisoformat(str(stamp))
    except ValueError:
        return str(stamp)
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M") + " UTC"


def training_source(train_dir) -> str:
    """The line every page shows on where the models and thresholds came from.

    Examples
    --------
    >>> training_source(None)
    'No training data: every stage used its own unsupervised default threshold.'
    """
    if train_dir is None:
        return "No training data: every stage used its own unsupervised default threshold."
    m = Path(train_dir) / "manifest.json"
    info = json.loads(m.read_text(encoding="utf-8")) if m.is_file() else {}
    if info.get("scenario"):
        return (f"Models and thresholds come from a simulated training world ({info['scenario']}, seed "
                f"{info.get('seed')}): a cold start, not this platform's own labels.")
    return f"Models and thresholds come from the labelled training data {Path(train_dir).name}."


def _same_id_report(out: Path, run_id: str) -> Path | None:
    """The good report ``<out>/<run-id>`` a rebuild with the same run id is about to replace, or None."""
    try:
        man = json.loads((out / run_id / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return out / run_id if man.get("ok") else None


@contextlib.contextmanager
def _phase(say, what: str, every: float = 30.0):
    """Say ``what`` as it starts, every ``every`` seconds while it runs, and when it ends (with its seconds)."""
    t = time.perf_counter()
    say(f"{what} ...")
    with _heartbeat(say, what, every):
        yield
    say(f"{what}: done ({time.perf_counter() - t:.1f} s)")


@contextlib.contextmanager
def _heartbeat(say, what: str, every: float = 30.0):
    """Say ``what ... still running (N s)`` every ``every`` seconds until the block ends."""
    import threading

    t, stop = time.perf_counter(), threading.Event()

    def beat():
        while not stop.wait(every):
            say(f"{what} ... still running ({time.perf_counter() - t:.0f} s)")

    th = threading.Thread(target=beat, daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join()


def _previous_run_dir(previous: Path | None) -> Path | None:
    """The private run directory of a previous report (``<out>/.runs/<id>``; older layouts: ``<report>/run``)."""
    if previous is None:
        return None
    for cand in (previous.parent / ".runs" / previous.name, previous / "run"):
        if (cand / "accounts.parquet").exists():
            return cand
    return None


def _swap(src: Path, dst: Path) -> None:
    """Move a finished run directory into place, replacing what was there."""
    if not src.exists():
        return
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(src, dst)


def _nb_text(nb) -> str:
    import nbformat

    return nbformat.writes(nb, version=4) + "\n"


def _md_code(text: str) -> str:
    """Escape ``text`` for HTML and render `backticks` as <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{q}</code>" if i % 2 else q for i, q in enumerate(parts))


def _readable(root: Path) -> None:
    """Temporary files and folders are private (0600/0700); a published report is world-readable."""
    root.chmod(0o755)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)


@contextlib.contextmanager
def _reports_lock(out: Path):
    """Hold ``<out>/.fraudkit-report.lock`` while a report is built; a second build into ``out`` is refused."""
    out.mkdir(parents=True, exist_ok=True)
    lock = out / LOCK
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise OutputError(f"another fraudkit report is being built in {out} (process {pid}, lock {lock}); "
                              "wait for it to finish, or pass another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


_LEFTOVER = re.compile(r"^\..+(\.tmp|\.building|\.building\.lock|\.failed|\.old-\d+)$")


def _remove_leftovers(out: Path) -> list[Path]:
    """Temporary folders and files of killed builds (raw, unmasked data among them); we hold the lock."""
    removed = []
    for folder in (out, out / ".runs"):
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if _LEFTOVER.match(p.name):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def _write_latest(out: Path, run_id: str) -> None:
    target = html.escape(f"{run_id}/index.html")
    atomic.write_text(out / "latest.html", f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'none'">
<meta http-equiv="refresh" content="0; url={target}">
<title>Latest fraudkit report</title></head>
<body><p>The latest report is <a href="{target}">{html.escape(run_id)}</a>.</p></body></html>
""")
