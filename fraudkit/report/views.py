"""Tables the step notebooks show, computed from a run directory and its dataset.

Small pure functions from DataFrames (or a run directory) to DataFrames: the
building blocks of the notebooks' section views (:mod:`fraudkit.report.perception_views`
… :mod:`fraudkit.report.evaluation_views`) and of the index page
(:mod:`fraudkit.report.summary`), tested in ``tests/report/test_views.py``. Which
notebook uses each function is noted in its docstring. Only :func:`decision_events`
touches labels, through :func:`fraudkit.data.contract.fraud_keys`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fraudkit.data.contract import FRAUD_TYPOLOGIES, HONEST_LOOKALIKES, STAGES, fraud_keys
from fraudkit.evaluation import monitoring
from fraudkit.report.notebook import read_artifact, read_table, table_path
from fraudkit.report.tables import is_id_column
from fraudkit.report.viz import render_community

__all__ = [
    "daily_counts",
    "feature_tables",
    "feature_summary",
    "artifact_overview",
    "reason_counts",
    "stage_overlap",
    "metric_grid",
    "find_communities",
    "decision_breakdown",
    "decision_events",
    "EarlyWarning",
    "early_warning",
    "precision_recall_view",
    "resources_burned",
    "run_numbers",
    "compare_runs",
    "run_notes",
    "community_members",
    "community_edges",
    "community_picture",
    "training_note",
    "operating_point",
    "arms_race_view",
    "loop_recall_long",
    "loop_iterations",
    "early_warning_long",
    "sunk_view",
]


def daily_counts(df: pd.DataFrame, time_col: str, *, by: str | None = None) -> pd.DataFrame:
    """Events per day (and per ``by``): columns ``day, [by], events``. Notebook 01."""
    d = df.assign(day=pd.to_datetime(df[time_col]).dt.normalize())
    keys = ["day"] + ([by] if by else [])
    return d.groupby(keys, sort=True).size().rename("events").reset_index()


def feature_tables(run_dir) -> dict:
    """``{entity: DataFrame}`` for every ``RUN/features/<entity>.parquet``. Notebook 02."""
    root = Path(run_dir) / "features" if run_dir else None
    if root is None or not root.is_dir():
        return {}
    return {p.stem: pd.read_parquet(p) for p in sorted(root.glob("*.parquet"))}


def feature_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per numeric feature: ``feature, median, p99, max, nonzero_share, missing_share``.

    Notebook 02. Boolean columns count as 0/1. The key column and every other identifier
    (``*_id`` columns, :func:`fraudkit.report.tables.is_id_column`) are not features and are left out.

    Examples
    --------
    >>> feature_summary(pd.DataFrame({"account_id": [1, 2], "n": [0, 4]}))[["feature", "max", "nonzero_share"]]
      feature  max  nonzero_share
    0       n  4.0            0.5
    """
    rows = []
    for c in df.columns[1:]:
        if is_id_column(c):
            continue
        s = df[c]
        if pd.api.types.is_bool_dtype(s):
            s = s.astype(float)
        if not pd.api.types.is_numeric_dtype(s):
            continue
        v = s.astype(float)
        ok = v.dropna()
        rows.append({"feature": c, "median": ok.median() if len(ok) else np.nan,
                     "p99": ok.quantile(0.99) if len(ok) else np.nan, "max": ok.max() if len(ok) else np.nan,
                     "nonzero_share": float((ok != 0).mean()) if len(ok) else np.nan,
                     "missing_share": float(v.isna().mean()) if len(v) else np.nan})
    return pd.DataFrame(rows, columns=["feature", "median", "p99", "max", "nonzero_share", "missing_share"])


def artifact_overview(artifacts: pd.DataFrame) -> pd.DataFrame:
    """What a run holds, by part: ``part, tables, rows, examples``. Notebook 02.

    ``artifacts`` is :func:`fraudkit.report.notebook.list_artifacts`; file paths are not shown, only the
    part of the run (top-level tables, features, each stage's folder) and a few table names in words.

    Examples
    --------
    >>> arts = pd.DataFrame({"artifact": ["accounts", "graph/communities", "graph/seed_pool"], "rows": [5, 2, 1],
    ...                      "columns": [3, 4, 2]})
    >>> artifact_overview(arts).values.tolist()
    [['graph stage', 2, 3, 'communities, seed pool'], ['run results', 1, 5, 'accounts']]
    """
    parts = artifacts["artifact"].astype(str).str.split("/")
    part = parts.map(lambda p: "run results" if len(p) == 1 else
                     ("features" if p[0] == "features" else
                      ("report tables" if p[0] == "report" else f"{p[0].replace('_', ' ')} stage")))
    name = parts.map(lambda p: p[-1].replace("_", " "))
    d = pd.DataFrame({"part": part, "name": name, "rows": artifacts["rows"]})
    out = d.groupby("part", sort=True).agg(tables=("name", "size"), rows=("rows", "sum"),
                                           examples=("name", lambda n: ", ".join(list(n)[:5])
                                                     + (f" and {len(n) - 5} more" if len(n) > 5 else "")))
    return out.reset_index()


