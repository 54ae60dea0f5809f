"""Step 1, risk perception: data health, anomaly monitors, intelligence, red-team drill.

Seeing risk early, before a model is trained on it: monitors that a
stakeholder can read on one chart each. Every monitor is a pure function of
dataset tables (never the labels) and returns a DataFrame with the numbers it
flagged and why, so a scheduled run can alert on them.

Used by ``notebooks/01_risk_perception.ipynb``.

* :func:`data_health` / :func:`null_report` — is the input fit to use?
* :func:`engagement_spikes` — notes whose daily engagement jumps far above their own baseline;
* :func:`like_view_ratio` — notes liked far more than they are viewed (offline scripts call the like
  API without ever viewing);
* :func:`new_account_bursts` — days with registration bursts (bulk account batches);
* :func:`promotion_traffic` — orders and coupon claims per day, inside and outside promotions;
* :func:`price_index` — black-market prices over time (the ``intelligence`` table);
* :func:`red_team_drill` — simulate an attack scenario at a small size, score it with the current rules and
  models, and compare what leaks, by typology, with the normal world of the same size (which
  :func:`start_normal_world` can start early, in a second process).
"""

from __future__ import annotations

from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from fraudkit.data.atomic import write_text
from fraudkit.data.contract import FRAUD_TYPOLOGIES, LABEL_TABLE, TABLES
from fraudkit.data.dataset import read_table, table_path
from fraudkit.evaluation.metrics import evaluate_run
from fraudkit.pipeline.progress import step
from fraudkit.pipeline.score import score_dataset
from fraudkit.simulation import simulate
from fraudkit.simulation.config import SCENARIO_DIR

__all__ = [
    "data_health",
    "null_report",
    "engagement_spikes",
    "like_view_ratio",
    "new_account_bursts",
    "promotion_traffic",
    "price_index",
    "robust_z",
    "RedTeamDrill",
    "DrillWorld",
    "drill_scenario",
    "start_normal_world",
    "red_team_drill",
    "drill_comparison",
    "drill_headline",
]


def data_health(data_dir, *, read=None) -> pd.DataFrame:
    """One row per contract table: present, rows, time range, missing required columns, contract nulls.

    Parameters
    ----------
    data_dir : path
        Dataset folder (``<table>.parquet`` or ``<table>.csv`` per table).
    read : callable, optional
        ``read(name)``: the table ``name`` of ``data_dir`` as a DataFrame (None when absent), for a caller that
        keeps the tables it has read (a notebook's :meth:`fraudkit.report.notebook.Context.table`). Default
        :func:`fraudkit.data.dataset.read_table` of ``data_dir``.

    Returns
    -------
    DataFrame with columns ``table, required, present, rows, time_from, time_to,
    missing_columns, null_violations`` (nulls in columns the contract says are never null).
    """
    read = _reader(data_dir, read)
    rows = []
    for spec in (*TABLES.values(), LABEL_TABLE):
        p = table_path(data_dir, spec.name)
        row = {"table": spec.name, "required": spec.required, "present": p is not None, "rows": 0,
               "time_from": pd.NaT, "time_to": pd.NaT, "missing_columns": "", "null_violations": 0}
        if p is not None:
            df = read(spec.name)
            row["rows"] = len(df)
            row["missing_columns"] = ", ".join(c for c in spec.column_names if c not in df.columns)
            row["null_violations"] = int(sum(df[c.name].isna().sum() for c in spec.columns
                                             if c.name in df.columns and not c.nullable))
            if spec.time_column and spec.time_column in df.columns and len(df):
                t = pd.to_datetime(df[spec.time_column])
                row["time_from"], row["time_to"] = t.min(), t.max()
        rows.append(row)
    return pd.DataFrame(rows)


def null_report(data_dir, *, read=None) -> pd.DataFrame:
    """Columns with missing values: ``table, column, nulls, null_rate, allowed`` (by the contract).

    ``read`` as in :func:`data_health`.
    """
    read = _reader(data_dir, read)
    out = []
    for spec in TABLES.values():
        df = read(spec.name)
        if df is None or not len(df):
            continue
        for c in spec.columns:
            if c.name in df.columns:
                n = int(df[c.name].isna().sum())
                if n:
                    out.append({"table": spec.name, "column": c.name, "nulls": n,
                                "null_rate": n / len(df), "allowed": c.nullable})
    return pd.DataFrame(out, columns=["table", "column", "nulls", "null_rate", "allowed"])


