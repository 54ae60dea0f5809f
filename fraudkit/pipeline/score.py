"""``fraudkit score``: run the identification stages and write a run directory.

Wiring only; the logic lives in the stage modules (:data:`STAGE_MODULES`), :mod:`fraudkit.identification.rules`,
:mod:`fraudkit.pipeline.operating_point` and :mod:`fraudkit.mitigation.decisions`. The run directory (built in
a temporary sibling and swapped in atomically)::

    RUN/manifest.json        parameters, stages, notes, operating point, package versions, data, timings
    RUN/features/<entity>.parquet
    RUN/scores.parquet       every stage's score table (SCORE_COLUMNS), rules included
    RUN/accounts.parquet     account_id, score_<stage>, flagged_<stage>, score_combined, flagged_combined
    RUN/decisions.parquet    per order and interaction: decision, layer, reasons, layer scores
    RUN/rules/hits.parquet   per rule: hits and hit rate per entity
    RUN/lists/list_weights.parquet     per list entry in force: accounts using its resource, how many look
                             honest, how widely shared, weight, whether it acts (WEIGHT_COLUMNS of
                             fraudkit.capability.lists)
    RUN/lists/list_collateral.parquet  per list: entries, accounts touched, of which look honest / unknown,
                             entries suspended, accounts still touched (COLLATERAL_COLUMNS)
    RUN/<stage>/*.parquet    stage artifacts (a stage's ``timings`` go to the manifest's ``stage_timings``:
                             no wall-clock value is written outside the manifest)
    RUN/training/            with ``train``: what the run learned from the training dataset (reused by
                             ``reuse=``, see :mod:`fraudkit.pipeline.training`)
    RUN/seed_pool.parquet    the seed pool the run was given (``seed_pool=``); the graph stage's updated
                             pool is ``RUN/graph/seed_pool.parquet``

One run, step by step: a frozen :class:`~fraudkit.pipeline.context.RunContext` carries the seed, the rule set,
the lists, the seed pool, the training data, the target precision and each stage's parameters; each stage
reads it and returns a :class:`~fraudkit.pipeline.stages.StageOutput`; the feature tables the behaviour stage
returns are passed on with :func:`dataclasses.replace` (computed here when it does not run); the rule set is
evaluated on them; the operating point (:mod:`fraudkit.pipeline.operating_point`) turns the scores into
``accounts.parquet``; the layered decision decides every order and interaction.

**Operating point.** Without ``train=``, each stage's own unsupervised default (the rule set at its ``block``
level). With ``train=``, the training dataset is scored by the same stages in a second pass (the context's
``mode="train"``: supervised parts that can, the group stage's association classifier, score it out-of-fold,
so thresholds are set on the scale the scored pass produces; stage-1 models are not fitted in it and keep their
own flag), and every method's threshold is tightened to ``target_precision`` on its labels. When the training
dataset is the scored one, its labelled accounts are listed in ``train_entities.parquet`` so evaluation leaves
them out. The manifest records every threshold and where it came from.
"""

from __future__ import annotations

import importlib
import json
import platform
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from fraudkit import __version__
from fraudkit.capability.lists import weigh_lists
from fraudkit.data.atomic import ParquetStream, atomic_directory, check_output, write_parquet, write_text
from fraudkit.data.contract import EVENT_TABLES, STAGES
from fraudkit.data.dataset import load_dataset
from fraudkit.data.engine import open_engine, quote
from fraudkit.errors import FraudkitError, MissingInputError
from fraudkit.identification.graph.propagation import SeedPool
from fraudkit.identification.rules import load_ruleset
from fraudkit.mitigation.decisions import AccountScores, Coded, decision_columns
from fraudkit.pipeline.context import STAGE_PARAMETERS, RunContext
from fraudkit.pipeline.frames import (
    EVENT_CHUNK,
    EventFrame,
    EventRules,
    FeatureTables,
    ParkedTable,
    arrow_text,
    data_end,
    evaluate_rules,
    feature_tables,
    list_store_for,
    missing_inputs,
    parking_folder,
    release_memory,
    rule_frames,
    worth_parking,
)
from fraudkit.pipeline.operating_point import (
    HEADLINE_METHODS,
    TRAIN_PRECISION,
    accounts_table,
    fit_operating_point,
    unsupervised_operating_point,
)
from fraudkit.identification.pu import estimate_label_frequency
from fraudkit.pipeline.own_labels import (
    MIN_FRAUD_TO_TRAIN,
    OwnLabels,
    heldout_check,
    own_seeds,
    own_training_dataset,
)
from fraudkit.pipeline.progress import step
from fraudkit.pipeline.resolution import resolve_entities
from fraudkit.pipeline.stages import behaviour, empty_scores, graph, group
from fraudkit.pipeline.stages.behaviour import fit_models, training_data
from fraudkit.pipeline.stages.group import training_groups
from fraudkit.pipeline.training import TRAINING_DIR, Training, load_training, training_key, write_training
from fraudkit.pipeline.turns import alongside

__all__ = ["RunResult", "TrainingEngine", "score_dataset", "training_engine", "STAGE_MODULES", "TRAIN_PRECISION",
           "HEADLINE_METHODS", "DECISION_CHUNK", "LOCAL_TRAIN_BYTES", "SIDE_BY_SIDE_EVENTS",
           "SIDE_BY_SIDE_ORDERS"]

LOCAL_TRAIN_BYTES = 1 << 30
"""With ``engine="spark"``, a training dataset whose files hold at most this many bytes is loaded on DuckDB (see
:func:`training_engine`)."""

DECISION_CHUNK = EVENT_CHUNK
"""Events decided (and written) at a time: the decisions of a large world never sit in memory together (the
rules are evaluated :data:`fraudkit.pipeline.frames.EVENT_CHUNK` events at a time)."""

SIDE_BY_SIDE_EVENTS = 5_000_000
"""By default (``side_by_side=None``) the group and graph stages run side by side on DuckDB when the scored
dataset holds at most this many events (interactions, logins, orders and coupon claims), one after the other
above. Measured (``benchmarks/end_to_end.md``): on ``medium`` (3.76M events) 87 s against 92 s at the same peak
(medians of four runs each, alternated; 2.15-2.27 GB both), on ``demo-small`` within the spread (24-25 s); on
``large`` (38.0M events) 973 s against 1,031 s, but 12.5 GB peak against 7.8 GB, beyond the 8 GB a run of that
size is held to."""

SIDE_BY_SIDE_ORDERS = 500_000
"""And at most this many orders: the graph stage's R(A,B) view grows with them (``medium``'s 242k orders made 1.7M
edges, ``large``'s 2.37M made 16.0M), so data of few events but many orders runs the stages one after the other."""

STAGE_MODULES = {"behaviour": behaviour, "group": group, "graph": graph}
"""The module of each identification stage, in :data:`fraudkit.data.contract.STAGES` order; each exposes
``run(ds, *, context) -> StageOutput``."""


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


