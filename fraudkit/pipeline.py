"""``fraudkit score``: run the identification stages and write a run directory.

Wiring only; the logic lives in the stage modules, :mod:`fraudkit.rules` and
:mod:`fraudkit.decisions`. The run directory (built in a temporary sibling and
swapped in atomically)::

    RUN/manifest.json        parameters, stages, notes, operating point, package versions, data, timings
    RUN/features/<entity>.parquet
    RUN/scores.parquet       every stage's score table (SCORE_COLUMNS), rules included
    RUN/accounts.parquet     account_id, score_<stage>, flagged_<stage>, score_combined, flagged_combined
    RUN/decisions.parquet    per order and interaction: decision, layer, reasons, layer scores
    RUN/rules/hits.parquet   per rule: hits and hit rate per entity
    RUN/<stage>/*.parquet    stage artifacts

**Operating point.** Each stage's threshold is fixed without the labels of the
scored data: the stage's own unsupervised default, or — with ``train=`` — the
threshold reaching :data:`TRAIN_PRECISION` on the training dataset's labels
(the training data is scored with the same stages; its labelled accounts are
listed in ``train_entities.parquet`` when it is the scored dataset itself, so
evaluation leaves them out). ``flagged_combined`` is *flagged by any stage*
(rules count as a stage); ``score_combined`` is the highest per-stage
percentile rank, for ordering only. The manifest records which applies.

Stages receive ``context`` (a dict): ``seed``, ``rules`` (the RuleSet),
``lists`` (ListStore), ``features`` (``{entity: DataFrame}``, filled by the
first stage that computes them), ``outputs`` (``{stage: StageOutput}`` of the
stages already run) and ``train`` (the training Dataset or None).
"""

from __future__ import annotations

import importlib
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_directory, write_parquet, write_text
from .contract import STAGES
from .errors import FraudkitError, MissingInputError

__all__ = ["RunResult", "score_dataset", "rule_frames", "rule_columns", "list_store_for", "TRAIN_PRECISION"]

TRAIN_PRECISION = 0.9
"""Precision a stage's threshold must reach on the training dataset when ``train=`` is given."""


