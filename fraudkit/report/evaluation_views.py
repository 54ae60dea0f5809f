"""What notebook 05 (effect evaluation) shows: one function per section.

Each function takes the notebook's :class:`fraudkit.report.notebook.Context` and
returns what the section shows (:mod:`fraudkit.report.display`): precision and
recall per typology, leakage and interception per day, the cost imposed on
attackers, the closed loop (run once per notebook run) and the comparison with
the previous report's run — or why the section is not available. Labels are
read only through :mod:`fraudkit.evaluation.metrics` (and
:func:`fraudkit.report.views.decision_events`, which uses the data contract's
:func:`~fraudkit.data.contract.fraud_keys`).
"""

from __future__ import annotations

import pandas as pd

from pathlib import Path

from fraudkit.data.dataset import table_path
from fraudkit.evaluation.loop import LoopResult, finished_loop, run_closed_loop
from fraudkit.evaluation.review import STRATA
from fraudkit.report import keynumbers, plots
from fraudkit.report.display import Chart, Note, Shown, Table, Unavailable
from fraudkit.report.notebook import Context, loop_folder, write_artifact
from fraudkit.report.views import (
    compare_runs,
    early_warning_long,
    loop_iterations,
    loop_recall_long,
    precision_recall_view,
    resources_burned,
    sunk_view,
    training_note,
)

__all__ = [
    "how_trained",
    "precision_recall",
    "review_sample",
    "leakage_and_interception",
    "cost_to_attackers",
    "closed_loop",
    "loop_memory",
    "loop_early_warning",
    "previous_run",
]


def how_trained(ctx: Context) -> Note:
    """Where the run's models and thresholds came from (:func:`~fraudkit.report.views.training_note`)."""
    kind, text = training_note(ctx.run_dir)
    return Note(text, kind=kind)


def precision_recall(ctx: Context) -> Shown | Note | Unavailable:
    """Recall per typology (combined decision) and precision over all fraud (:func:`.views.precision_recall_view`).

    Writes the evaluation table to ``RUN/report/evaluation/evaluation_table.parquet``. On a dataset without
    labels: precision, prevalence and recall estimated from the analyst's review (:func:`estimated_accuracy`).
    """
    if not keynumbers.has_labels(ctx.data_dir):
        return estimated_accuracy(ctx)
    why = _why_no_evaluation(ctx)
    if why:
        return Unavailable("precision and recall", why)
    acc = keynumbers.accuracy(ctx.run_dir, ctx.data_dir)
    if acc is None:
        return Unavailable("precision and recall", "no account carries a fraud label")
    write_artifact(ctx.run_dir, "evaluation", "evaluation_table", acc.table)
    return Shown(Table(precision_recall_view(acc.table),
                       caption="Recall per typology (combined decision); precision and recall over all fraud"),
                 Note(f"Over all fraud: precision {acc.precision:.1%} ({keynumbers.DEFINITIONS['precision']}), "
                      f"recall {acc.recall:.1%} — {acc.caught:,} of {acc.n_fraud:,} fraudulent accounts "
                      f"({keynumbers.DEFINITIONS['recall']}). These are the summary's key numbers."))


def estimated_accuracy(ctx: Context) -> Shown | Note:
    """Precision, prevalence and recall of the run estimated from a filled review sample (no labels table).

    Writes the estimates to ``RUN/report/evaluation/review_estimate.parquet``.
    """
    est = keynumbers.review_numbers(ctx.run_dir)
    if est is None:
        return Note("This dataset has no labels table: precision and recall are estimated from your review. Label "
                    "the review sample below (fraud, honest or unsure) and pass it to the next report with "
                    "`fraudkit report --review FILE`.", kind="info")
    table = review_estimate_table(est)
    write_artifact(ctx.run_dir, "evaluation", "review_estimate", table)
    n_unsure = int((est.review["verdict"] == "unsure").sum())
    return Shown(Table(table, caption="Estimated from your review sample (stratified; 95% intervals)"),
                 Note(f"{int(est.review['verdict'].isin(('fraud', 'honest')).sum()):,} verdicts"
                      + (f" ({n_unsure} unsure, left out)" if n_unsure else "")
                      + ". Each reviewed account stands for the accounts of its stratum it was drawn from, so the "
                        "estimates hold for the whole run, not just the reviewed accounts. "
                      + keynumbers.DEFINITIONS["estimated_recall"].capitalize() + "."))