def reason_counts(df: pd.DataFrame, *, column: str = "reason", top: int = 15) -> pd.DataFrame:
    """Most frequent reasons (``;``/``,``/list-separated) among flagged rows: ``reason, count, share``. Notebooks 02, 04."""
    if "flagged" in df.columns:
        df = df[df["flagged"].astype(bool)]
    vals = df[column].dropna() if column in df.columns else pd.Series(dtype=object)
    parts = vals.map(lambda v: list(v) if isinstance(v, (list, tuple, np.ndarray))
                     else [p.strip() for p in str(v).replace(";", ",").split(",")])
    flat = pd.Series([p for ps in parts for p in ps if str(p).strip()], dtype=object)
    if flat.empty:
        return pd.DataFrame(columns=["reason", "count", "share"])
    counts = flat.value_counts()
    counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable").head(top)
    return pd.DataFrame({"reason": counts.index, "count": counts.to_numpy(),
                         "share": counts.to_numpy() / max(len(vals), 1)})


def stage_overlap(accounts: pd.DataFrame) -> pd.DataFrame:
    """Accounts flagged by each combination of stages: ``stages, accounts``. Notebook 03.

    Examples
    --------
    >>> acc = pd.DataFrame({"flagged_behaviour": [True, True, False], "flagged_graph": [True, False, False]})
    >>> stage_overlap(acc).values.tolist()
    [['behaviour', 1], ['behaviour + graph', 1]]
    """
    cols = [s for s in STAGES if f"flagged_{s}" in accounts.columns]
    if not cols:
        return pd.DataFrame(columns=["stages", "accounts"])
    m = accounts[[f"flagged_{s}" for s in cols]].fillna(False).astype(bool).to_numpy()
    combo = [" + ".join(s for s, f in zip(cols, row) if f) for row in m]
    s = pd.Series(combo)
    s = s[s != ""]
    out = s.value_counts().rename_axis("stages").rename("accounts").reset_index()
    return out.sort_values(["accounts", "stages"], ascending=[False, True], kind="stable").reset_index(drop=True)


