"""``fraudkit score``: run the identification stages and write a run directory.

Wiring only; the logic lives in the stage modules, :mod:`fraudkit.identification.rules` and
:mod:`fraudkit.mitigation.decisions`. The run directory (built in a temporary sibling and
swapped in atomically)::

    RUN/manifest.json        parameters, stages, notes, operating point, package versions, data, timings
    RUN/features/<entity>.parquet
    RUN/scores.parquet       every stage's score table (SCORE_COLUMNS), rules included
    RUN/accounts.parquet     account_id, score_<stage>, flagged_<stage>, score_combined, flagged_combined
    RUN/decisions.parquet    per order and interaction: decision, layer, reasons, layer scores
    RUN/rules/hits.parquet   per rule: hits and hit rate per entity
    RUN/<stage>/*.parquet    stage artifacts

**Operating point** (:data:`OPERATING_POINT`). Each stage is read through its headline method
(``behaviour``, ``group``, ``graph``; the rule set's ``RuleSet``), whose flag is the union of the
stage's methods. Without ``train=``, a stage's flag is its own documented unsupervised default, except
the rule set, which counts at its ``block`` level (``verify`` asks for a verification; it is a
decision, not an identification: on the simulated data its precision is 0.70-0.82 against 0.98-1.0 at
``block``). With ``train=``, the training dataset is scored with the same stages and, for every method
of a stage, the lowest threshold reaching ``target_precision`` on the training labels is found; the
method then flags where its own flag *and* ``score > threshold`` hold: training only ever tightens the
unsupervised default, never loosens it (thresholds below a method's own, set in the sparse region of
sub-threshold scores, do not transfer between datasets: on demo-small seed 1 the group stage fell to
precision 0.43 that way). Methods the training pass does not produce (stage-1 models, which the
behaviour stage itself trains on ``train`` and validates at the same precision) keep their own flag.
The stage flags where any of its methods flags. ``flagged_combined`` is the union of the stage flags
(rules included); ``score_combined`` is the highest per-stage percentile rank, for ordering only. When
the training dataset is the scored one, its labelled accounts are listed in ``train_entities.parquet``
so evaluation leaves them out. The manifest records every threshold and where it came from.

Stages receive ``context`` (a dict): the caller's ``context=`` entries (e.g. ``graph`` / ``group``
parameter overrides, ``run_id``, ``now``), then ``seed``, ``rules`` (the RuleSet), ``lists``
(ListStore), ``seeds`` (the seed pool given with ``seeds=``, or None), ``target_precision``,
``features`` (``{entity: DataFrame}``, filled by the first stage that computes them), ``outputs``
(``{stage: StageOutput}`` of the stages already run), ``train`` (the training Dataset or None) and
``train_pass`` (True while the training dataset itself is scored to set the operating point; ``train`` is
then None). Supervised parts of a stage that train on ``train`` score the training dataset in that pass
out-of-fold, so thresholds are set on the scale the scored pass produces (the group stage's association
classifier); stage-1 models are not run in that pass and keep their own flag.
The seeds used are written to ``seeds.parquet`` and summarised in the manifest (count, source).
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

from fraudkit import __version__
from fraudkit.data.atomic import atomic_directory, write_parquet, write_text
from fraudkit.data.contract import STAGES, fraud_keys
from fraudkit.data.dataset import load_dataset
from fraudkit.errors import FraudkitError, MissingInputError
from fraudkit.identification.base import score_frame, threshold_for_precision
from fraudkit.identification.graph.propagation import SeedPool
from fraudkit.identification.rules import load_ruleset
from fraudkit.mitigation.decisions import decide
from fraudkit.pipeline.frames import feature_tables, list_store_for, missing_inputs, rule_frames
from fraudkit.pipeline.stages import empty_scores

__all__ = ["RunResult", "score_dataset", "TRAIN_PRECISION", "HEADLINE_METHODS", "RESERVED_CONTEXT"]

TRAIN_PRECISION = 0.9
"""Default precision each stage method's threshold must reach on the training dataset (``train=``)."""

HEADLINE_METHODS = {"behaviour": "behaviour", "group": "group", "graph": "graph", "rules": "RuleSet"}
"""The method that stands for each stage in ``accounts.parquet`` (its flag is the union of the stage's methods)."""

RESERVED_CONTEXT = ("seed", "rules", "lists", "seeds", "features", "outputs", "train", "train_pass",
                    "target_precision")
