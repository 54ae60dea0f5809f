"""The operating point: which accounts each stage flags, with or without a labelled training dataset.

Each stage is read through its headline method (:data:`HEADLINE_METHODS`: ``behaviour``, ``group``,
``graph``; the rule set's ``RuleSet``), whose flag is the union of the stage's methods.

Without training data (:func:`unsupervised_operating_point`) a stage's flag is its own documented
unsupervised default, except the rule set, which counts at its ``block`` level (``verify`` asks for a
verification; it is a decision, not an identification: on the simulated data its precision is 0.70-0.82
against 0.98-1.0 at ``block``).

With a training dataset (:func:`fit_operating_point`), for every method of a stage the lowest threshold
reaching the target precision on the training labels is found; the method then flags where its own flag
*and* ``score > threshold`` hold: training only ever tightens the unsupervised default, never loosens it
(thresholds below a method's own, set in the sparse region of sub-threshold scores, do not transfer between
datasets: on demo-small seed 1 the group stage fell to precision 0.43 that way). Methods the training pass
does not produce (stage-1 models, which the behaviour stage itself trains and validates at the same
precision) keep their own flag. The stage flags where any of its methods flags.

:func:`accounts_table` applies an operating point to a run's scores: ``flagged_combined`` is the union of the
stage flags (rules included); ``score_combined`` is the highest per-stage percentile rank, for ordering only
(stages that score every account alike are left out).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fraudkit.data.contract import STAGES, fraud_keys
from fraudkit.identification.base import threshold_for_precision

__all__ = ["OperatingPoint", "unsupervised_operating_point", "fit_operating_point", "accounts_table",
           "TRAIN_PRECISION", "HEADLINE_METHODS"]

TRAIN_PRECISION = 0.9
"""Default precision each stage method's threshold must reach on the training dataset (``train=``)."""

HEADLINE_METHODS = {"behaviour": "behaviour", "group": "group", "graph": "graph", "rules": "RuleSet"}
"""The method that stands for each stage in ``accounts.parquet`` (its flag is the union of the stage's methods)."""


@dataclass(frozen=True)
class OperatingPoint:
    """Per stage method, the training threshold on top of its own flag; what the manifest records.

    Parameters
    ----------
    trained : bool
        Whether the thresholds were set on a labelled training dataset.
    thresholds : dict of (str, str) to float
        ``(stage, method) -> threshold`` (``inf``: no threshold reached the precision, never flags).
    manifest : dict
        The run manifest's ``operating_point`` entry.
    inverted : tuple of str
        Stages whose headline score ranked the training fraud *below* the honest accounts (AUROC < 0.5):
        left out of ``score_combined`` rather than silently used.
    """

    trained: bool
    thresholds: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    inverted: tuple = ()


def unsupervised_operating_point(ruleset, *, precision=TRAIN_PRECISION) -> OperatingPoint:
    """Each stage's own unsupervised default; the rule set at its ``block`` level.

    Examples
    --------
    >>> from fraudkit.identification.rules import default_ruleset
    >>> op = unsupervised_operating_point(default_ruleset())
    >>> op.trained, op.manifest["source"]
    (False, 'unsupervised defaults')
    """
    own = "the stage's own flag (its documented unsupervised default)"
    return OperatingPoint(False, {}, {
        **_base(precision), "source": "unsupervised defaults",
        "thresholds": "each stage's own unsupervised default (no labels of the scored data are read); "
                      "the rule set at its block level",
        "stages": {
            "behaviour": own, "group": own, "graph": own,
            "rules": f"rule-set action block (aggregate score >= {ruleset.threshold.get('block', 'n/a')} or a "
                     "block rule); verify-level hits are decisions, not identifications"}})