def metric_grid(table: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Typology x stage grid of one metric (``"recall_"`` or ``"fpr_"``) from an evaluation table. Notebook 03.

    Rows with no value at all (typologies absent from the data) and summary rows are dropped.
    """
    cols = [c for c in table.columns if c.startswith(prefix)]
    keep = FRAUD_TYPOLOGIES if prefix == "recall_" else HONEST_LOOKALIKES
    t = table[table["typology"].isin(keep)].set_index("typology")[cols]
    t = t.dropna(how="all")
    return t.rename(columns=lambda c: c.removeprefix(prefix)).astype(float)


def find_communities(run_dir):
    """The run's community table and its risk column: ``(artifact name, DataFrame, score column)`` or None. Notebook 03."""
    run_dir = Path(run_dir)
    for p in sorted(run_dir.rglob("*communit*.parquet")):
        if "report" in p.relative_to(run_dir).parts:
            continue
        df = pd.read_parquet(p)
        for col in ("risk_score", "score", "risk", "suspicion", "density"):
            if col in df.columns and len(df):
                return p.relative_to(run_dir).with_suffix("").as_posix(), df, col
    return None


def decision_breakdown(decisions: pd.DataFrame) -> pd.DataFrame:
    """Events per layer and decision: ``layer, decision, events, share`` (share of all events). Notebook 04."""
    layer = decisions["layer"].replace("", "none (pass)") if "layer" in decisions.columns else "all"
    d = pd.DataFrame({"layer": layer, "decision": decisions["decision"]})
    out = d.groupby(["layer", "decision"], sort=True).size().rename("events").reset_index()
    out["share"] = out["events"] / max(len(d), 1)
    order = {"pass": 0, "verify": 1, "block": 2}
    return out.sort_values(["decision", "events"], key=lambda s: s.map(order) if s.name == "decision" else -s,
                           kind="stable").reset_index(drop=True)


def decision_events(decisions: pd.DataFrame, data_dir) -> pd.DataFrame:
    """Decisions with ``ts``, ``account_id`` and ``is_fraud`` (the account carries a fraud label). Notebook 05.

    Missing ``ts``/``account_id`` are joined from the interactions or orders
    table on the event key. Labels are read through :func:`fraudkit.data.contract.fraud_keys`.
    """

    d = decisions.copy()
    if not {"ts", "account_id"} <= set(d.columns):
        for table, key in (("orders", "order_id"), ("interactions", "event_id")):
            if key in d.columns:
                src = read_table(data_dir, table, columns=[key, "ts", "account_id"])
                if src is not None:
                    d = d.drop(columns=[c for c in ("ts", "account_id") if c in d.columns]).merge(src, on=key, how="left")
                break
    if not {"ts", "account_id"} <= set(d.columns):
        raise KeyError("decisions.parquet has neither ts/account_id nor an event key (order_id, event_id) to join them")
    labels = read_table(data_dir, "labels")
    bad = fraud_keys(labels, "account") if labels is not None else set()
    d["is_fraud"] = d["account_id"].astype(str).isin(bad)
    return d


@dataclass(frozen=True)
class EarlyWarning:
    """The early warning on the daily interception rate, for the leakage section of notebook 05.

    Attributes
    ----------
    threshold : float
        The lower edge of the band on the last day (NaN without a baseline): the level today's rate is held to.
    days : list of str
        ``YYYY-MM-DD`` of the days that warned.
    table : pandas.DataFrame or None
        The per-day table of :func:`fraudkit.evaluation.monitoring.early_warning`.
    """

    threshold: float
    days: list
    table: pd.DataFrame | None = None

    @property
    def thresholds(self) -> dict:
        return {} if not np.isfinite(self.threshold) else {"early warning": round(self.threshold, 3)}


def early_warning(daily: pd.DataFrame, **options) -> EarlyWarning:
    """The days whose interception rate falls below its band. Notebook 05.

    The rule is :func:`fraudkit.evaluation.monitoring.early_warning` (the one the closed loop uses);
    ``options`` are its parameters (``baseline_days``, ``tolerance``, ``band``, ``min_events``).

    Examples
    --------
    >>> d = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=6), "interception_rate": [.5, .5, .52, .48, .5, .1]})
    >>> early_warning(d).days
    ['2024-01-06']
    """
    t = monitoring.early_warning(daily, **options)
    days = pd.to_datetime(t.loc[t["warning"], "day"]).dt.strftime("%Y-%m-%d").tolist()
    last = float(t["band_low"].iloc[-1]) if len(t) else float("nan")
    return EarlyWarning(last, days, t)


def precision_recall_view(table: pd.DataFrame) -> pd.DataFrame:
    """From an evaluation table: ``typology, n_labelled, recall, caught, leaked`` per fraud typology and overall,
    with ``precision`` on the overall row. Notebook 05."""
    col = "recall_combined" if "recall_combined" in table.columns else \
        next((c for c in table.columns if c.startswith("recall_")), None)
    rows = table[table["typology"].isin((*FRAUD_TYPOLOGIES, "all_fraud"))].copy()
    rows = rows[rows["n_labelled"].fillna(0) > 0]
    out = pd.DataFrame({"typology": rows["typology"], "n_labelled": rows["n_labelled"].astype("Int64"),
                        "recall": rows[col] if col else np.nan})
    out["caught"] = (out["n_labelled"].astype(float) * out["recall"]).round().astype("Int64")
    out["leaked"] = out["n_labelled"] - out["caught"]
    pcol = col.replace("recall_", "precision_") if col else None
    out["precision"] = rows[pcol] if pcol in rows.columns else np.nan
    return out.reset_index(drop=True)


def resources_burned(accounts_run: pd.DataFrame, data_dir) -> pd.DataFrame:
    """Accounts, devices, IPs and phones used by flagged accounts: ``resource, total, used_by_flagged, share``.

    Notebook 05. Devices and IPs come from logins, interactions, orders and
    coupon claims; phones from the accounts table (bound phones).
    """
    flagged = set(accounts_run.loc[accounts_run["flagged_combined"].fillna(False).astype(bool), "account_id"].astype(str))
    rows = [{"resource": "accounts", "total": len(accounts_run), "used_by_flagged": len(flagged)}]
    for col in ("device_id", "ip"):
        used = []
        for table in ("logins", "interactions", "orders", "coupon_claims"):
            t = read_table(data_dir, table, columns=["account_id", col]) if has_column(data_dir, table, col) else None
            if t is not None:
                used.append(t.dropna(subset=[col]))
        if used:
            u = pd.concat(used, ignore_index=True)
            rows.append({"resource": "devices" if col == "device_id" else "IPs", "total": u[col].nunique(),
                         "used_by_flagged": u.loc[u["account_id"].astype(str).isin(flagged), col].nunique()})
    acc = read_table(data_dir, "accounts", columns=["account_id", "phone"])
    if acc is not None:
        p = acc.dropna(subset=["phone"])
        rows.append({"resource": "phone numbers", "total": p["phone"].nunique(),
                     "used_by_flagged": p.loc[p["account_id"].astype(str).isin(flagged), "phone"].nunique()})
    out = pd.DataFrame(rows)
    out["share"] = out["used_by_flagged"] / out["total"].where(out["total"] > 0)
    return out


def run_numbers(run_dir) -> dict:
    """Label-free key numbers of a run: accounts scored and flagged (per stage and combined), decisions by kind."""
    out = {}
    acc = read_artifact(run_dir, "accounts")
    if acc is not None:
        out["accounts scored"] = len(acc)
        for s in (*STAGES, "combined"):
            if f"flagged_{s}" in acc.columns:
                out[f"accounts flagged ({s})"] = int(acc[f"flagged_{s}"].fillna(False).sum())
    dec = read_artifact(run_dir, "decisions", columns=["decision"]) if run_dir else None
    if dec is not None:
        for k in ("pass", "verify", "block"):
            out[f"events: {k}"] = int((dec["decision"] == k).sum())
    return out


def compare_runs(run_dir, previous_run_dir) -> pd.DataFrame:
    """``metric, previous, current, change`` for the numbers of :func:`run_numbers`. Notebook 05."""
    cur, prev = run_numbers(run_dir), run_numbers(previous_run_dir)
    keys = list(dict.fromkeys([*cur, *prev]))
    out = pd.DataFrame({"metric": keys, "previous": [prev.get(k, np.nan) for k in keys],
                        "current": [cur.get(k, np.nan) for k in keys]})
    out["change"] = out["current"] - out["previous"]
    return out


def has_column(data_dir, table, col) -> bool:

    p = table_path(data_dir, table)
    if p is None:
        return False
    if p.suffix == ".csv":
        return col in pd.read_csv(p, nrows=0).columns
    import pyarrow.parquet as pq

    return col in pq.read_schema(p).names if p.is_file() else True


def run_notes(run_dir) -> pd.DataFrame:
    """What the pipeline skipped and why (``RUN/manifest.json`` notes): ``stage, note``. Notebooks 02, 03."""
    p = Path(run_dir) / "manifest.json"
    notes = json.loads(p.read_text(encoding="utf-8")).get("notes", []) if p.exists() else []
    rows = [n.split(": ", 1) if ": " in n else ("", n) for n in notes]
    return pd.DataFrame(rows, columns=["stage", "note"])


def community_members(run_dir, community, *, view=None) -> list:
    """Account keys of one community from ``RUN/graph/communities.parquet`` (optionally one ``view``)."""
    c = read_artifact(run_dir, "graph/communities")
    if c is None:
        return []
    m = c["community"] == community
    if view is not None and "view" in c.columns:
        m &= c["view"] == view
    return c.loc[m, "account_id"].astype(str).tolist()


def community_edges(data_dir, members, *, max_events: int = 20000) -> pd.DataFrame:
    """Account-resource edges of ``members``: ``src, dst, src_type, dst_type, weight`` (devices, IPs, notes, products).

    Built from logins, interactions and orders (whichever exist); the weight is the number of events.
    """
    mem = set(map(str, members))
    parts = []
    for table, cols in (("logins", (("device_id", "device"), ("ip", "ip"))),
                        ("interactions", (("device_id", "device"), ("ip", "ip"), ("target_id", "note"))),
                        ("orders", (("device_id", "device"), ("ip", "ip"), ("product_id", "product")))):
        for col, kind in cols:
            if not has_column(data_dir, table, col):
                continue
            t = read_table(data_dir, table, columns=["account_id", col]).dropna()
            t = t[t["account_id"].astype(str).isin(mem)].head(max_events)
            if len(t):
                parts.append(pd.DataFrame({"src": t["account_id"].astype(str), "dst": t[col].astype(str),
                                           "src_type": "account", "dst_type": kind}))
    if not parts:
        return pd.DataFrame(columns=["src", "dst", "src_type", "dst_type", "weight"])
    e = pd.concat(parts, ignore_index=True)
    return (e.groupby(["src", "dst", "src_type", "dst_type"], sort=True).size().rename("weight")
            .astype(float).reset_index())


def community_picture(run_dir, data_dir, profiles: pd.DataFrame, score_col: str, *, seed: int = 0,
                      rank: int = 0) -> str:
    """HTML of the ``rank``-th riskiest community drawn with :func:`fraudkit.report.viz.render_community`. Notebook 03.

    The picture is written to ``RUN/report/identification/community_<id>.html``; its text is returned.
    """
    top = profiles.sort_values(score_col, ascending=False, kind="stable").iloc[rank]
    view = top["view"] if "view" in profiles.columns else None
    members = community_members(run_dir, top["community"], view=view)
    edges = community_edges(data_dir, members)
    if not len(edges):
        raise KeyError(f"community {top['community']} has no account-resource edges in the dataset")
    path = Path(run_dir) / "report" / "identification" / f"community_{top['community']}.html"
    title = (f"Community {top['community']}: {len(members)} member accounts, {score_col.replace('_', ' ')} "
             f"{top[score_col]:.2f} (rank {rank + 1} by risk)")
    # the members and the resources most of them share (at most 40): one readable picture, not a hairball
    out = render_community(edges, members, path=path, seed=seed, title=title, max_nodes=min(160, len(members) + 40))
    return Path(out).read_text(encoding="utf-8")


# --- how the run was trained, and its operating point (index, notebooks 03 and 05) -----------------


def training_note(run_dir) -> tuple[str, str]:
    """``(kind, text)``: where the run's models and thresholds came from, for a visible note.

    ``kind`` is ``"ok"`` when a separate labelled training dataset fitted the
    stage-1 models and set every stage's threshold, ``"warn"`` when there was
    none (unsupervised defaults) or when it was the scored dataset itself.
    Reads ``RUN/manifest.json`` only.
    """
    p = Path(run_dir) / "manifest.json"
    man = json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}
    train, data = man.get("train"), man.get("data") or {}
    if not train:
        return "warn", ("No training data: the stage-1 models were skipped and every stage used its own "
                        "unsupervised default threshold. Pass `--train DIR` (a labelled dataset from another "
                        "period or world) to fit them.")
    tname, dname = Path(str(train.get("path", ""))).name, Path(str(data.get("path", ""))).name
    if train.get("kind") == "own labels":
        if not train.get("fitted"):
            return "warn", (f"Your own labels (`{tname}`) hold too few fraud verdicts to fit models and set thresholds "
                            "on: every stage used its own unsupervised flag, and the verdicts seeded the graph "
                            "stage's propagation. Their accounts are left out of every figure.")
        return "ok", (f"Stage-1 models were fitted, and every stage's threshold set, on your own labels (`{tname}`): "
                      f"the data before {train.get('train_until')} with the verdicts known then (they cover about "
                      f"{100 * float(train.get('label_frequency', 1)):.0f}% of the fraud). Their accounts are left "
                      "out of every figure; the later verdicts check the run (`own_labels.json`).")
    if train.get("fingerprint") and train.get("fingerprint") == data.get("fingerprint"):
        return "warn", (f"Models and thresholds were fitted on the scored dataset `{dname}` itself; its labelled "
                        "accounts are left out of every figure (`train_entities.parquet`).")
    return "ok", (f"Stage-1 models were fitted, and every stage's threshold set, on the training world `{tname}`, "
                  f"a separate labelled dataset. Every figure comes from the evaluated world `{dname}`, which neither "
                  "the models nor the thresholds saw.")


