"""The closed loop, window by window (seeds 001/004: the scalper loop).

    labelling -> interception -> product identification -> data sinking -> re-scan -> label update

For each time window the loop scores everything seen up to the window's end
(:func:`fraudkit.pipeline.score.score_dataset` on a point-in-time slice, :func:`fraudkit.data.slicing.slice_tables`, with
``seed_pool=`` the seed pool of the earlier windows, so the graph stage propagates weak labels from
them in the same run), then:

1. **labelling** — accounts flagged by at least ``seed_min_stages`` independent stages (rules
   count as a stage) are high-confidence: they join the seed pool
   (:class:`fraudkit.identification.graph.propagation.SeedPool`). The labels table is never read here.
2. **interception** — the run's decisions on the window's orders and interactions (the loop's lists
   are in the slice's ``list_entries``, checked by the decision as of each event's own time), and
   the *prospective* decision: what the loop knew before the window (its earlier labels, and its
   lists, scoped to the order's promotion, as of each order's time).
3. **product identification** — products whose buyers are largely flagged, or that ship many
   units to one address, go on the watch list.
4. **data sinking** — addresses, devices and receiver phones used mostly by flagged accounts
   (at least ``sink_min_accounts`` of them) are kept as tables, with group portraits of the
   flagged communities; they are listed, scoped to the promotions running next.
5. **re-scan** — the run's graph stage, seeded with the pool, is the re-scan: its flags and
   strong entities (resources shared by many risky accounts) join the loop; the orders of the
   last ``rescan_windows`` windows are re-scanned against the sunk keys.
6. **label update** — the loop's own label table (``loop_labels``: account, first iteration,
   source) takes every account flagged by the run, the seeded re-scan or the sunk keys.

Per iteration the :class:`LoopResult` records seeds, watched products, flagged accounts and,
against the labels table (evaluation only, :func:`evaluate_iteration`), recall and precision per
typology for the plain pipeline and for the loop, interception rate and leakage on the window's
events. :func:`fraudkit.evaluation.monitoring.interception_early_warning` raises a warning row when a
day's interception rate falls below its band.

Why recall can rise: the seed pool and the sunk keys carry what earlier windows confirmed into
later ones (propagation reaches accounts linked to old seeds; a new account shipping to a sunk
address is caught on its first order; the loop's labels persist). Why it need not: each window
adds new attackers with little history to the denominator. Each iteration reports the run's recall
(``recall_pipeline``, hindsight over the slice), the loop's (``recall_loop``, its persisted labels),
and the window's events decided *prospectively* with only what the loop knew at the window's start
(``fraud_intercepted_prospective``): the timeliness the loop buys.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from multiprocessing import get_context, parent_process
from pathlib import Path

import numpy as np
import pandas as pd

from fraudkit import __version__
from fraudkit.capability.lists import ListStore, row_scopes
from fraudkit.data.atomic import atomic_directory, write_parquet, write_text
from fraudkit.data.contract import FRAUD_TYPOLOGIES, HONEST_LOOKALIKES, LABEL_TABLE, STAGES, is_fraud_typology
from fraudkit.data.dataset import Dataset, dataset_fingerprint, load_dataset
from fraudkit.data.slicing import slice_tables
from fraudkit.errors import FraudkitError
from fraudkit.evaluation.metrics import leakage
from fraudkit.evaluation.monitoring import interception_early_warning
from fraudkit.identification.graph.propagation import SeedPool
from fraudkit.identification.rules import load_ruleset
from fraudkit.pipeline.score import score_dataset

__all__ = [
    "ClosedLoop",
    "LoopResult",
    "LoopJob",
    "run_closed_loop",
    "start_closed_loop",
    "finished_loop",
    "loop_windows",
    "identify_products",
    "sink_data",
    "evaluate_iteration",
]

_SINK_COLUMNS = ("value", "n_accounts", "n_flagged", "flagged_share", "n_orders", "units")


@dataclass(frozen=True)
class LoopResult:
    """What :func:`run_closed_loop` produced.

    Attributes
    ----------
    out_dir : pathlib.Path
    summary : pandas.DataFrame
        One row per iteration: window, seeds, watched products, sunk keys, listed keys,
        flagged accounts (run / loop), and — when labels exist — recall, precision,
        interception rate and leakage (``*_pipeline`` for the plain run, ``*_loop`` for the loop).
    evaluation : pandas.DataFrame
        Per iteration and typology: ``n_labelled``, ``recall_pipeline``, ``recall_loop`` (fraud rows)
        or ``fpr_pipeline``, ``fpr_loop`` (look-alikes).
    seed_pool : SeedPool
    watched_products, loop_labels, early_warning : pandas.DataFrame
    sunk : dict of str to DataFrame
        ``addresses``, ``devices``, ``phones``, ``portraits``.
    store : ListStore
        The lists the loop added (scoped per promotion, audited).
    params : dict
    """

    out_dir: Path
    summary: pd.DataFrame
    evaluation: pd.DataFrame
    seed_pool: object
    watched_products: pd.DataFrame
    loop_labels: pd.DataFrame
    early_warning: pd.DataFrame
    sunk: dict
    store: object
    params: dict = field(default_factory=dict)

    @classmethod
    def load(cls, out) -> "LoopResult":
        """The loop :func:`run_closed_loop` wrote to ``out``, read back (the tables as they were written)."""
        out = Path(out)
        manifest = json.loads((out / "loop" / "manifest.json").read_text())

        def table(path):
            return pd.read_parquet(path) if path.is_file() else pd.DataFrame()

        return cls(out_dir=out, summary=table(out / "loop" / "summary.parquet"),
                   evaluation=table(out / "loop" / "evaluation.parquet"),
                   seed_pool=SeedPool.load(out / "seed_pool.parquet"),
                   watched_products=table(out / "watched_products.parquet"),
                   loop_labels=table(out / "loop_labels.parquet"),
                   early_warning=table(out / "loop" / "early_warning.parquet"),
                   sunk={name: table(out / "sunk" / f"{name}.parquet")
                         for name in ("addresses", "devices", "phones", "portraits")},
                   store=ListStore.read(out / "lists"), params=manifest["params"])

    def recall_table(self) -> pd.DataFrame:
        """Per iteration: overall recall and precision, pipeline vs loop (the notebook figure)."""
        cols = [c for c in ("iteration", "window_end", "n_fraud_seen", "recall_pipeline", "recall_loop",
                            "precision_pipeline", "precision_loop", "interception_rate_prospective", "leakage_rate_pipeline",
                            "leakage_rate_loop", "n_seeds") if c in self.summary.columns]
        return self.summary[cols].copy()


class ClosedLoop:
    """The closed loop as an estimator-like object: parameters in ``__init__``, work in :meth:`run`.

    Parameters
    ----------
    n_windows : int, default=3
        Equal windows over the data's time span (ignored when ``window`` is given).
    window : str, optional
        Window length (``"1D"``, ``"12h"``); windows are aligned to it.
    stages : tuple of str, default=("behaviour", "graph")
        Stages of each run (the graph stage is what the seed pool feeds).
    seed : int, default=0
    rules : path, dict or RuleSet, optional
    seed_min_stages : int, default=2
        Stage flags (rules included) that must agree before an account becomes a seed.
    product_min_flagged : int, default=2
    product_flag_share : float, default=0.3
    product_units_per_address : int, default=6
        Units of one product to one address that put the product on the watch list by themselves.
    sink_min_accounts : int, default=2
    sink_min_share : float, default=0.5
        Share of a key's accounts that must be flagged before it is sunk (protects shared honest keys).
    rescan_windows : int, default=1
        Windows of orders re-scanned against the sunk keys.
    list_ttl : str, default="7D"
        Expiry of global graylist entries (promotion-scoped entries expire with the promotion).
    graph : dict, optional
        Graph-stage parameter overrides (``fraudkit.pipeline.stages.graph.DEFAULTS``).
    """

    def __init__(self, *, n_windows=3, window=None, stages=("behaviour", "graph"), seed=0, rules=None,
                 seed_min_stages=2, product_min_flagged=2, product_flag_share=0.3, product_units_per_address=6,
                 sink_min_accounts=2, sink_min_share=0.5, rescan_windows=1, list_ttl="7D", graph=None):
        self.n_windows = n_windows
        self.window = window
        self.stages = stages
        self.seed = seed
        self.rules = rules
        self.seed_min_stages = seed_min_stages
        self.product_min_flagged = product_min_flagged
        self.product_flag_share = product_flag_share
        self.product_units_per_address = product_units_per_address
        self.sink_min_accounts = sink_min_accounts
        self.sink_min_share = sink_min_share
        self.rescan_windows = rescan_windows
        self.list_ttl = list_ttl
        self.graph = graph

    def get_params(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items()}

    def run(self, data, out, *, progress=None) -> LoopResult:
        """Run the loop on a dataset (path, Dataset or dict of tables); write ``out`` atomically.

        ``progress`` (a :class:`fraudkit.pipeline.progress.Progress`) reports each window's run and steps.
        Per-iteration wall-clock seconds go to ``loop/manifest.json``, never into the tables.
        """

        self._check()
        # the data is loaded and validated once; each window's slice of it is not validated again (a slice of
        # valid tables, plus the loop's own list entries, is valid) and is named by the data's fingerprint
        tables, labels, fingerprint = _tables_of(data, load_dataset)
        rules = load_ruleset(self.rules if self.rules is not None else "default")  # parsed once, not per run
        windows = loop_windows(tables, n_windows=None if self.window else self.n_windows, window=self.window)
        store = ListStore(audit=None)
        pool = SeedPool.empty()
        watched = _empty_watch()
        sunk = {"addresses": _empty_sink(), "devices": _empty_sink(), "phones": _empty_sink(),
                "portraits": pd.DataFrame()}
        loop_labels = pd.DataFrame({"account_id": pd.Series(dtype=object), "first_iteration": pd.Series(dtype=np.int64),
                                    "source": pd.Series(dtype=object)})
        rows, evals, decisions_all, seconds = [], [], [], {}
        out = Path(out)
        with atomic_directory(out) as tmp:
            for k, (start, end) in enumerate(windows):
                t0 = time.perf_counter()
                it = tmp / "loop" / f"iteration_{k}"
                sl = slice_tables(tables, end, list_store=store)
                ds = Dataset.from_tables(sl, validate=False, fingerprint=_slice_fingerprint(fingerprint, end, store))
                # the run is seeded with what earlier windows confirmed (graph weak-label propagation)
                has_seeds = bool((pool.table["entity_type"] == "account").any())
                # only the window's events are decided (the loop reads no other decision); accounts are
                # scored on everything seen so far; the loop reads the stages' scores, not the features nor the
                # rules' row of every order and interaction (their outcome is the decisions)
                run = score_dataset(ds, it / "run", stages=self.stages, seed=self.seed, rules=rules,
                                    seed_pool=pool if has_seeds else None, run_id=f"iteration_{k}", now=end,
                                    params={"graph": dict(self.graph)} if self.graph else None, decide_from=start,
                                    progress=progress, write_features=False, write_event_scores=False)
                acc = pd.read_parquet(run.run_dir / "accounts.parquet")
                dec = pd.read_parquet(run.run_dir / "decisions.parquet")
                # 1. labelling: corroborated flags -> seed pool
                stage_cols = [c for c in acc.columns if c.startswith("flagged_") and c != "flagged_combined"]
                n_st = acc[stage_cols].fillna(False).astype(bool).sum(axis=1).to_numpy()
                confident = acc.loc[n_st >= self.seed_min_stages, ["account_id", "score_combined"]]
                pool = pool.update(confident.rename(columns={"account_id": "entity_id", "score_combined": "score"})
                                   .assign(entity_type="account", source="loop:corroborated"),
                                   run_id=f"iteration_{k}", seen_at=end)
                # 5a. re-scan: the seeded graph stage's findings (strong entities join the pool)
                rescan = _seeded_graph(run.run_dir, has_seeds) if "graph" in run.stages else None
                if rescan is not None:
                    pool = pool.update(rescan["pool_new"], run_id=f"iteration_{k}", seen_at=end)
                flagged_run = set(acc.loc[acc["flagged_combined"].astype(bool), "account_id"].astype(str))
                flagged_graph = rescan["flagged"] if rescan is not None else set()
                orders = sl.get("orders")
                # 3. product identification, 4. data sinking (on what the loop knows so far)
                known = flagged_run | flagged_graph | set(loop_labels["account_id"])
                prods = identify_products(orders, known, products=sl.get("products"),
                                          min_flagged=self.product_min_flagged, flag_share=self.product_flag_share,
                                          units_per_address=self.product_units_per_address)
                watched = _merge_watch(watched, prods[prods["watched"]], k)
                new_sunk = sink_data(orders, known, min_accounts=self.sink_min_accounts, min_share=self.sink_min_share,
                                     communities=None if rescan is None else rescan["communities"])
                sunk = _merge_sunk(sunk, new_sunk, k)
                # 5b. re-scan recent orders against the sunk keys
                recent_start = windows[max(0, k - self.rescan_windows + 1)][0]
                hits = _sunk_hits(orders, sunk, since=recent_start)
                # 2. interception on this window's events with what the loop knew at the window's start
                known_before = set(loop_labels["account_id"])
                win_dec = _window_decisions(dec, orders, store, known_before, start, end)
                # 6. label update: labels persist from iteration to iteration
                loop_labels = _update_labels(loop_labels, k, flagged_run, flagged_graph, hits)
                flagged_loop = set(loop_labels["account_id"])
                decisions_all.append(win_dec.assign(iteration=k))
                n_listed_before = len(store)
                # promotions are scheduled in advance: the full table is known at any time
                store = _list_sunk(store, sunk, tables.get("promotions"), end, windows, k, self.list_ttl)
                row = {"iteration": k, "window_start": start, "window_end": end,
                       "n_accounts": int(len(acc)), "flagged_pipeline": len(flagged_run),
                       "flagged_graph_seeded": len(flagged_graph), "flagged_sunk_hits": len(hits),
                       "flagged_loop": len(flagged_loop), "n_seeds": int((pool.table["entity_type"] == "account").sum()),
                       "n_seed_entities": int(len(pool)), "watched_products": int(len(watched)),
                       "sunk_addresses": int(len(sunk["addresses"])), "sunk_devices": int(len(sunk["devices"])),
                       "listed": int(len(store)), "listed_new": int(len(store) - n_listed_before)}
                if labels is not None:
                    ev, overall = evaluate_iteration(acc, flagged_loop, labels, win_dec)
                    evals.append(ev.assign(iteration=k))
                    row.update(overall)
                seconds[f"iteration_{k}"] = round(time.perf_counter() - t0, 2)
                rows.append(row)
                write_parquet(_str_ids(win_dec), it / "decisions_window.parquet")
                write_parquet(pd.DataFrame({"account_id": sorted(flagged_loop)}), it / "flagged_loop.parquet")
                write_parquet(prods, it / "products.parquet")
                if rescan is not None:
                    write_parquet(rescan["scores"], it / "rescan_scores.parquet")
                ds.close()
            summary = pd.DataFrame(rows)
            evaluation = pd.concat(evals, ignore_index=True) if evals else pd.DataFrame()
            dec_all = pd.concat(decisions_all, ignore_index=True) if decisions_all else pd.DataFrame()
            warn = interception_early_warning(dec_all, entity_type="order") if len(dec_all) else pd.DataFrame()
            write_parquet(summary, tmp / "loop" / "summary.parquet")
            if len(evaluation):
                write_parquet(evaluation, tmp / "loop" / "evaluation.parquet")
            write_parquet(warn, tmp / "loop" / "early_warning.parquet")
            pool.save(tmp / "seed_pool.parquet")
            write_parquet(_str_ids(watched), tmp / "watched_products.parquet")
            for name, t in sunk.items():
                write_parquet(_str_ids(t), tmp / "sunk" / f"{name}.parquet")
            write_parquet(loop_labels, tmp / "loop_labels.parquet")
            store.save(tmp / "lists")
            write_text(tmp / "loop" / "params.json", pd.Series(self.get_params(), dtype=object).to_json(indent=2))
            # wall-clock seconds only here: the same data and parameters give the same tables
            write_text(tmp / "loop" / "manifest.json", json.dumps({"params": self.get_params(), "data_fingerprint":
                                                                   fingerprint, "fraudkit_version": __version__,
                                                                   "timings": seconds},
                                                                  indent=2, default=str))
        return LoopResult(out_dir=out, summary=summary, evaluation=evaluation, seed_pool=pool,
                          watched_products=watched, loop_labels=loop_labels, early_warning=warn, sunk=sunk,
                          store=store, params=self.get_params())

    def _check(self):

        bad = [s for s in self.stages if s not in STAGES]
        if bad:
            raise FraudkitError(f"ClosedLoop: unknown stage(s) {bad}; choose from {', '.join(STAGES)}")
        if self.window is None and (not isinstance(self.n_windows, (int, np.integer)) or self.n_windows < 2):
            raise FraudkitError(f"ClosedLoop: n_windows must be an int >= 2 (a loop needs a second window to "
                                f"use what the first found), got {self.n_windows!r}")
        if self.seed_min_stages < 1:
            raise FraudkitError("ClosedLoop: seed_min_stages must be >= 1")


def run_closed_loop(data, out, *, n_windows=3, window=None, stages=("behaviour", "graph"), seed=0, progress=None,
                    **params) -> LoopResult:
    """Run :class:`ClosedLoop` in one call.

    Parameters
    ----------
    data : path, Dataset or dict of str to DataFrame
        A labels table, when present, is used only to evaluate each iteration.
    out : path
        Output folder, replaced atomically: ``loop/iteration_<k>/`` (the run, window decisions,
        loop flags, product table, seeded re-scan scores), ``loop/summary.parquet``,
        ``loop/evaluation.parquet``, ``loop/early_warning.parquet``, ``loop/manifest.json`` (parameters and
        per-iteration seconds), ``seed_pool.parquet``,
        ``watched_products.parquet``, ``sunk/{addresses,devices,phones,portraits}.parquet``,
        ``loop_labels.parquet``, ``lists/`` (entries and audit).
    n_windows, window, stages, seed, **params
        See :class:`ClosedLoop`.
    progress : fraudkit.pipeline.progress.Progress, optional
        Reports each window's run and its steps.

    Returns
    -------
    LoopResult
    """
    return ClosedLoop(n_windows=n_windows, window=window, stages=stages, seed=seed, **params).run(
        data, out, progress=progress)


@dataclass
class LoopJob:
    """A closed loop running in a second process (:func:`start_closed_loop`); :meth:`wait` for it."""

    out_dir: Path
    _process: object = field(repr=False)
    _errors: object = field(repr=False)

    def done(self) -> bool:
        return not self._process.is_alive()

    def join(self) -> Path:
        """Wait for the loop; ``out_dir``, which it wrote. A failed loop raises :class:`FraudkitError` with what it
        raised."""
        self._process.join()
        error = self._errors.get() if not self._errors.empty() else None
        if error is not None or self._process.exitcode != 0:
            raise FraudkitError(f"the closed loop in a second process failed (exit code {self._process.exitcode})"
                                + (f": {error}" if error else ""))
        return self.out_dir

    def wait(self) -> LoopResult:
        """Wait for the loop (:meth:`join`); its result read from ``out_dir``."""
        return LoopResult.load(self.join())

    def cancel(self) -> None:
        """Stop the loop now; it writes nothing (its output folder is written atomically)."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def start_closed_loop(data, out, *, n_windows=3, seed=0, **params) -> LoopJob:
    """Start :func:`run_closed_loop` on a dataset folder in a second process; return at once.

    The loop depends on the data, the seed and its parameters alone, not on any run, so the report starts it
    while its other steps run and step 5 reads what it wrote (:func:`finished_loop`). The process is spawned,
    not forked (a process that has run DuckDB or OpenMP threads may hang in a fork); it writes ``out``
    atomically, as the same call in this process would.

    Parameters
    ----------
    data : path
        A dataset folder (read by the second process).
    out : path
    n_windows, seed, **params
        See :class:`ClosedLoop`.

    Returns
    -------
    LoopJob
    """
    spawn = get_context("spawn")
    errors = spawn.SimpleQueue()
    process = spawn.Process(target=_loop_in_process, args=(str(data), str(out), errors),
                            kwargs=dict(n_windows=n_windows, seed=seed, **params), daemon=True)
    process.start()
    return LoopJob(Path(out), process, errors)