def fit_operating_point(scores, labels, *, precision=TRAIN_PRECISION, source="training dataset",
                        label_frequency=1.0) -> OperatingPoint:
    """Per stage method, the lowest threshold reaching ``precision`` on the training labels.

    Parameters
    ----------
    scores : pandas.DataFrame
        The training dataset's score table (:data:`fraudkit.identification.base.SCORE_COLUMNS`).
    labels : pandas.DataFrame
        The training dataset's labels table.
    precision : float, default=0.9
    source : str
        Where the training scores came from (path and fingerprint), for the manifest.
    label_frequency : float, default=1.0
        Share of the training fraud that is labelled (below 1 for the analyst's own labels: an unlabelled
        account may be fraud; see :func:`fraudkit.identification.base.threshold_for_precision`).

    Returns
    -------
    OperatingPoint

    Examples
    --------
    >>> import pandas as pd
    >>> from fraudkit.identification.base import score_frame
    >>> s = score_frame(["a", "b", "c"], [0.9, 0.6, 0.2], [True, True, False], entity_type="account",
    ...                 stage="group", method="coaction")
    >>> lab = pd.DataFrame({"entity_type": "account", "entity_id": ["a"], "typology": ["device_farm"]})
    >>> fit_operating_point(s, lab, precision=1.0).thresholds
    {('group', 'coaction'): 0.75}
    """
    s = scores[scores["entity_type"] == "account"]
    pos = fraud_keys(labels, "account")
    thresholds = {}
    for (stage, method), g in s.groupby(["stage", "method"], sort=True):
        if method == HEADLINE_METHODS.get(stage) and stage != "rules":
            continue  # the headline flag is the union of the stage's methods, each tightened below
        per = g.assign(entity_id=g["entity_id"].astype(str)).groupby("entity_id")["score"].max()
        thresholds[(stage, method)] = threshold_for_precision(per.to_numpy(), per.index.isin(pos), precision,
                                                              label_frequency=label_frequency)
    inverted = tuple(_inverted_stages(s, pos))
    extra = {"left_out_of_score_combined": {st: "its score ranks the training fraud below the honest accounts "
                                                "(AUROC < 0.5 on the training labels)" for st in inverted}} \
        if inverted else {}
    return OperatingPoint(True, thresholds, inverted=inverted, manifest={
        **_base(precision), **extra, "source": source, "label_frequency": float(label_frequency),
        "threshold_source": f"{source}, lowest threshold reaching precision {precision:g}, on top of each "
                            "method's own flag",
        "rule": f"a method flags where its own flag holds and its score exceeds the lowest threshold reaching "
                f"precision {precision:g} on the training labels (null: no threshold reaches it, never flags); "
                "methods absent from the training pass (stage-1 models trained on the training dataset and "
                "validated at the same precision) keep their own flag; a stage flags where any method does",
        "thresholds": {f"{st}/{m}": (None if not np.isfinite(v) else float(v)) for (st, m), v in thresholds.items()}})


def accounts_table(account_ids, scores, operating_point, *, rule_result=None, rule_frame=None) -> pd.DataFrame:
    """``account_id, score_<stage>, flagged_<stage>, ..., score_combined, flagged_combined``.

    Parameters
    ----------
    account_ids : sequence
        Every account of the scored dataset (one row each, in this order).
    scores : pandas.DataFrame or sequence of DataFrame
        The run's score table, every stage and the rule set; or its parts (each stage's and the rules'), never
        put together whole: only their account rows' columns read here are (on ``large`` a concatenated copy of
        every part held 1-2 GB through decisions and the run's writing).
    operating_point : OperatingPoint
    rule_result, rule_frame : RuleResult and DataFrame, optional
        The account rules' result and frame (the rule set's ``block`` flag, without training).

    Examples
    --------
    >>> from fraudkit.identification.base import score_frame
    >>> from fraudkit.identification.rules import default_ruleset
    >>> s = score_frame(["a", "b"], [0.9, 0.1], [True, False], entity_type="account", stage="group",
    ...                 method="group")
    >>> accounts_table(["a", "b"], s, unsupervised_operating_point(default_ruleset()))["flagged_combined"].tolist()
    [True, False]
    """
    out = pd.DataFrame({"account_id": pd.Series(account_ids).astype(str).to_numpy()})
    parts = [scores] if isinstance(scores, pd.DataFrame) else [p for p in scores if p is not None]
    rows = [(p["entity_type"] == "account").to_numpy() for p in parts]
    # each row's account as its position in ``out``: every distinct id made text once, not every row (14 M score
    # rows on large, a Python string each), -1 for an entity that is not one of the accounts; one copy of the
    # columns read, of the account rows only
    s = pd.DataFrame({c: _stacked(parts, rows, c) for c in ("stage", "method", "score", "flagged")}, copy=False)
    s["at"] = _positions(parts, rows, pd.Index(out["account_id"]))
    ranks = []
    any_flag = np.zeros(len(out), dtype=bool)
    th = operating_point.thresholds
    # each row's stage and method as codes, each distinct text compared once (comparing the 15M rows' texts with
    # every stage and method took 5 s on large; a set of their stages for every stage took 3.5 s)
    by_stage = _Factorized(s["stage"])
    for stage in [st for st in (*STAGES, "rules") if st in by_stage.values]:
        g = s[by_stage.rows(stage)]
        by_method = _Factorized(g["method"])
        head = HEADLINE_METHODS.get(stage)
        methods = sorted(by_method.values)
        score = _per_account(g[by_method.rows(head)] if head in methods else g, len(out))[0]
        if not operating_point.trained:
            if stage == "rules":
                flagged = _rules_block(rule_result, rule_frame, out["account_id"])
            else:
                flagged = _per_account(g[by_method.rows(head)] if head in methods else g, len(out))[1]
        else:
            base = [m for m in methods if m != head] or methods
            flagged = np.zeros(len(out), dtype=bool)
            for m in base:
                sc, own = _per_account(g[by_method.rows(m)], len(out))
                t = th.get((stage, m))
                flagged |= own if t is None else own & (np.nan_to_num(sc, nan=-np.inf) > t)
        out[f"score_{stage}"] = score
        out[f"flagged_{stage}"] = flagged
        any_flag |= flagged
        if np.unique(score[~np.isnan(score)]).size > 1 and stage not in operating_point.inverted:
            # a stage whose score is the same for every account (its inputs are missing) ranks no one:
            # its percentile ties (0.5 for all) would only flatten the combined order
            ranks.append(pd.Series(score).rank(pct=True).fillna(0).to_numpy())
    out["score_combined"] = np.max(ranks, axis=0) if ranks else 0.0
    out["flagged_combined"] = any_flag
    return out


