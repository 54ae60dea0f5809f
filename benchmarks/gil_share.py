"""How long a stage holds Python's GIL: whether two stages could share one process on two cores.

Runs ``benchmarks/group_stage.py`` or ``benchmarks/graph_stage.py`` under ``py-spy record --gil`` (a sample
every 1/20 s, kept only when a thread of the process holds the GIL: Python code and C code that does not
release it) and prints, with the stage's wall seconds from its own output:

* the seconds the GIL was held in all, inside the stage's ``run`` and per thread;
* the stage's own lines (``fraudkit/pipeline/stages/<stage>.py``) that held it longest, with their source.

The rest of the stage's wall time its threads spent in code that releases the GIL (DuckDB, NumPy's and
pandas' loops, Arrow, Parquet), in a Leiden child process, or waiting. Two stages in two threads of one
process cannot overlap their GIL-held seconds: the sum of the two is a floor for their wall time together,
beside the floor of their CPU seconds over two cores.

Usage (repository root, one heavy run at a time; py-spy is not one of the kit's requirements:
``.venv/bin/python -m pip install py-spy==0.4.3`` first)::

    flock /tmp/fk-heavy.lock .venv/bin/python benchmarks/gil_share.py --stage group --data /tmp/fk-bench/large-2024
    flock /tmp/fk-heavy.lock .venv/bin/python benchmarks/gil_share.py --stage graph --data /tmp/fk-bench/large-2024

Each run is added to ``--results`` (``benchmarks/gil_share.json``; its key: the world's folder name, the stage
and ``--label``) and the Markdown beside it (``benchmarks/gil_share.md``) is written again from it.
"""

from __future__ import annotations

import argparse
import collections
import json
import linecache
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RATE = 20
"""Samples per second."""

_WALL = {"group": re.compile(r"group stage (\d+(?:\.\d+)?) s, peak"),
         "graph": re.compile(r"graph stage (\d+(?:\.\d+)?) s, peak RSS")}
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]+):(?P<line>\d+)\)$")


def summarise(raw: str, stage: str, top: int = 8) -> dict:
    """GIL-held seconds of one ``py-spy record --gil -f raw`` file (``stack count`` per line)."""
    own = f"fraudkit/pipeline/stages/{stage}.py"
    total, in_run, threads, lines = 0, 0, collections.Counter(), collections.Counter()
    for row in raw.splitlines():
        stack, _, n = row.rstrip().rpartition(" ")
        if not n.isdigit():
            continue
        n = int(n)
        total += n
        frames = stack.split(";")
        threads[_thread_of(frames)] += n
        mine = [f for f in frames if own in f]
        if mine:
            in_run += n
            lines[mine[-1]] += n  # the stage's innermost line on the stack
    return {"gil_seconds": round(total / RATE, 1), "gil_seconds_in_run": round(in_run / RATE, 1),
            "threads": {k: round(v / RATE, 1) for k, v in threads.most_common()},
            "lines": [{"frame": k, "source": _source(k), "gil_seconds": round(v / RATE, 1)}
                      for k, v in lines.most_common(top)]}


def _thread_of(frames) -> str:
    """The thread a stack ran on: the main thread's, or the function a worker thread started in."""
    outer = _FRAME.match(frames[0].strip())
    if outer and outer["func"].rpartition(".")[2] == "_bootstrap":  # Thread._bootstrap
        inner = [f for f in frames if "threading.py" not in f and "concurrent/futures" not in f]
        m = _FRAME.match(inner[0].strip()) if inner else None
        return f"worker: {m['func']}" if m else "worker"
    return "main"


def _source(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return ""
    path = ROOT / m["file"] if not Path(m["file"]).is_absolute() else Path(m["file"])
    return linecache.getline(str(path), int(m["line"])).strip()[:100]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=sorted(_WALL), required=True)
    ap.add_argument("--data", default="/tmp/fk-bench/large-2024")
    ap.add_argument("--label", default="", help="kept with the result, e.g. 'main 2ea6bd4'")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "gil_share.json"))
    ap.add_argument("--render", action="store_true", help="only rewrite the Markdown from the results file")
    args = ap.parse_args(argv)
    results_path = Path(args.results)
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if not args.render:
        key = " ".join(x for x in (Path(args.data).name, args.stage, args.label) if x)
        results[key] = _run(args.stage, args.data)
        results_path.write_text(json.dumps(results, indent=1) + "\n")
    results_path.with_suffix(".md").write_text(_markdown(results))
    return 0


def _run(stage: str, data: str) -> dict:
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        sys.exit(f"gil_share: {spy} not found; install it with {sys.executable} -m pip install py-spy==0.4.3")
    bench = ROOT / "benchmarks" / f"{stage}_stage.py"
    with tempfile.TemporaryDirectory() as tmp:
        raw, scratch = Path(tmp) / "gil.txt", Path(tmp) / "results.json"
        # group_stage.py keeps its results in --results and writes its Markdown beside it: both in the scratch folder
        extra = ["--results", str(scratch), "--label", "gil_share"] if stage == "group" else []
        cmd = [str(spy), "record", "-r", str(RATE), "--gil", "-f", "raw", "-o", str(raw), "--",
               sys.executable, str(bench), "--data", data, *extra]
        before, t0 = os.getloadavg(), time.perf_counter()
        print(f"[gil_share] {stage} stage on {data}: {' '.join(cmd)}", flush=True)
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
        res = summarise(raw.read_text(), stage)
    m = _WALL[stage].search(out)
    res |= {"stage_seconds": float(m.group(1)) if m else None, "process_seconds": round(time.perf_counter() - t0, 1),
            "load_before": [round(x, 2) for x in before], "load_after": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": f"benchmarks/gil_share.py --stage {stage} --data {data}"}
    print(_markdown({f"{Path(data).name} {stage}": res}), flush=True)
    return res


def _markdown(results: dict) -> str:
    out = ["# How long each stage holds the GIL", "",
           "Written by `benchmarks/gil_share.py` (do not edit by hand): the stage's benchmark under "
           f"`py-spy record --gil` ({RATE} samples a second, kept while a thread of the process holds the GIL). "
           "GIL-held seconds are a floor for a stage's wall time beside another stage in the same process; the "
           "rest of its time is spent in code that releases the GIL (DuckDB, NumPy, pandas' loops, Arrow), in a "
           "Leiden child process, or waiting. Machine: 2 cores, 24 GB, shared (load = 1, 5, 15 min).", "",
           "| run | stage s | GIL held s | of it in the stage's run | share of the stage | load before | when |",
           "|---|---:|---:|---:|---:|---|---|"]
    for key, r in results.items():
        share = f"{r['gil_seconds_in_run'] / r['stage_seconds']:.0%}" if r.get("stage_seconds") else "—"
        out.append(f"| {key} | {r.get('stage_seconds') or '—'} | {r['gil_seconds']} | {r['gil_seconds_in_run']} | "
                   f"{share} | {' '.join(f'{x:.2f}' for x in r['load_before'])} | {r['when']} |")
    for key, r in results.items():
        out += ["", f"## {key}", "", f"`{r['command']}`", ""]
        if r.get("note"):
            out += [f"Note: {r['note']}", ""]
        out += ["GIL-held seconds per thread: " + ", ".join(f"{k} {v}" for k, v in r["threads"].items()) + ".", "",
                "| the stage's line | GIL held s |", "|---|---:|"]
        out += [f"| `{x['frame']}`: `{x['source'].replace('|', '/')}` | {x['gil_seconds']} |" for x in r["lines"]]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