@dataclass(frozen=True)
class TrainingEngine:
    """Where :func:`training_engine` puts a training dataset: ``engine`` and why (``note``, None: the run's)."""

    engine: str
    note: str | None = None


def training_engine(train, engine: str, choice: str = "auto") -> TrainingEngine:
    """Where a training dataset given as a path is loaded and transformed.

    A training dataset is a labelled sample (a simulated world, a month of reviewed accounts): with
    ``engine="spark"`` and ``choice="auto"``, one whose files hold at most :data:`LOCAL_TRAIN_BYTES` runs on
    embedded DuckDB, where the same SQL reads it in seconds, while Spark's per-job latency costs minutes on a
    small table (the 6,390-account training world: 433 s of the 100 k-account world's run on ``local[1]``,
    ``benchmarks/engines.md``). The features are those of the same SQL on either engine (the parity tests), so
    the operating point is the same.

    Parameters
    ----------
    train : path
    engine : {"duckdb", "spark"}
        The run's engine.
    choice : {"auto", "duckdb", "spark"}, default="auto"

    Returns
    -------
    TrainingEngine

    Raises
    ------
    FraudkitError
        ``choice`` is not one of the three, or ``"spark"`` without ``engine="spark"``.

    Examples
    --------
    >>> training_engine("no/such/folder", "duckdb")
    TrainingEngine(engine='duckdb', note=None)
    >>> training_engine("no/such/folder", "spark", "duckdb").engine
    'duckdb'
    """
    if choice not in ("auto", "duckdb", "spark"):
        raise FraudkitError(f"train_engine must be auto, duckdb or spark, got {choice!r}")
    if choice == "spark" and engine != "spark":
        raise FraudkitError("--train-engine spark goes with --engine spark")
    if engine == "duckdb" or choice == "spark":
        return TrainingEngine(engine)
    if choice == "duckdb":
        return TrainingEngine("duckdb", "training data loaded and transformed on DuckDB (--train-engine duckdb)")
    p = Path(train)
    files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else []
    size = sum(f.stat().st_size for f in files)
    if not files or size > LOCAL_TRAIN_BYTES:
        return TrainingEngine(engine)
    return TrainingEngine("duckdb", f"training data loaded and transformed on DuckDB: its files hold "
                                    f"{size / 2**20:,.1f} MiB, at most {LOCAL_TRAIN_BYTES >> 20:,} MiB "
                                    "(--train-engine spark keeps it on Spark)")