def robust_z(x, baseline, spread, *, floor: float = 1.0) -> np.ndarray:
    """``(x - baseline) / (1.4826 * spread + floor)``: a z-score on median and MAD that small counts cannot blow up."""
    return (np.asarray(x, float) - np.asarray(baseline, float)) / (1.4826 * np.asarray(spread, float) + floor)


def engagement_spikes(interactions: pd.DataFrame, *, actions=("like", "collect", "comment", "share"),
                      z: float = 6.0, min_count: int = 20) -> pd.DataFrame:
    """Note-days whose engagement jumps far above the note's own daily baseline.

    For each note, the baseline is the median daily count over the days it was
    engaged with, the spread the median absolute deviation. A note-day is a
    spike when its robust z-score exceeds ``z`` and its count is at least
    ``min_count``. Viral notes spike too (the honest look-alike): the monitor
    raises them for review; identification decides.

    Returns
    -------
    DataFrame ``note_id, day, count, baseline, z``, highest ``z`` first (spikes only).

    Examples
    --------
    >>> ts = pd.to_datetime(["2024-01-01"] * 3 + ["2024-01-02"] * 3 + ["2024-01-03"] * 40)
    >>> df = pd.DataFrame({"ts": ts, "action": "like", "target_id": 7})
    >>> engagement_spikes(df, min_count=10)[["note_id", "count"]].values.tolist()
    [[7, 40]]
    """
    cols = ["note_id", "day", "count", "baseline", "z"]
    ev = interactions[interactions["action"].isin(actions)]
    if ev.empty:
        return pd.DataFrame(columns=cols)
    daily = (ev.assign(day=pd.to_datetime(ev["ts"]).dt.normalize())
             .groupby(["target_id", "day"], sort=True).size().rename("count").reset_index()
             .rename(columns={"target_id": "note_id"}))
    g = daily.groupby("note_id")["count"]
    daily["baseline"] = g.transform("median")
    mad = (daily["count"] - daily["baseline"]).abs().groupby(daily["note_id"]).transform("median")
    daily["z"] = robust_z(daily["count"], daily["baseline"], mad)
    out = daily[(daily["z"] > z) & (daily["count"] >= min_count)]
    return out.sort_values(["z", "note_id", "day"], ascending=[False, True, True], kind="stable")[cols] \
        .reset_index(drop=True)


def like_view_ratio(interactions: pd.DataFrame, *, min_engagement: int = 20, k: float = 3.0) -> pd.DataFrame:
    """Per note: views, likes, collects and the like/view ratio, with outliers marked.

    A note is an outlier when it has at least ``min_engagement`` likes and its
    ratio lies above ``Q3 + k * IQR`` of the ratios of such notes, or when it
    has more likes than views (likes that never came with a view are what
    protocol-level scripts leave behind).

    Returns
    -------
    DataFrame ``note_id, views, likes, collects, like_view_ratio, outlier``, outliers first.
    """
    notes = interactions[interactions["action"] != "follow"]
    counts = notes.pivot_table(index="target_id", columns="action", values="ts", aggfunc="size", fill_value=0)
    for a in ("view", "like", "collect"):
        if a not in counts.columns:
            counts[a] = 0
    out = pd.DataFrame({"note_id": counts.index, "views": counts["view"].to_numpy(),
                        "likes": counts["like"].to_numpy(), "collects": counts["collect"].to_numpy()})
    out["like_view_ratio"] = out["likes"] / out["views"].clip(lower=1)
    big = out["likes"] >= min_engagement
    if big.sum() >= 4:
        q1, q3 = np.quantile(out.loc[big, "like_view_ratio"], [0.25, 0.75])
        cut = q3 + k * (q3 - q1)
    else:
        cut = np.inf
    out["outlier"] = big & ((out["like_view_ratio"] > cut) | (out["likes"] > out["views"]))
    return out.sort_values(["outlier", "like_view_ratio", "note_id"], ascending=[False, False, True],
                           kind="stable").reset_index(drop=True)