def finished_loop(out, data, *, n_windows=3, seed=0, **params) -> LoopResult | None:
    """The loop in ``out`` when it was run on this ``data`` (its files' fingerprint) with these parameters by this
    version of fraudkit, else None.

    Examples
    --------
    >>> finished_loop("/nonexistent", "/nonexistent") is None
    True
    """
    manifest = Path(out) / "loop" / "manifest.json"
    if not manifest.is_file():
        return None
    ran = json.loads(manifest.read_text())
    wanted = ClosedLoop(n_windows=n_windows, seed=seed, **params).get_params()
    if ran.get("params") != json.loads(json.dumps(wanted, default=str)):
        return None
    if ran.get("data_fingerprint") != dataset_fingerprint(data) or ran.get("fraudkit_version") != __version__:
        return None
    return LoopResult.load(out)


def _loop_in_process(data, out, errors, **params) -> None:
    """The second process of :func:`start_closed_loop`: run the loop; a failure's message goes to ``errors``.
    It ends at once when its parent does (a killed report leaves no loop running)."""
    parent = parent_process()
    threading.Thread(target=lambda: (parent.join(), os._exit(1)), daemon=True).start()
    try:
        run_closed_loop(data, out, **params)
    except Exception as e:  # the parent reports it (LoopJob.wait); the exit code says it failed
        errors.put(f"{type(e).__name__}: {e}"[:4000])  # short: the parent reads it after the process ends
        raise SystemExit(1) from None


