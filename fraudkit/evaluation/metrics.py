"""Effect evaluation: recall per typology and stage, look-alike false positives, precision, leakage.

The only module (with supervised training on a separate split) that reads the
``labels`` table. Accounts are the unit: an account labelled with a fraud
typology is positive for it; honest look-alike accounts get a false-positive
rate; ``engagement_buyer`` labels notes and is evaluated on note scores when a
run has them. Entities a model trained on (the run's
``train_entities.parquet`` and ``<stage>/train_entities.parquet``) are left out.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from fraudkit.data.contract import FRAUD_TYPOLOGIES, HONEST_LOOKALIKES, is_fraud_typology
from fraudkit.data.labels import OWN_FRAUD_TYPOLOGY
from fraudkit.data.dataset import load_dataset
from fraudkit.errors import FraudkitError
from fraudkit.identification.base import threshold_for_precision

__all__ = [
    "evaluate_run",
    "evaluation_table",
    "run_operating_point",
    "format_table",
    "neutralise_formulas",
    "format_evaluation",
    "leakage",
    "interception_rate_by_day",
    "recall_at_precision",
    "precision_recall_table",
]


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def run_operating_point(run_dir) -> dict:
    """The ``operating_point`` entry of a run's manifest (empty when absent)."""
    p = Path(run_dir) / "manifest.json"
    return (json.loads(p.read_text(encoding="utf-8")).get("operating_point") or {}) if p.is_file() else {}


def evaluate_run(run_dir, *, data=None) -> pd.DataFrame:
    """Evaluate a run directory written by ``fraudkit score`` against the dataset's labels.

    Parameters
    ----------
    run_dir : path
        The run (``accounts.parquet``, ``scores.parquet``, ``manifest.json``).
    data : path, optional
        Dataset with the labels table (default: the one in the manifest).

    Returns
    -------
    pandas.DataFrame
        See :func:`evaluation_table`.
    """
    run_dir = Path(run_dir)
    man_path = run_dir / "manifest.json"
    if not man_path.is_file():
        raise FraudkitError(f"{run_dir} is not a run directory: manifest.json is missing; run `fraudkit score` first")
    manifest = json.loads(man_path.read_text(encoding="utf-8"))
    if "data" not in manifest or not (run_dir / "accounts.parquet").exists():
        raise FraudkitError(f"{run_dir} is not a run directory (it looks like a dataset); evaluate the folder "
                            f"`fraudkit score {run_dir} --out RUN` wrote: `fraudkit evaluate RUN`")
    data = Path(data) if data is not None else Path(manifest["data"]["path"])
    labels = _read_labels(data)
    accounts = pd.read_parquet(run_dir / "accounts.parquet")
    # only the notes' rows are read (engagement buyers): on large the file holds 38M event rows, 12 GB in pandas
    scores = (pd.read_parquet(run_dir / "scores.parquet", columns=list(NOTE_SCORE_COLUMNS),
                              filters=[("entity_type", "==", "note")])
              if (run_dir / "scores.parquet").is_file() else None)
    exclude = set()
    for p in [run_dir / "train_entities.parquet", *run_dir.glob("*/train_entities.parquet")]:
        if p.is_file():
            t = pd.read_parquet(p)
            exclude |= set(t.loc[t.get("entity_type", "account") == "account", "entity_id"].astype(str))
    return evaluation_table(accounts, labels, scores=scores, exclude=exclude)