# --- private helpers ----------------------------------------------------------------------------


def _base(precision):
    return {"target_precision": precision, "method": "flagged by any stage (rules count as a stage), each stage at "
                                                     "its own high-precision operating point",
            "headline_methods": dict(HEADLINE_METHODS),
            "score_combined": "max over stages of the per-stage percentile rank (ordering only); stages whose score "
                              "is the same for every account are left out"}


def _inverted_stages(s, pos):
    """Group, graph and rule stages whose headline score has AUROC < 0.5 on the training labels.

    The behaviour stage is not judged here: its models are trained and validated by the stage itself, and the
    training pass scores it with rules only.
    """
    from sklearn.metrics import roc_auc_score

    out = []
    for stage in ("group", "graph", "rules"):
        g = s[(s["stage"] == stage) & (s["method"] == HEADLINE_METHODS[stage])]
        per = g.assign(entity_id=g["entity_id"].astype(str)).groupby("entity_id")["score"].max().fillna(0.0)
        y = per.index.isin(pos)
        if y.any() and not y.all() and per.nunique() > 1 and roc_auc_score(y, per.to_numpy()) < 0.5:
            out.append(stage)
    return out


class _Factorized:
    """A column as codes of its distinct ``values`` (``pd.factorize``), each value's rows found by its code."""

    def __init__(self, column):
        self.codes, values = pd.factorize(column)
        self.values = list(values)

    def rows(self, value) -> np.ndarray:
        """The mask of the rows holding ``value``."""
        return self.codes == (self.values.index(value) if value in self.values else -2)


def _positions(parts, rows, accounts) -> np.ndarray:
    """The position in ``accounts`` (text) of each of the ``rows``' entity ids, part after part (-1: not one of
    them): each part's ids factorized in their own type (15M rows of large's parts as one object array took
    8 s), their distinct values made text once."""
    out = []
    for p, r in zip(parts, rows):
        code, distinct = pd.factorize(p["entity_id"].to_numpy()[r], sort=False)
        at, pos = accounts.get_indexer(pd.Index(distinct).astype(str)), np.full(len(code), -1, dtype=np.int64)
        pos[code >= 0] = at[code[code >= 0]]  # a missing id (code -1) is no account, also in a part of only those
        out.append(pos)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _stacked(parts, rows, column) -> np.ndarray:
    """``column`` of the ``rows`` (a mask per part) of every part, one after the other."""
    vals = [p[column].to_numpy()[r] for p, r in zip(parts, rows)]
    if not vals:
        return np.zeros(0, dtype=object)
    if len({v.dtype for v in vals}) > 1:  # e.g. integer ids in one part, text in another: kept as they are
        vals = [v.astype(object) for v in vals]
    return np.concatenate(vals)


def _per_account(g, n):
    """Max score and any-flag per account of the rows ``g`` (their account's position in ``at``), ``n`` accounts
    (NaN / False where absent)."""
    agg = g[g["at"] >= 0].groupby("at").agg(score=("score", "max"), flagged=("flagged", "any"))
    at = agg.index.to_numpy(np.int64)
    score, flagged = np.full(n, np.nan), np.zeros(n, dtype=bool)
    score[at] = agg["score"].to_numpy(float)
    flagged[at] = agg["flagged"].to_numpy(dtype=bool)
    return score, flagged


def _rules_block(rule_result, frame, account_ids):
    if rule_result is None or frame is None:
        return np.zeros(len(account_ids), dtype=bool)
    block = frame["account_id"].astype(str)[(rule_result.rows["action"] == "block").to_numpy()]
    return account_ids.isin(set(block)).to_numpy()