# --- the steps, as pure functions -------------------------------------------------------------


def loop_windows(tables: dict, *, n_windows=3, window=None) -> list:
    """``[(start, end), ...]``: consecutive windows covering the data's event times.

    ``window`` (``"1D"``, ``"12h"``) cuts windows of that length from the first event's midnight
    (for windows of a day or more; else from the first event floored to the window); otherwise
    ``n_windows`` equal windows.
    The last window's end is just after the last event.

    Examples
    --------
    >>> import pandas as pd
    >>> t = {"orders": pd.DataFrame({"ts": pd.to_datetime(["2024-06-01 10:00", "2024-06-03 09:00"])})}
    >>> [str(e) for _, e in loop_windows(t, window="1D")]
    ['2024-06-02 00:00:00', '2024-06-03 00:00:00', '2024-06-04 00:00:00']
    """
    times = [pd.to_datetime(t["ts"], cache=False) for name, t in tables.items() if name in ("interactions", "orders", "logins",
                                                                                "coupon_claims") and len(t)]
    if not times:
        raise FraudkitError("loop_windows: no interactions, orders, logins or coupon claims with a ts column")
    lo = min(t.min() for t in times)
    hi = max(t.max() for t in times) + pd.Timedelta(microseconds=1)
    if window is not None:
        step = pd.Timedelta(window)
        if step <= pd.Timedelta(0):
            raise FraudkitError(f"loop_windows: window must be positive, got {window!r}")
        first = lo.normalize() if step >= pd.Timedelta("1D") else lo.floor(step)
        n = int(np.ceil((hi - first) / step))
        ends = [first + step * (i + 1) for i in range(n)]
        if len(ends) < 2:
            raise FraudkitError(f"loop_windows: window {window!r} gives {len(ends)} window(s) over {lo} .. {hi}; "
                                "use a shorter window")
        return [(first if i == 0 else ends[i - 1], e) for i, e in enumerate(ends)]
    edges = pd.date_range(lo, hi, periods=int(n_windows) + 1)
    return [(edges[i], edges[i + 1]) for i in range(int(n_windows))]


