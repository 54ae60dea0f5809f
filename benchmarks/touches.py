"""Device and IP feature tables: counted from every event against from the touch table.

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

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fraudkit.capability import features  # noqa: E402
from fraudkit.data.dataset import load_dataset  # noqa: E402
from fraudkit.data.sqlsource import open_source  # noqa: E402

EVENTS = ("logins", "interactions", "orders", "coupon_claims")
TOUCHES = features._touches


def per_event(src) -> str:
    """The touch table's columns with one row per event: the queries as they read every event."""
    name = src.name("touches")
    if ("VIEW", name) not in src._created:
        src.engine.execute(f"CREATE TEMP VIEW {name} AS SELECT account_id, dk, ik, nk, 1 AS n, "
                           f"is_action AS n_actions FROM {features._events(src)}")
        src._created.append(("VIEW", name))  # dropped when the source closes
    return name


def one_way(ds, way):
    """Seconds of (the touch table, the pairs, the device / IP / /24 tables) and the tables, on a fresh source."""
    features._touches = TOUCHES if way == "touches" else per_event
    try:
        with open_source(ds) as src:
            features._events(src)  # both ways read it: not timed
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="a dataset folder (e.g. a simulated world)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "touches.md"))
    args = ap.parse_args()
    load_before = os.getloadavg()
    ds = load_dataset(args.data)
    rows = {n: int(ds.engine.row(f"SELECT count(*) FROM {ds.view(n)}")[0]) for n in EVENTS if ds.has(n)}
    print(f"[touches] {args.data}: " + ", ".join(f"{n} {v:,}" for n, v in rows.items())
          + f"; load {' '.join(f'{x:.2f}' for x in load_before)}", flush=True)
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
    text = "\n".join([
        "# Device and IP feature tables: every event against the touch table",
        "",
        f"Printed by `benchmarks/touches.py {args.data}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores; events: " + ", ".join(f"{n} {v:,}" for n, v in rows.items())
        + f" ({n_events:,} in the events table, {n_touches:,} touch rows); load before "
        + f"{' '.join(f'{x:.2f}' for x in load_before)}, after {' '.join(f'{x:.2f}' for x in load_after)}. "
        "Each way timed twice, alternately (touches, every event, every event, touches), seconds; every table "
        "equal across the four runs (the account pairs, the device, IP and /24 feature tables).",
        "",
        "| step | every event (s) | touch table (s) |",
        "|---|---|---|",
        *lines,
        "",
    ])
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"[touches] wrote {args.out}")


if __name__ == "__main__":
    main()
