"""Device and IP feature tables: counted from every event, against counted from the touch table.

The per-device, per-IP and per-/24 feature tables and the distinct (account, device / IP / /24) pairs read
:func:`fraudkit.capability.features._touches`: the events counted once per distinct (account, device, IP, /24),
not every event. Here the same feature SQL runs both ways on the same dataset: over the touch table, and over a
view with one row per event (``n`` = 1), which is how the queries read the events before. The events table
itself is built once per way and not timed (both ways need it). Each way runs twice, alternately (touches,
every event, every event, touches), each on a fresh source, and the tables are checked equal.

Usage::

    flock /tmp/fk-heavy.lock .venv/bin/python benchmarks/touches.py /tmp/fk-bench/large-2024

Writes ``benchmarks/touches.md``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._world import open_world, printed_by, write_page  # noqa: E402
from fraudkit.capability import features  # noqa: E402
from fraudkit.data.sqlsource import open_source  # noqa: E402

TOUCHES = features._touches


def one_way(ds, way):
    """Seconds of (the touch table, the pairs, the device / IP / /24 tables) and the tables, on a fresh source.

    ``"every event"``: the touch table replaced by a view with its columns and one row per event (``n`` = 1), so
    the same queries read every event."""
    with open_source(ds) as src:
        events = features._events(src)  # both ways read it: not timed
        view = src.name("touches_per_event")
        if way != "touches":
            src.engine.execute(f"CREATE TEMP VIEW {view} AS SELECT account_id, dk, ik, nk, 1 AS n, "
                               f"is_action AS n_actions FROM {events}")
            features._touches = lambda _src: view
        try:
            times, out = {}, {}
            t = time.perf_counter()
            features._touches(src)
            times["touch table"] = time.perf_counter() - t
            t = time.perf_counter()
            for key in ("device_id", "ip", "ip24"):
                out[f"pairs {key}"] = src.df(f"SELECT * FROM {features._account_pairs(src, key)} ORDER BY ALL")
            times["account pairs"] = time.perf_counter() - t
            for label, fn in (("device table", lambda: features.device_features_from_source(src)),
                              ("ip table", lambda: features.ip_features_from_source(src, level="ip")),
                              ("ip24 table", lambda: features.ip_features_from_source(src, level="ip24"))):
                t = time.perf_counter()
                out[label] = fn()
                times[label] = time.perf_counter() - t
            return times, out
        finally:
            features._touches = TOUCHES
            src.engine.execute(f"DROP VIEW IF EXISTS {view}")


def main() -> None:
    args, ds, rows, load_before = open_world("touches", __doc__, ROOT / "benchmarks" / "touches.md")
    runs = {"touches": [], "every event": []}
    first = None
    for way in ("touches", "every event", "every event", "touches"):
        times, out = one_way(ds, way)
        print(f"[touches] {way}: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()), flush=True)
        runs[way].append(times)
        if first is None:
            first = out
        else:
            for k, frame in out.items():
                pd.testing.assert_frame_equal(frame, first[k])
    with open_source(ds) as src:
        n_events = src.scalar(f"SELECT count(*) FROM {features._events(src)}")
        n_touches = src.scalar(f"SELECT count(*) FROM {TOUCHES(src)}")
    load_after = os.getloadavg()
    steps = list(runs["touches"][0])
    lines = [f"| {s} | {', '.join(f'{r[s]:.2f}' for r in runs['every event'])} | "
             f"{', '.join(f'{r[s]:.2f}' for r in runs['touches'])} |" for s in steps]
    total = {w: [sum(r.values()) for r in rs] for w, rs in runs.items()}
    lines.append(f"| **total** | {', '.join(f'{x:.2f}' for x in total['every event'])} | "
                 f"{', '.join(f'{x:.2f}' for x in total['touches'])} |")
    write_page(args.out, "touches", "Device and IP feature tables: every event against the touch table",
               printed_by(f"benchmarks/touches.py {args.data}", rows, load_before, load_after,
                          extra=f" ({n_events:,} in the events table, {n_touches:,} touch rows)")
               + " Each way timed twice, alternately (touches, every event, every event, touches), seconds; every "
               "table equal across the four runs (the account pairs, the device, IP and /24 feature tables).",
               ["step", "every event (s)", "touch table (s)"], lines)


if __name__ == "__main__":
    main()