def identify_products(orders, flagged_accounts, *, products=None, min_flagged=2, flag_share=0.3,
                      units_per_address=6) -> pd.DataFrame:
    """Products that draw scalpers: a large share of flagged buyers, or many units to one address.

    Parameters
    ----------
    orders : pandas.DataFrame or None
    flagged_accounts : iterable of account keys
    products : pandas.DataFrame, optional
        Adds ``limited_stock`` and ``discount``.
    min_flagged : int, default=2
    flag_share : float, default=0.3
    units_per_address : int, default=6

    Returns
    -------
    pandas.DataFrame
        Per product: ``product_id, n_orders, n_buyers, n_flagged_buyers, flagged_share,
        max_units_per_address, watched, reason`` (one row per product ordered).

    Examples
    --------
    >>> import pandas as pd
    >>> o = pd.DataFrame({"product_id": [1, 1, 1, 2], "account_id": ["a", "b", "c", "d"],
    ...                   "address": ["x", "x", "y", "z"], "quantity": [1, 2, 1, 1]})
    >>> identify_products(o, {"a", "b"})[["product_id", "n_flagged_buyers", "watched"]].values.tolist()
    [[1, 2, True], [2, 0, False]]
    """
    cols = ["product_id", "n_orders", "n_buyers", "n_flagged_buyers", "flagged_share", "max_units_per_address",
            "watched", "reason"]
    if orders is None or not len(orders):
        return pd.DataFrame(columns=cols)
    bad = set(map(str, flagged_accounts))
    o = orders.assign(_f=orders["account_id"].astype(str).isin(bad))
    g = o.groupby("product_id", sort=True)
    t = pd.DataFrame({"n_orders": g.size(), "n_buyers": g["account_id"].nunique(),
                      "n_flagged_buyers": o[o["_f"]].groupby("product_id")["account_id"].nunique()}).fillna(0)
    t["n_flagged_buyers"] = t["n_flagged_buyers"].astype(np.int64)
    t["flagged_share"] = t["n_flagged_buyers"] / t["n_buyers"]
    if "address" in o.columns:
        t["max_units_per_address"] = o.groupby(["product_id", "address"])["quantity"].sum().groupby(level=0).max()
    else:
        t["max_units_per_address"] = np.nan
    by_flag = (t["n_flagged_buyers"] >= min_flagged) & (t["flagged_share"] >= flag_share)
    by_units = t["max_units_per_address"].fillna(0) >= units_per_address
    t["watched"] = by_flag | by_units
    t["reason"] = np.where(by_flag & by_units, "flagged buyers+units per address",
                           np.where(by_flag, "flagged buyers", np.where(by_units, "units per address", "")))
    t = t.reset_index()
    if products is not None:
        p = products[[c for c in ("product_id", "limited_stock", "discount") if c in products.columns]]
        t = t.merge(p, on="product_id", how="left")
    return t[cols + [c for c in t.columns if c not in cols]]


