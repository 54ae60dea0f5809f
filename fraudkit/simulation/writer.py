"""Public entry points: ``generate`` (in memory) and ``simulate`` (to a folder)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from fraudkit import __version__
from fraudkit.data.atomic import atomic_directory
from fraudkit.data.contract import LABEL_TABLE
from fraudkit.errors import FraudkitError
from fraudkit.simulation.assemble import (
    arrow_schema,
    arrow_to_pandas,
    build_world,
    empty_table,
    iter_event_chunks,
    static_tables,
)
from fraudkit.simulation.config import Scenario, load_scenario, scenario_to_dict

__all__ = ["generate", "simulate", "SimulationSummary"]


@dataclass(frozen=True)
class SimulationSummary:
    """What a simulation produced.

    Attributes
    ----------
    scenario : str
    seed : int
    out : str or None
        Output folder (None for :func:`generate`).
    counts : dict
        Rows per table, labels included.
    labelled : dict
        ``typology -> {entity_type: n}`` from the labels table.
    seconds : float
        Wall time.
    """

    scenario: str
    seed: int
    out: str | None
    counts: dict = field(default_factory=dict)
    labelled: dict = field(default_factory=dict)
    seconds: float = 0.0

    def describe(self) -> str:
        """Counts per table and labelled entities per typology, as text."""
        lines = [f"scenario {self.scenario} (seed {self.seed}) in {self.seconds:.1f} s"
                 + (f" -> {self.out}" if self.out else "")]
        lines += [f"  {name:<14} {n:>12,}" for name, n in self.counts.items()]
        lines.append("labelled entities:")
        for typ, by in self.labelled.items():
            lines.append(f"  {typ:<22} " + ", ".join(f"{k} {v:,}" for k, v in sorted(by.items())))
        return "\n".join(lines)


def generate(scenario, *, seed=None, progress=False) -> dict[str, pd.DataFrame]:
    """Simulate ``scenario`` in memory.

    Parameters
    ----------
    scenario : Scenario, str or Path
        A scenario, a scenario name or a YAML path.
    seed : int, optional
        Overrides the scenario's seed.
    progress : bool, default=False
        Show a progress bar on stderr.

    Returns
    -------
    dict of str to pandas.DataFrame
        One table per contract table (e-commerce tables only when enabled)
        plus ``labels``; columns and dtypes as in :mod:`fraudkit.data.contract`.

    Examples
    --------
    >>> t = generate("micro")
    >>> t["interactions"].columns.tolist()[:3]
    ['event_id', 'ts', 'account_id']
    """
    scenario = load_scenario(scenario)
    seed = _seed(scenario, seed)
    world = build_world(scenario, seed)
    tables, labels = static_tables(world)
    chunks: dict[str, list] = {}
    label_parts = [labels]
    with _bar(progress, world.days, scenario.name) as bar:
        for ev, lab in iter_event_chunks(world, bar):
            for k, v in ev.items():
                chunks.setdefault(k, []).append(v)
            label_parts.append(lab)
    for k, parts in chunks.items():
        import pyarrow as pa

        tables[k] = arrow_to_pandas(k, pa.concat_tables(parts))
    tables["labels"] = _finish_labels(label_parts)
    return {k: tables[k] for k in sorted(tables)}


def simulate(scenario, out, *, seed=None, fmt="parquet", progress=True, force=False) -> SimulationSummary:
    """Simulate ``scenario`` and write one file per table into ``out`` atomically.

    Event tables are generated and appended day by day, so memory stays
    bounded for the ``large`` scenario. ``out`` also receives
    ``scenario.yaml`` (the resolved configuration) and ``manifest.json``
    (seed, row counts, wall time).

    Parameters
    ----------
    scenario : Scenario, str or Path
    out : str or Path
        Folder; replaced only when the run succeeds.
    seed : int, optional
    fmt : {"parquet", "csv"}, default="parquet"
    progress : bool or progress reporter, default=True
        True: a tqdm bar of the days on stderr; False: nothing; an object with ``step(stage, name)`` and
        ``say(message)`` (:class:`fraudkit.pipeline.progress.Progress`, as ``fraudkit simulate`` passes):
        a line per step (build the world, events day by day, labels) and one per tenth of the days.
    force : bool, default=False
        Replace ``out`` even when it holds files fraudkit did not write (otherwise it must be new, empty or an
        earlier simulated dataset).

    Returns
    -------
    SimulationSummary

    Examples
    --------
    >>> import tempfile
    >>> s = simulate("micro", tempfile.mkdtemp() + "/d", progress=False)
    >>> s.counts["accounts"] > 0
    True
    """
    if fmt not in ("parquet", "csv"):
        raise FraudkitError(f"unknown format {fmt!r}. Fix: use parquet or csv.")
    t0 = time.perf_counter()
    scenario = load_scenario(scenario)
    seed = _seed(scenario, seed)
    reporter = progress if hasattr(progress, "step") else None
    with _step(reporter, scenario.name, f"build the world (seed {seed}): accounts, devices, campaigns") as st:
        world = build_world(scenario, seed)
        tables, labels = static_tables(world)
        st.rows(len(tables.get("accounts", ())), "accounts")
    counts = {}
    with atomic_directory(out, kind="dataset", force=force) as tmp:
        for name, df in tables.items():
            _write_whole(df, name, tmp, fmt)
            counts[name] = len(df)
        writers: dict[str, _Appender] = {}
        label_parts = [labels]
        with _step(reporter, scenario.name, f"events day by day ({world.days} days)") as st, \
                _bar(progress, world.days, scenario.name) as bar:
            for ev, lab in iter_event_chunks(world, bar):
                for name, df in ev.items():
                    writers.setdefault(name, _Appender(tmp, name, fmt)).append(df)
                label_parts.append(lab)
            for name, w in writers.items():
                counts[name] = w.close()
            st.rows(sum(counts.get(k, 0) for k in writers), "events")
        lab = _finish_labels(label_parts)
        _write_whole(lab, "labels", tmp, fmt)
        counts = {k: counts[k] for k in sorted(counts)}
        counts["labels"] = len(lab)
        labelled = _labelled(lab)
        seconds = time.perf_counter() - t0
        (tmp / "scenario.yaml").write_text(yaml.safe_dump(scenario_to_dict(scenario), sort_keys=False,
                                                          allow_unicode=True), encoding="utf-8")
        (tmp / "manifest.json").write_text(json.dumps({
            "scenario": scenario.name, "seed": seed, "format": fmt, "counts": counts, "labelled": labelled,
            "fraudkit": _version()}, indent=2), encoding="utf-8")  # no wall time: same seed, same bytes
    return SimulationSummary(scenario.name, seed, str(out), counts, labelled, seconds)


# --- private helpers ----------------------------------------------------------


def _seed(scenario: Scenario, seed) -> int:
    return int(scenario.seed if seed is None else seed)


def _finish_labels(parts) -> pd.DataFrame:
    lab = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) \
        else empty_table("labels")
    # an entity in several campaigns of one typology keeps its first campaign
    lab = lab.drop_duplicates(["entity_type", "entity_id", "typology"], keep="first")
    lab = lab.sort_values(["entity_type", "typology", "entity_id"], kind="stable").reset_index(drop=True)
    lab["campaign_id"] = lab["campaign_id"].astype("Int64")
    return lab[[c.name for c in LABEL_TABLE.columns]]


def _labelled(lab: pd.DataFrame) -> dict:
    out = {}
    for (typ, et), n in lab.groupby(["typology", "entity_type"]).size().items():
        out.setdefault(typ, {})[et] = int(n)
    return out


def _to_arrow(df, name):
    import pyarrow as pa

    if isinstance(df, pa.Table):
        return df
    return pa.Table.from_pandas(df, schema=arrow_schema(name), preserve_index=False)


def _write_whole(df, name, folder: Path, fmt):
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(_to_arrow(df, name), folder / f"{name}.parquet")
    else:
        df.to_csv(folder / f"{name}.csv", index=False, date_format="%Y-%m-%dT%H:%M:%S.%f")


class _Appender:
    """Appends chunks of one table to a Parquet or CSV file inside the temporary folder."""

    def __init__(self, folder: Path, name: str, fmt: str):
        self.path = folder / f"{name}.{fmt}"
        self.name, self.fmt, self.rows, self._w, self._started = name, fmt, 0, None, False

    def append(self, df):
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            if self._w is None:
                self._w = pq.ParquetWriter(self.path, arrow_schema(self.name), compression="zstd")
            self._w.write_table(_to_arrow(df, self.name))
        else:
            if not isinstance(df, pd.DataFrame):
                df = arrow_to_pandas(self.name, df)
            df.to_csv(self.path, mode="a", header=not self._started, index=False,
                      date_format="%Y-%m-%dT%H:%M:%S.%f")
            self._started = True
        self.rows += len(df)

    def close(self) -> int:
        if self._w is not None:
            self._w.close()
        return self.rows


class _bar:
    """``progress=True``: a tqdm bar of the days; a reporter: a line per tenth of the days; else nothing."""

    def __init__(self, on, total, name):
        self.on, self.total, self.name, self._b = on, total, name, None

    def __enter__(self):
        if hasattr(self.on, "say"):
            self._b = _Lines(self.on, self.total, self.name)
        elif self.on:
            from tqdm import tqdm

            self._b = tqdm(total=self.total, desc=f"simulate {self.name}", unit="day", file=sys.stderr)
        return self._b

    def __exit__(self, *exc):
        if self._b is not None:
            self._b.close()


class _Lines:
    """The days done, said every tenth of the days (plain lines, no carriage returns)."""

    def __init__(self, reporter, total, name):
        self.reporter, self.total, self.name = reporter, max(int(total), 1), name
        self.done, self._next = 0, 0.1

    def update(self, n):
        self.done += n
        if self.done / self.total >= self._next - 1e-9 and self.done < self.total:
            self.reporter.say(f"{self.name} · events: day {self.done}/{self.total}")
            self._next = (int(self.done * 10 / self.total) + 1) / 10

    def close(self):
        pass


def _step(reporter, name, what):
    """``reporter.step(name, what)``, or a step that reports nothing."""
    return reporter.step(str(name), what) if reporter is not None else _NoStep()


class _NoStep:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def rows(self, n, what="rows"):
        pass


def _version():
    try:
        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"