def operating_point(run_dir) -> pd.DataFrame:
    """Each stage's (or stage method's) threshold and where it came from: ``stage, method, threshold, source``.

    Notebook 03. Reads the ``operating_point`` entry of ``RUN/manifest.json``; a
    missing threshold means no threshold reached the target precision on the
    training data, so that method never flags.
    """
    p = Path(run_dir) / "manifest.json"
    op = (json.loads(p.read_text(encoding="utf-8")).get("operating_point") or {}) if p.exists() else {}
    th = op.get("thresholds")
    cols = ["stage", "method", "threshold", "source"]
    if isinstance(th, dict) and th:
        src = op.get("source") or op.get("threshold_source") or "training dataset"
        target = op.get("target_precision")
        rows = []
        for k, v in th.items():
            stage, _, method = str(k).partition("/")
            rows.append({"stage": stage, "method": method or stage, "threshold": np.nan if v is None else float(v),
                         "source": (f"{src}" + (f", precision {target:g}" if target else "")) if v is not None else
                         "no threshold reached the target precision on the training data: never flags"})
        return pd.DataFrame(rows, columns=cols)
    stages = op.get("stages")
    if isinstance(stages, dict) and stages:
        return pd.DataFrame([{"stage": k, "method": "", "threshold": np.nan, "source": str(v)}
                             for k, v in stages.items()], columns=cols)
    return pd.DataFrame([{"stage": "every stage", "method": "", "threshold": np.nan,
                          "source": str(th or "each stage's own unsupervised default")}], columns=cols)