def evaluation_table(accounts: pd.DataFrame, labels: pd.DataFrame, *, scores=None, exclude=()) -> pd.DataFrame:
    """The evaluation table from an accounts table (``flagged_<stage>`` columns) and labels.

    Rows: each fraud typology (``recall_*``), each honest look-alike group
    (``fpr_*``), then ``all_fraud`` (recall and ``precision_*`` over every
    fraud account) and ``all_honest`` (false-positive rate over every account
    without a fraud label). Cells that do not apply are NaN.

    Examples
    --------
    >>> import pandas as pd
    >>> acc = pd.DataFrame({"account_id": ["a", "b", "c", "d"], "flagged_behaviour": [True, False, True, False],
    ...                     "flagged_combined": [True, False, True, False]})
    >>> lab = pd.DataFrame({"entity_type": "account", "entity_id": ["a", "b", "c"],
    ...                     "typology": ["device_farm", "device_farm", "honest_shared_device"]})
    >>> t = evaluation_table(acc, lab)
    >>> float(t.set_index("typology").loc["device_farm", "recall_behaviour"])
    0.5
    """
    stages = [c[len("flagged_"):] for c in accounts.columns if c.startswith("flagged_") and c != "flagged_combined"]
    cols = stages + (["combined"] if "flagged_combined" in accounts.columns else [])
    acc = accounts.assign(account_id=accounts["account_id"].astype(str))
    if exclude:
        acc = acc[~acc["account_id"].isin(set(map(str, exclude)))]
    lab = labels[labels["entity_type"] == "account"]
    fraud = set(lab.loc[is_fraud_typology(lab["typology"]), "entity_id"].astype(str))
    is_fraud = acc["account_id"].isin(fraud).to_numpy()
    flags = {s: acc[f"flagged_{s}"].fillna(False).to_numpy(dtype=bool) for s in cols}
    rows = []
    for typ in FRAUD_TYPOLOGIES:
        row = {"typology": typ}
        if typ == "engagement_buyer":
            row.update(_engagement_buyer(labels, scores, cols))
            rows.append(row)
            continue
        ids = set(lab.loc[lab["typology"] == typ, "entity_id"].astype(str))
        m = acc["account_id"].isin(ids).to_numpy()
        if typ == OWN_FRAUD_TYPOLOGY and not m.any():
            continue  # the analyst's untyped fraud verdicts: a row only where there are some
        row["n_labelled"] = int(m.sum())
        for s in cols:
            row[f"recall_{s}"] = flags[s][m].mean() if m.any() else np.nan
        rows.append(row)
    for typ in HONEST_LOOKALIKES:
        ids = set(lab.loc[lab["typology"] == typ, "entity_id"].astype(str)) - fraud
        m = acc["account_id"].isin(ids).to_numpy()
        row = {"typology": typ, "n_labelled": int(m.sum())}
        for s in cols:
            row[f"fpr_{s}"] = flags[s][m].mean() if m.any() else np.nan
        rows.append(row)
    row = {"typology": "all_fraud", "n_labelled": int(is_fraud.sum())}
    for s in cols:
        row[f"recall_{s}"] = flags[s][is_fraud].mean() if is_fraud.any() else np.nan
        row[f"precision_{s}"] = (flags[s] & is_fraud).sum() / flags[s].sum() if flags[s].any() else np.nan
    rows.append(row)
    row = {"typology": "all_honest", "n_labelled": int((~is_fraud).sum())}
    for s in cols:
        row[f"fpr_{s}"] = flags[s][~is_fraud].mean() if (~is_fraud).any() else np.nan
    rows.append(row)
    columns = (["typology", "n_labelled"] + [f"recall_{s}" for s in cols] + [f"fpr_{s}" for s in cols]
               + [f"precision_{s}" for s in cols])
    out = pd.DataFrame(rows).reindex(columns=columns)
    out["n_labelled"] = out["n_labelled"].astype("Int64")
    return out