"""Context keys the pipeline sets itself; pass them as arguments of :func:`score_dataset`, not in ``context=``."""


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
                  decision_policy=None, seeds=None, context=None, target_precision=TRAIN_PRECISION) -> RunResult:
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
    seeds : SeedPool or pandas.DataFrame, optional
        Risk seeds for the graph stage's weak-label propagation (``context["seeds"]``): a
        :class:`~fraudkit.identification.graph.propagation.SeedPool` or a table with ``entity_id`` (or ``account_id``) and
        optionally ``entity_type``, ``source``, ``flagged``. Recorded in the manifest and in ``seeds.parquet``.
    context : dict, optional
        Extra entries for every stage's ``run(..., context=)``, e.g. ``{"graph": {"lp_alpha": 0.9}}``,
        ``run_id``, ``now``. Keys in :data:`RESERVED_CONTEXT` are refused (use the arguments).
    target_precision : float, default=0.9
        Precision each stage method's threshold must reach on ``train`` (ignored without ``train``).

    Returns
    -------
    RunResult
    """

    t0 = time.perf_counter()
    timings = {}
    user_context = _check_context(context)
    if not 0 < float(target_precision) <= 1:
        raise FraudkitError(f"target_precision must be in (0, 1], got {target_precision!r}")
    seed_info, seed_table = _describe_seeds(seeds)
    ds = data if hasattr(data, "table") else load_dataset(data)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise FraudkitError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    train_ds = None if train is None else (train if hasattr(train, "table") else load_dataset(train))
    store = lists if lists is not None else list_store_for(ds)
    notes: list = []
    ruleset = _rules_for(ds, load_ruleset(rules if rules is not None else "default"), notes)
    timings["load"] = time.perf_counter() - t0
    if seeds is not None and "graph" not in stages:
        notes.append("seeds given but the graph stage is not run: they are recorded, not used")
    with atomic_directory(out) as tmp:
        context = {**user_context, "seed": seed, "rules": ruleset, "lists": store, "seeds": seeds,
                   "target_precision": float(target_precision), "features": {}, "outputs": {}, "train": train_ds,
                   "train_pass": False}
        outputs = _run_stages(ds, stages, tmp, seed, context, notes, timings)
        t = time.perf_counter()
        feats = feature_tables(ds, context)
        frames = rule_frames(ds, ruleset, features=feats)
        # orders and interactions are decided on even when no rule of theirs is on
        frames |= {e: f for e, f in rule_frames(ds, ("order", "interaction"), features=feats).items()
                   if e not in frames}
        rule_out = _run_rules(ruleset, frames, store, notes, as_of=_data_end(ds))
        timings["rules"] = time.perf_counter() - t
        all_scores = [o.scores for o in outputs.values()] + [rule_out["scores"]]
        scores = pd.concat([s for s in all_scores if len(s)], ignore_index=True) if any(len(s) for s in all_scores) \
            else rule_out["scores"]
        operating = _operating_point(train_ds, stages, ruleset, seed, user_context, float(target_precision), notes)
        accounts = _accounts_table(ds, scores, operating, rule_out["results"].get("account"), frames.get("account"))
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
        if seed_table is not None:
            _write_frame(seed_table, tmp / "seeds.parquet")
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
                           "rules_version": ruleset.version, "train": None if train_ds is None else str(train_ds.path),
                           "target_precision": float(target_precision),
                           "context": {k: _jsonable(v) for k, v in user_context.items()}},
            "stages_run": list(ran), "notes": notes,
            "stage_notes": {st: list(o.notes) for st, o in outputs.items()},
            "data": {"path": str(Path(ds.path).resolve()) if ds.path is not None else None,
                     "fingerprint": ds.fingerprint},
            "train": None if train_ds is None else {"path": str(train_ds.path), "fingerprint": train_ds.fingerprint},
            "seeds": seed_info,
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










# --- private helpers ----------------------------------------------------------------------------


def _run_stages(ds, stages, tmp, seed, context, notes, timings):
    outputs = {}
    for stage in stages:
        t = time.perf_counter()
        try:
            mod = importlib.import_module(f"fraudkit.pipeline.stages.{stage}")
        except ModuleNotFoundError as e:
            if e.name == f"fraudkit.pipeline.stages.{stage}":
                notes.append(f"{stage}: skipped, fraudkit.pipeline.stages.{stage} is not installed")
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








def _run_rules(ruleset, frames, store, notes, *, as_of=None):

    results, hits, scores = {}, [], []
    for entity in ruleset.entities:
        frame = frames.get(entity)
        if frame is None or frame.empty:
            notes.append(f"rules: {entity} rules skipped (no {entity} rows)")
            continue
        # events look lists up at their own ts; entity tables (no ts) as of the data's end
        res = ruleset.evaluate(frame, lists=store, entity=entity, as_of=None if "ts" in frame.columns else as_of)
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


def _operating_point(train_ds, stages, ruleset, seed, user_context, precision, notes):
    """Per stage and method: the training threshold (or None: the method's own flag)."""
    base = {"target_precision": precision, "method": "flagged by any stage (rules count as a stage), each stage at "
                                                     "its own high-precision operating point",
            "headline_methods": dict(HEADLINE_METHODS),
            "score_combined": "max over stages of the per-stage percentile rank (ordering only)"}
    if train_ds is None:
        return {"thresholds": {}, "manifest": {
            **base, "source": "unsupervised defaults",
            "thresholds": "each stage's own unsupervised default (no labels of the scored data are read); "
                          "the rule set at its block level",
            "stages": {
            "behaviour": "the stage's own flag (its documented unsupervised default)",
            "group": "the stage's own flag (its documented unsupervised default)",
            "graph": "the stage's own flag (its documented unsupervised default)",
            "rules": f"rule-set action block (aggregate score >= {ruleset.threshold.get('block', 'n/a')} or a "
                     "block rule); verify-level hits are decisions, not identifications"}}}
    if train_ds.labels is None:
        raise FraudkitError(f"the training dataset {train_ds.path} has no labels table; train= needs labels; "
                            "fix: pass a labelled dataset (e.g. a simulated one) or drop train=")

    with _scratch_dir() as scratch:
        ctx = {**user_context, "seed": seed, "rules": ruleset, "lists": list_store_for(train_ds), "seeds": None,
               "target_precision": precision, "features": {}, "outputs": {}, "train": None, "train_pass": True}
        tr_notes: list = []
        outs = _run_stages(train_ds, stages, Path(scratch), seed, ctx, tr_notes, {})
        feats = feature_tables(train_ds, ctx)
        tr_rules = _run_rules(ruleset, rule_frames(train_ds, ruleset, features=feats), ctx["lists"], tr_notes,
                              as_of=_data_end(train_ds))
    tr_scores = pd.concat([o.scores for o in outs.values()] + [tr_rules["scores"]], ignore_index=True)
    tr_scores = tr_scores[tr_scores["entity_type"] == "account"]
    pos = fraud_keys(train_ds.labels, "account")
    thresholds = {}
    for (stage, method), g in tr_scores.groupby(["stage", "method"], sort=True):
        if method == HEADLINE_METHODS.get(stage) and stage != "rules":
            continue  # the headline flag is the union of the stage's methods, each tightened below
        per = g.assign(entity_id=g["entity_id"].astype(str)).groupby("entity_id")["score"].max()
        thresholds[(stage, method)] = threshold_for_precision(per.to_numpy(), per.index.isin(pos), precision)
    shown = ", ".join(f"{st}/{m} > {v:.4g}" for (st, m), v in thresholds.items())
    notes.append(f"operating point: per-method thresholds set on the training dataset at precision {precision:g}, "
                 f"applied on top of each method's own flag: {shown}")
    return {"thresholds": thresholds, "manifest": {
        **base, "source": f"training dataset {train_ds.path} (fingerprint {train_ds.fingerprint})",
        "threshold_source": f"training dataset {train_ds.path} (fingerprint {train_ds.fingerprint}), lowest "
                            f"threshold reaching precision {precision:g}, on top of each method's own flag",
        "rule": f"a method flags where its own flag holds and its score exceeds the lowest threshold reaching "
                f"precision {precision:g} on the training labels (null: no threshold reaches it, never flags); "
                "methods absent from the training pass (stage-1 models trained on the training dataset and "
                "validated at the same precision) keep their own flag; a stage flags where any method does",
        "thresholds": {f"{st}/{m}": (None if not np.isfinite(v) else float(v)) for (st, m), v in thresholds.items()}}}


def _accounts_table(ds, scores, operating, rule_result=None, rule_frame=None):
    acc_ids = ds.to_pandas("accounts", columns=["account_id"])["account_id"]
    out = pd.DataFrame({"account_id": acc_ids.astype(str).to_numpy()})
    s = scores[scores["entity_type"] == "account"]
    s = s.assign(entity_id=s["entity_id"].astype(str))
    ranks = []
    any_flag = np.zeros(len(out), dtype=bool)
    th = operating["thresholds"]
    trained = operating["manifest"].get("source") != "unsupervised defaults"
    for stage in [st for st in (*STAGES, "rules") if st in set(s["stage"])]:
        g = s[s["stage"] == stage]
        head = HEADLINE_METHODS.get(stage)
        methods = sorted(set(g["method"]))
        score = _per_account(g[g["method"] == head] if head in methods else g, out["account_id"])[0]
        if not trained:
            if stage == "rules":
                flagged = _rules_block(rule_result, rule_frame, out["account_id"])
            else:
                flagged = _per_account(g[g["method"] == head] if head in methods else g, out["account_id"])[1]
        else:
            base = [m for m in methods if m != head] or methods
            flagged = np.zeros(len(out), dtype=bool)
            for m in base:
                sc, own = _per_account(g[g["method"] == m], out["account_id"])
                t = th.get((stage, m))
                flagged |= own if t is None else own & (np.nan_to_num(sc, nan=-np.inf) > t)
        out[f"score_{stage}"] = score
        out[f"flagged_{stage}"] = flagged
        any_flag |= flagged
        ranks.append(pd.Series(score).rank(pct=True).fillna(0).to_numpy())
    out["score_combined"] = np.max(ranks, axis=0) if ranks else 0.0
    out["flagged_combined"] = any_flag
    return out


def _per_account(g, account_ids):
    """Max score and any-flag per account, aligned to ``account_ids`` (NaN / False where absent)."""
    agg = g.groupby("entity_id").agg(score=("score", "max"), flagged=("flagged", "any"))
    idx = agg.index.get_indexer(account_ids)
    found = idx >= 0
    pick = np.where(found, idx, 0)
    score = np.where(found, agg["score"].to_numpy()[pick] if len(agg) else np.nan, np.nan)
    flagged = found & (agg["flagged"].to_numpy(dtype=bool)[pick] if len(agg) else False)
    return score, flagged


def _rules_block(rule_result, frame, account_ids):
    if rule_result is None or frame is None:
        return np.zeros(len(account_ids), dtype=bool)
    block = frame["account_id"].astype(str)[(rule_result.rows["action"] == "block").to_numpy()]
    return account_ids.isin(set(block)).to_numpy()


def _decisions(frames, rule_results, accounts, store, policy, notes):

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


def _rules_for(ds, ruleset, notes):
    """The rule set with the rules whose inputs the dataset lacks switched off (said in the notes)."""
    rs, off = ruleset.for_inputs(missing_inputs(ds))
    for rid, why in off.items():
        notes.append(f"rules: {rid} switched off, the dataset lacks {', '.join(why)}")
    return rs


def _check_context(context):
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise FraudkitError(f"context must be a dict of stage context entries, got {type(context).__name__}; "
                            'e.g. context={"graph": {"lp_alpha": 0.9}}')
    bad = sorted(set(context) & set(RESERVED_CONTEXT))
    if bad:
        raise FraudkitError(f"context key(s) {', '.join(bad)} are set by the pipeline; pass them as arguments of "
                            "score_dataset (seeds=, train=, lists=, rules=, seed=, target_precision=)")
    return dict(context)


def _describe_seeds(seeds):
    """Manifest entry and the table written to ``seeds.parquet`` for the seeds given."""
    if seeds is None:
        return {"count": 0, "n_entities": 0, "source": None}, None

    if isinstance(seeds, SeedPool):
        t, kind = seeds.table, "SeedPool"
    elif isinstance(seeds, pd.DataFrame):
        t, kind = seeds, "DataFrame"
        if "entity_id" not in t.columns and "account_id" not in t.columns:
            raise FraudkitError("seeds: a seed table needs an entity_id (or account_id) column; columns: "
                                f"{', '.join(map(str, t.columns)) or 'none'}; e.g. SeedPool.load('seed_pool.parquet')")
        if "entity_id" not in t.columns:
            t = t.rename(columns={"account_id": "entity_id"}).assign(entity_type="account")
    else:
        raise FraudkitError(f"seeds must be a SeedPool or a DataFrame, got {type(seeds).__name__}; "
                            "wrap account keys as pd.DataFrame({'account_id': keys})")
    et = t["entity_type"].astype(str) if "entity_type" in t.columns else pd.Series("account", index=t.index)
    if "flagged" in t.columns:  # a score table: its flagged rows are the seeds (as the graph stage reads it)
        t = t[t["flagged"].astype(bool)]
        et = et.loc[t.index]
    info = {"count": int((et == "account").sum()), "n_entities": int(len(t)), "source": kind,
            "by_entity_type": {str(k): int(v) for k, v in et.value_counts().sort_index().items()}}
    if "source" in t.columns:
        info["by_source"] = {str(k): int(v) for k, v in t["source"].astype(str).value_counts().sort_index().items()}
    return info, t.assign(entity_id=t["entity_id"].astype(str)).reset_index(drop=True)


def _data_end(ds):
    """The last event time of the dataset (lists are checked as of it for entity tables); None without events."""
    ends = []
    for name in ("interactions", "orders", "logins", "coupon_claims"):
        if ds.has(name):
            v = ds.sql(f"select max(ts) as t from {name}")["t"].iloc[0] if hasattr(ds, "sql") else None
            if v is not None and not pd.isna(v):
                ends.append(pd.Timestamp(v))
    return max(ends) + pd.Timedelta(microseconds=1) if ends else None


def _jsonable(v):
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return repr(v) if len(repr(v)) < 200 else type(v).__name__


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
