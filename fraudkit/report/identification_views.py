"""What notebook 03 (risk identification) shows: one function per section.

Each function takes the notebook's :class:`fraudkit.report.notebook.Context` and
returns what the section shows (:mod:`fraudkit.report.display`): how the run
was made (training data, operating point, what was skipped), what each stage
flags, the arms-race table and the communities — or why the section is not
available. Labels are read only through :func:`fraudkit.evaluation.metrics.evaluate_run`.
"""

from __future__ import annotations

from fraudkit.data.dataset import table_path
from fraudkit.evaluation.metrics import evaluate_run
from fraudkit.report import keynumbers, plots
from fraudkit.report.display import Chart, Graph, Note, Shown, Table, Unavailable
from fraudkit.report.notebook import Context, write_artifact
from fraudkit.report.views import (
    community_picture,
    find_communities,
    metric_grid,
    operating_point,
    run_notes,
    stage_overlap,
    training_note,
)

__all__ = ["run_overview", "stage_flags", "arms_race", "estimated_by_stage", "communities"]


def run_overview(ctx: Context) -> Shown:
    """Where the models and thresholds came from, each stage's operating point, and what the pipeline skipped."""
    shown = []
    if ctx.artifact("accounts") is None:
        shown.append(Unavailable("identification results",
                                 "the run has no accounts.parquet (the pipeline did not run)"))
    kind, text = training_note(ctx.run_dir)
    shown += [Note(text, kind=kind),
              Table(operating_point(ctx.run_dir),
                    caption="Operating point: each stage's threshold and where it came from")]
    notes = run_notes(ctx.run_dir)
    if len(notes):
        shown.append(Table(notes, caption="What the pipeline skipped on this dataset, and why", max_rows=40))
    return Shown(*shown)


def stage_flags(ctx: Context) -> Shown | Unavailable:
    """Entities scored and flagged per stage and method, and accounts flagged by each combination of stages."""
    scores, accounts = ctx.artifact("scores"), ctx.artifact("accounts")
    shown = []
    if scores is not None and len(scores):
        per = (scores.groupby(["stage", "method", "entity_type"])
               .agg(entities=("entity_id", "size"), flagged=("flagged", "sum")).reset_index())
        shown.append(Table(per, caption="Entities scored and flagged per stage and method"))
    if accounts is not None:
        overlap = stage_overlap(accounts)
        if len(overlap):
            shown.append(Table(overlap, caption="Accounts flagged by each combination of stages"))
    if not shown:
        return Unavailable("what each stage flags", "the run has no scores and no flagged accounts")
    return Shown(*shown)


def arms_race(ctx: Context) -> Shown | Unavailable:
    """Recall per typology by stage and the false-positive rate of honest look-alikes, as a table and heat maps.

    Writes the evaluation table to ``RUN/report/identification/arms_race.parquet``.
    """
    if ctx.artifact("accounts") is None:
        return Unavailable("the arms-race table", "the run has no accounts.parquet")
    if table_path(ctx.data_dir, "labels") is None:
        return estimated_by_stage(ctx)
    table = evaluate_run(ctx.run_dir, data=ctx.data_dir)
    shown = [Table(table, caption="Recall (fraud) and false-positive rate (look-alikes) by stage", max_rows=30)]
    recall = metric_grid(table, "recall_")
    if len(recall):
        shown.append(Chart(plots.heatmap(recall, title="Recall per typology and stage",
                                         xlabel="identification stage", ylabel="attacker typology")))
    fpr = metric_grid(table, "fpr_")
    if len(fpr):
        shown.append(Chart(plots.heatmap(fpr, title="False-positive rate of honest look-alikes",
                                         xlabel="identification stage", ylabel="honest group",
                                         vmax=max(0.05, float(fpr.max().max())))))
    write_artifact(ctx.run_dir, "identification", "arms_race", table)
    return Shown(*shown)


def estimated_by_stage(ctx: Context) -> Shown | Note:
    """On a dataset without labels: each stage's flagged accounts and their precision estimated from the review.

    Writes the table to ``RUN/report/identification/review_by_stage.parquet``.
    """
    est = keynumbers.review_numbers(ctx.run_dir)
    if est is None:
        return Note("This dataset has no labels table, so recall per typology cannot be measured. Label the review "
                    "sample of step 5 and pass it to the next report (`--review FILE`): each stage's precision is "
                    "then estimated from your verdicts.", kind="info")
    table = est.by_stage.rename(columns={"low": "precision_low", "high": "precision_high"})
    table["stage"] = table["stage"].replace({"combined": "combined (any stage)"})
    write_artifact(ctx.run_dir, "identification", "review_by_stage", table)
    return Shown(Table(table, caption="Precision of each stage's flags, estimated from your review (95% interval)"),
                 Note("Recall per typology needs labels with typologies; the review's verdicts say fraud or honest. "
                      f"{keynumbers.DEFINITIONS['estimated_precision'].capitalize()}.", kind="info"))


def communities(ctx: Context) -> Shown | Unavailable:
    """The graph stage's communities, riskiest first, and an interactive picture of the top one."""
    found = find_communities(ctx.run_dir)
    if found is None:
        return Unavailable("communities",
                           "the run has no community artifact (the graph stage did not run or found none)")
    name, profiles, score_col = found
    return Shown(Table(profiles.sort_values(score_col, ascending=False, kind="stable"),
                       caption=f"Communities of the graph stage, riskiest first (by {score_col.replace('_', ' ')})",
                       max_rows=10),
                 Graph(community_picture(ctx.run_dir, ctx.data_dir, profiles, score_col, seed=ctx.seed),
                       title="Top-risk community"))