def arms_race_view(table: pd.DataFrame) -> pd.DataFrame:
    """The arms-race table for stakeholders: one row per typology and look-alike group. Index page.

    Fraud typologies show recall by stage and combined; honest look-alike groups
    show their false-positive rate (``measure``). Columns: ``typology, measure,
    n_labelled, <stage>..., combined``.
    """
    stages = [c.removeprefix("recall_") for c in table.columns if c.startswith("recall_")]
    rows = []
    for _, r in table.iterrows():
        t = r["typology"]
        if t in FRAUD_TYPOLOGIES:
            prefix, measure = "recall_", "recall"
        elif t in HONEST_LOOKALIKES:
            prefix, measure = "fpr_", "false-positive rate"
        else:
            continue
        if not (pd.notna(r.get("n_labelled")) and r["n_labelled"] > 0):
            continue
        rows.append({"typology": t, "measure": measure, "n_labelled": int(r["n_labelled"]),
                     **{s: r.get(prefix + s, np.nan) for s in stages}})
    return pd.DataFrame(rows, columns=["typology", "measure", "n_labelled", *stages])


def loop_recall_long(recall: pd.DataFrame) -> pd.DataFrame:
    """Closed-loop recall and precision per iteration in long form for a line chart. Notebook 05, index.

    ``recall`` is :meth:`fraudkit.evaluation.loop.LoopResult.recall_table`; returns ``iteration, measure, value``.
    """
    names = {"recall_pipeline": "recall, run without the loop", "recall_loop": "recall, closed loop",
             "precision_pipeline": "precision, run without the loop", "precision_loop": "precision, closed loop"}
    cols = [c for c in names if c in recall.columns]
    out = recall.melt(id_vars="iteration", value_vars=cols, var_name="measure", value_name="value")
    out["measure"] = out["measure"].map(names)
    return out


