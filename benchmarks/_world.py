"""What the one-dataset benchmarks (``hot_usage.py``, ``touches.py``) share: their command line, the dataset's
events and the machine's load they print, and their Markdown page. Imported after the script puts the
repository first on ``sys.path``."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from fraudkit.data.dataset import load_dataset

EVENTS = ("logins", "interactions", "orders", "coupon_claims")


def loads(load) -> str:
    """The load averages ``load`` (1, 5, 15 min) as ``"1.60 2.39 2.28"``."""
    return " ".join(f"{x:.2f}" for x in load)


def event_rows(ds) -> dict:
    """Rows of each event table the dataset has."""
    return {n: int(ds.engine.row(f"SELECT count(*) FROM {ds.view(n)}")[0]) for n in EVENTS if ds.has(n)}


def events_text(rows: dict) -> str:
    """``"logins 11,232,739, interactions 23,764,083, ..."``."""
    return ", ".join(f"{n} {v:,}" for n, v in rows.items())


def printed_by(command: str, rows: dict, load_before, load_after, extra: str = "") -> str:
    """The first sentence of a benchmark's page: the command, when, the cores, the events (``extra`` after
    them), the load before and after."""
    return (f"Printed by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} "
            f"cores; events: {events_text(rows)}{extra}; load before {loads(load_before)}, after "
            f"{loads(load_after)}.")


def write_page(path, tag: str, title: str, intro: str, header: list, lines: list) -> None:
    """Write a benchmark's Markdown page: ``# title``, ``intro``, a table of ``header`` names and ``lines``."""
    text = "\n".join([f"# {title}", "", intro, "", "| " + " | ".join(header) + " |",
                      "|" + "|".join("---" for _ in header) + "|", *lines, ""])
    Path(path).write_text(text, encoding="utf-8")
    print(f"[{tag}] wrote {path}")


def open_world(tag: str, doc: str, out: Path):
    """Parse a one-dataset benchmark's command line (``data``, ``--out``, default ``out``), read the load,
    load the dataset and print its events: ``(args, ds, rows, load_before)``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("data", help="a dataset folder (e.g. a simulated world)")
    ap.add_argument("--out", default=str(out))
    args = ap.parse_args()
    load_before = os.getloadavg()
    ds = load_dataset(args.data)
    rows = event_rows(ds)
    print(f"[{tag}] {args.data}: {events_text(rows)}; load {loads(load_before)}", flush=True)
    return args, ds, rows, load_before