def new_account_bursts(accounts: pd.DataFrame, *, window: int = 14, z: float = 4.0, min_count: int = 10) -> pd.DataFrame:
    """Registrations per day and channel, with burst days marked.

    The baseline of a day is the median of the preceding ``window`` days
    (the day itself excluded, so a burst does not hide itself); a day is a
    burst when its robust z-score exceeds ``z`` and it has at least
    ``min_count`` registrations.

    Returns
    -------
    DataFrame ``day, register_channel, registrations, baseline, z, burst``, one row per day and channel
    (channel ``"all"`` for the total).
    """
    acc = accounts.assign(day=pd.to_datetime(accounts["registered_at"]).dt.normalize())
    per = acc.groupby(["day", "register_channel"]).size().rename("registrations").reset_index()
    tot = acc.groupby("day").size().rename("registrations").reset_index().assign(register_channel="all")
    frames = []
    for ch, part in pd.concat([tot, per], ignore_index=True).groupby("register_channel", sort=True):
        s = part.set_index("day")["registrations"].asfreq("D", fill_value=0)
        prev = s.shift(1).rolling(window, min_periods=3)
        base = prev.median()
        mad = prev.apply(lambda v: np.median(np.abs(v - np.median(v))), raw=True)
        zz = robust_z(s, base.fillna(s.median()), mad.fillna(0))
        frames.append(pd.DataFrame({"day": s.index, "register_channel": ch, "registrations": s.to_numpy(),
                                    "baseline": base.to_numpy(), "z": zz}))
    out = pd.concat(frames, ignore_index=True)
    out["burst"] = (out["z"] > z) & (out["registrations"] >= min_count)
    return out