def sink_data(orders, flagged_accounts, *, min_accounts=2, min_share=0.5, communities=None) -> dict:
    """Keys to keep: addresses, devices and receiver phones used mostly by flagged accounts.

    A key is sunk when at least ``min_accounts`` flagged accounts used it and they are at
    least ``min_share`` of its accounts (a parcel locker or a campus address shared with honest
    buyers is not). ``communities`` (the graph stage's ``communities`` artifact) adds group
    portraits: per community with two or more flagged members, its size, flagged members,
    distinct addresses and devices and the products it bought most.

    Returns
    -------
    dict
        ``addresses``, ``devices``, ``phones``: ``value, n_accounts, n_flagged, flagged_share,
        n_orders, units``; ``portraits``.

    Examples
    --------
    >>> import pandas as pd
    >>> o = pd.DataFrame({"account_id": ["a", "b", "c"], "address": ["x", "x", "y"], "device_id": [1, 2, 3],
    ...                   "receiver_phone": "p", "product_id": 9, "quantity": 1})
    >>> sink_data(o, {"a", "b"})["addresses"][["value", "n_flagged"]].values.tolist()
    [['x', 2]]
    """
    out = {n: _empty_sink()[list(_SINK_COLUMNS)] for n in ("addresses", "devices", "phones")}
    out["portraits"] = pd.DataFrame()
    if orders is None or not len(orders):
        return out
    bad = set(map(str, flagged_accounts))
    o = orders.assign(_acc=orders["account_id"].astype(str))
    o["_f"] = o["_acc"].isin(bad)
    for col, name in (("address", "addresses"), ("device_id", "devices"), ("receiver_phone", "phones")):
        if col not in o.columns:
            continue
        u = o.dropna(subset=[col])
        g = u.groupby(u[col].astype(str), sort=True)
        t = pd.DataFrame({"n_accounts": g["_acc"].nunique(), "n_orders": g.size(), "units": g["quantity"].sum(),
                          "n_flagged": u[u["_f"]].groupby(u.loc[u["_f"], col].astype(str))["_acc"].nunique()})
        t["n_flagged"] = t["n_flagged"].fillna(0).astype(np.int64)
        t["flagged_share"] = t["n_flagged"] / t["n_accounts"]
        t = t[(t["n_flagged"] >= min_accounts) & (t["flagged_share"] >= min_share)]
        out[name] = t.rename_axis("value").reset_index()[list(_SINK_COLUMNS)]
    if communities is not None and len(communities):
        c = communities.assign(account_id=communities["account_id"].astype(str))
        c = c[c["account_id"].isin(bad)]
        sizes = communities.groupby(["view", "community"]).size().rename("size")
        nf = c.groupby(["view", "community"])["account_id"].nunique().rename("n_flagged")
        port = pd.concat([sizes, nf], axis=1).dropna()
        port = port[port["n_flagged"] >= 2].reset_index()
        if len(port):
            m = c.merge(port[["view", "community"]], on=["view", "community"]).merge(o, left_on="account_id",
                                                                                    right_on="_acc", how="left")
            g = m.groupby(["view", "community"])
            extra = pd.DataFrame({
                "n_addresses": g["address"].nunique() if "address" in m else 0,
                "n_devices": g["device_id"].nunique() if "device_id" in m else 0,
                "units": g["quantity"].sum(),
                "top_products": g["product_id"].agg(lambda s: ",".join(map(str, s.value_counts().index[:3]))),
            }).reset_index()
            port = port.merge(extra, on=["view", "community"], how="left")
            port["n_flagged"] = port["n_flagged"].astype(np.int64)
        out["portraits"] = port
    return out


