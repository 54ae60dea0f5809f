"""The analyst's own labels: a label store of verdicts with their source, time and reviewer.

A simulated world labels every attacker; a real platform has a few labels of its own: past bans, blacklists,
complaint reviews, an intelligence seed list, and the verdicts analysts give on a review sample
(:mod:`fraudkit.evaluation.review`). They live in one **label store**, a CSV (or Parquet) file the analyst
keeps beside the data, one row per verdict:

=============  ==========================================================================================
column         meaning
=============  ==========================================================================================
entity_type    ``account`` (other contract entity types are kept but not used for training)
entity_id      the entity's key, written as in the data
label          ``fraud`` or ``honest``, or a typology of :mod:`fraudkit.data.contract` (an attacker typology
               means fraud, an honest look-alike means honest)
source         where the verdict comes from (``ban``, ``blacklist``, ``complaint``, ``review:<run id>`` ...)
time           when the verdict became known (a date or a timestamp): a run trained until ``T`` sees only
               the verdicts known by ``T``
reviewer       optional: who gave it
typology       optional: the attacker typology, when the verdict names one
note           optional free text
=============  ==========================================================================================

Rows are never rewritten: :func:`append_labels` adds verdicts, and :func:`labels_as_of` takes the latest
verdict per entity known by a time, so a reversed ban (``fraud`` then ``honest``) counts as its last word.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fraudkit.data.atomic import atomic_path
from fraudkit.data.contract import ENTITY_TYPES, FRAUD_TYPOLOGIES, HONEST_LOOKALIKES
from fraudkit.errors import DataValidationError, FraudkitError, ValidationIssue

__all__ = ["LABEL_STORE_COLUMNS", "VERDICTS", "read_labels", "append_labels", "labels_as_of",
           "to_contract_labels", "OWN_FRAUD_TYPOLOGY"]

LABEL_STORE_COLUMNS = ("entity_type", "entity_id", "label", "source", "time", "reviewer", "typology", "note")
"""Columns of a label store, the first five required."""

VERDICTS = ("fraud", "honest")
"""The two verdicts a label states (a typology name is read as one of them)."""

OWN_FRAUD_TYPOLOGY = FRAUD_TYPOLOGIES[-1]
"""Typology a ``fraud`` verdict takes in the contract's labels table when it names no typology
(``reported_fraud``)."""

_REQUIRED = LABEL_STORE_COLUMNS[:5]
_MAX_BYTES = 200_000_000


def read_labels(path) -> pd.DataFrame:
    """Read and check a label store (CSV or Parquet); one row per verdict, in file order.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`LABEL_STORE_COLUMNS`: ``entity_id`` as text, ``label`` as ``fraud``/``honest``,
        ``typology`` the named typology (or empty), ``time`` a timestamp.

    Raises
    ------
    DataValidationError
        A missing column, an unknown label or entity type, an empty id or an unreadable time: the message
        names the file, the column, an example row and the fix.

    Examples
    --------
    >>> import io, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "labels.csv")
    >>> _ = open(p, "w").write("entity_type,entity_id,label,source,time\\naccount,17,coupon_abuser,ban,2026-11-02\\n")
    >>> read_labels(p)[["entity_id", "label", "typology"]].values.tolist()
    [['17', 'fraud', 'coupon_abuser']]
    """
    path = Path(path)
    if not path.is_file():
        _refuse(path, None, "no such label store", None,
                f"pass the CSV of your labels (columns {', '.join(_REQUIRED)}), or create it with `fraudkit label`")
    if path.stat().st_size > _MAX_BYTES:
        _refuse(path, None, f"the label store is {path.stat().st_size:,} bytes (at most {_MAX_BYTES:,})", None,
                "keep one row per verdict; move old verdicts to an archive file")
    try:
        if path.suffix.lower() == ".parquet":
            df = pd.read_parquet(path).astype(object)
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
    except UnicodeDecodeError as e:
        _refuse(path, None, f"not UTF-8 text (byte {e.start})", None, "save it as UTF-8")
    except (ValueError, OSError) as e:
        _refuse(path, None, f"cannot be read as a table ({str(e).splitlines()[0][:200]})", None,
                f"write a CSV with a header row ({', '.join(_REQUIRED)})")
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        _refuse(path, missing[0], f"missing column(s) {', '.join(missing)}",
                f"the header is {', '.join(map(str, df.columns)) or 'empty'}",
                f"add them (one row per verdict: {', '.join(_REQUIRED)})")
    for c in LABEL_STORE_COLUMNS:
        if c not in df.columns:
            df[c] = None
    df = df[list(LABEL_STORE_COLUMNS)].copy()
    text = {c: df[c].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip())
            for c in LABEL_STORE_COLUMNS}
    df = pd.DataFrame(text)
    _check_present(df, path, "entity_type", "entity_id", "label", "time")
    etype = df["entity_type"].str.lower()
    _check_allowed(df, path, "entity_type", etype, ENTITY_TYPES, "use one of the contract's entity types")
    lab = df["label"].str.lower()
    known = set(VERDICTS) | set(FRAUD_TYPOLOGIES) | set(HONEST_LOOKALIKES)
    _check_allowed(df, path, "label", lab, known,
                   "write fraud or honest (or a typology such as coupon_abuser); numeric codes such as 1/0 or "
                   "-1/+1 are not read, because their meaning differs between exports")
    typology = lab.where(~lab.isin(VERDICTS), df["typology"].str.lower())
    verdict = np.where(lab.isin(HONEST_LOOKALIKES) | (lab == "honest"), "honest", "fraud")
    time = pd.to_datetime(df["time"], errors="coerce", format="mixed")
    bad = time.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        _refuse(path, "time", "not a date or time", f"row {i + 2}: {df['time'].iloc[i]!r}",
                "write when the verdict became known, e.g. 2026-11-02 or 2026-11-02 14:30", int(bad.sum()))
    if getattr(time.dt, "tz", None) is not None:
        time = time.dt.tz_convert("UTC").dt.tz_localize(None)
    return pd.DataFrame({"entity_type": etype.to_numpy(), "entity_id": df["entity_id"].to_numpy(),
                         "label": verdict, "source": df["source"].fillna("unknown").to_numpy(),
                         "time": time.to_numpy(), "reviewer": df["reviewer"].to_numpy(),
                         "typology": typology.to_numpy(), "note": df["note"].to_numpy()})


def append_labels(store, verdicts: pd.DataFrame) -> pd.DataFrame:
    """Append ``verdicts`` to the label store ``store`` (created when absent), atomically; return the store.

    Verdicts already in the store (same entity, label, source and time) are not added twice; nothing else is
    removed or rewritten. The store is written as CSV unless its name ends in ``.parquet``.
    """
    store = Path(store)
    new = _normalised(verdicts)
    old = read_labels(store) if store.exists() else new.iloc[:0]
    both = pd.concat([old, new], ignore_index=True)
    both = both[~both.duplicated(["entity_type", "entity_id", "label", "source", "time"])]
    out = both.assign(time=pd.to_datetime(both["time"]).astype(str))  # to the microsecond when one has it
    with atomic_path(store) as tmp:
        if store.suffix.lower() == ".parquet":
            out.to_parquet(tmp, index=False)
        else:
            out.to_csv(tmp, index=False)
    return both.reset_index(drop=True)


def labels_as_of(labels: pd.DataFrame, until=None, *, entity_type="account") -> pd.DataFrame:
    """The latest verdict per entity known at ``until`` (time <= until; all verdicts when None).

    Returns
    -------
    pandas.DataFrame
        One row per entity: ``entity_id, label, typology, source, time`` (ties at one time: the later row).

    Examples
    --------
    >>> lab = pd.DataFrame({"entity_type": ["account"] * 3, "entity_id": ["1", "1", "2"],
    ...                     "label": ["fraud", "honest", "fraud"], "source": ["ban", "appeal", "ban"],
    ...                     "time": pd.to_datetime(["2026-01-01", "2026-02-01", "2026-03-01"]),
    ...                     "typology": [None] * 3})
    >>> labels_as_of(lab, "2026-01-01")[["entity_id", "label"]].values.tolist()
    [['1', 'fraud']]
    >>> labels_as_of(lab)[["entity_id", "label"]].values.tolist()
    [['1', 'honest'], ['2', 'fraud']]
    """
    d = labels[labels["entity_type"] == entity_type]
    if until is not None:
        d = d[pd.to_datetime(d["time"]) <= pd.Timestamp(until)]
    d = d.assign(_row=np.arange(len(d))).sort_values(["time", "_row"], kind="stable")
    d = d.drop_duplicates("entity_id", keep="last").sort_values("entity_id", kind="stable")
    return d[["entity_id", "label", "typology", "source", "time"]].reset_index(drop=True)


def to_contract_labels(verdicts: pd.DataFrame, ids: pd.Series) -> pd.DataFrame:
    """The contract's ``labels`` table for the accounts among ``verdicts`` that exist in ``ids``.

    Fraud verdicts keep their typology (or :data:`OWN_FRAUD_TYPOLOGY`); honest verdicts that name a look-alike
    keep it; plain honest verdicts are not rows of the contract's table, where an unlabelled account is honest.
    ``entity_id`` takes the type of ``ids`` (the data's account keys).
    """
    key = pd.Series(ids).astype(str)
    lookup = pd.Series(pd.Series(ids).to_numpy(), index=key.to_numpy())
    lookup = lookup[~lookup.index.duplicated()]
    v = verdicts[verdicts["entity_id"].astype(str).isin(lookup.index)]
    fraud = v["label"] == "fraud"
    typ = np.where(fraud, v["typology"].where(v["typology"].isin(FRAUD_TYPOLOGIES), OWN_FRAUD_TYPOLOGY),
                   v["typology"].where(v["typology"].isin(HONEST_LOOKALIKES)))
    keep = pd.notna(typ)
    return pd.DataFrame({"entity_type": "account",
                         "entity_id": lookup.loc[v["entity_id"].astype(str).to_numpy()[keep]].to_numpy(),
                         "typology": typ[keep], "campaign_id": None}).reset_index(drop=True)


def _normalised(verdicts: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in _REQUIRED if c not in verdicts.columns]
    if missing:
        raise FraudkitError(f"verdicts lack column(s) {', '.join(missing)}")
    v = verdicts.copy()
    for c in LABEL_STORE_COLUMNS:
        if c not in v.columns:
            v[c] = None
    v["entity_id"] = v["entity_id"].astype(str)
    v["time"] = pd.to_datetime(v["time"])
    return v[list(LABEL_STORE_COLUMNS)]


def _check_present(df, path, *columns):
    for c in columns:
        empty = df[c].isna() | (df[c] == "")
        if empty.any():
            i = int(np.flatnonzero(empty.to_numpy())[0])
            _refuse(path, c, "empty value", f"row {i + 2}", "fill it or remove the row", int(empty.sum()))


def _check_allowed(df, path, column, values, allowed, fix):
    bad = ~values.isin(allowed)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        _refuse(path, column, "value not understood", f"row {i + 2}: {df[column].iloc[i]!r}", fix, int(bad.sum()))


def _refuse(file, column, problem, example, fix, n_rows=0):
    """Raise the one-issue :class:`DataValidationError` for ``file`` (a message with the column, an example and the fix)."""
    raise DataValidationError([ValidationIssue(str(file), column, problem, example, fix, n_rows)])