def review_estimate_table(est) -> pd.DataFrame:
    """The review's estimates as rows a reader takes in at a glance: ``measure, estimate, 95% interval, reviewed,
    of accounts``."""
    def row(measure, e):
        known = pd.notna(e.share)
        return {"measure": measure, "estimate": f"{e.share:.1%}" if known else "–",
                "95% interval": f"{e.low:.1%} – {e.high:.1%}" if known else "–",
                "reviewed": e.reviewed, "of accounts": e.accounts}

    rows = [row("precision of flagged accounts", est.precision), row("fraud among all accounts", est.prevalence)]
    r, lo, hi = est.recall
    rows.append({"measure": "recall (estimated fraud flagged / estimated fraud)",
                 "estimate": f"{r:.1%}" if pd.notna(r) else "–",
                 "95% interval": f"{lo:.1%} – {hi:.1%}" if pd.notna(r) else "–",
                 "reviewed": est.prevalence.reviewed, "of accounts": est.prevalence.accounts})
    return pd.DataFrame(rows)


def review_sample(ctx: Context) -> Shown | Unavailable:
    """The review sample the report drew for the analyst: its strata, and how to label it and use the verdicts."""
    path = Path(ctx.run_dir) / keynumbers.QUEUE_FILE
    if not path.is_file():
        return Unavailable("the review sample", "the report did not draw one (the run has no accounts)")
    queue = pd.read_csv(path, dtype={"account_id": str}, encoding="utf-8-sig")
    why = {"top_risk": "the highest-risk flagged accounts, all of them: confirm the strongest cases first",
           "uncertain": "flagged on one method alone, and the highest-ranked unflagged: where a verdict teaches most",
           "random_flagged": "a random sample of the other flagged accounts: unbiased precision",
           "random_unflagged": "a random sample of the unflagged accounts: fraud that got through"}
    by = queue.groupby("stratum").agg(sampled=("account_id", "size"), accounts=("stratum_size", "first"))
    rows = [{"stratum": s.replace("_", " "), "accounts in the stratum": int(by.loc[s, "accounts"]),
             "sampled": int(by.loc[s, "sampled"]), "what it is for": why[s]} for s in STRATA if s in by.index]
    run = Path(ctx.run_dir).name.removeprefix(".").removesuffix(".building")
    return Shown(Table(pd.DataFrame(rows), caption=f"The review sample: {len(queue):,} accounts in four strata"),
                 Note(f"To label it: `fraudkit review <reports>/.runs/{run} --n {len(queue)} --seed {ctx.seed} "
                      "--out review.csv` writes this sample with each account's explanation (rules hit, model "
                      "reasons, community, shared resources, path to a seed); fill the verdict column, record it "
                      f"with `fraudkit label <reports>/.runs/{run} review.csv --store labels.csv`, and run the next "
                      "report with `--review review.csv` (estimates) and `--labels labels.csv` (train on them).",
                      kind="info"))


def leakage_and_interception(ctx: Context) -> Shown | Unavailable:
    """Leakage over the period, and interception and leakage rate per day against the early-warning threshold.

    Writes the daily table to ``RUN/report/evaluation/interception_by_day.parquet``.
    """
    decisions = ctx.artifact("decisions")
    if decisions is None or not len(decisions):
        return Unavailable("leakage and interception", "the run has no decisions.parquet")
    if not keynumbers.has_labels(ctx.data_dir):
        return _interception(ctx)
    ev = keynumbers.events(ctx.run_dir, ctx.data_dir)
    daily = keynumbers.daily_interception(ctx.run_dir, ctx.data_dir)
    warn = keynumbers.run_early_warning(ctx.run_dir, ctx.data_dir)
    names = {"interception_rate": "events intercepted (share)", "leakage_rate": "fraud events passed (share)"}
    long = daily.melt(id_vars="day", value_vars=list(names), var_name="measure", value_name="rate")
    long["measure"] = long["measure"].map(names)
    write_artifact(ctx.run_dir, "evaluation", "interception_by_day", daily)
    leak = pd.DataFrame([{"fraud events": ev.n_fraud_events, "passed (leaked)": ev.leaked,
                          "leakage_rate": ev.leakage_rate, "all events": ev.n_events,
                          "intercepted": ev.intercepted, "interception_rate": ev.interception_rate}])
    return Shown(Table(leak, caption="Leakage and interception over the whole period (events)"),
                 Note(keynumbers.RELATION),
                 Chart(plots.line_over_time(long, x="day", y="rate", hue="measure",
                                            title="Interception and leakage rate per day", xlabel="day",
                                            ylabel="share of events", thresholds=warn.thresholds)),
                 _warning_note(warn))