def evaluate_iteration(accounts, flagged_loop, labels, window_decisions=None):
    """Recall and precision per typology for the pipeline and the loop (labels read only here).

    Parameters
    ----------
    accounts : pandas.DataFrame
        The iteration run's ``accounts.parquet`` (the accounts seen so far).
    flagged_loop : set of account keys
        The loop's label table after this iteration (labels persist across iterations).
    labels : pandas.DataFrame
    window_decisions : pandas.DataFrame, optional
        The window's events with ``entity_type, entity_id, account_id`` and the decisions
        ``decision`` (the run, in hindsight over the slice), ``decision_prospective`` (what the loop
        knew at the window's start) and ``decision_loop`` (the most severe of the two).

    Returns
    -------
    (pandas.DataFrame, dict)
        Per typology rows, and the overall figures for the summary.
    """
    ids = accounts["account_id"].astype(str)
    lab = labels[labels["entity_type"] == "account"].assign(entity_id=lambda f: f["entity_id"].astype(str))
    lab = lab[lab["entity_id"].isin(set(ids))]
    fraud = set(lab.loc[is_fraud_typology(lab["typology"]), "entity_id"])
    run_flag = set(ids[accounts["flagged_combined"].astype(bool).to_numpy()])
    rows = []
    for typ in (*FRAUD_TYPOLOGIES, *HONEST_LOOKALIKES):
        members = set(lab.loc[lab["typology"] == typ, "entity_id"])
        if typ in HONEST_LOOKALIKES:
            members -= fraud
        n = len(members)
        r = {"typology": typ, "n_labelled": n}
        if typ in FRAUD_TYPOLOGIES:
            r.update(recall_pipeline=len(members & run_flag) / n if n else np.nan,
                     recall_loop=len(members & flagged_loop) / n if n else np.nan)
        else:
            r.update(fpr_pipeline=len(members & run_flag) / n if n else np.nan,
                     fpr_loop=len(members & flagged_loop) / n if n else np.nan)
        rows.append(r)
    honest = set(ids) - fraud
    overall = {
        "n_fraud_seen": len(fraud),
        "recall_pipeline": len(fraud & run_flag) / len(fraud) if fraud else np.nan,
        "recall_loop": len(fraud & flagged_loop) / len(fraud) if fraud else np.nan,
        "precision_pipeline": len(fraud & run_flag) / len(run_flag) if run_flag else np.nan,
        "precision_loop": len(fraud & flagged_loop) / len(flagged_loop) if flagged_loop else np.nan,
        "fpr_pipeline": len(honest & run_flag) / len(honest) if honest else np.nan,
        "fpr_loop": len(honest & flagged_loop) / len(honest) if honest else np.nan,
    }
    if window_decisions is not None and len(window_decisions):

        y = _event_is_fraud(window_decisions, labels)
        for which, col in (("pipeline", "decision"), ("prospective", "decision_prospective"),
                           ("loop", "decision_loop")):
            lk = leakage(window_decisions[col].to_numpy(), y)
            overall[f"interception_rate_{which}"] = float((window_decisions[col] != "pass").mean())
            overall[f"fraud_intercepted_{which}"] = lk["intercepted"]
            overall[f"leakage_{which}"] = lk["leakage"]
            overall[f"leakage_rate_{which}"] = lk["leakage_rate"]
    return pd.DataFrame(rows), overall


