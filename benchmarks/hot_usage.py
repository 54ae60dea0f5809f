"""Hot entities from the data: the usage of every shared entity against that of the hot ones only.

The list weights and the graph stage decide which shared devices and IP addresses are hot
(:func:`fraudkit.capability.graphs.hot_entities`). Their days, hours, first-use peaks and linked accounts are read
only for the entities above the degree threshold; :func:`~fraudkit.capability.graphs.hot_entities_of` works
them out for those alone (the others only counted, for the quartiles). Each question a ``fraudkit score`` run asks
is timed both ways, alternately (the new way first, then the old, then the old first), on the same dataset and
connection, and the two tables are checked equal (rows, reasons, threshold and quartiles).

Usage::

    flock /tmp/fk-heavy.lock .venv/bin/python benchmarks/hot_usage.py /tmp/fk-bench/large-2024

Writes ``benchmarks/hot_usage.md``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._world import EVENTS, open_world, printed_by, write_page  # noqa: E402
from fraudkit.capability.graphs import entity_usage, hot_entities, hot_entities_of  # noqa: E402
CASES = [  # (who asks, medium, tables, linking medium, steady test), as the run asks them
    ("list weights: listed IP addresses", "ip", EVENTS, "device_id", True),
    ("graph stage: hot devices", "device_id", EVENTS, None, False),
    ("graph stage: hot IP addresses (logins)", "ip", ("logins",), "device_id", True),
]


def main() -> None:
    args, ds, rows, load_before = open_world("hot_usage", __doc__, ROOT / "benchmarks" / "hot_usage.md")

    def every(ent, tables, link, steady):
        return hot_entities(entity_usage(ds, entity=ent, tables=tables, link=link), entity_type=ent, steady=steady)

    def hot_only(ent, tables, link, steady):
        return hot_entities_of(ds, entity=ent, tables=tables, link=link, entity_type=ent, steady=steady)

    def timed(fn, *a):
        ds.memo.clear()  # each way asks the dataset afresh
        t = time.perf_counter()
        out = fn(*a)
        return out, time.perf_counter() - t

    lines = []
    for label, ent, tables, link, steady in CASES:
        a = (ent, tables, link, steady)
        new1, tn1 = timed(hot_only, *a)
        old1, to1 = timed(every, *a)
        old2, to2 = timed(every, *a)
        new2, tn2 = timed(hot_only, *a)
        for x in (new1, new2, old2):
            pd.testing.assert_frame_equal(x, old1)
            assert x.attrs == old1.attrs
        line = (f"| {label} | {new1.attrs['n_shared_entities']:,} | {len(new1):,} | {to1:.2f}, {to2:.2f} | "
                f"{tn1:.2f}, {tn2:.2f} | equal |")
        print(f"[hot_usage] {label}: every shared entity's usage {to1:.2f} / {to2:.2f} s, the hot ones' "
              f"{tn1:.2f} / {tn2:.2f} s; {len(new1):,} hot of {new1.attrs['n_shared_entities']:,}; tables equal",
              flush=True)
        lines.append(line)
    load_after = os.getloadavg()
    write_page(args.out, "hot_usage", "Hot entities: every shared entity's usage against the hot ones' only",
               printed_by(f"benchmarks/hot_usage.py {args.data}", rows, load_before, load_after)
               + " Each question timed twice each way, alternately (hot only, every, every, hot only), seconds.",
               ["question", "shared entities", "hot", "every entity's usage (s)", "the hot ones' only (s)",
                "tables"], lines)


if __name__ == "__main__":
    main()
