"""Seconds of every step of ``fraudkit report`` as a user runs it, in an older tree and in this checkout (issue 15).

Each tree builds the whole report of the demo world (demo-small seed 0, trained on demo-small seed 1000) with its
own command line and notebooks, ``--repeats`` times, the trees alternating (before, after, before, ...); each run
is a fresh reports folder. Read from each report's ``manifest.json``: the scoring's seconds, every step's seconds
(what the report's progress lines and its manifest say the step took: for step 5 this includes any wait for the
closed loop the report started earlier, :func:`fraudkit.report.build.build_report`) and the total. The load
average (1 minute) is taken when each run starts and ends: the figures are upper bounds on a shared machine; run it
under the machine's heavy-run lock.

With ``--reference`` (e.g. main just before a change), one more report is built there and its closed loop and
red-team drill must equal this checkout's, table by table (``RUN/report/evaluation/loop/``,
``RUN/report/perception/redteam*.parquet``). It writes
``benchmarks/report_timing.md`` (keeping the file's hand-written notes, from the first ``## Notes`` heading on).

    python benchmarks/report_timing.py --before /tmp/wt-c43 [--reference /tmp/wt-base] [--data D0 --train D1000]
                                       [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from report_steps import kept_notes, simulate_world, tree_arguments, world_sizes  # this folder's helpers (run as a script)

ROOT = Path(__file__).resolve().parents[1]
LOOP = Path("report") / "evaluation" / "loop"
"""The closed loop's folder inside a report's private run directory (``<out>/.runs/<run id>/``)."""
DRILL = (Path("report") / "perception" / "redteam_comparison.parquet", Path("report") / "perception" / "redteam.parquet")
"""The red-team drill's tables in the same directory."""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    tree_arguments(ap, reference="a tree whose closed loop and drill tables this checkout's must equal (e.g. main "
                                 "before the change)", repeats="reports per tree, alternating the trees")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "report_timing.md")
    args = ap.parse_args(argv)
    trees = {"before": args.before.resolve(), "after": ROOT}
    with tempfile.TemporaryDirectory(prefix="fraudkit-report-timing-") as tmp:
        tmp = Path(tmp)
        data = (args.data or simulate_world(tmp / "d0", 0)).resolve()
        train = (args.train or simulate_world(tmp / "d1000", 1000)).resolve()
        runs = {mode: [] for mode in trees}
        for i in range(args.repeats):
            for mode, tree in trees.items():
                runs[mode].append(_report_run(tree, data, train, tmp / f"{mode}-{i}"))
                r = runs[mode][-1]
                print(f"{mode} #{i + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in r["steps"].items())
                      + f"; total {r['total']:.1f} s (load {r['load_start']:.1f} -> {r['load_end']:.1f})", flush=True)
        same = None
        if args.reference is not None:
            _report_run(args.reference.resolve(), data, train, tmp / "reference")
            same = _same_outputs(tmp / "reference", tmp / "after-0")
        sizes = {"data": world_sizes(data), "train": world_sizes(train)}
    text = _markdown(runs, same, sizes, args)
    args.out.write_text(text + kept_notes(args.out), encoding="utf-8")
    print(text)
    return 0 if same is not False else 1


def _report_run(tree: Path, data: Path, train: Path, out: Path) -> dict:
    """``fraudkit report`` in ``tree`` (its own CLI and notebooks) into ``out``; its manifest's seconds."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    load_start = os.getloadavg()[0]
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "fraudkit.cli", "report", "--data", str(data), "--train", str(train),
                        "--out", str(out), "--run-id", "bench"], env=env, cwd=tree, capture_output=True,
                       text=True)
    wall = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(f"the report in {tree} failed:\n{p.stderr[-3000:]}")
    m = json.loads((out / "bench" / "manifest.json").read_text())
    steps = {"scoring": m["timings"]["scoring"], **{s["name"]: s["seconds"] for s in m["steps"]}}
    return {"steps": steps, "total": m["timings"]["total"], "wall": wall, "load_start": load_start,
            "load_end": os.getloadavg()[0]}


def _same_outputs(reference: Path, after: Path) -> bool:
    """Whether the two reports' closed loops and red-team drills wrote the same tables (every Parquet file of the
    loop folder; the drill's two tables)."""
    a, b = (r / ".runs" / "bench" for r in (reference, after))
    files = sorted(p.relative_to(a) for p in (a / LOOP).rglob("*.parquet")) + list(DRILL)
    if files[:-len(DRILL)] != sorted(p.relative_to(b) for p in (b / LOOP).rglob("*.parquet")):
        return False
    for f in files:
        try:
            pd.testing.assert_frame_equal(pd.read_parquet(a / f), pd.read_parquet(b / f))
        except AssertionError:
            print(f"differs: {f}", flush=True)
            return False
    return True


def _markdown(runs, same, sizes, args) -> str:
    steps = list(runs["after"][0]["steps"])
    best = {mode: {s: min(r["steps"][s] for r in rs) for s in steps} for mode, rs in runs.items()}
    total = {mode: min(r["total"] for r in rs) for mode, rs in runs.items()}
    d, t = sizes["data"], sizes["train"]
    lines = [
        "# `fraudkit report` step by step: seconds before and after (issue 15)",
        "",
        f"Made by `python benchmarks/report_timing.py --before {args.before} --repeats {args.repeats}` on "
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Scored world: {d.get('accounts', 0):,} accounts, {d.get('interactions', 0):,} interactions, "
        f"{d.get('orders', 0):,} orders; training world: {t.get('accounts', 0):,} accounts, "
        f"{t.get('interactions', 0):,} interactions, {t.get('orders', 0):,} orders. Each tree builds the whole report "
        "with its own command line and notebooks; the seconds are each report's manifest's (a step's seconds include "
        "any wait for work the report started earlier).",
        "",
        "| step | before, run by run (s) | after, run by run (s) | best before | best after | after / before |",
        "|---|---|---|---:|---:|---:|",
    ]
    for s in steps:
        b = " / ".join(f"{r['steps'][s]:.1f}" for r in runs["before"])
        a = " / ".join(f"{r['steps'][s]:.1f}" for r in runs["after"])
        lines.append(f"| {s} | {b} | {a} | {best['before'][s]:.1f} | {best['after'][s]:.1f} | "
                     f"{best['after'][s] / best['before'][s]:.0%} |")
    b = " / ".join(f"{r['total']:.1f}" for r in runs["before"])
    a = " / ".join(f"{r['total']:.1f}" for r in runs["after"])
    lines.append(f"| **total** | {b} | {a} | {total['before']:.1f} | {total['after']:.1f} | "
                 f"{total['after'] / total['before']:.0%} |")
    loads = "; ".join(f"{mode} " + ", ".join(f"{r['load_start']:.1f} -> {r['load_end']:.1f}" for r in rs)
                      for mode, rs in runs.items())
    lines += ["", f"Load (1-minute average, 2 cores) at each run's start and end: {loads}.", "",
              "Same closed loop (every table) and red-team drill tables as the reference tree: "
              + ({None: "not checked (no --reference)", True: f"yes ({args.reference})"}.get(same, "NO")) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