# --- private helpers --------------------------------------------------------------------------


def _tables_of(data, load_dataset):
    """The data's tables as pandas (labels apart) and its fingerprint; the data is validated here, once."""
    if isinstance(data, dict):
        tables = {k: v for k, v in data.items() if v is not None}
        if "accounts" not in tables:
            raise FraudkitError("closed loop: the data has no accounts table; it needs the contract's tables")
        with Dataset.from_tables(tables, validate=True) as ds:
            fingerprint = ds.fingerprint
    else:
        ds = data if hasattr(data, "table") else load_dataset(data)
        tables = {name: ds.to_pandas(name) for name in ds.tables}
        fingerprint = ds.fingerprint
    labels = tables.pop(LABEL_TABLE.name, None)
    if "accounts" not in tables:
        raise FraudkitError("closed loop: the data has no accounts table; it needs the contract's tables")
    return tables, labels, fingerprint


def _slice_fingerprint(fingerprint, end, store) -> str:
    """16 hex digits naming a window's slice: the data's fingerprint, the cut and the loop's list entries."""
    h = hashlib.sha256(f"{fingerprint}\0{pd.Timestamp(end).isoformat()}\0".encode())
    if len(store.entries):
        h.update(pd.util.hash_pandas_object(store.entries.astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def _seeded_graph(run_dir, seeded):
    """The graph stage's part of a run: flagged accounts (when seeded), its scores, strong entities, communities."""
    s = pd.read_parquet(run_dir / "scores.parquet", filters=[("stage", "==", "graph")])  # not the rules' rows
    g = s[(s["entity_type"] == "account") & (s["method"] == "graph")]
    flagged = set(g.loc[g["flagged"].astype(bool), "entity_id"].astype(str)) if seeded else set()
    p = run_dir / "graph" / "strong_entities.parquet"
    strong = pd.read_parquet(p) if p.is_file() else pd.DataFrame()
    pool_new = pd.DataFrame({"entity_type": strong.get("entity_type", pd.Series(dtype=object)),
                             "entity_id": strong.get("entity_id", pd.Series(dtype=object)).astype(str),
                             "source": "loop:strong_entity",
                             "score": strong.get("risky_share", pd.Series(dtype=float)).astype(float)})
    c = run_dir / "graph" / "communities.parquet"
    return {"flagged": flagged, "scores": _str_ids(s.reset_index(drop=True)), "pool_new": pool_new,
            "communities": pd.read_parquet(c) if c.is_file() else None}


def _sunk_hits(orders, sunk, *, since):
    if orders is None or not len(orders):
        return set()
    recent = orders[pd.to_datetime(orders["ts"], cache=False) >= since]
    hit = np.zeros(len(recent), dtype=bool)
    for col, name in (("address", "addresses"), ("device_id", "devices"), ("receiver_phone", "phones")):
        if col in recent.columns and len(sunk[name]):
            hit |= recent[col].astype(str).isin(set(sunk[name]["value"])).to_numpy()
    return set(recent.loc[hit, "account_id"].astype(str))


def _update_labels(labels, k, run, graph, hits):
    have = set(labels["account_id"])
    new = []
    for src, keys in (("pipeline", run), ("graph_seeded", graph - run), ("sunk_keys", hits - run - graph)):
        fresh = sorted(set(keys) - have)
        have |= set(fresh)
        new.append(pd.DataFrame({"account_id": fresh, "first_iteration": np.int64(k), "source": src}))
    out = pd.concat([labels, *new], ignore_index=True)
    out["first_iteration"] = out["first_iteration"].astype(np.int64)
    return out


def _window_decisions(dec, orders, store, known_before, start, end):
    """The window's events: the run's decision, the prospective one (past labels and lists), the loop's."""

    d = dec[(pd.to_datetime(dec["ts"], cache=False) >= start) & (pd.to_datetime(dec["ts"], cache=False) < end)].copy()
    d["entity_id"] = d["entity_id"].astype(str)
    d["account_id"] = d["account_id"].astype(str)
    # accounts the loop labelled in earlier iterations are verified on arrival
    pro = np.where(d["account_id"].isin(known_before).to_numpy(), 1, 0)
    listed = np.zeros(len(d), dtype=bool)
    if orders is not None and len(orders) and len(store):
        o = orders.assign(order_id=orders["order_id"].astype(str)).set_index("order_id")
        is_o = (d["entity_type"] == "order").to_numpy()
        od = o.reindex(d.loc[is_o, "entity_id"])
        scope = row_scopes("promotion", od["promotion_id"])
        when = pd.to_datetime(od["ts"], cache=False).to_numpy(dtype="datetime64[ns]")  # each order at its own time
        black = np.zeros(len(od), dtype=bool)
        gray = np.zeros(len(od), dtype=bool)
        for col, et in (("address", "address"), ("device_id", "device"), ("receiver_phone", "phone")):
            vals = od[col].astype(str)
            for name in store.names():
                black |= store.contains(name, vals, list_type="blacklist", entity_type=et, scope=[scope], as_of=when)
                gray |= store.contains(name, vals, list_type="graylist", entity_type=et, scope=[scope], as_of=when)
        listed[is_o] = black
        pro[is_o] = np.maximum(pro[is_o], np.where(black, 2, np.where(gray, 1, 0)))
    labels = np.array(["pass", "verify", "block"], dtype=object)
    run = d["decision"].map({"pass": 0, "verify": 1, "block": 2}).to_numpy()
    d["listed_loop"] = listed
    d["decision_prospective"] = labels[pro]
    d["decision_loop"] = labels[np.maximum(run, pro)]
    return d.reset_index(drop=True)


def _list_sunk(store, sunk, promotions, end, windows, k, ttl):
    """Blacklist sunk addresses/devices for promotions running in the next window; graylist otherwise."""

    new = ListStore(store.entries, store.audit)
    if k + 1 >= len(windows):
        return new
    nxt_end = windows[k + 1][1]
    promos = []
    if promotions is not None and len(promotions):
        p = promotions[(pd.to_datetime(promotions["starts_at"], cache=False) < nxt_end) & (pd.to_datetime(promotions["ends_at"], cache=False) > end)]
        promos = list(zip(p["promotion_id"].astype(str), pd.to_datetime(p["ends_at"], cache=False)))
    live = new.active(end)
    for name, etype, list_name in (("addresses", "address", "scalper_addresses"), ("devices", "device", "scalper_devices"),
                                   ("phones", "phone", "scalper_phones")):
        t = sunk[name]
        if not len(t):
            continue
        vals = t["value"].astype(str)
        for pid, ends in promos:
            scope = f"promotion:{pid}"
            already = set(live.loc[(live["list_name"] == list_name) & (live["scope"] == scope), "entity_id"])
            fresh = vals[~vals.isin(already)].to_numpy()
            if len(fresh):
                new.add("blacklist", list_name, etype, fresh, reason=f"sunk by the closed loop at iteration {k}: "
                        f"{etype} used mostly by flagged accounts", actor="loop", at=end, scope=scope,
                        expires_at=max(ends, end + pd.Timedelta(seconds=1)))
        gname = list_name + "_watch"
        already = set(live.loc[(live["list_name"] == gname), "entity_id"])
        fresh = vals[~vals.isin(already)].to_numpy()
        if len(fresh):
            new.add("graylist", gname, etype, fresh, reason=f"sunk by the closed loop at iteration {k}",
                    actor="loop", at=end, scope="global", expires_at=end + pd.Timedelta(ttl))
    return new


def _event_is_fraud(d, labels):
    lab = labels.assign(entity_id=labels["entity_id"].astype(str))
    fraud = lab[is_fraud_typology(lab["typology"])]
    etype, eid = d["entity_type"].astype(str).to_numpy(), d["entity_id"].astype(str)
    own = np.zeros(len(d), dtype=bool)
    for et, ids in fraud.groupby("entity_type", sort=False)["entity_id"]:  # (type, id) pairs, one type at a time
        own |= (etype == et) & eid.isin(set(ids)).to_numpy()
    acc = set(fraud.loc[fraud["entity_type"] == "account", "entity_id"])
    return own | d["account_id"].astype(str).isin(acc).to_numpy()


def _merge_watch(watched, new, k):
    new = new.assign(product_id=new["product_id"].astype(str), first_iteration=np.int64(k), last_iteration=np.int64(k))
    if not len(watched):
        return new.reset_index(drop=True)
    old = watched.set_index("product_id")
    nw = new.set_index("product_id")
    nw.loc[nw.index.isin(old.index), "first_iteration"] = old.reindex(nw.index[nw.index.isin(old.index)])[
        "first_iteration"].to_numpy()
    keep = old[~old.index.isin(nw.index)]
    return pd.concat([keep, nw]).sort_index().reset_index()


def _merge_sunk(sunk, new, k):
    out = {}
    for name in ("addresses", "devices", "phones"):
        n = new[name].assign(first_iteration=np.int64(k), last_iteration=np.int64(k))
        o = sunk[name]
        if len(o):
            first = o.set_index("value")["first_iteration"]
            n["first_iteration"] = first.reindex(n["value"]).fillna(k).astype(np.int64).to_numpy()
            n = pd.concat([o[~o["value"].isin(set(n["value"]))], n], ignore_index=True)
        out[name] = n.sort_values("value", kind="stable").reset_index(drop=True)
    port = new["portraits"]
    out["portraits"] = pd.concat([sunk["portraits"], port.assign(iteration=np.int64(k))], ignore_index=True) \
        if len(port) else sunk["portraits"]
    return out


def _empty_sink():
    return pd.DataFrame({"value": pd.Series(dtype=object), "n_accounts": pd.Series(dtype=np.int64),
                         "n_flagged": pd.Series(dtype=np.int64), "flagged_share": pd.Series(dtype=float),
                         "n_orders": pd.Series(dtype=np.int64), "units": pd.Series(dtype=float),
                         "first_iteration": pd.Series(dtype=np.int64), "last_iteration": pd.Series(dtype=np.int64)})


def _empty_watch():
    return pd.DataFrame({"product_id": pd.Series(dtype=object), "first_iteration": pd.Series(dtype=np.int64),
                         "last_iteration": pd.Series(dtype=np.int64)})


def _str_ids(df):
    """Object columns of mixed types as text, so Parquet accepts them (nulls kept)."""
    out = df.copy()
    for c in out.columns[out.dtypes == object]:
        out[c] = out[c].astype("string")
    return out