def _interception(ctx: Context) -> Shown:
    """Interception per day and its early warning, on a dataset without labels (no leakage: it needs labels)."""
    ev = keynumbers.events(ctx.run_dir)
    daily = keynumbers.daily_interception(ctx.run_dir, ctx.data_dir)
    warn = keynumbers.run_early_warning(ctx.run_dir, ctx.data_dir)
    write_artifact(ctx.run_dir, "evaluation", "interception_by_day", daily)
    long = daily.assign(measure="events intercepted (share)").rename(columns={"interception_rate": "rate"})
    return Shown(Table(pd.DataFrame([{"all events": ev.n_events, "intercepted": ev.intercepted,
                                      "interception_rate": ev.interception_rate}]),
                       caption="Interception over the whole period (events)"),
                 Note("Leakage counts the events of fraudulent accounts that passed, so it needs labels; the share "
                      "of all events intercepted per day needs none, and its drop below the band is the early "
                      "warning.", kind="info"),
                 Chart(plots.line_over_time(long[["day", "measure", "rate"]], x="day", y="rate", hue="measure",
                                            title="Interception rate per day", xlabel="day",
                                            ylabel="share of events", thresholds=warn.thresholds)),
                 _warning_note(warn))


def cost_to_attackers(ctx: Context) -> Table | Unavailable:
    """Accounts, devices, IPs and phone numbers tied to flagged accounts (:func:`.views.resources_burned`)."""
    accounts = ctx.artifact("accounts")
    if accounts is None or "flagged_combined" not in accounts.columns:
        return Unavailable("cost to attackers", "the run has no combined flags")
    return Table(resources_burned(accounts, ctx.data_dir), caption="Resources tied to flagged accounts")


def closed_loop(ctx: Context, *, windows: int) -> Shown | Unavailable:
    """The closed loop over ``windows`` windows: recall and precision by iteration, and the loop window by window.

    Runs :func:`fraudkit.evaluation.loop.run_closed_loop` into ``RUN/report/evaluation/loop``
    (once per notebook run; the report starts it in a second process while its earlier steps run, and this
    step reads what it wrote) and writes the per-iteration recall to
    ``RUN/report/evaluation/loop_recall.parquet`` (the index page reads it).
    """
    loop = _loop(ctx, windows)
    if isinstance(loop, Unavailable):
        return loop
    recall = loop.recall_table()
    shown = []
    if "recall_loop" in recall.columns:
        fig = plots.line_over_time(loop_recall_long(recall), x="iteration", y="value", hue="measure",
                                   title="Closed loop: recall and precision by iteration",
                                   xlabel="loop iteration (window)", ylabel="share of accounts")
        fig.axes[0].set_xticks(sorted(recall["iteration"].unique()))
        shown.append(Chart(fig))
        write_artifact(ctx.run_dir, "evaluation", "loop_recall", recall)
    else:
        last = loop.summary.sort_values("iteration").iloc[-1]
        write_artifact(ctx.run_dir, "evaluation", "loop_flags", loop_iterations(loop.summary))
        shown.append(Note(
            f"Without labels the loop is read by what it flags: after {int(last['iteration']) + 1} windows its runs "
            f"flag {int(last['flagged_loop']):,} accounts against {int(last['flagged_pipeline']):,} for the same "
            f"runs without its memory, from {int(last.get('n_seeds', 0)):,} seeds. Label the review sample to learn "
            "how many of them are fraud.", kind="info"))
    shown.append(Table(loop_iterations(loop.summary), caption=f"The loop, window by window ({int(windows)} windows)"))
    return Shown(*shown)


