"""Stage 1 wiring: behaviour features -> rules -> supervised models -> one behaviour score.

:func:`run` computes the feature tables (:mod:`fraudkit.capability.features`,
:mod:`fraudkit.capability.sequences`, :mod:`fraudkit.capability.accumulators`), evaluates the rule
set (the context's ``rules``, default the built-in one) on every entity it has
rules for, fits the models on *separate* training data when
the context's ``train`` is given, and emits per-account scores with methods
``rules``, ``logistic``, ``boosting`` and the combined ``behaviour``.

Scores are in [0, 1]: models give probabilities, ``rules`` the aggregate rule
score as a fraction of the rule set's ``block`` threshold (1 = block; flagged
from the ``verify`` threshold). Combining: each method's score is mapped, rank-preservingly, so that its own
operating threshold lands at 0.5 (rules: the rule set's ``verify`` threshold;
models: the threshold validated for the target precision). ``behaviour`` is the
maximum of the mapped scores, so it flags an account exactly when at least one
method flags it, and its reason names that method. When validated models are
present, the rules join the combined flag at the rule set's ``block`` level
only (verify-level rule hits stay in the ``rules`` method): the models carry a
measured precision, a single verify-level rule does not.

Context fields (:class:`~fraudkit.pipeline.context.RunContext`)
---------------------------------------------------------------
``rules``: RuleSet, YAML path or ``"default"`` (default); ``False`` skips rules.
``lists``: ListStore or dict, for ``list(...)`` conditions (default: the dataset's ``list_entries``).
``train``: training data from a *different* dataset or an earlier window —
a ``(X, y)`` pair (X with ``account_id`` first), or a dict
``{"X": ..., "y": ...}``, or a Dataset / dict of tables carrying ``labels``
(features are then computed here). The evaluated dataset itself is refused.
``train_models``: the models already fitted on that training data (:func:`fit_models`; the pipeline fits them
once per run, or reuses an earlier run's); fitted here when None.
``target_precision`` (default 0.9), ``seed``, and ``behaviour``: overrides of :data:`DEFAULTS`
(``models``, ``max_reasons``, ``features``).

The feature tables (``account`` with the sequence features, ``device``, ``ip``, ``ip24``, ``phone``,
``address``, ``order``) are returned in :attr:`StageOutput.features
<fraudkit.pipeline.stages.StageOutput>`; the pipeline passes them on to the rules step and writes them
once (``RUN/features/<entity>.parquet``). With the context's ``parking`` on a large dataset
(:func:`~fraudkit.pipeline.frames.worth_parking`), the rule evaluation and every feature table but
``account`` are parked (in the context's ``features_folder``) once the rules are scored, before the models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudkit.capability.features import (
    account_behaviour,
    account_features_from_source,
    address_features_from_source,
    device_features_from_source,
    drop_event_tables,
    ip_features_from_source,
    order_features_from_source,
    phone_features_from_source,
    window_invariant,
)
from fraudkit.capability.lists import ListStore
from fraudkit.capability.sequences import drop_sessions, script_pairs_from_source, sequence_features_from_source
from fraudkit.data.dataset import Dataset, transform_engine
from fraudkit.data.sqlsource import open_source
from fraudkit.errors import FraudkitError
from fraudkit.identification.base import score_frame
from fraudkit.identification.models import BoostingScorer, LogisticScorer, labels_for, union_thresholds
from fraudkit.identification.rules import RuleSet, default_ruleset, load_ruleset
from fraudkit.pipeline.context import RunContext
from fraudkit.pipeline.frames import (
    FeatureTables,
    data_end,
    evaluate_rules,
    parked_if_large,
    release_memory,
    rule_frames,
    worth_parking,
)
from fraudkit.pipeline.progress import step
from fraudkit.pipeline.stages import StageOutput, empty_scores

__all__ = ["run", "build_features", "training_data", "fit_models", "combine_scores", "DEFAULTS"]

STAGE = "behaviour"
DEFAULTS = {"models": ("logistic", "boosting"), "max_reasons": 20000, "features": "window_invariant"}
"""Stage parameters; ``RunContext(behaviour={...})`` overrides them key by key. ``max_reasons``: model
reasons are computed for the flagged accounts with the highest scores, at most this many. ``features``:
the account columns the models fit on, ``"window_invariant"`` (every numeric column but the counts that grow
with the data window's length, :data:`fraudkit.capability.features.WINDOW_COUNTS`: their per-day rates,
shares and ratios stay, so models trained on a 14-day dataset score a 30-day one alike) or ``"all"``."""
_FEATURE_SETS = ("window_invariant", "all")
_SEQ = dict(session_gap="30min", fast_seconds=3.0, min_script_events=4, max_script_accounts=500,
            max_script_share=0.01)


def run(ds, *, context=None) -> StageOutput:
    """Run stage 1 on a dataset.

    Parameters
    ----------
    ds : Dataset or dict of str to DataFrame
    context : RunContext, optional
        Reads ``rules``, ``lists``, ``train``, ``target_precision``, ``seed`` (model validation splits and
        tree fitting) and ``behaviour``; see the module docstring.

    Returns
    -------
    StageOutput
        ``scores`` (account rows, methods rules / logistic / boosting /
        behaviour), ``artifacts`` (rule hits, order rules, model
        coefficients, script pairs), ``notes`` and ``features`` (the feature tables per entity).

    Examples
    --------
    >>> from fraudkit.pipeline.stages import behaviour
    >>> callable(behaviour.run)
    True
    """
    ctx = _context(context)
    params = ctx.parameters(STAGE, DEFAULTS)  # an unknown parameter or feature set is refused before any work
    if params["features"] not in _FEATURE_SETS:
        raise FraudkitError(f"unknown feature set {params['features']!r} in the behaviour stage's features "
                            f"parameter; use one of {', '.join(map(repr, _FEATURE_SETS))}")
    notes: list = []
    on = "Spark SQL" if transform_engine(ds) == "spark" else "DuckDB SQL"
    with step(ctx.progress, ctx.mode, f"behaviour features ({on})") as st:
        feats = build_features(ds, notes=notes, park=_park_pairs if ctx.parking else None)
        acc = feats["account"]
        st.rows(len(acc), "accounts")
    release_memory(ds)  # what the feature SQL's DuckDB kept, before the rules and the models allocate theirs
    if acc.empty:
        notes.append("skipped: the dataset has no accounts")
        return StageOutput(STAGE, empty_scores(), {}, notes)
    # one holder of the feature tables, which the rules' frames read and which may be parked (FeatureTables.park)
    features = FeatureTables({k: v for k, v in feats.items() if not k.startswith("_") and v is not None})
    lists, pairs = feats.get("_lists"), feats.get("_pairs")
    del feats  # the tables are the holder's: parking it lets them go
    ids = acc.account_id.to_numpy()
    methods = {}  # name -> (score, threshold, flagged, reasons)
    artifacts = {}
    if pairs is not None:
        artifacts["script_pairs"] = pairs

    if ctx.parking and worth_parking(features):
        # the rules read the order table a chunk at a time (from its file) and the account, device and IP tables
        # whole: the others wait on disk for the run's end (on large the order table alone is 2 GB)
        features.park(ctx.features_folder, keep=("account", "device", "ip"))
        release_memory(ds)
    with step(ctx.progress, ctx.mode, "rules (evaluated once for the run)") as st:
        evaluation = _evaluate_rules(ds, features, ctx, notes, lists=lists)
        st.rows(len(acc), "accounts")
    rules_block = np.inf
    if evaluation is not None:
        methods["rules"], extra, rules_block = _rule_scores(evaluation, acc, _ruleset(ctx))
        artifacts.update(extra)
    if ctx.parking and worth_parking(features, evaluation):
        # only the run's end reads them again: the models score the account table beside nothing else
        features.park(ctx.features_folder, keep=("account",))
        if evaluation is not None:
            evaluation.park(features=features)
        release_memory(ds)

    if ctx.train is None:
        notes.append("models skipped: no training data in the context's train (labels of a separate dataset or "
                     "an earlier window); rules only")
    else:
        _refuse_same(ds, ctx.train)
        fitted = ctx.train_models
        if fitted is None:
            with step(ctx.progress, ctx.mode, "behaviour models: fit on the training data") as st:
                X_tr, y_tr = ctx.train_features if ctx.train_features is not None else training_data(ctx.train)
                fitted = fit_models(X_tr, y_tr, context=ctx)
                st.rows(len(X_tr), "training accounts")
        with step(ctx.progress, ctx.mode, "behaviour models: score the accounts") as st:
            methods.update(_run_models(fitted, acc, context=ctx, notes=notes, artifacts=artifacts))
            st.rows(len(acc), "accounts")

    frames = [score_frame(ids, s, f, entity_type="account", stage=STAGE, method=m, reasons=r)
              for m, (s, _, f, r) in methods.items()]
    if methods:
        combo = dict(methods)
        if "rules" in combo and len(combo) > 1:
            # with validated models present, rules join the combined flag at their block level only
            sc, _, _, why_r = combo["rules"]
            block = rules_block
            combo["rules"] = (sc, block, sc >= block, why_r)
        comb, flag, why = combine_scores(combo)
        frames.append(score_frame(ids, comb, flag, entity_type="account", stage=STAGE, method=STAGE, reasons=why))
    scores = pd.concat(frames, ignore_index=True) if frames else empty_scores()
    return StageOutput(STAGE, scores, artifacts, notes, features, rules=evaluation)


def build_features(ds, *, as_of=None, notes=None, park=None) -> dict:
    """All stage-1 feature tables in one DuckDB session.

    Returns ``{"account": account+sequence features, "device", "ip", "ip24",
    "phone", "address", "order", "_pairs": script pairs}`` (the interaction frame rules read is
    :func:`fraudkit.pipeline.frames.rule_frames`'s); missing inputs give empty frames and a note. ``park``:
    called with the script pairs as soon as they are computed, what it returns is kept instead (a run that parks
    writes a large table to a file: on ``large`` 37 M pairs, 0.9 GB, read by nothing before the run's writing).

    Examples
    --------
    >>> from fraudkit.pipeline.stages.behaviour import build_features
    >>> callable(build_features)
    True
    """
    notes = [] if notes is None else notes
    with open_source(ds, as_of=as_of) as src:
        for name, what in (("devices", "environment features (emulator, root, parameter contradictions) skipped"),
                           ("orders", "commerce portrait and order features skipped"),
                           ("list_entries", "list hits are 0"), ("logins", "logins not used for sharing counts")):
            if not src.has(name):
                notes.append(f"no {name} table: {what}")
        if not src.has("interactions") or not src.has("accounts"):
            notes.append("skipped: stage 1 needs the accounts and interactions tables")
            return {"account": pd.DataFrame({"account_id": []})}
        # the source's own entity tables (.shared, not copies): nothing else holds them once it closes
        acc = account_features_from_source.shared(src)
        seq = sequence_features_from_source(src, **_SEQ)
        pairs = script_pairs_from_source(src, **_SEQ)
        pairs = pairs if park is None else park(pairs)
        drop_sessions(src, _SEQ["session_gap"])  # frees memory before the entity tables are built
        src.engine.release_memory()  # and hands it back (medium: 1.44 -> 0.93 GB resident)
        lists = src.df(f"SELECT * FROM {src.t.list_entries}") if src.has("list_entries") else None
        out = {"_lists": lists, "_ref": src.reference_time(),
               "account": acc.merge(seq, on="account_id", how="left", validate="one_to_one"),
               "device": device_features_from_source.shared(src),
               "ip": ip_features_from_source.shared(src, level="ip"),
               "ip24": ip_features_from_source.shared(src, level="ip24"), "phone": phone_features_from_source(src),
               "address": address_features_from_source.shared(src)}
        del seq
        drop_event_tables(src)  # the order features read the entity tables above and the orders
        src.engine.release_memory()
        out.update({"order": order_features_from_source(src, None), "_pairs": pairs})
    return out


def training_data(train):
    """Normalise the context's ``train`` to ``(X, y)`` (see the module docstring).

    Examples
    --------
    >>> import pandas as pd
    >>> X, y = training_data((pd.DataFrame({"account_id": [1, 2], "f": [0.1, 0.9]}), [0, 1]))
    >>> y.tolist()
    [0, 1]
    """

    if isinstance(train, tuple) and len(train) == 2:
        X, y = train
    elif isinstance(train, dict) and "X" in train:
        X, y = train["X"], train["y"]
    else:
        labels = train.get("labels") if isinstance(train, dict) else getattr(train, "labels", None)
        if labels is None:
            raise FraudkitError("the training data (RunContext.train) is a dataset without a labels table; "
                                "supervised models need labelled training accounts")
        X = account_behaviour(train)
        y, _ = labels_for(X.account_id, labels)
    y = np.asarray(y, dtype=int)
    if len(X) != len(y):
        raise FraudkitError(f"the training data (RunContext.train): X has {len(X)} rows but y has {len(y)}")
    return X, y


def combine_scores(methods: dict):
    """Max of threshold-aligned scores; flagged where any method flags.

    ``methods`` maps name -> ``(scores, threshold, flagged, reasons)``.
    Returns ``(score, flagged, reason)`` arrays.

    Examples
    --------
    >>> import numpy as np
    >>> s, f, r = combine_scores({"a": (np.array([0.2, 0.9]), 0.8, np.array([False, True]), None)})
    >>> f.tolist(), r.tolist()
    ([False, True], ['', 'a'])
    """
    names = list(methods)
    aligned = np.column_stack([_align(np.asarray(v[0], float), v[1]) for v in methods.values()])
    best = aligned.argmax(axis=1)
    score = aligned[np.arange(len(aligned)), best]
    flagged = np.column_stack([np.asarray(v[2], bool) for v in methods.values()]).any(axis=1)
    reason = np.where(flagged, np.asarray(names, dtype=object)[best], "")
    for k, (name, v) in enumerate(methods.items()):
        if v[3] is not None:
            r = np.asarray(v[3], dtype=object)
            sel = flagged & (best == k) & (r != "")
            reason[sel] = name + ": " + r[sel]
    return score, flagged, reason.astype(object)


# --- private ------------------------------------------------------------------


def _align(s, thr):
    """Piecewise-linear, order-preserving map putting ``thr`` at 0.5 (scores >= 0)."""
    s = np.clip(s, 0, None)
    if not np.isfinite(thr):
        return np.minimum(0.5 * s / max(s.max(initial=0) + 1e-12, 1e-12), 0.4999)
    hi = max(s.max(initial=0), thr) + 1e-12
    low = 0.5 * s / max(thr, 1e-12)
    high = 0.5 + 0.5 * (s - thr) / max(hi - thr, 1e-12)
    return np.where(s <= thr, np.minimum(low, 0.5), high)


def _park_pairs(frame):
    return parked_if_large(frame, "script_pairs")


def _context(context):
    if context is None:
        return RunContext()
    if not isinstance(context, RunContext):
        raise FraudkitError(f"context must be a RunContext, got {type(context).__name__}; "
                            "e.g. run(ds, context=RunContext(seed=0, train=train))")
    return context


def _ruleset(context):
    spec = context.rules
    if spec is False:
        return None
    if isinstance(spec, RuleSet):
        return spec
    return default_ruleset() if spec in (None, "default") else load_ruleset(spec)


def _evaluate_rules(ds, feats, context, notes, *, lists=None):
    """The run's one evaluation of the rule set on this stage's feature tables (None when rules are off); ``lists``:
    list entries for a store when the context has none."""
    rs = _ruleset(context)
    if rs is None:
        notes.append("rules skipped: the context's rules is False")
        return None
    data = ds if hasattr(ds, "table") else Dataset.from_tables(ds)
    lists = context.lists if context.lists is not None else ListStore(lists)
    return evaluate_rules(rs, rule_frames(data, rs, features=feats, stream=True), lists, as_of=data_end(data),
                          notes=notes)


def _rule_scores(evaluation, acc, rs):
    """Per account: the rule method's (score, threshold, flagged, reasons), artifacts and the block level.

    An account's rule score is its own plus the worst of its orders' and interactions'; scores are in
    [0, 1] like the models': the fraction of the rule set's block threshold reached.
    """
    ids = acc.account_id.to_numpy()
    score = np.zeros(len(acc))
    matched = pd.Series([""] * len(acc), index=ids, dtype=object)
    artifacts = {}
    for entity, (worst, pairs) in evaluation.rollups.items():
        if entity == "order":
            artifacts["order_rules"] = _order_rules(evaluation.results[entity])
        score += worst.reindex(ids).fillna(0.0).to_numpy()
        add = _matched_names(pairs).reindex(ids).fillna("")
        matched = matched.where(add.to_numpy() == "", matched + np.where(matched == "", "", ",") + add.to_numpy())
    if len(evaluation.hits):
        artifacts["rule_hits"] = evaluation.hits
    th = rs.threshold
    verify = th.get("verify", th.get("block", np.inf))
    block = th.get("block", verify)
    scale = block if np.isfinite(block) and block > 0 else max(score.max(initial=0), 1.0)
    return ((np.minimum(score / scale, 1.0), verify / scale, score >= verify, matched.to_numpy()), artifacts,
            min(block / scale, 1.0))


def _order_rules(res):
    """Per order: its rule score, action and matched rules (the ``order_rules`` artifact), read a chunk at a
    time from the run's one evaluation (:class:`fraudkit.pipeline.frames.EventRules`)."""
    return pd.concat([pd.DataFrame({"order_id": ev.order_id.to_numpy(), "account_id": ev.account_id.to_numpy(),
                                    "rule_score": r.rows.score.to_numpy(), "action": r.rows.action.to_numpy(),
                                    "matched": r.rows.matched.to_numpy()})
                      for ev, r in res.chunks(columns=["order_id", "account_id"])], ignore_index=True)


def _matched_names(per):
    """Per account, the sorted distinct rule ids it matched (comma-joined), without a Python call per account.

    ``per`` has the distinct (account, matched) strings of the rows that matched (the evaluation's rollup of
    23M interactions on ``large``), split here into one id per row.
    """
    hit = per.loc[per.matched != "", ["account_id", "matched"]].drop_duplicates()
    if hit.empty:
        return pd.Series([], dtype=object)
    ids = hit.assign(matched=hit.matched.str.split(",")).explode("matched").drop_duplicates()
    ids = ids.sort_values(["account_id", "matched"], kind="stable")
    return ids.groupby("account_id", sort=False).matched.agg(",".join)


def fit_models(X_tr, y_tr, *, context) -> dict:
    """The behaviour models of ``context``'s parameters, fitted on the training features ``(X_tr, y_tr)``.

    Each model validates its own threshold on a seeded hold-out of the training rows
    (:class:`~fraudkit.identification.models.LogisticScorer`,
    :class:`~fraudkit.identification.models.BoostingScorer`). What they learn depends on the training data,
    the seed, the target precision, the label frequency and the stage's ``models`` and ``features``
    parameters, never on the data scored: :func:`fraudkit.pipeline.score.score_dataset` fits them once and
    keeps them in ``RUN/training/`` for runs that reuse it (:mod:`fraudkit.pipeline.training`).

    Returns
    -------
    dict
        ``{model name: fitted scorer}`` in the order of the ``models`` parameter.
    """
    params = context.parameters(STAGE, DEFAULTS)
    if params["features"] == "window_invariant":
        X_tr = window_invariant(X_tr)  # the models then score by name: the counts in acc are not read
    models = {}
    for name in tuple(params["models"]):
        cls = {"logistic": LogisticScorer, "boosting": BoostingScorer}.get(name)
        if cls is None:
            raise FraudkitError(f"unknown model {name!r} in the behaviour stage's models parameter; use 'logistic' or 'boosting'")
        models[name] = cls(target_precision=context.target_precision, seed=context.seed,
                           label_frequency=context.label_frequency).fit(X_tr, y_tr)
    return models


def _run_models(models, acc, *, context, notes, artifacts):
    """Score ``acc`` with the fitted ``models`` (:func:`fit_models`) at their joint thresholds."""
    params = context.parameters(STAGE, DEFAULTS)
    prec = context.target_precision
    cap = int(params["max_reasons"])
    out = {}
    dropped = next(iter(models.values())).dropped_features_ if models else []
    if dropped:
        notes.append(f"models: {len(dropped)} feature(s) with no value in the training data dropped "
                     f"({', '.join(dropped[:8])}{' ...' if len(dropped) > 8 else ''})")
    # the stage flags where any model flags: the union, not each model alone, must reach the target precision
    joint = union_thresholds(models, target_precision=prec, label_frequency=context.label_frequency)
    if np.isfinite(joint["delta"]) and joint["delta"] > 0:
        notes.append(f"models: thresholds raised by {joint['delta']:.3f} log-odds so that their union reaches "
                     f"validation precision >= {prec} (union precision {joint['precision_before']:.3f} -> "
                     f"{joint['precision_after']:.3f})")
    elif joint["delta"] == np.inf:
        notes.append(f"models: no common threshold shift brings their union to validation precision {prec}; "
                     "each model keeps its own validated threshold")
    for name, model in models.items():
        thr = joint["thresholds"][name]
        s = model.decision_function(acc)
        flagged = s > thr
        reasons = np.full(len(acc), "", dtype=object)
        top = np.flatnonzero(flagged)
        top = top[np.argsort(-s[top], kind="stable")][:cap]
        if len(top):
            reasons[top] = model.reasons(acc.iloc[top], top=3).reason.to_numpy()
        if np.isinf(model.threshold_):
            notes.append(f"{name}: no threshold reached precision {prec} on validation; nothing flagged")
        notes.append(f"{name}: trained on {model.n_training_} accounts ({model.n_training_positive_} positive); threshold "
                     f"{thr:.4f} for validation precision >= {prec}")
        if name == "logistic":
            artifacts["logistic_coefficients"] = model.coef_
        out[name] = (s, thr, flagged, reasons)
    return out


def _refuse_same(ds, train):
    same = train is ds
    if not same:
        fp_a = getattr(ds, "fingerprint", None)
        fp_b = getattr(train, "fingerprint", None)
        same = fp_a is not None and fp_a == fp_b
    if same:
        raise FraudkitError("the training data (RunContext.train) is the dataset being scored; train on a separate dataset or an "
                            "earlier window (fraudkit.identification.models.time_split) so quality figures stay honest")