def promotion_traffic(orders: pd.DataFrame | None, coupon_claims: pd.DataFrame | None,
                      promotions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Orders, units, distinct buyers and coupon claims per day, with the promotion running that day.

    Returns
    -------
    DataFrame ``day, orders, units, buyers, coupon_claims, claimers, promotion`` (``promotion`` empty
    outside promotion windows).
    """
    parts = []
    if orders is not None and len(orders):
        o = orders.assign(day=pd.to_datetime(orders["ts"]).dt.normalize())
        parts.append(o.groupby("day").agg(orders=("order_id", "size"), units=("quantity", "sum"),
                                          buyers=("account_id", "nunique")))
    if coupon_claims is not None and len(coupon_claims):
        c = coupon_claims.assign(day=pd.to_datetime(coupon_claims["ts"]).dt.normalize())
        parts.append(c.groupby("day").agg(coupon_claims=("claim_id", "size"), claimers=("account_id", "nunique")))
    cols = ["day", "orders", "units", "buyers", "coupon_claims", "claimers", "promotion"]
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, axis=1).fillna(0).sort_index()
    for c in cols[1:-1]:
        out[c] = out[c].astype(int) if c in out.columns else 0
    out = out.reset_index(names="day")
    out["promotion"] = ""
    if promotions is not None:
        for p in promotions.sort_values("starts_at").itertuples():
            inside = (out["day"] >= pd.Timestamp(p.starts_at).normalize()) & (out["day"] <= pd.Timestamp(p.ends_at))
            out.loc[inside & (out["promotion"] == ""), "promotion"] = str(p.name)
    return out[cols]


def price_index(intelligence: pd.DataFrame) -> pd.DataFrame:
    """Median observed black-market price per item and day, and its change since the item's first day.

    Rising prices for accounts and phone numbers are a sign that bans are
    biting: the supply chain is paying more for the resources it burns.

    Returns
    -------
    DataFrame ``date, item, price, sources, change`` (``change`` = price / first price - 1).
    """
    d = intelligence.assign(date=pd.to_datetime(intelligence["date"]).dt.normalize())
    out = d.groupby(["item", "date"]).agg(price=("price", "median"), sources=("source", "nunique")).reset_index()
    first = out.groupby("item")["price"].transform("first")
    out["change"] = out["price"] / first.where(first > 0) - 1
    return out[["date", "item", "price", "sources", "change"]]


@dataclass(frozen=True)
class RedTeamDrill:
    """What :func:`red_team_drill` found.

    Attributes
    ----------
    attack : DataFrame
        Evaluation table of the attack world (per typology: ``n_labelled``, recall by stage
        and combined, ``leaked``, ``leakage_rate``; look-alike false-positive rates).
    normal : DataFrame or None
        The same for the normal world of the same size and seed (None with ``baseline=False``).
    comparison : DataFrame
        :func:`drill_comparison` of the two (empty without a normal world).
    scenario, size : str
        The attack scenario and the world size it was simulated at (``""``: its own size).
    seed : int
    trained : bool
        Whether models and thresholds came from a labelled training dataset.
    """

    attack: pd.DataFrame
    normal: pd.DataFrame | None
    comparison: pd.DataFrame
    scenario: str
    size: str
    seed: int
    trained: bool


def drill_scenario(attack: str = "evasive", *, size: str = "micro", out) -> Path:
    """Write a scenario file: the world of ``size`` attacked the way ``attack`` attacks. Returns its path.

    The attack scenario's own ``attackers`` section (its evasion knobs: throttling,
    IP scattering, spoofed or real devices, fewer actions) is applied to the
    ``size`` scenario, whose population, look-alikes, shop, days and campaign
    sizes are kept: a drill that runs in seconds. Empty ``size``: the attack
    scenario as it is.

    Examples
    --------
    >>> import tempfile, yaml
    >>> p = drill_scenario("evasive", size="micro", out=tempfile.mkdtemp())
    >>> raw = yaml.safe_load(p.read_text())
    >>> raw["extends"], raw["attackers"]["device_farm"]["ip_scatter"]
    ('micro', 0.7)
    """
    import yaml


    if not size:
        return Path(attack)
    src = Path(attack) if str(attack).endswith((".yaml", ".yml")) else SCENARIO_DIR / f"{attack}.yaml"
    raw = yaml.safe_load(src.read_text(encoding="utf-8")) or {}
    knobs = {name: {k: v for k, v in (cfg or {}).items() if k not in _SIZE_KNOBS}
             for name, cfg in (raw.get("attackers") or {}).items() if isinstance(cfg, dict)}
    knobs.update({k: v for k, v in (raw.get("attackers") or {}).items() if not isinstance(v, dict)})
    spec = {"extends": str(size), "name": f"{Path(str(attack)).stem}-at-{Path(str(size)).stem}",
            "description": f"the {size} world attacked with the {Path(str(attack)).stem} attackers' settings",
            "attackers": knobs}
    path = Path(out) / f"{spec['name']}.yaml"
    write_text(path, yaml.safe_dump(spec, sort_keys=True))
    return path


@dataclass(frozen=True, eq=False)
class DrillWorld:
    """A drill world being simulated and scored in a second process (:func:`start_normal_world`).

    Attributes
    ----------
    name : str
        ``"normal"``.
    data, run : Path
        Where the world is simulated and scored (``work_dir/<name>/data`` and ``/run``).
    """

    name: str
    data: Path
    run: Path
    _job: Future = field(repr=False)
    _process: ProcessPoolExecutor = field(repr=False)

    def wait(self) -> Path:
        """Wait until the world is scored (raising what its process raised) and end the process; its run."""
        try:
            self._job.result()
        finally:
            self._process.shutdown(wait=True)
        return self.run

    def cancel(self) -> None:
        """End the process once it is done, without raising what it raised (the drill failed elsewhere)."""
        self._process.shutdown(wait=True, cancel_futures=True)


def start_normal_world(*, work_dir, seed: int = 0, stages=("behaviour", "group", "graph"), train=None,
                       size: str = "micro", reuse=None) -> DrillWorld:
    """Start simulating and scoring the drill's normal world in a second process; return at once.

    The normal world depends on the size, seed, stages and defences, not on the attack scenario, so a
    notebook can start it before its monitors run and hand it to :func:`red_team_drill` (``normal=``),
    which scores the attack world meanwhile and collects it. The process is spawned, not forked (a process
    that has run DuckDB or OpenMP threads may hang in a fork); its run is what the same call would write in
    this process.

    Parameters
    ----------
    work_dir, seed, stages, train, size, reuse
        As :func:`red_team_drill` will be called with (``train`` a path; ``size`` not empty).

    Returns
    -------
    DrillWorld
    """
    if not size:
        raise ValueError("the normal world needs a size (a scenario name); got an empty size")
    if train is not None and not isinstance(train, (str, PathLike)):
        raise ValueError(f"train must be a dataset folder to be read by a second process; got {type(train).__name__}")
    work = Path(work_dir)
    data, run = work / "normal" / "data", work / "normal" / "run"
    process = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
    job = process.submit(_drill_world, "normal", Path(size), data, run, stages=list(stages), seed=seed,
                         train=train, reuse=reuse)
    return DrillWorld("normal", data, run, job, process)


def red_team_drill(scenario: str = "evasive", *, work_dir, seed: int = 0, stages=("behaviour", "group", "graph"),
                   train=None, size: str = "micro", baseline: bool = True, reuse=None, parallel: bool = True,
                   normal: DrillWorld | None = None, progress=None) -> RedTeamDrill:
    """Run an attack scenario against the current rules and models; report what leaks, by typology.

    Simulates ``scenario`` at the size of ``size`` (:func:`drill_scenario`) into
    ``work_dir/attack/data``, scores it with :func:`fraudkit.pipeline.score.score_dataset`
    (the built-in rules; with ``train``, the models and thresholds learned on that
    labelled dataset: today's defences against tomorrow's attackers) and evaluates
    it with :func:`fraudkit.evaluation.metrics.evaluate_run`. With ``baseline`` the normal
    world of the same size and seed (``size`` itself) is scored the same way, so the
    comparison isolates the evasion from the world's size. Worlds already simulated
    and scored in ``work_dir`` are reused.

    What the defences learned from ``train`` (the training pass that sets every threshold and the
    models' training features, :mod:`fraudkit.pipeline.training`) depends on ``train`` alone, not on the
    world scored: it is computed once and reused for every drill world, taken from ``reuse`` (the main run's
    directory, scored with the same ``train``, stages and seed) when given. The results are the same as
    scoring each world from scratch.

    The two worlds are then independent of each other: with ``parallel``, and ``reuse`` given (or no
    ``train``: nothing to learn once), the normal world is simulated and scored in a second process
    (:func:`start_normal_world`) while this one does the attack world. Each world's run is what it would be
    alone (same data, seed and defences), so the tables are the same either way.

    Parameters
    ----------
    scenario : str
        The attack scenario (a name or a YAML path).
    work_dir : path
        Where the drill worlds and their runs are written.
    seed : int, default=0
    stages : sequence of str, default=("behaviour", "group", "graph")
    train : path, optional
        The labelled training dataset the defences are fitted on (today's defences).
    size : str, default="micro"
        The world size (a scenario name); empty: the attack scenario's own size.
    baseline : bool, default=True
        Also score the normal world of the same size and seed.
    reuse : path, optional
        The main run's directory (``score_dataset(..., train=train)``): its training pass is reused.
    parallel : bool, default=True
        Score the two worlds at the same time, in two processes (see above); False: one after the other.
    normal : DrillWorld, optional
        The normal world, already started by :func:`start_normal_world` with the same ``work_dir``, seed,
        stages, ``train``, ``size`` and ``reuse``: collected here instead of being started.
    progress : fraudkit.pipeline.progress.Progress, optional
        Reports the simulation and scoring of each world.

    Returns
    -------
    RedTeamDrill
    """

    work = Path(work_dir)
    worlds = {"attack": drill_scenario(scenario, size=size, out=work)}
    if baseline and size:
        worlds["normal"] = Path(size)
    jobs = {name: (name, scen, work / name / "data", work / name / "run") for name, scen in worlds.items()}
    if normal is not None and ("normal" not in jobs or Path(normal.run) != jobs["normal"][3]):
        normal.cancel()
        raise ValueError(f"the normal world started in {normal.run} is not this drill's "
                         f"({jobs['normal'][3] if 'normal' in jobs else 'it has no normal world'})")
    todo = [name for name, job in jobs.items() if not (job[3] / "accounts.parquet").exists()]
    kw = {"stages": list(stages), "seed": seed, "train": train}
    if (normal is None and parallel and "normal" in todo and len(todo) > 1
            and (train is None or (reuse is not None and isinstance(train, (str, PathLike))))):
        normal = start_normal_world(work_dir=work, size=size, reuse=reuse, **kw)
    if normal is not None:
        try:
            for name in todo:
                if name != "normal":
                    _drill_world(*jobs[name], reuse=reuse, progress=progress, **kw)
        except BaseException:
            normal.cancel()
            raise
        with step(progress, "drill", "the normal world, scored in a second process"):
            normal.wait()
    else:
        for name, job in jobs.items():
            if name in todo:
                _drill_world(*job, reuse=reuse, progress=progress, **kw)
            if train is not None:
                reuse = job[3]  # the next world reuses what this run learned from train
    tables = {name: _with_leakage(evaluate_run(run, data=data)) for name, (_, _, data, run) in jobs.items()}
    normal_table = tables.get("normal")
    comparison = drill_comparison(normal_table, tables["attack"]) if normal_table is not None else pd.DataFrame()
    return RedTeamDrill(tables["attack"], normal_table, comparison, str(scenario), str(size or ""), int(seed),
                        train is not None)


def drill_comparison(normal: pd.DataFrame, attack: pd.DataFrame) -> pd.DataFrame:
    """Per fraud typology (and over all fraud): recall and leakage in the normal and the attack world.

    Columns ``typology, n_normal, recall_normal, leakage_rate_normal, n_attack, recall_attack,
    leakage_rate_attack, extra_leakage`` (attack minus normal leakage rate, in rate points).

    Examples
    --------
    >>> n = pd.DataFrame({"typology": ["device_farm"], "n_labelled": [10], "recall_combined": [0.9]})
    >>> a = pd.DataFrame({"typology": ["device_farm"], "n_labelled": [10], "recall_combined": [0.4]})
    >>> drill_comparison(n, a)["extra_leakage"].round(2).tolist()
    [0.5]
    """

    def part(t, tag):
        t = t[t["typology"].isin((*FRAUD_TYPOLOGIES, "all_fraud")) & (t["n_labelled"].fillna(0) > 0)]
        col = "recall_combined" if "recall_combined" in t.columns else None
        rec = t[col].astype(float) if col else pd.Series(np.nan, index=t.index)
        return pd.DataFrame({"typology": t["typology"], f"n_{tag}": t["n_labelled"].astype("Int64"),
                             f"recall_{tag}": rec, f"leakage_rate_{tag}": 1 - rec})

    out = part(normal, "normal").merge(part(attack, "attack"), on="typology", how="outer")
    order = {t: i for i, t in enumerate((*FRAUD_TYPOLOGIES, "all_fraud"))}
    out = out.sort_values("typology", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    out["extra_leakage"] = out["leakage_rate_attack"] - out["leakage_rate_normal"]
    return out


def drill_headline(drill: RedTeamDrill, *, top: int = 3) -> str:
    """One paragraph (Markdown) on what the drill found: overall leakage and the worst typologies."""
    how = ("rules, and models and thresholds fitted on the training data" if drill.trained
           else "rules and unsupervised stages only (no training data)")
    where = f"at the size of `{drill.size}`" if drill.size else "at its own size"
    c = drill.comparison
    a = drill.attack.set_index("typology")
    if not len(c):
        rate = a.loc["all_fraud", "leakage_rate"] if "all_fraud" in a.index and "leakage_rate" in a.columns else np.nan
        return (f"**{drill.scenario}**, simulated {where} (seed {drill.seed}), scored with {how}: "
                f"{_pct(rate)} of fraudulent accounts got through.")
    overall = c[c["typology"] == "all_fraud"]
    per = c[c["typology"] != "all_fraud"].dropna(subset=["extra_leakage"])
    worst = per.sort_values(["extra_leakage", "typology"], ascending=[False, True]).head(top)
    worst = worst[worst["extra_leakage"] > 0]
    text = (f"**{drill.scenario}**, simulated {where} (seed {drill.seed}), scored with {how}. ")
    if len(overall):
        o = overall.iloc[0]
        text += (f"{_pct(o['leakage_rate_attack'])} of its fraudulent accounts got through, against "
                 f"{_pct(o['leakage_rate_normal'])} in the normal world of the same size. ")
    if len(worst):
        text += "Most extra leakage: " + ", ".join(
            f"{r.typology.replace('_', ' ')} (+{r.extra_leakage * 100:.0f} points)" for r in worst.itertuples()) + "."
    else:
        text += "No typology leaks more than in the normal world."
    return text


def _drill_world(name, scenario, data, run, *, stages, seed, train, reuse, progress=None) -> None:
    """Simulate one drill world into ``data`` and score it into ``run`` (each unless already there)."""
    if not (data / "accounts.parquet").exists():
        with step(progress, "drill", f"simulate the {name} world ({scenario})"):
            simulate(str(scenario), data, seed=seed, progress=False)
    if not (run / "accounts.parquet").exists():
        with step(progress, "drill", f"score the {name} world"):
            score_dataset(data, run, stages=list(stages), seed=seed, train=train, reuse=reuse)


def _reader(data_dir, read):
    """``read``, or one that reads a table of ``data_dir`` each time it is asked."""
    return read if read is not None else (lambda name: read_table(data_dir, name))


def _pct(v) -> str:
    return "n/a" if v is None or pd.isna(v) else f"{float(v):.0%}"


def _with_leakage(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    if {"n_labelled", "recall_combined"} <= set(table.columns):
        caught = (table["n_labelled"] * table["recall_combined"]).round()
        table["leaked"] = (table["n_labelled"] - caught).astype("Int64")
        table["leakage_rate"] = 1 - table["recall_combined"]
    return table


_SIZE_KNOBS = ("campaigns", "accounts_per_campaign", "targets_per_campaign")
"""Attacker settings that set the size of an attack; a drill keeps the world's own."""