def loop_memory(ctx: Context, *, windows: int) -> Shown | Unavailable:
    """What the loop keeps: the watched products and the sunk addresses, devices and receiver phones."""
    loop = _loop(ctx, windows)
    if isinstance(loop, Unavailable):
        return Unavailable("watched products and sunk keys", loop.why)
    return Shown(Table(loop.watched_products, caption=f"{len(loop.watched_products):,} watched products", max_rows=10),
                 *(Table(t, caption=f"{len(t):,} sunk {kind} (used mostly by flagged accounts)", max_rows=8)
                   for kind, t in sunk_view(loop.sunk).items()))


def loop_early_warning(ctx: Context, *, windows: int) -> Shown | Unavailable:
    """The loop's daily interception rate of orders against its early-warning band, and the days below it."""
    loop = _loop(ctx, windows)
    if isinstance(loop, Unavailable):
        return Unavailable("the early warning", loop.why)
    ew = loop.early_warning
    if not len(ew):
        return Unavailable("the early warning", "the loop saw no orders")
    warned = ew[ew["warning"]]
    what = ("the closed loop's own series — orders only, decided by the loop's window-by-window runs — not the "
            "run's early warning above (all events of this run)")
    return Shown(Chart(plots.line_over_time(early_warning_long(ew), x="day", y="rate", hue="measure",
                                            title="Closed loop: orders intercepted per day and its band",
                                            xlabel="day", ylabel="share of orders intercepted")),
                 Note(f"Closed-loop alert on {len(warned)} day(s) ({what}): " + "; ".join(warned["message"]),
                      kind="warn")
                 if len(warned) else Note(f"No day fell below the closed loop's band ({what}).", kind="ok"),
                 Table(ew.drop(columns=["message"], errors="ignore"),
                       caption="Closed loop: orders intercepted per day with the band", max_rows=31))


def previous_run(ctx: Context) -> Table | Note:
    """Key numbers of this run against the previous report's run (:func:`~fraudkit.report.views.compare_runs`)."""
    if ctx.previous_run_dir is None:
        return Note("This is the first report with its run data in this reports folder: the next report written "
                    "here compares its key numbers with this one.", kind="info")
    return Table(compare_runs(ctx.run_dir, ctx.previous_run_dir),
                 caption="Key numbers, this run against the previous one")


# --- private ------------------------------------------------------------------


def _warning_note(warn) -> Note:
    """The run's early warning as a note (:func:`fraudkit.report.keynumbers.run_early_warning`)."""
    if warn is not None and warn.days:
        return Note(f"Early warning on {len(warn.days)} day(s): " + ", ".join(warn.days)
                    + f" ({keynumbers.DEFINITIONS['early_warning']}).", kind="warn")
    return Note(f"No early warning: no day's share of intercepted events fell below its band "
                f"({keynumbers.DEFINITIONS['early_warning']}).", kind="ok")


def _why_no_evaluation(ctx: Context) -> str | None:
    """Why the run cannot be evaluated against labels, or None."""
    if table_path(ctx.data_dir, "labels") is None:
        return "the dataset has no labels table"
    if ctx.artifact("accounts") is None:
        return "the run has no accounts.parquet"
    return None


def _loop(ctx: Context, windows: int):
    """The closed loop's result over ``windows`` windows (run once per notebook run), or why there is none."""
    if not windows:
        return Unavailable("the closed loop", "loop_windows is 0")
    return ctx.memo(("loop", int(windows)), lambda: _loop_result(ctx, int(windows)))


def _loop_result(ctx: Context, windows: int) -> LoopResult:
    """The loop the report started for this data, windows and seed (:func:`fraudkit.report.build.build_report`),
    or one run here; read back from its folder either way, so the page is the same."""
    out = loop_folder(ctx.run_dir)
    started = finished_loop(out, ctx.data_dir, n_windows=windows, seed=ctx.seed)
    if started is not None:
        return started
    run_closed_loop(ctx.data_dir, out, n_windows=windows, seed=ctx.seed)
    return LoopResult.load(out)