def score_dataset(data, out, *, stages=STAGES, rules=None, seed=0, train=None, lists=None, decision_policy=None,
                  seed_pool=None, params=None, run_id=None, now=None,
                  target_precision=TRAIN_PRECISION, force=False, progress=None, reuse=None,
                  decide_from=None, labels=None, list_min_weight=0.5, write_features=True, engine="duckdb",
                  spark_master=None, spark_config=None, write_event_scores=True, train_engine="auto",
                  side_by_side=None) -> RunResult:
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
        Randomness of every stage: the same seed gives the same run.
    train : path or Dataset, optional
        A labelled dataset used to fix each stage's threshold (and passed to stages for supervised models).
    lists : ListStore, optional
        Default: the dataset's ``list_entries`` table. Weighted by how its resources are shared and used in the
        data before rules and decisions read it (:func:`fraudkit.capability.lists.weigh_lists`): entries below
        ``list_min_weight`` are suspended; ``RUN/lists/list_weights.parquet`` and ``list_collateral.parquet``
        say which and what every list would touch.
    list_min_weight : float, default=0.5
        0 trusts every entry as listed.
    decision_policy : DecisionPolicy, optional
    seed_pool : SeedPool or pandas.DataFrame, optional
        The risk seed pool for the graph stage's weak-label propagation: a
        :class:`~fraudkit.identification.graph.propagation.SeedPool` or a table with ``entity_id`` (or
        ``account_id``) and optionally ``entity_type``, ``source``, ``flagged``. Recorded in the manifest
        (``seed_pool``) and in ``seed_pool.parquet``.
    params : dict, optional
        Stage parameter overrides by stage, e.g. ``{"graph": {"lp_alpha": 0.9}}`` (keys of each stage
        module's ``DEFAULTS``).
    run_id : str, optional
        Recorded in the seed pool the graph stage writes.
    now : timestamp-like, optional
        When the run sees the data (the seed pool's ``first_seen``/``last_seen``); default the data's end (its
        last event), never the wall clock, so the same data and parameters give the same outputs.
    target_precision : float, default=0.9
        Precision each stage method's threshold must reach on ``train`` (ignored without ``train``).
    force : bool, default=False
        Replace ``out`` even when it holds files fraudkit did not write. Without it, ``out`` must be new, empty
        or an earlier run; it may never be (or be inside, or contain) the data, the training data or the rules.
    progress : fraudkit.pipeline.progress.Progress, optional
        Reports every step (load, each stage and its steps, rules, the training pass, decisions, write) with its
        size and seconds; None reports nothing.
    reuse : path, optional
        An earlier run directory scored with the same training dataset: what it learned from it
        (``RUN/training/``: the training pass's scores, the models' training features, the fitted models and
        the association classifier's training groups, see :mod:`fraudkit.pipeline.training`) is reused when it was made with the same training data, stages, seed,
        rules and parameters, instead of being recomputed; the results are the same. Every run with ``train``
        writes its own ``training/`` folder.
    decide_from : timestamp-like, optional
        Decide only the events at or after this time (the closed loop decides one window at a time); the rules
        are evaluated on every event as always (so every event's features see its whole history) and the
        window's rows are taken from that one evaluation; accounts, devices and IPs are scored on all the data. Not with a delayed-interception policy (whose
        decisions depend on an account's earlier events). Default: every event.
    labels : OwnLabels or path, optional
        The analyst's own labels instead of ``train``: the models are fitted and the operating point is set on
        the data's earlier part with the verdicts known then, and the later verdicts check the run
        (:mod:`fraudkit.pipeline.own_labels`; ``RUN/manifest.json``'s ``own_labels``).
    write_features : bool, default=True
        Write ``RUN/features/``; False for a caller that reads only the scores, accounts and decisions (the
        closed loop's runs, one per window).
    write_event_scores : bool, default=True
        Write the rules' rows of every order and interaction to ``RUN/scores.parquet``; False for a caller that
        reads only the stages' rows of it (the closed loop's runs: the events' outcome is ``decisions.parquet``).
    engine : {"duckdb", "spark"}, default="duckdb"
        Where the table transforms run when ``data`` (and ``train``, see ``train_engine``) are paths:
        ``"spark"`` loads and validates the data, resolves its entities and runs the behaviour stage's feature
        SQL, the group stage's SQL, the graph stage's edge SQL, communities and label propagation on Spark (the
        same SQL, transpiled; :mod:`fraudkit.data.engine`); rules, decisions, models and the rest of the
        in-memory graph work read a local DuckDB copy of the resolved tables
        (:meth:`~fraudkit.data.dataset.Dataset.to_local`). A Dataset passed in keeps its own engine.
    spark_master : str, optional
        With ``engine="spark"``: the master URL (default a local session, ``local[2]``).
    spark_config : dict, optional
        With ``engine="spark"``: further settings of the session started for the run
        (``{"spark.driver.memory": "6g"}``; :func:`~fraudkit.data.engine.spark_session`).
    train_engine : {"auto", "duckdb", "spark"}, default="auto"
        Where the transforms of ``train`` (a path) run: ``"auto"`` keeps a small training dataset on DuckDB
        when ``engine="spark"`` (:func:`training_engine`; the manifest's ``train_engine`` and a note say which).
    side_by_side : bool or None, default=None
        Run the group and graph stages side by side in two threads, on DuckDB (``fraudkit score
        --side-by-side``): the same outputs, sooner on two cores or more, with both stages' memory at once
        (:class:`~fraudkit.pipeline.context.RunContext`). ``False`` (``--one-after-the-other``): one after the
        other. ``None``: side by side when the data holds at most :data:`SIDE_BY_SIDE_EVENTS` events and
        :data:`SIDE_BY_SIDE_ORDERS` orders.

    Returns
    -------
    RunResult

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> from fraudkit.data.dataset import Dataset
    >>> acc = pd.DataFrame({"account_id": [1, 2], "registered_at": pd.to_datetime(["2024-01-01"] * 2),
    ...                     "register_channel": "app", "phone": None})
    >>> it = pd.DataFrame({"event_id": [1], "ts": pd.to_datetime(["2024-01-02 10:00"]), "account_id": [1],
    ...                    "device_id": ["d1"], "ip": ["1.2.3.4"], "action": ["like"], "target_id": [9]})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     res = score_dataset(Dataset.from_tables({"accounts": acc, "interactions": it}), f"{d}/run", stages=())
    >>> res.stages, res.n_accounts, res.n_decisions
    ((), 2, {'interaction': {'pass': 1}})
    """

    if labels is not None and train is not None:
        raise FraudkitError("pass either train= (a labelled training dataset, e.g. a simulated world) or labels= "
                            "(your own labels), not both")
    own = labels if labels is None or isinstance(labels, OwnLabels) else OwnLabels.of(labels)
    inputs = [getattr(x, "path", None) if hasattr(x, "table") else x for x in (data, train)]
    inputs += [own.path] if own is not None else []
    inputs += [rules] if isinstance(rules, (str, Path)) and str(rules) != "default" else []
    check_output(out, kind="run", inputs=inputs, force=force)  # before any work: refuse early
    t0 = time.perf_counter()
    timings = {}
    context = RunContext(seed=seed, seed_pool=seed_pool, target_precision=float(target_precision), run_id=run_id,
                         now=now, progress=progress, side_by_side=side_by_side, **_stage_params(params))
    seed_info, seed_table = _describe_seed_pool(seed_pool)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise FraudkitError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    with step(progress, "score", "load and validate the data" + (" and the training data" if train is not None
                                                                  else "")) as st:
        eng = None if engine == "duckdb" else open_engine(engine, master=spark_master, config=spark_config)
        on = f" on {engine}" if engine != "duckdb" else ""
        if not hasattr(data, "table"):
            with step(progress, "score", f"load and validate: the data{on}"):
                ds = load_dataset(data, engine=eng or engine)
        else:
            ds = data
        train_ds = train
        notes: list = []
        if train is not None and not hasattr(train, "table"):
            placed = training_engine(train, engine, train_engine)
            where = placed.engine
            if placed.note:
                notes.append(placed.note)
            with step(progress, "score", "load and validate: the training data"
                      + (f" on {where}" if where != "duckdb" or engine != "duckdb" else "")):
                train_ds = load_dataset(train, engine=(eng or engine) if where == engine else where)
        # one key per real address and phone for every consumer (fraudkit.pipeline.resolution); on Spark the
        # in-memory steps then read a local copy, the feature SQL still runs on Spark (Dataset.to_local)
        with step(progress, "score", "load and validate: entity resolution (addresses, phones)"):
            ds = resolve_entities(ds, notes=notes)
            train_ds = None if train_ds is None else resolve_entities(train_ds)
        if ds.engine.name != "duckdb" or (train_ds is not None and train_ds.engine.name != "duckdb"):
            with step(progress, "score", "load and validate: local copy of the tables for the in-memory steps"):
                ds = ds.to_local()
                train_ds = None if train_ds is None else train_ds.to_local()
        with step(progress, "score", "load and validate: list weights (how widely listed resources are shared)"):
            weighted = weigh_lists(lists if lists is not None else list_store_for(ds), ds,
                                   min_weight=list_min_weight)
        store = weighted.store
        if len(weighted.weights) and not weighted.weights["acts"].all():
            notes.append(f"lists: {int((~weighted.weights['acts']).sum())} of {len(weighted.weights)} entries "
                         "suspended: widely shared, honestly used resources (lists/list_weights.parquet)")
        ruleset = _rules_for(ds, load_ruleset(rules if rules is not None else "default"), notes)
        end = data_end(ds)
        if own is not None:
            train_ds, own_known, own_verdicts = own_training_dataset(ds, own, end=end)
            n_fraud = int((own_known["label"] == "fraud").sum())
            notes.append(f"training: {own.describe()}: {n_fraud} fraud and "
                         f"{int((own_known['label'] == 'honest').sum())} honest verdicts; accounts without a "
                         "verdict count as honest (positive-unlabelled)")
            seed_pool = _with_seeds(seed_pool, own_seeds(own_known), seen_at=own.train_until or end)
            seed_info, seed_table = _describe_seed_pool(seed_pool)
            context = replace(context, seed_pool=seed_pool)
            notes.append(f"own labels: the {n_fraud} fraud verdicts seed the graph stage's propagation")
            if n_fraud < MIN_FRAUD_TO_TRAIN:
                notes.append(f"own labels: {n_fraud} fraud verdicts are too few to fit models and set thresholds on "
                             f"(at least {MIN_FRAUD_TO_TRAIN}): each method keeps its unsupervised flag")
                train_ds = None
        context = replace(context, rules=ruleset, lists=store, train=train_ds, now=end if now is None else now)
        account_ids = ds.to_pandas("accounts", columns=["account_id"])["account_id"]
        st.rows(len(account_ids), "accounts")
    timings["load"] = time.perf_counter() - t0
    learned = Training()
    if train_ds is not None:
        if own is not None and own.label_coverage is not None:
            context = replace(context, label_frequency=own.label_coverage)  # part of the training key
        key = training_key(train_ds, stages=stages, context=context)
        learned = load_training(reuse, key)
        notes.extend(f"training: {p}" for p in learned.problems)
        if learned.source is not None:
            notes.append(f"training: reused from the run {learned.source} (same training data"
                         + (", stages, seed, rules and parameters): the training pass was not repeated"
                               if learned.scores is not None else "): the models' training features"))
        separate = train_ds.labels is not None and train_ds.fingerprint != ds.fingerprint
        if (learned.features is None and "behaviour" in stages and separate and ds.has("interactions")
                and ds.has("accounts")):
            t = time.perf_counter()
            with step(progress, "score", "behaviour models: training features of the training data") as st:
                learned = replace(learned, features=training_data(train_ds))
                st.rows(len(learned.features[0]), "training accounts")
            timings["train_features"] = time.perf_counter() - t
        context = replace(context, train_features=learned.features)
        if own is not None:
            context = replace(context, label_frequency=_label_frequency(own, train_ds, learned, context, notes))
        if learned.models is None and learned.features is not None and "behaviour" in stages and separate:
            t = time.perf_counter()
            with step(progress, "score", "behaviour models: fit on the training data") as st:
                try:
                    learned = replace(learned, models=fit_models(*learned.features, context=context))
                    st.rows(len(learned.features[0]), "training accounts")
                except MissingInputError:
                    pass  # the behaviour stage meets the same and is skipped with it in its notes
            timings["train_models"] = time.perf_counter() - t
        if learned.groups is None and "group" in stages and separate:
            t = time.perf_counter()
            with step(progress, "score", "association classifier: labelled groups of the training data") as st:
                try:
                    learned = replace(learned, groups=training_groups(train_ds, context))
                    st.rows(len(learned.groups), "groups")
                except MissingInputError:
                    pass  # the group stage meets the same and says so in its notes
            timings["train_groups"] = time.perf_counter() - t
        context = replace(context, train_models=learned.models, train_groups=learned.groups)
    if seed_pool is not None and "graph" not in stages:
        notes.append("seed pool given but the graph stage is not run: it is recorded, not used")
    with atomic_directory(out, kind="run", inputs=inputs, force=force) as tmp:
        context, outputs = _run_stages(ds, stages, context, notes, timings, run_folder=tmp,
                                       write_features=write_features)
        t = time.perf_counter()
        with step(progress, "score", "rules on every entity") as st:
            feats = feature_tables(ds, context.features)
            rule_out = _rule_evaluation(ds, ruleset, outputs, feats, store, notes)
            # orders and interactions are decided on even when no rule of theirs is on
            frames, results = dict(rule_out.frames), dict(rule_out.results)
            undecided = tuple(e for e in ("order", "interaction") if e not in frames)
            if undecided:
                frames |= rule_frames(ds, undecided, features=feats, stream=True)
            if decide_from is not None and decision_policy is not None and getattr(decision_policy, "delayed", False):
                raise FraudkitError("decide_from= cannot be used with a delayed-interception policy: a deferred "
                                    "decision depends on the account's earlier events; drop decide_from or the delay")
            st.rows(sum(len(f) for e, f in frames.items() if e in results), "rows")
        timings["rules"] = time.perf_counter() - t
        # the score table: every stage's rows, then the rules' per entity (interactions kept as Arrow text)
        stage_scores = [_read_back(o.scores) for o in outputs.values()]
        outputs = {k: replace(o, scores=s) for (k, o), s in zip(outputs.items(), stage_scores)}
        score_parts = stage_scores + [
            p for p in (rule_out.parts or [rule_out.scores]) if write_event_scores or not isinstance(p, EventRules)]
        all_scores = stage_scores + [rule_out.scores]
        all_scores = [s for s in all_scores if s is not None and len(s)]  # read in parts, never concatenated
        t = time.perf_counter()
        train_timings: dict = {}
        operating, tr_scores = _operating_point(train_ds, stages, context, notes, reused=learned.scores,
                                                timings=train_timings)
        if train_ds is not None:
            timings["train"] = time.perf_counter() - t
        with step(progress, "score", "the account table: every stage's scores per account") as st:
            accounts = accounts_table(account_ids, all_scores or [empty_scores()], operating,
                                      rule_result=results.get("account"), rule_frame=rule_out.frame("account"))
            st.rows(sum(len(s) for s in all_scores), "score rows")
        del all_scores
        t = time.perf_counter()
        with step(progress, "score", "decisions") as st:
            n_dec, n_decisions = _decisions(frames, results, accounts, store, decision_policy, notes,
                                            tmp / "decisions.parquet", start=decide_from)
            st.rows(n_decisions, "orders and interactions")
        # the per-event frames are not read again; the rule results only for the score table
        rule_hits = rule_out.hits
        extra_frames = [f for e, f in frames.items() if e in undecided]
        frames = results = None
        outputs = {k: replace(o, rules=None) for k, o in outputs.items()}
        timings["decisions"] = time.perf_counter() - t
        t = time.perf_counter()
        with step(progress, "score", "write the run directory") as st:
            if write_features:
                feats.write(tmp / "features")
            for stage, o in outputs.items():
                for name, art in o.artifacts.items():
                    # wall-clock seconds: the manifest's, not an output's; a parked artifact is moved in (one
                    # _park_output wrote is there already)
                    if isinstance(art, ParkedTable):
                        art.move_to(tmp / stage / f"{name}.parquet")
                    elif name != "timings":
                        _write_frame(art, tmp / stage / f"{name}.parquet")
            write_parquet(rule_hits, tmp / "rules" / "hits.parquet")
            _write_frame(weighted.weights, tmp / "lists" / "list_weights.parquet")
            _write_frame(weighted.collateral, tmp / "lists" / "list_collateral.parquet")
            n_scores = _write_scores(score_parts, tmp / "scores.parquet")
            score_parts = None
            rule_out.close()  # the event tables it kept in DuckDB
            for f in extra_frames:
                f.close()
            _close_features(feats, context.features, *(o.features for o in outputs.values()))
            write_parquet(accounts, tmp / "accounts.parquet")
            if seed_table is not None:
                _write_frame(seed_table, tmp / "seed_pool.parquet")
            if train_ds is not None:
                notes += [f"training: {n}" for n in write_training(
                    tmp / TRAINING_DIR, key, scores=tr_scores, features=learned.features, models=learned.models,
                    groups=learned.groups)]
            if own is not None:
                write_parquet(pd.DataFrame({"entity_type": "account", "entity_id": own_known["entity_id"].astype(str)}),
                              tmp / "train_entities.parquet")
                heldout = heldout_check(accounts, own_verdicts, own, end=end)
                write_text(tmp / "own_labels.json", json.dumps(heldout, indent=2, default=_jsonable))
                notes.append(_heldout_note(heldout))
            elif train_ds is not None and getattr(train_ds, "fingerprint", None) == ds.fingerprint and ds.labels is not None:
                lab = ds.labels[ds.labels["entity_type"] == "account"]
                write_parquet(pd.DataFrame({"entity_type": "account",
                                            "entity_id": lab["entity_id"].astype(str).unique()}),
                              tmp / "train_entities.parquet")
                notes.append("the training dataset is the scored dataset: its labelled accounts are excluded "
                             "from evaluation (train_entities.parquet)")
            st.rows(n_decisions + n_scores + len(accounts), "rows (scores, accounts, decisions)")
        timings["write"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        ran = tuple(s for s in stages if s in outputs)
        manifest = {
            "fraudkit_version": __version__, "created": pd.Timestamp.now().isoformat(timespec="seconds"),
            "parameters": {"stages": list(stages), "seed": seed, "rules": ruleset.source or "inline",
                           "engine": ds.transform_dataset.engine.name,
                           "train_engine": None if train_ds is None else train_ds.transform_dataset.engine.name,
                           "rules_version": ruleset.version,
                           "train": None if train_ds is None else (own.describe() if own is not None
                                                                   else str(train_ds.path)),
                           "target_precision": float(target_precision),
                           # what the caller set (now defaults to the data's end, not a parameter)
                           "context": {k: _jsonable(v) for k, v in replace(context, now=now).describe().items()}},
            "stages_run": list(ran), "notes": notes,
            "stage_notes": {st: list(o.notes) for st, o in outputs.items()},
            "data": {"path": str(Path(ds.path).resolve()) if ds.path is not None else None,
                     "fingerprint": ds.fingerprint, "end": str(end)},
            "train": ({"kind": "own labels", "path": str(own.path), "train_until": str(own.train_until or end),
                       "label_delay": str(own.label_delay), "label_frequency": float(context.label_frequency),
                       "fitted": train_ds is not None,
                       "fingerprint": None if train_ds is None else train_ds.fingerprint} if own is not None
                      else None if train_ds is None else
                      {"kind": "training dataset", "path": str(train_ds.path), "fingerprint": train_ds.fingerprint}),
            "seed_pool": seed_info,
            "operating_point": operating.manifest,
            "timings": {k: round(v, 3) for k, v in timings.items()},
            "stage_timings": _stage_timings(outputs),
            # the training pass (operating point): its stages' seconds and their own step timings
            "train_timings": {k: round(v, 3) for k, v in train_timings.items() if k != "outputs"},
            "train_stage_timings": _stage_timings(train_timings.get("outputs", {})),
            "versions": _versions(),
        }
        write_text(tmp / "manifest.json", json.dumps(manifest, indent=2, default=str))
    n_flagged = {c[len("flagged_"):]: int(accounts[c].sum()) for c in accounts.columns if c.startswith("flagged_")}
    return RunResult(run_dir=Path(out), stages=ran, notes=tuple(notes), n_accounts=len(accounts),
                     n_flagged=n_flagged, n_decisions=n_dec, timings=timings)


# --- private helpers ----------------------------------------------------------------------------


def _with_seeds(seed_pool, seeds: pd.DataFrame, *, seen_at) -> SeedPool:
    """``seed_pool`` (None, a SeedPool or a seed table) with ``seeds`` added."""
    if seed_pool is None:
        base = SeedPool.empty()
    elif isinstance(seed_pool, SeedPool):
        base = seed_pool
    else:
        _, t = _describe_seed_pool(seed_pool)
        t = t.assign(entity_type=t["entity_type"] if "entity_type" in t.columns else "account",
                     source=t["source"] if "source" in t.columns else "given",
                     score=t["score"] if "score" in t.columns else 1.0)
        base = SeedPool.empty().update(t, run_id="given", seen_at=seen_at)
    return base.update(seeds, run_id="own_labels", seen_at=seen_at)


def _label_frequency(own, train_ds, learned, context, notes) -> float:
    """The share of the training part's fraud the analyst's labels cover: stated, or estimated."""
    if own.label_coverage is not None:
        notes.append(f"own labels: they cover {own.label_coverage:.1%} of the fraud (stated); a threshold's precision "
                     "is estimated as labelled fraud flagged / coverage / flagged")
        return own.label_coverage
    X, y = learned.features if learned.features is not None else training_data(train_ds)
    c = estimate_label_frequency(X, y, seed=context.seed)
    if np.isnan(c):
        notes.append(f"own labels: the share of fraud they cover cannot be told from the data (the {int(np.sum(y))} "
                     "labelled accounts are nowhere denser than elsewhere); precision is computed as if unlabelled "
                     "accounts were honest, a lower bound: thresholds are strict. State it with --label-coverage")
        return 1.0
    notes.append(f"own labels: they cover about {c:.1%} of the fraud (estimated from the densest labelled region of {len(y)} training "
                 f"accounts, {int(np.sum(y))} labelled fraud; state it with --label-coverage when known); a "
                 "threshold's precision is estimated as labelled fraud flagged / coverage / flagged")
    return c


def _heldout_note(h: dict) -> str:
    """One line on the held-out verdicts of an own-labels run."""
    if not (h["n_heldout_fraud"] or h["n_heldout_honest"]):
        return f"own labels: {h['note']}"

    def pct(a, lo, hi):
        return "n/a" if a is None else f"{100 * a:.1f}% (95% interval {100 * lo:.1f}-{100 * hi:.1f}%)"

    text = (f"own labels held out (verdicts from {h['cut']} on): {h['n_heldout_fraud']} fraud, "
            f"{h['n_heldout_honest']} honest; of {h['n_flagged']} flagged accounts, {h['flagged_with_later_fraud']} "
            f"were later judged fraud: precision at least {pct(h['precision_lower_bound'], h['precision_lower_bound_low'], h['precision_lower_bound_high'])}")
    if h["n_heldout_honest"]:
        text += (f"; among flagged accounts with a later verdict "
                 f"{pct(h['precision_reviewed'], h['precision_reviewed_low'], h['precision_reviewed_high'])}")
    return text + f"; recall of the later fraud verdicts {pct(h['recall'], h['recall_low'], h['recall_high'])}"


def _run_stages(ds, stages, context, notes, timings, *, run_folder=None, write_features=False):
    """Run ``stages`` in order; returns the context with the feature tables a stage computed, and the outputs.

    On a large dataset (:func:`fraudkit.pipeline.frames.worth_parking`) what a stage leaves for the end of the
    run is parked while the later stages run: its rule evaluation and feature tables (read again only by the
    rules step, decisions and the writing of the run; the feature tables in ``run_folder/features`` when the run
    writes them, else in a temporary folder: the context's ``features_folder``) and, with ``run_folder``, its
    artifacts (written there now) and scores (:func:`_park_output`). The behaviour stage parks its own before
    its models (the context's ``parking``); here what is still in memory is parked, nothing twice.

    The group and graph stages, the last two, run side by side when :func:`_side_by_side` says so: the graph
    stage on a worker thread (:func:`fraudkit.pipeline.turns.alongside`), the group stage on this one, and each
    stage's output is taken in that order as if they had run one after the other: the same outputs, notes and
    parked files (neither reads the other's output, and the group stage adds no feature table to the context
    the graph stage would read)."""
    context = replace(context, parking=True,
                      features_folder=run_folder / "features" if run_folder is not None and write_features else None)
    outputs, large = {}, False

    def take(name, out, skipped, seconds):
        """A stage's output into the run: parked when large, its features and notes kept, its time recorded."""
        nonlocal context, large
        if skipped is not None:
            notes.append(f"{name}: skipped, {skipped}")
            return
        t = time.perf_counter()
        outputs[name] = out
        large = large or worth_parking(out.features, out.rules)  # large for one stage, large for the later ones
        if name != stages[-1] and large:
            with step(context.progress, context.mode, f"{name} stage: park what it leaves for the run's end"):
                if isinstance(out.features, FeatureTables):
                    out.features.park(context.features_folder)
                if out.rules is not None:
                    out.rules.park(features=out.features if isinstance(out.features, FeatureTables) else None)
                if run_folder is not None:
                    out = outputs[name] = _park_output(out, run_folder)
        if out.features:
            context = replace(context, features=FeatureTables(context.features).with_tables(out.features))
        notes.extend(f"{name}: {n}" for n in out.notes)
        release_memory(ds)
        timings[name] = seconds + time.perf_counter() - t

    if (context.side_by_side and tuple(stages[-2:]) == ("group", "graph") and not _side_by_side(ds, context)
            and context.mode == "score"):
        notes.append("side by side: the group and graph stages ran one after the other: on Spark their SQL runs on "
                     "the cluster")
    for i, stage in enumerate(stages):
        if tuple(stages[i:]) == ("group", "graph") and _side_by_side(ds, context):
            _stages_side_by_side(ds, context, take)
            break
        t = time.perf_counter()
        take(stage, *_one_stage(ds, stage, context), time.perf_counter() - t)
    return context, outputs


def _one_stage(ds, stage, context):
    """``(output, None)`` of one stage, or ``(None, why)`` when it lacks an input (:class:`MissingInputError`)."""
    try:
        with step(context.progress, context.mode, f"{stage} stage") as st:
            out = STAGE_MODULES[stage].run(ds, context=context)
            st.rows(int((out.scores["entity_type"] == "account").sum()), "account scores")
    except MissingInputError as e:
        return None, str(e)
    return out, None


def _side_by_side(ds, context) -> bool:
    """Whether the group and graph stages run side by side: on DuckDB, the context's ``side_by_side``; when it
    is None, whether the data holds at most :data:`SIDE_BY_SIDE_EVENTS` events and :data:`SIDE_BY_SIDE_ORDERS`
    orders.

    Two threads keep the machine's cores busy where one stage alone leaves one idle (in Python, NumPy or
    waiting for a Leiden child), but hold both stages' frames at once: on ``large``, 466 s for the two stages
    against 552 s one after the other, at 12.5 GB peak against 7.8 GB (``benchmarks/stages_in_threads.md``).
    On Spark the stages' SQL already runs on the cluster: one after the other."""
    ds = ds.transform_dataset
    if ds.engine.name != "duckdb":
        return False
    if context.side_by_side is not None:
        return bool(context.side_by_side)
    return (_rows_at_most(ds, EVENT_TABLES, SIDE_BY_SIDE_EVENTS)
            and _rows_at_most(ds, ("orders",), SIDE_BY_SIDE_ORDERS))


def _rows_at_most(ds, tables, limit: int) -> bool:
    """Whether the ``tables`` of ``ds`` hold at most ``limit`` rows together; each table is read only as far as the
    rows left under the limit, so a large dataset is not counted whole."""
    left = int(limit)
    for name in tables:
        if ds.has(name):
            left -= int(ds.engine.row(f"SELECT count(*) FROM (SELECT 1 FROM {quote(ds.view(name))} "
                                      f"LIMIT {left + 1})")[0])
            if left < 0:
                return False
    return True


def _stages_side_by_side(ds, context, take) -> None:
    """The group stage here and the graph stage on a worker thread; ``take(stage, output, skipped, seconds)`` of
    each in that order, the group stage's as soon as it is done (its output parked while the graph stage works).

    The graph stage is stopped when the group stage or its taking fails or is interrupted, before the error goes
    on."""
    def graph_stage():
        t = time.perf_counter()
        return _one_stage(ds, "graph", context) + (time.perf_counter() - t,)

    with alongside(graph_stage) as job:
        t = time.perf_counter()
        take("group", *_one_stage(ds, "group", context), time.perf_counter() - t)
        ran = job.result()
    take("graph", *ran)


def _park_output(out, run_folder):
    """``out`` with its artifacts written to ``run_folder`` now (nothing reads them before the run's writing) and
    its scores to a temporary folder; both replaced by :class:`ParkedTable` stand-ins."""
    artifacts = {}
    for name, art in out.artifacts.items():
        if name == "timings" or not isinstance(art, pd.DataFrame):  # the manifest's, kept in memory
            artifacts[name] = art
            continue
        path = Path(run_folder) / out.stage / f"{name}.parquet"
        _write_frame(art, path)
        artifacts[name] = ParkedTable(path)
    path = parking_folder() / "scores.parquet"
    write_parquet(out.scores, path)
    return replace(out, artifacts=artifacts, scores=ParkedTable(path))


def _read_back(scores):
    """A stage's scores, read back and their temporary folder removed when :func:`_park_output` parked them."""
    if not isinstance(scores, ParkedTable):
        return scores
    frame = scores.read()
    shutil.rmtree(scores.path.parent, ignore_errors=True)
    return frame


def _close_features(*holders) -> None:
    """Remove the temporary files of the parked feature tables among ``holders``."""
    for h in holders:
        if isinstance(h, FeatureTables):
            h.close()


def _rule_evaluation(ds, ruleset, outputs, feats, store, notes):
    """The run's one evaluation of its rule set: the behaviour stage's when it ran, else evaluated here."""
    done = outputs["behaviour"].rules if "behaviour" in outputs else None
    if done is not None:
        return done
    return evaluate_rules(ruleset, rule_frames(ds, ruleset, features=feats, stream=True), store, as_of=data_end(ds),
                          notes=notes)


def _stage_timings(outputs) -> dict:
    """Each stage's ``timings`` artifact (its steps' seconds) as records, for the manifest."""
    return {st: json.loads(o.artifacts["timings"].to_json(orient="records")) for st, o in outputs.items()
            if isinstance(o.artifacts.get("timings"), pd.DataFrame)}


def _operating_point(train_ds, stages, context, notes, *, reused=None, timings=None):
    """The run's operating point and the training pass's scores (None without training data).

    Unsupervised defaults, or thresholds set on the training dataset: on the scores of a training pass run
    here, or on ``reused``, the account scores of the same pass in an earlier run.
    """
    precision = float(context.target_precision)
    if train_ds is None:
        return unsupervised_operating_point(context.rules, precision=precision), None
    if train_ds.labels is None:
        raise FraudkitError(f"the training dataset {train_ds.path} has no labels table; train= needs labels; "
                            "fix: pass a labelled dataset (e.g. a simulated one) or drop train=")
    if reused is not None:
        tr_scores = reused
    else:
        tr_scores = _training_pass(train_ds, stages, context, {} if timings is None else timings)
    op = fit_operating_point(tr_scores, train_ds.labels, precision=precision, label_frequency=context.label_frequency,
                             source=f"training dataset {train_ds.path} (fingerprint {train_ds.fingerprint})")
    shown = ", ".join(f"{st}/{m} > {v:.4g}" for (st, m), v in op.thresholds.items())
    notes.append(f"operating point: per-method thresholds set on the training dataset at precision {precision:g}, "
                 f"applied on top of each method's own flag: {shown}")
    return op, tr_scores


def _training_pass(train_ds, stages, context, timings):
    """Every stage and the rule set over the training dataset (``mode="train"``): its score table.

    ``timings`` receives each stage's seconds and, under ``outputs``, the stage outputs' timing artifacts.
    """
    train_context = replace(context, mode="train", train=None, train_features=None, train_models=None,
                            train_groups=None, seed_pool=None,
                            lists=list_store_for(train_ds), features={})
    tr_notes: list = []
    with step(context.progress, "train", "operating point: score the training data with every stage") as st:
        train_context, outs = _run_stages(train_ds, stages, train_context, tr_notes, timings)
        t = time.perf_counter()
        with step(context.progress, "train", "rules") as st_rules:
            feats = feature_tables(train_ds, train_context.features)
            tr_rules = _rule_evaluation(train_ds, context.rules, outs, feats, train_context.lists, tr_notes)
            st_rules.rows(sum(len(f) for f in tr_rules.frames.values()), "rows")
        timings["rules"] = time.perf_counter() - t
        timings["outputs"] = {st: o for st, o in outs.items() if "timings" in o.artifacts}
        st.rows(len(train_ds.labels), "labels")
    out = pd.concat([o.scores for o in outs.values()] + [tr_rules.all_scores()], ignore_index=True)
    tr_rules.close()
    _close_features(feats, train_context.features, *(o.features for o in outs.values()))
    for art in [a for o in outs.values() for a in o.artifacts.values() if isinstance(a, ParkedTable)]:
        art.discard()  # the training pass's artifacts are not written
    return out


def _decisions(frames, rule_results, accounts, store, policy, notes, path, *, start=None):
    """Decide every order and interaction and write ``path`` (``RUN/decisions.parquet``) chunk by chunk.

    Events are read with their rule results and decided :data:`DECISION_CHUNK` rows at a time (all at once
    under a delayed-interception policy: a deferral reads the account's earlier events), each chunk written
    (:class:`~fraudkit.data.atomic.ParquetStream`) while the next is decided, so the events and decisions of
    23.7M interactions never sit in memory together. With ``start``, only the events at or after it are decided
    (the rules saw every event). Returns ``{entity_type: {decision: count}}`` and the rows written.
    """
    import pyarrow as pa

    def layer(stage, name):
        if f"score_{stage}" not in accounts:
            return None
        return AccountScores.of(accounts[["account_id", f"score_{stage}", f"flagged_{stage}"]].set_axis(
            ["account_id", "score", "flagged"], axis=1).dropna(subset=["score"]), name)

    portrait, network = layer("behaviour", "portrait"), layer("graph", "network")  # indexed once for every chunk
    counts, writer, schema, n_rows = {}, None, None, 0
    start = None if start is None else pd.Timestamp(start)
    # event times in the finest unit of the event tables (as concatenating the frames would give)
    heads = [f.head(0) if isinstance(f, EventFrame) else f for f in (frames.get("order"), frames.get("interaction"))
             if f is not None and len(f)]
    units = [h["ts"].dtype for h in heads if "ts" in h.columns and pd.api.types.is_datetime64_dtype(h["ts"].dtype)]
    ts_dtype = np.result_type(*units) if units else None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        for entity, key in (("order", "order_id"), ("interaction", "event_id")):
            frame = frames.get(entity)
            if frame is None or frame.empty:
                continue
            frame = frame if isinstance(frame, EventFrame) else EventFrame.of(frame, entity)
            cols = [c for c in (key, "account_id", "device_id", "ip", "address", "receiver_phone", "promotion_id",
                                "ts", "action") if c in frame.columns]
            res = rule_results.get(entity)
            size = len(frame) if (policy is not None and policy.delayed) else DECISION_CHUNK
            pairs = (res.chunks(size, cols) if isinstance(res, EventRules)
                     else ((ev, None) for ev in frame.chunks(size, cols)))
            for ev, rules in pairs:
                if start is not None and "ts" in ev.columns:
                    keep = (pd.to_datetime(ev["ts"], cache=False) >= start).to_numpy()
                    if not keep.all():
                        ev = ev[keep].reset_index(drop=True)
                        rules = None if rules is None else replace(rules, rows=rules.rows[keep].reset_index(drop=True),
                                                                   matches=rules.matches[keep])
                if ev.empty:
                    continue
                # the account ids as text, each distinct one made a Python string once (a categorical column)
                account = _text_categorical(ev["account_id"])
                ev = ev.assign(account_id=account)
                cols = decision_columns(ev, rules=rules, portrait=portrait, network=network, lists=store,
                                        policy=policy, notes=notes)
                head = {"entity_type": Coded(np.zeros(len(ev), dtype=np.int8), np.array([entity], dtype=object)),
                        "entity_id": arrow_text(ev[key]),
                        "account_id": Coded(account.codes, account.categories.to_numpy(dtype=object))}
                if "ts" in ev:
                    ts = ev["ts"].to_numpy()
                    head["ts"] = ts.astype(ts_dtype) if ts_dtype is not None and ts.dtype.kind == "M" else ts
                cols = {**head, **cols}
                tally = np.bincount(cols["decision"].codes, minlength=len(cols["decision"].labels))
                for k in np.argsort(-tally, kind="stable"):
                    if tally[k]:
                        label = cols["decision"].labels[k]
                        counts.setdefault(entity, {})[label] = counts.get(entity, {}).get(label, 0) + int(tally[k])
                if writer is None:
                    # the schema (and pandas metadata) the rows would have as one DataFrame: from the first row's
                    first = pd.DataFrame({c: v.dense()[:1] if isinstance(v, Coded) else
                                          (v.slice(0, 1).to_pandas() if isinstance(v, pa.Array) else v[:1])
                                          for c, v in cols.items()})
                    schema = pa.Table.from_pandas(first, preserve_index=False).schema
                    schema = pa.schema([f.with_type(pa.string()) if f.type == pa.large_string() else f
                                        for f in schema], metadata=schema.metadata)
                table = pa.table({c: v.arrow() if isinstance(v, Coded) else v for c, v in cols.items()})
                del ev, cols, head, account
                if writer is None:
                    # each chunk cast to the file's plain types and written while the next one is decided
                    writer = ParquetStream(path, schema, prepare=lambda t: t.cast(schema))
                elif table.schema.names != schema.names:
                    raise FraudkitError(f"decisions: the {entity} decisions have columns {table.schema.names}, "
                                        f"the earlier ones {schema.names}; every event table needs a ts column")
                n_rows += len(table)
                writer.write_table(table)
                del table
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        notes.append("decisions: no orders or interactions to decide on")
        write_parquet(pd.DataFrame(columns=["entity_type", "entity_id", "account_id", "decision", "layer", "reasons"]),
                      path)
    # the same layer-skipped note is added once per entity (and chunk); keep one
    seen = set()
    notes[:] = [n for n in notes if not (n in seen or seen.add(n))]
    counts = {e: dict(sorted(c.items(), key=lambda kv: -kv[1])) for e, c in counts.items()}
    return counts, n_rows


def _text_categorical(col: pd.Series) -> pd.Categorical:
    """``col.astype(str)`` as a categorical: each distinct value made text once (a chunk of 2M interactions has
    far fewer accounts), values whose texts coincide (``1`` and ``"1"``) one category."""
    codes, distinct = pd.factorize(col)
    text = pd.Index(distinct).astype(str).to_numpy(dtype=object)
    missing = codes < 0
    if missing.any():  # None and NaN keep their own texts ("None", "nan")
        extra_codes, extra = pd.factorize(col[missing].astype(str))
        codes = np.where(missing, 0, codes)
        codes[missing] = len(text) + extra_codes
        text = np.concatenate([text, np.asarray(extra, dtype=object)])
    text_codes, text = pd.factorize(text)
    return pd.Categorical.from_codes(text_codes[codes] if len(codes) else codes, categories=text)


def _write_scores(parts, path) -> int:
    """Write the score rows of ``parts`` (in order) as one Parquet file, ids as text; return the rows written.

    The same file as the frames concatenated (one schema: a column's text type wherever a part has text),
    written :data:`DECISION_CHUNK` rows at a time, each while the next is made (:class:`ParquetStream
    <fraudkit.data.atomic.ParquetStream>`): the per-interaction rule scores (their ids held as Arrow text) are
    never copied whole.
    """
    import pyarrow as pa

    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        write_parquet(_stringify_ids(empty_scores()), path)
        return 0

    def arrow(frame):
        if isinstance(frame, pa.Table):
            return frame
        if not isinstance(frame["entity_id"].dtype, pd.ArrowDtype):
            frame = _stringify_ids(frame)
        return pa.Table.from_pandas(frame, preserve_index=False)

    def rows(frame):  # a chunk's rows: arrow()'s, the ids made text in C++ where arrow_text can (the same digits;
        # astype(str) of large's 15M stage and rule score rows of accounts and entities took 5 s)
        if isinstance(frame, pa.Table) or isinstance(frame["entity_id"].dtype, pd.ArrowDtype):
            return arrow(frame)
        at = list(frame.columns).index("entity_id")
        table = pa.Table.from_pandas(frame.drop(columns="entity_id"), preserve_index=False)
        return table.add_column(at, "entity_id", arrow_text(frame["entity_id"]))

    def chunks(p):  # an EventRules (the events' rule results) reads its rows back a chunk at a time, as Arrow
        if isinstance(p, EventRules):
            return p.score_tables(DECISION_CHUNK)
        return (p.iloc[a:a + DECISION_CHUNK] for a in range(0, len(p), DECISION_CHUNK))

    # each part's schema as its rows in a DataFrame give it (pandas metadata included): from its first row (a
    # frame's first chunk made Arrow only for its schema took 4 s on large)
    schemas = [arrow(next(iter(p.score_chunks(1))) if isinstance(p, EventRules) else p.iloc[:1]).schema
               for p in parts]
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    schema = pa.schema([f.with_type(pa.string()) if f.type in (pa.large_string(), pa.null()) else f
                        for f in schema], metadata=schemas[0].metadata)
    n = 0
    with ParquetStream(path, schema, prepare=lambda t: t.select(schema.names).cast(schema)) as writer:
        for p in parts:
            for c in chunks(p):
                table = rows(c)
                n += len(table)
                writer.write_table(table)
                del table
    return n


def _rules_for(ds, ruleset, notes):
    """The rule set with the rules whose inputs the dataset lacks switched off (said in the notes)."""
    rs, off = ruleset.for_inputs(missing_inputs(ds))
    for rid, why in off.items():
        notes.append(f"rules: {rid} switched off, the dataset lacks {', '.join(why)}")
    return rs


def _stage_params(params):
    """``params=`` of :func:`score_dataset` as RunContext fields (one dict per stage)."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise FraudkitError(f"params must be a dict of stage parameter overrides, got {type(params).__name__}; "
                            'e.g. params={"graph": {"lp_alpha": 0.9}}')
    unknown = sorted(set(params) - set(STAGE_PARAMETERS))
    if unknown:
        raise FraudkitError(f"params: unknown stage(s) {', '.join(map(str, unknown))}; parameters are given per "
                            f"stage ({', '.join(STAGE_PARAMETERS)}), e.g. params={{\"graph\": {{\"lp_alpha\": 0.9}}}}")
    return dict(params)


def _describe_seed_pool(seed_pool):
    """Manifest entry and the table written to ``seed_pool.parquet`` for the seed pool given."""
    if seed_pool is None:
        return {"count": 0, "n_entities": 0, "source": None}, None

    if isinstance(seed_pool, SeedPool):
        t, kind = seed_pool.table, "SeedPool"
    elif isinstance(seed_pool, pd.DataFrame):
        t, kind = seed_pool, "DataFrame"
        if "entity_id" not in t.columns and "account_id" not in t.columns:
            raise FraudkitError("seed_pool: a seed table needs an entity_id (or account_id) column; columns: "
                                f"{', '.join(map(str, t.columns)) or 'none'}; e.g. SeedPool.load('seed_pool.parquet')")
        if "entity_id" not in t.columns:
            t = t.rename(columns={"account_id": "entity_id"}).assign(entity_type="account")
    else:
        raise FraudkitError(f"seed_pool must be a SeedPool or a DataFrame, got {type(seed_pool).__name__}; "
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
