"""The group stage alone on a cached world: seconds and peak memory of each of its steps.

    flock /tmp/fk-heavy.lock .venv/bin/python benchmarks/group_stage.py --data /tmp/fk-bench/large-2024 \\
        --train /tmp/fk-bench/demo-small-1000 --label after

Loads the world once as ``fraudkit score`` does (``load_dataset`` then ``resolve_entities``, the training world
beside it), then runs :func:`fraudkit.pipeline.stages.group.run` with ``RunContext(seed=0, train=...)`` (the
scored pass; the association classifier trains on the training world). Prints the world's row counts, the load
average before and after, and the stage's ``timings`` artifact: seconds and peak RSS (``ru_maxrss``, so a step's
figure is the process's peak up to the end of that step; the RSS before the stage is printed beside it). A
watchdog samples the process's RSS every 0.1 s and ends the process above ``--max-rss-gb`` (default 14: the
machine is shared), so a run that would not fit is recorded as killed instead of putting the machine at risk.

Results are kept by label in ``--results`` (default ``benchmarks/group_stage.json``) and the Markdown beside it
(``benchmarks/group_stage.md``) is rewritten from it. Run the code of another checkout (e.g. main, for a
before/after) with ``PYTHONPATH=<checkout>``: the script imports whichever fraudkit is on the path.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("accounts", "interactions", "logins", "orders", "coupon_claims", "devices")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/tmp/fk-bench/large-2024")
    ap.add_argument("--train", default="/tmp/fk-bench/demo-small-1000")
    ap.add_argument("--label", default="", help="kept with the result, e.g. 'before (main 48efc53)'")
    ap.add_argument("--max-rss-gb", type=float, default=14.0, help="end the process above this RSS")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "group_stage.json"))
    ap.add_argument("--render", action="store_true", help="only rewrite the Markdown from the results file")
    args = ap.parse_args(argv)
    results_path = Path(args.results)
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if args.render:
        results_path.with_suffix(".md").write_text(_markdown(results))
        return
    import fraudkit
    from fraudkit.data.dataset import load_dataset
    from fraudkit.pipeline.context import RunContext
    from fraudkit.pipeline.progress import Progress
    from fraudkit.pipeline.resolution import resolve_entities
    from fraudkit.pipeline.stages import group

    key = f"{Path(args.data).name} {args.label}".strip()
    res = {"data": args.data, "train": args.train, "code": str(Path(fraudkit.__file__).resolve().parent.parent),
           "load_before": _load(), "cpus": os.cpu_count(), "max_rss_gb": args.max_rss_gb,
           "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "finished": False}
    lines = _StepPeaks()
    _watchdog(args.max_rss_gb, results, results_path, key, res, lines)
    t0 = time.perf_counter()
    ds = resolve_entities(load_dataset(args.data))
    train = resolve_entities(load_dataset(args.train))
    res["rows"] = {t: ds.count(t) for t in TABLES if ds.has(t)}
    res["load_seconds"] = round(time.perf_counter() - t0, 1)
    res["rss_before_gb"] = round(psutil.Process().memory_info().rss / 2**30, 2)
    print(f"[group_stage] {key}: {', '.join(f'{t} {n:,}' for t, n in res['rows'].items())}; "
          f"load {res['load_before']}; RSS before the stage {res['rss_before_gb']} GB", flush=True)
    t1 = time.perf_counter()
    out = group.run(ds, context=RunContext(seed=0, train=train, progress=Progress("bench", stream=lines,
                                                                                  animate=False)))
    res["seconds"] = round(time.perf_counter() - t1, 1)
    res["cpu_seconds"] = round(sum(os.times()[:2]), 1)
    res["peak_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    res["steps"] = [{"step": r.step, "seconds": r.seconds, "peak_gb": round(r.peak_rss_mb / 1024, 2),
                     "peak_in_step_gb": lines.peaks.get(f"score · group stage · {r.step}")}
                    for r in out.artifacts["timings"].itertuples()]
    res["load_after"] = _load()
    res["finished"] = True
    res["flagged"] = {m: int(out.scores.loc[out.scores["method"] == m, "flagged"].sum())
                      for m in out.scores["method"].unique()}
    print(_summary(key, res), flush=True)
    for s in res["steps"]:
        print(f"  {s['step']:<22} {s['seconds']:>8.1f} s  peak {s['peak_gb']:.2f} GB (while it ran "
              f"{s['peak_in_step_gb']} GB)", flush=True)
    print(f"  flagged: {res['flagged']}; load after {res['load_after']}", flush=True)
    _save(results, results_path, key, res)


# --- private helpers ----------------------------------------------------------------------------


class _StepPeaks:
    """A progress stream that keeps the peak RSS (sampled by the watchdog) while each step ran."""

    LINE = re.compile(r"\] (.+?): (started|done|failed)")

    def __init__(self):
        self.open, self.peaks = {}, {}

    def write(self, text):
        for m in self.LINE.finditer(text):
            what, kind = m.groups()
            if kind == "started":
                self.open[what] = psutil.Process().memory_info().rss
            else:
                self.peaks[what] = round(self.open.pop(what, 0) / 2**30, 2)
        sys.stderr.write(text)

    def flush(self):
        sys.stderr.flush()

    def sample(self, rss):
        for what in list(self.open):
            self.open[what] = max(self.open.get(what, 0), rss)


def _watchdog(max_gb, results, path, key, res, lines):
    """End the process (recording why) when its RSS passes ``max_gb``."""
    proc = psutil.Process()

    def sample():
        while True:
            rss = proc.memory_info().rss
            lines.sample(rss)
            res["peak_sampled_gb"] = max(res.get("peak_sampled_gb", 0.0), round(rss / 2**30, 2))
            res["step"] = next(reversed(lines.open), None)
            if rss > max_gb * 2**30:
                res["why"] = f"RSS {rss / 2**30:.1f} GB above --max-rss-gb {max_gb:g}"
                res["load_after"] = _load()
                print(f"[group_stage] killed: {res['why']}", flush=True)
                try:
                    _save(results, path, key, res)
                finally:
                    os._exit(3)
            time.sleep(0.1)

    threading.Thread(target=sample, daemon=True).start()


def _save(results, path, key, res):
    results[key] = res
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    path.with_suffix(".md").write_text(_markdown(results))


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _summary(key, res) -> str:
    if res.get("finished"):
        return f"{key}: group stage {res['seconds']:.0f} s, peak {res['peak_gb']:.1f} GB"
    return f"{key}: group stage did not finish: {res.get('why')}, peak {res.get('peak_sampled_gb', 0):.1f} GB"


def _markdown(results) -> str:
    lines = ["# The group stage alone", "",
             "Written by `benchmarks/group_stage.py` (do not edit by hand): `fraudkit.pipeline.stages.group.run` on a "
             "cached world loaded as `fraudkit score` loads it, `RunContext(seed=0, train=<training world>)`; peak "
             "= the process's peak RSS up to the end of each step (`ru_maxrss`); machine: 2 cores, 24 GB, shared "
             "(load = 1, 5, 15 min).", "", "## Summary", ""]
    lines += [_summary(k, r) for k, r in results.items()]
    for k, r in results.items():
        rows = ", ".join(f"{t} {n:,}" for t, n in r.get("rows", {}).items())
        lines += ["", f"## {k}", "", f"World `{r['data']}` ({rows}); training world `{r['train']}`; code "
                  f"`{r['code']}`; {r['when']}; load before {r['load_before']}, after {r.get('load_after', '?')}; "
                  f"RSS before the stage {r.get('rss_before_gb', '?')} GB.", ""]
        if not r.get("finished"):
            lines += [f"Did not finish: {r.get('why')} in the step {r.get('step')!r} (peak sampled "
                      f"{r.get('peak_sampled_gb')} GB).", ""]
            continue
        lines += ["| step | seconds | peak GB so far | peak GB while it ran |", "|---|---:|---:|---:|"]
        lines += [f"| {s['step']} | {s['seconds']:.1f} | {s['peak_gb']:.2f} | {s.get('peak_in_step_gb', '')} |"
                  for s in r["steps"]]
        lines += [f"| **group stage** | **{r['seconds']:.1f}** | **{r['peak_gb']:.2f}** | |", "",
                  f"CPU seconds of the process (load included): {r['cpu_seconds']}; flagged accounts by method: "
                  f"{r['flagged']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
