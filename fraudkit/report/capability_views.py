"""What notebook 02 (capability building) shows: one function per section.

Each function takes the notebook's :class:`fraudkit.report.notebook.Context` and
returns what the section shows (:mod:`fraudkit.report.display`): the run's
artifacts and features, the accumulation factors computed from the dataset,
device fingerprints, risk portraits and lists — or why the section is not
available. Nothing here reads labels.
"""

from __future__ import annotations

from fraudkit.capability import accumulators
from fraudkit.data.dataset import load_dataset, table_path
from fraudkit.report import plots
from fraudkit.report.display import Chart, Shown, Table, Unavailable
from fraudkit.report.notebook import Context, list_artifacts
from fraudkit.report.views import artifact_overview, feature_summary, feature_tables, reason_counts

__all__ = [
    "run_artifacts",
    "feature_distributions",
    "accumulation_factors",
    "device_fingerprints",
    "risk_portraits",
    "lists",
]


def run_artifacts(ctx: Context) -> Table | Unavailable:
    """What the pipeline wrote for this run, by part (:func:`~fraudkit.report.views.artifact_overview`).

    Tables are counted per part of the run (features, scores, each stage), never listed by file path.
    """
    arts = list_artifacts(ctx.run_dir)
    if not len(arts):
        return Unavailable("run artifacts", "the run directory is empty (the pipeline did not run)")
    return Table(artifact_overview(arts), caption="What the pipeline wrote for this run, by part", max_rows=30)


def feature_distributions(ctx: Context) -> Shown | Unavailable:
    """Per entity type, the distribution of each feature (:func:`~fraudkit.report.views.feature_summary`)."""
    feats = _features(ctx)
    if not feats:
        return Unavailable("feature tables", "the run has no features/ folder")
    shown = []
    for entity, df in feats.items():
        summary = feature_summary(df)
        n = len(summary)
        shown.append(Table(summary, caption=f"{entity}: {len(df):,} entities, {n} numeric features"
                           + (f" (the 15 with the most non-zero values)" if n > 15 else ""), max_rows=15)
                     if n <= 15 else
                     Table(summary.sort_values("nonzero_share", ascending=False, kind="stable").head(15),
                           caption=f"{entity}: {len(df):,} entities, {n} numeric features (the 15 with the most "
                                   "non-zero values)", max_rows=15))
    return Shown(*shown)


def accumulation_factors(ctx: Context) -> Shown | Unavailable:
    """The default accumulation factors (:data:`~fraudkit.capability.accumulators.DEFAULT_ACCUMULATORS`), summarised.

    Computed from the dataset over the tables it has; one summary per table.
    """
    tables = {a.table for a in accumulators.DEFAULT_ACCUMULATORS}
    present = [t for t in sorted(tables) if table_path(ctx.data_dir, t) is not None]
    if not present:
        return Unavailable("accumulation factors",
                           f"they count over {', '.join(sorted(tables))}, which the dataset lacks")
    values = accumulators.compute_by_table([a for a in accumulators.DEFAULT_ACCUMULATORS if a.table in present],
                                           load_dataset(ctx.data_dir))
    return Shown(*(Table(feature_summary(frame.drop(columns=["ts"], errors="ignore")),
                         caption=f"Accumulation factors on {table} ({len(frame):,} rows)")
                   for table, frame in values.items()))


def device_fingerprints(ctx: Context) -> Shown | Unavailable:
    """Device environment contradictions and the fingerprints shared by the most device ids."""
    dev = _features(ctx).get("device")
    if dev is None:
        return Unavailable("device fingerprints", "the run has no device features (the dataset has no devices table)")
    cols = [c for c in ("env_contradiction", "fingerprint_devices", "is_emulator", "is_rooted") if c in dev.columns]
    shown = []
    if "env_contradiction" in dev.columns:
        shown.append(Chart(plots.hist(dev["env_contradiction"], title="Device environment contradiction",
                                      xlabel="contradiction (1 - share of the model's devices with this screen/OS)",
                                      ylabel="devices", log=True)))
    if "fingerprint_devices" in dev.columns:
        top = dev.sort_values("fingerprint_devices", ascending=False, kind="stable")[[dev.columns[0], *cols]]
        shown.append(Table(top, caption="Devices whose fingerprint is shared by the most device ids", max_rows=10))
    if not shown:
        return Unavailable("device fingerprints",
                           "the device features have neither `env_contradiction` nor `fingerprint_devices`")
    return Shown(*shown)


def risk_portraits(ctx: Context) -> Shown | Unavailable:
    """The behaviour stage's account scores (the risk portrait) and the most frequent reasons among flagged accounts."""
    scores = ctx.artifact("scores")
    if scores is None or not len(scores):
        return Unavailable("risk portraits", "the run has no scores.parquet")
    beh = scores[(scores["stage"] == "behaviour") & (scores["entity_type"] == "account")]
    if not len(beh):
        return Unavailable("risk portraits", "the behaviour stage produced no account scores")
    return Shown(Chart(plots.hist(beh["score"], title="Behaviour-stage account scores (risk portrait)",
                                  xlabel="score (higher is riskier)", ylabel="accounts", log=True)),
                 Table(reason_counts(beh), caption="Most frequent reasons among flagged accounts"))


def lists(ctx: Context) -> Table | Unavailable:
    """Black- and graylist entries by list, entity type and scope (the dataset's ``list_entries``)."""
    entries = ctx.table("list_entries")
    if entries is None or not len(entries):
        return Unavailable("lists", "the dataset has no list_entries table")
    summary = (entries.groupby(["list_type", "list_name", "entity_type", "scope"]).size()
               .rename("entries").reset_index().sort_values("entries", ascending=False))
    return Table(summary, caption="List entries by list, entity type and scope")


# --- private ------------------------------------------------------------------


def _features(ctx: Context) -> dict:
    """``{entity: features}`` of the run, read once per notebook run."""
    return ctx.memo("features", lambda: feature_tables(ctx.run_dir))