@dataclass(frozen=True)
class RunResult:
    """What :func:`score_dataset` wrote."""

    run_dir: Path
    stages: tuple
    notes: tuple
    n_accounts: int
    n_flagged: dict
    n_decisions: dict
    timings: dict = field(default_factory=dict)

    def describe(self) -> str:
        lines = [f"run written to {self.run_dir}", f"stages run: {', '.join(self.stages) or 'none'}",
                 f"accounts: {self.n_accounts}"]
        lines += [f"  flagged by {k}: {v}" for k, v in self.n_flagged.items()]
        lines += [f"decisions ({k}): " + ", ".join(f"{d} {c}" for d, c in v.items())
                  for k, v in self.n_decisions.items()]
        lines += [f"note: {n}" for n in self.notes]
        lines.append("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items()))
        return "\n".join(lines)


def score_dataset(data, out, *, stages=STAGES, rules=None, seed=0, train=None, lists=None,
                  decision_policy=None) -> RunResult:
    """Score a dataset with the requested stages, the rule set and the layered decision.

    Parameters
    ----------
    data : path or Dataset
    out : path
        Run directory (replaced atomically on success).
    stages : sequence of str, default=("behaviour", "group", "graph")
    rules : path, dict or RuleSet, optional
        Default: the built-in rule set.
    seed : int, default=0
    train : path or Dataset, optional
        A labelled dataset used to fix each stage's threshold (and passed to stages for supervised models).
    lists : ListStore, optional
        Default: the dataset's ``list_entries`` table.
    decision_policy : DecisionPolicy, optional

    Returns
    -------
    RunResult
    """
    from . import __version__
    from .io import load_dataset
    from .rules import load_ruleset

    t0 = time.perf_counter()
    timings = {}
    ds = data if hasattr(data, "table") else load_dataset(data)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise FraudkitError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    train_ds = None if train is None else (train if hasattr(train, "table") else load_dataset(train))
    store = lists if lists is not None else list_store_for(ds)
    ruleset = load_ruleset(rules if rules is not None else "default")
    timings["load"] = time.perf_counter() - t0
    notes: list = []
    with atomic_directory(out) as tmp:
        context = {"seed": seed, "rules": ruleset, "lists": store, "features": {}, "outputs": {}, "train": train_ds}
        outputs = _run_stages(ds, stages, tmp, seed, context, notes, timings)
        t = time.perf_counter()
        feats = _features(ds, context)
        frames = rule_frames(ds, ruleset, features=feats)
        rule_out = _run_rules(ruleset, frames, store, notes)
        timings["rules"] = time.perf_counter() - t
        all_scores = [o.scores for o in outputs.values()] + [rule_out["scores"]]
        scores = pd.concat([s for s in all_scores if len(s)], ignore_index=True) if any(len(s) for s in all_scores) \
            else rule_out["scores"]
        operating = _operating_point(ds, train_ds, stages, ruleset, store, seed, notes)
        accounts = _accounts_table(ds, scores, operating)
        t = time.perf_counter()
        decisions = _decisions(frames, rule_out["results"], accounts, store, decision_policy, notes)
        timings["decisions"] = time.perf_counter() - t
        t = time.perf_counter()
        for name, f in feats.items():
            write_parquet(f, tmp / "features" / f"{name}.parquet")
        for stage, o in outputs.items():
            for name, art in o.artifacts.items():
                _write_frame(art, tmp / stage / f"{name}.parquet")
        write_parquet(rule_out["hits"], tmp / "rules" / "hits.parquet")
        write_parquet(_stringify_ids(scores), tmp / "scores.parquet")
        write_parquet(accounts, tmp / "accounts.parquet")
        write_parquet(decisions, tmp / "decisions.parquet")
        if train_ds is not None and getattr(train_ds, "fingerprint", None) == ds.fingerprint and ds.labels is not None:
            lab = ds.labels[ds.labels["entity_type"] == "account"]
            write_parquet(pd.DataFrame({"entity_type": "account",
                                        "entity_id": lab["entity_id"].astype(str).unique()}),
                          tmp / "train_entities.parquet")
            notes.append("the training dataset is the scored dataset: its labelled accounts are excluded "
                         "from evaluation (train_entities.parquet)")
        timings["write"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        ran = tuple(s for s in stages if s in outputs)
        manifest = {
            "fraudkit_version": __version__, "created": pd.Timestamp.now().isoformat(timespec="seconds"),
            "parameters": {"stages": list(stages), "seed": seed, "rules": ruleset.source or "inline",
                           "rules_version": ruleset.version, "train": None if train_ds is None else str(train_ds.path)},
            "stages_run": list(ran), "notes": notes,
            "data": {"path": str(Path(ds.path).resolve()) if ds.path is not None else None,
                     "fingerprint": ds.fingerprint},
            "train": None if train_ds is None else {"path": str(train_ds.path), "fingerprint": train_ds.fingerprint},
            "operating_point": operating["manifest"],
            "timings": {k: round(v, 3) for k, v in timings.items()},
            "versions": _versions(),
        }
        write_text(tmp / "manifest.json", json.dumps(manifest, indent=2, default=str))
    n_flagged = {c[len("flagged_"):]: int(accounts[c].sum()) for c in accounts.columns if c.startswith("flagged_")}
    n_dec = {k: decisions.loc[decisions["entity_type"] == k, "decision"].value_counts().to_dict()
             for k in decisions["entity_type"].unique()}
    return RunResult(run_dir=Path(out), stages=ran, notes=tuple(notes), n_accounts=len(accounts),
                     n_flagged=n_flagged, n_decisions=n_dec, timings=timings)


def list_store_for(ds):
    """A :class:`~fraudkit.lists.ListStore` over the dataset's ``list_entries`` table (empty without one)."""
    from .lists import ListStore

    if ds.has("list_entries"):
        return ListStore(ds.to_pandas("list_entries"), audit=None)
    return ListStore()


def rule_columns(ds, *, features=None) -> dict:
    """Zero-row frames with every column a rule of each entity may read (for ``rules check --data``)."""
    feats = features if features is not None else _features(ds, {"features": {}})
    out = {"account": feats["account"].head(0), "device": feats["device"].head(0), "ip": feats["ip"].head(0),
           "order": feats["order"].head(0)}
    if ds.has("interactions"):
        base = ds.table("interactions").limit(0).to_pandas()
        extra = {f"acct_{c}": feats["account"][c].head(0) for c in feats["account"].columns[1:]}
        extra |= {f"dev_{c}": feats["device"][c].head(0) for c in feats["device"].columns[1:]}
        extra |= {f"ip_{c}": feats["ip"][c].head(0) for c in feats["ip"].columns[1:]}
        extra |= {a.name: pd.Series(dtype=float) for a in _interaction_accumulators()}
        out["interaction"] = pd.concat([base, pd.DataFrame(extra)], axis=1)
    return out


def rule_frames(ds, ruleset, *, features=None) -> dict:
    """Frames the rules of each entity are evaluated on: ``{entity: DataFrame}``.

    ``account``, ``device``, ``ip`` and ``order`` are the feature tables of
    :mod:`fraudkit.features`; ``interaction`` is the interactions table plus
    only the columns its rules read: account (``acct_``), device (``dev_``) and
    IP (``ip_``) features joined by key, and interaction accumulators.
    ``ruleset`` may also be a list of RuleSets (columns of all of them), or a
    tuple of entity names (interactions: the bare table).
    """
    from .rules import RuleSet

    sets = [ruleset] if isinstance(ruleset, RuleSet) else [r for r in ruleset if isinstance(r, RuleSet)]
    entities = set().union(*[r.entities for r in sets]) if sets else set(ruleset)
    feats = features if features is not None else _features(ds, {"features": {}})
    out = {}
    for e in entities:
        if e in ("account", "device", "ip", "order"):
            out[e] = feats[e]
        elif e == "interaction" and ds.has("interactions"):
            need = set().union(*[r.columns("interaction") for r in sets]) if sets else set()
            out[e] = _interaction_frame(ds, feats, need)
    return out


# --- private helpers ----------------------------------------------------------------------------


def _run_stages(ds, stages, tmp, seed, context, notes, timings):
    outputs = {}
    for stage in stages:
        t = time.perf_counter()
        try:
            mod = importlib.import_module(f"fraudkit.stages.{stage}")
        except ModuleNotFoundError as e:
            if e.name == f"fraudkit.stages.{stage}":
                notes.append(f"{stage}: skipped, fraudkit.stages.{stage} is not installed")
                continue
            raise
        try:
            out = mod.run(ds, run_dir=tmp / stage, seed=seed, context=context)
        except MissingInputError as e:
            notes.append(f"{stage}: skipped, {e}")
            continue
        outputs[stage] = out
        context["outputs"][stage] = out
        notes += [f"{stage}: {n}" for n in out.notes]
        timings[stage] = time.perf_counter() - t
    return outputs


def _features(ds, context):
    feats = context.get("features") or {}
    if not {"account", "device", "ip", "order"} <= set(feats):
        from .features import entity_features

        computed = entity_features(ds)
        feats = {**computed, **feats}
        context["features"] = feats
    return feats


def _interaction_accumulators():
    from .accumulators import DEFAULT_ACCUMULATORS

    return [a for a in DEFAULT_ACCUMULATORS if a.table == "interactions"]


def _interaction_frame(ds, feats, need):
    frame = ds.to_pandas("interactions")
    joins = (("acct_", "account", "account_id"), ("dev_", "device", "device_id"), ("ip_", "ip", "ip"))
    for prefix, entity, key in joins:
        f = feats[entity]
        cols = [c[len(prefix):] for c in sorted(need) if c.startswith(prefix) and c not in frame.columns]
        cols = [c for c in cols if c in f.columns]
        if not cols:
            continue
        keys = frame[key]
        idx = pd.Index(f[key].astype(str)).get_indexer(keys.astype(str).where(keys.notna(), "\0"))
        found = idx >= 0
        for c in cols:
            vals = f[c].to_numpy(dtype=float, na_value=np.nan) if f[c].dtype != object else f[c].to_numpy()
            col = vals[np.where(found, idx, 0)] if len(vals) else np.full(len(frame), np.nan)
            frame[prefix + c] = np.where(found, col, np.nan if vals.dtype != object else None)
    accs = [a for a in _interaction_accumulators() if a.name in need]
    if accs:
        from .accumulators import compute

        acc = compute(accs, ds)
        pos = pd.Index(acc["event_id"].astype(str)).get_indexer(frame["event_id"].astype(str))
        for a in accs:
            frame[a.name] = acc[a.name].to_numpy()[pos]
    return frame


def _run_rules(ruleset, frames, store, notes):
    from .base import score_frame
    from .stages import empty_scores

    results, hits, scores = {}, [], []
    for entity in ruleset.entities:
        frame = frames.get(entity)
        if frame is None or frame.empty:
            notes.append(f"rules: {entity} rules skipped (no {entity} rows)")
            continue
        res = ruleset.evaluate(frame, lists=store, entity=entity)
        results[entity] = res
        hits.append(res.hits)
        key = {"account": "account_id", "device": "device_id", "ip": "ip", "order": "order_id",
               "interaction": "event_id"}[entity]
        r = res.rows
        scores.append(score_frame(frame[key].astype(str).to_numpy(), r["score"], r["action"] != "pass",
                                  entity_type=entity, stage="rules", method="RuleSet", reasons=r["matched"]))
    hits_df = pd.concat(hits, ignore_index=True) if hits else pd.DataFrame(
        columns=["rule_id", "status", "entity", "action", "score", "hits", "hit_rate"])
    return {"results": results, "hits": hits_df,
            "scores": pd.concat(scores, ignore_index=True) if scores else empty_scores()}


def _operating_point(ds, train_ds, stages, ruleset, store, seed, notes):
    if train_ds is None:
        return {"thresholds": {}, "manifest": {
            "method": "flagged by any stage (rules count as a stage)",
            "thresholds": "each stage's own unsupervised default (no labels of the scored data are read)",
            "score_combined": "max over stages of the per-stage percentile rank (ordering only)"}}
    if train_ds.labels is None:
        raise FraudkitError(f"the training dataset {train_ds.path} has no labels table; train= needs labels")
    from .evaluation import fraud_keys

    with _scratch_dir() as scratch:
        ctx = {"seed": seed, "rules": ruleset, "lists": list_store_for(train_ds), "features": {}, "outputs": {},
               "train": None}
        tr_notes: list = []
        outs = _run_stages(train_ds, stages, Path(scratch), seed, ctx, tr_notes, {})
        feats = _features(train_ds, ctx)
        tr_rules = _run_rules(ruleset, rule_frames(train_ds, ruleset, features=feats), ctx["lists"], tr_notes)
    from .base import threshold_for_precision

    tr_scores = pd.concat([o.scores for o in outs.values()] + [tr_rules["scores"]], ignore_index=True)
    tr_scores = tr_scores[tr_scores["entity_type"] == "account"]
    pos = fraud_keys(train_ds.labels, "account")
    thresholds = {}
    for stage, g in tr_scores.groupby("stage"):
        per = g.assign(entity_id=g["entity_id"].astype(str)).groupby("entity_id")["score"].max()
        thresholds[stage] = threshold_for_precision(per.to_numpy(), per.index.isin(pos), TRAIN_PRECISION)
    notes.append("operating point: per-stage thresholds set on the training dataset at precision "
                 f"{TRAIN_PRECISION:g}: " + ", ".join(f"{k} > {v:.4g}" for k, v in thresholds.items()))
    return {"thresholds": thresholds, "manifest": {
        "method": "flagged by any stage (rules count as a stage)",
        "thresholds": {k: (None if not np.isfinite(v) else v) for k, v in thresholds.items()},
        "threshold_source": f"training dataset {train_ds.path} (fingerprint {train_ds.fingerprint}), "
                            f"lowest threshold reaching precision {TRAIN_PRECISION:g}",
        "score_combined": "max over stages of the per-stage percentile rank (ordering only)"}}


def _accounts_table(ds, scores, operating):
    acc_ids = ds.to_pandas("accounts", columns=["account_id"])["account_id"]
    out = pd.DataFrame({"account_id": acc_ids.astype(str).to_numpy()})
    s = scores[scores["entity_type"] == "account"]
    ranks = []
    any_flag = np.zeros(len(out), dtype=bool)
    th = operating["thresholds"]
    for stage in [st for st in (*STAGES, "rules") if st in set(s["stage"])]:
        g = s[s["stage"] == stage].assign(entity_id=lambda d: d["entity_id"].astype(str))
        agg = g.groupby("entity_id").agg(score=("score", "max"), flagged=("flagged", "any"))
        idx = agg.index.get_indexer(out["account_id"])
        found = idx >= 0
        score = np.where(found, agg["score"].to_numpy()[np.where(found, idx, 0)], np.nan)
        if stage in th:
            flagged = found & (score > th[stage])
        else:
            flagged = found & agg["flagged"].to_numpy()[np.where(found, idx, 0)]
        out[f"score_{stage}"] = score
        out[f"flagged_{stage}"] = flagged
        any_flag |= flagged
        ranks.append(pd.Series(score).rank(pct=True).fillna(0).to_numpy())
    out["score_combined"] = np.max(ranks, axis=0) if ranks else 0.0
    out["flagged_combined"] = any_flag
    return out


def _decisions(frames, rule_results, accounts, store, policy, notes):
    from .decisions import decide

    def layer(stage):
        if f"score_{stage}" not in accounts:
            return None
        return accounts[["account_id", f"score_{stage}", f"flagged_{stage}"]].set_axis(
            ["account_id", "score", "flagged"], axis=1).dropna(subset=["score"])

    portrait, network = layer("behaviour"), layer("graph")
    parts = []
    for entity, key in (("order", "order_id"), ("interaction", "event_id")):
        frame = frames.get(entity)
        if frame is None or frame.empty:
            continue
        cols = [c for c in (key, "account_id", "device_id", "ip", "address", "receiver_phone", "promotion_id",
                            "ts", "action") if c in frame.columns]
        ev = frame[cols].reset_index(drop=True)
        ev = ev.assign(account_id=ev["account_id"].astype(str))
        d = decide(ev, rules=rule_results.get(entity), portrait=portrait, network=network, lists=store,
                   policy=policy, notes=notes)
        d.insert(0, "entity_id", ev[key].astype(str).to_numpy())
        d.insert(0, "entity_type", entity)
        d.insert(2, "account_id", ev["account_id"].to_numpy())
        if "ts" in ev:
            d.insert(3, "ts", ev["ts"].to_numpy())
        parts.append(d)
    if not parts:
        notes.append("decisions: no orders or interactions to decide on")
        return pd.DataFrame(columns=["entity_type", "entity_id", "account_id", "decision", "layer", "reasons"])
    # the same layer-skipped note is added once per entity; keep one
    seen = set()
    notes[:] = [n for n in notes if not (n in seen or seen.add(n))]
    return pd.concat(parts, ignore_index=True)


def _write_frame(df, path):
    """Write a stage artifact; object columns of mixed types are written as text (nulls kept)."""
    import pyarrow as pa

    try:
        write_parquet(df, path)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        fixed = df.copy()
        for c in fixed.columns[fixed.dtypes == object]:
            fixed[c] = fixed[c].astype("string")
        write_parquet(fixed, path)


def _stringify_ids(scores):
    return scores.assign(entity_id=scores["entity_id"].astype(str))


def _versions():
    out = {"python": platform.python_version()}
    for m in ("numpy", "pandas", "pyarrow", "duckdb", "ibis", "igraph", "leidenalg", "sklearn", "networkx"):
        try:
            out[m] = importlib.import_module(m).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is just not listed
            continue
    return out


class _scratch_dir:
    def __enter__(self):
        import tempfile

        self._d = tempfile.TemporaryDirectory(prefix="fraudkit-train-")
        return self._d.name

    def __exit__(self, *exc):
        self._d.cleanup()