def format_table(df: pd.DataFrame, fmt: str = "markdown", *, digits: int = 3) -> str:
    """Render a table as GitHub markdown (NaN as ``n/a``) or CSV.

    CSV is for spreadsheets: a text cell that would start a formula there (``= + - @``, tab, carriage
    return, e.g. a rule id ``=HYPERLINK(...)``) is written with a leading ``'`` (:func:`neutralise_formulas`);
    numbers are written as they are.

    Examples
    --------
    >>> import pandas as pd
    >>> print(format_table(pd.DataFrame({"a": ["x"], "b": [0.5]})))
    | a | b |
    |---|---|
    | x | 0.500 |
    >>> print(format_table(pd.DataFrame({"rule": ["=1+1"], "hits": [-2]}), "csv"))
    rule,hits
    '=1+1,-2
    """
    if fmt == "csv":
        return neutralise_formulas(df).to_csv(index=False).rstrip("\n")
    if fmt != "markdown":
        raise FraudkitError(f"unknown format {fmt!r}; use markdown or csv")

    def cell(v):
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return "n/a"
        if isinstance(v, (float, np.floating)):
            return f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` safe to open in a spreadsheet: text that starts a formula gets a leading ``'``.

    Text cells and column names starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
    (OWASP's CSV-injection list) are prefixed, and carriage returns inside text become line feeds (the
    CSV writer then quotes the cell instead of starting a new row); numeric columns, and text that is just
    a number (``-3``, ``+1.5``), are left as they are. ``df`` is not modified.

    Examples
    --------
    >>> import pandas as pd
    >>> neutralise_formulas(pd.DataFrame({"id": ["@SUM(A1)", "-2", "ok"], "n": [-1, 2, 3]}))["id"].tolist()
    ["'@SUM(A1)", '-2', 'ok']
    """
    def safe(v):
        if not isinstance(v, str):
            return v
        if v[:1] in _FORMULA_START and not _PLAIN_NUMBER.match(v):
            v = "'" + v
        # a bare carriage return is not quoted by the CSV writer and would start a new row (and a formula)
        return v.replace("\r\n", "\n").replace("\r", "\n")

    out = df.copy()
    for col in out.columns:
        if not (pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_datetime64_any_dtype(out[col])):
            out[col] = out[col].map(safe)
    out.columns = [safe(c) for c in out.columns]
    return out


def format_evaluation(table: pd.DataFrame, fmt: str = "markdown", *, operating_point=None, digits: int = 3) -> str:
    """The arms-race table as ``fraudkit evaluate`` prints it.

    Three blocks (markdown): fraud typologies with ``recall_<stage>`` at each stage's operating point
    and ``recall_combined``; honest look-alike groups with ``fpr_<stage>`` and ``fpr_combined``; the
    overall ``precision_<stage>`` and ``precision_combined``. ``operating_point`` (the run manifest's
    entry) adds a first line saying where the thresholds came from. ``fmt="csv"`` gives the whole
    :func:`evaluation_table` as one CSV.

    Examples
    --------
    >>> import pandas as pd
    >>> acc = pd.DataFrame({"account_id": ["a", "b", "c"], "flagged_graph": [True, False, True],
    ...                     "flagged_combined": [True, False, True]})
    >>> lab = pd.DataFrame({"entity_type": "account", "entity_id": ["a", "b", "c"],
    ...                     "typology": ["device_farm", "device_farm", "honest_shared_ip"]})
    >>> print(format_evaluation(evaluation_table(acc, lab)).splitlines()[-1])
    | all | 2 | 0.500 | 0.500 |
    """
    if fmt == "csv":
        return format_table(table, "csv", digits=digits)
    stages = [c[len("recall_"):] for c in table.columns if c.startswith("recall_")]
    fraud = table[table["typology"].isin([*FRAUD_TYPOLOGIES, "all_fraud"])]
    honest = table[table["typology"].isin([*HONEST_LOOKALIKES, "all_honest"])]
    overall = table[table["typology"] == "all_fraud"]
    prec = pd.DataFrame({"typology": ["all"], "n_flagged_fraud": overall["n_labelled"].to_numpy()[:1]})
    prec = prec.rename(columns={"n_flagged_fraud": "n_labelled"})
    for st in stages:
        prec[f"precision_{st}"] = overall[f"precision_{st}"].to_numpy()[:1] if len(overall) else np.nan
    out = []
    if operating_point:
        src = operating_point.get("source") or operating_point.get("threshold_source") or "unknown"
        tp = operating_point.get("target_precision")
        out += [f"operating point: {src}" + (f" (target precision {tp:g})" if tp is not None and
                                              "training" in str(src) else ""), ""]
    out += ["recall by stage (fraud typologies, accounts)", "",
            format_table(fraud[["typology", "n_labelled", *[f"recall_{st}" for st in stages]]], digits=digits), "",
            "false-positive rate by stage (honest look-alikes)", "",
            format_table(honest[["typology", "n_labelled", *[f"fpr_{st}" for st in stages]]], digits=digits), "",
            "precision by stage (every labelled fraud account vs every other account)", "",
            format_table(prec, digits=digits)]
    return "\n".join(out)




def leakage(decisions, y) -> dict:
    """Leakage volume and rate: labelled fraudulent events that were passed.

    Parameters
    ----------
    decisions : array-like of str
        ``pass | verify | block`` per event.
    y : array-like of bool
        Whether each event is fraudulent.

    Returns
    -------
    dict
        ``n_fraud``, ``leakage`` (fraud events passed), ``leakage_rate``, ``intercepted``.

    Examples
    --------
    >>> leakage(["pass", "block", "pass", "verify"], [True, True, False, True])
    {'n_fraud': 3, 'leakage': 1, 'leakage_rate': 0.3333333333333333, 'intercepted': 2}
    """
    d = np.asarray(decisions, dtype=object)
    y = np.asarray(y, dtype=bool)
    if len(d) != len(y):
        raise FraudkitError(f"leakage: {len(d)} decisions for {len(y)} labels")
    passed = d == "pass"
    n = int(y.sum())
    leak = int((passed & y).sum())
    return {"n_fraud": n, "leakage": leak, "leakage_rate": leak / n if n else float("nan"),
            "intercepted": n - leak}


def interception_rate_by_day(decisions, ts, y=None) -> pd.DataFrame:
    """Per day: events, intercepted (verify or block), interception rate; with ``y`` also fraud leakage.

    Examples
    --------
    >>> t = interception_rate_by_day(["pass", "block", "verify"],
    ...                              pd.to_datetime(["2024-01-01 10:00", "2024-01-01 11:00", "2024-01-02 09:00"]))
    >>> t["interception_rate"].tolist()
    [0.5, 1.0]
    """
    d = np.asarray(decisions, dtype=object)
    frame = pd.DataFrame({"day": pd.to_datetime(pd.Series(ts)).dt.floor("D").to_numpy(), "hit": d != "pass"})
    if y is not None:
        yy = np.asarray(y, dtype=bool)
        frame["fraud"] = yy
        frame["fraud_passed"] = yy & (d == "pass")
    g = frame.groupby("day", sort=True)
    out = pd.DataFrame({"n": g.size(), "intercepted": g["hit"].sum()})
    out["interception_rate"] = out["intercepted"] / out["n"]
    if y is not None:
        out["n_fraud"] = g["fraud"].sum()
        out["leakage"] = g["fraud_passed"].sum()
        out["leakage_rate"] = np.where(out["n_fraud"] > 0, out["leakage"] / out["n_fraud"].where(out["n_fraud"] > 0),
                                       np.nan)
    return out.reset_index()


def recall_at_precision(scores, y, precision: float) -> float:
    """Recall at the lowest threshold that reaches ``precision`` (0 when none does).

    Examples
    --------
    >>> recall_at_precision([0.9, 0.8, 0.7, 0.1], [1, 1, 0, 1], 1.0)
    0.6666666666666666
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(y, dtype=bool)
    if not y.any():
        return float("nan")
    t = threshold_for_precision(s, y, precision)
    return float((y & (s > t)).sum() / y.sum())


def precision_recall_table(scores, y, thresholds=None) -> pd.DataFrame:
    """Precision, recall and F1 for ``score > threshold`` at each threshold (default: deciles of the scores).

    Examples
    --------
    >>> precision_recall_table([0.9, 0.8, 0.2], [1, 0, 0], thresholds=[0.5])[["precision", "recall"]].values.tolist()
    [[0.5, 1.0]]
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(y, dtype=bool)
    if thresholds is None:
        thresholds = np.unique(np.quantile(s, np.linspace(0, 0.9, 10))) if len(s) else []
    rows = []
    for t in thresholds:
        f = s > t
        tp = int((f & y).sum())
        p = tp / f.sum() if f.any() else np.nan
        r = tp / y.sum() if y.any() else np.nan
        rows.append({"threshold": float(t), "n_flagged": int(f.sum()), "tp": tp, "precision": p, "recall": r,
                     "f1": 2 * p * r / (p + r) if p + r > 0 else np.nan})
    return pd.DataFrame(rows, columns=["threshold", "n_flagged", "tp", "precision", "recall", "f1"])


# --- private helpers ----------------------------------------------------------------------------


def _read_labels(data: Path) -> pd.DataFrame:
    labels = load_dataset(data).labels
    if labels is None:
        raise FraudkitError(f"{data} has no labels table (labels.parquet); evaluation needs ground truth")
    return labels


NOTE_SCORE_COLUMNS = ("entity_type", "entity_id", "stage", "flagged")
"""The columns of a run's ``scores.parquet`` the evaluation reads (of its note rows)."""


def _engagement_buyer(labels, scores, cols):
    lab = labels[(labels["typology"] == "engagement_buyer") & (labels["entity_type"] == "note")]
    out = {"n_labelled": int(len(lab))}
    if scores is None or not (scores["entity_type"] == "note").any() or lab.empty:
        return out  # recall columns stay NaN: no note scores in this run
    notes = scores[scores["entity_type"] == "note"]
    ids = set(lab["entity_id"].astype(str))
    for s in cols:
        sub = notes if s == "combined" else notes[notes["stage"] == s]
        if sub.empty:
            continue
        flagged = set(sub.loc[sub["flagged"], "entity_id"].astype(str))
        out[f"recall_{s}"] = len(ids & flagged) / len(ids)
    return out