# --- notebook 05: the closed loop -------------------------------------------------------------------


def loop_iterations(summary: pd.DataFrame) -> pd.DataFrame:
    """The loop's per-iteration summary, the columns a reader needs, in reading order. Notebook 05.

    Wall-clock times stay out (they belong in the manifest): the same inputs give the same page.
    """
    cols = ["iteration", "window_end", "n_fraud_seen", "flagged_pipeline", "flagged_loop", "n_seeds",
            "watched_products", "sunk_addresses", "sunk_devices", "listed", "recall_pipeline", "recall_loop",
            "precision_pipeline", "precision_loop", "fraud_intercepted_prospective", "leakage_rate_pipeline",
            "leakage_rate_loop"]
    return summary[[c for c in cols if c in summary.columns]].copy()


def early_warning_long(early_warning: pd.DataFrame) -> pd.DataFrame:
    """The loop's daily interception rate and the lower edge of its band, long form: ``day, measure, rate``."""
    names = {"interception_rate": "orders intercepted (share)", "band_low": "the loop's alert band (lower edge)"}
    out = early_warning.melt(id_vars="day", value_vars=list(names), var_name="measure", value_name="rate").dropna()
    out["measure"] = out["measure"].map(names)
    return out


def sunk_view(sunk: dict) -> dict:
    """The loop's sunk keys with their columns named for masking: ``{kind: DataFrame}``. Notebook 05.

    The loop stores every key in a ``value`` column; renamed to ``address``,
    ``device_id`` and ``receiver_phone`` so :class:`fraudkit.report.display.Table` masks them.
    """
    names = {"addresses": "address", "devices": "device_id", "phones": "receiver_phone"}
    out = {}
    for kind, col in names.items():
        t = sunk.get(kind)
        if t is not None:
            out[kind] = t.rename(columns={"value": col})
    return out
