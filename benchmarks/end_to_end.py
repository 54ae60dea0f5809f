"""``fraudkit score`` end to end, as a user runs it, on worlds of three sizes: seconds and peak memory.

    .venv/bin/python benchmarks/end_to_end.py --size demo-small
    .venv/bin/python benchmarks/end_to_end.py --size medium
    .venv/bin/python benchmarks/end_to_end.py --size large --max-rss-gb 14 --timeout 3600

Each size is a scenario simulated once and cached under ``--cache`` (default ``/tmp/fk-bench``), with the
training world (``demo-small`` seed 1000) beside it. The run is the command a user types::

    fraudkit score <cache>/<size> --train <cache>/demo-small-1000 --out <cache>/run-<size> --seed 0

in a child process; this script samples the resident memory of the child's whole process tree every 0.2 s
(the PSS of a tree of several processes every ``PSS_EVERY`` seconds) and kills the tree when its proportional
set size (PSS: a page shared by several processes of the tree counted once; the RSS of a single process)
passes ``--max-rss-gb`` (default 14: the machine is shared) or ``--timeout``. Both the summed RSS
(``peak_gb``, comparable with the earlier records) and the PSS (``peak_pss_gb``) peaks are kept. The
progress lines the command writes give each step's seconds and the peak memory while it ran (training pass
included); the run manifest gives the stage timings. Results are kept by size in ``benchmarks/end_to_end.json``
and ``benchmarks/end_to_end.md`` is rewritten from it, with the load average before and after each run and a
summary line per size, ``<size> end to end: <seconds> s, peak <GB> GB`` (or ``did not finish: <why> after <s>
s, peak <GB> GB``). Never time a ``large`` run by hand: only through this script, one heavy run at a time.

``--engine spark --spark-cores N`` runs the same command with ``--engine spark --spark-master local[N]`` (and
any ``--spark-conf KEY=VALUE``), kept as ``<size> spark<N> <label>``; the process tree then includes Spark's JVM.
``--side-by-side`` and ``--one-after-the-other`` pass the same option of ``fraudkit score`` (say so in
``--label``); without either the run takes the command's default (side by side up to 5M events and 500k orders).
``--results`` names another results file (its Markdown is written beside it, ``.md``), e.g. the engine
comparison of ``benchmarks/engines.md``::

    flock /tmp/fk-heavy.lock .venv/bin/python benchmarks/end_to_end.py --size large --engine spark \\
        --spark-cores 2 --spark-conf spark.driver.memory=6g --max-rss-gb 20 --timeout 3600 \\
        --results benchmarks/engines_scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"demo-small": ("demo-small", 0), "medium": ("medium", 2025), "large": ("large", 2024)}
"""Size -> (scenario, seed) of the scored world."""
TRAIN = ("demo-small", 1000)
CLI = "import sys; from fraudkit.cli import main; sys.exit(main())"
LINE = re.compile(r"\[fraudkit \w+ ([\d.]+)s\] (.+?): (started|done|failed)(.*)$")  # anywhere: a bar may precede


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", action="append", choices=sorted(SIZES), help="repeatable; default demo-small")
    ap.add_argument("--cache", default="/tmp/fk-bench", help="simulated worlds and runs (outside the repo)")
    ap.add_argument("--max-rss-gb", type=float, default=14.0, help="kill the run above this process-tree RSS")
    ap.add_argument("--timeout", type=float, default=3600.0, help="kill the run after this many seconds")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "end_to_end.json"))
    ap.add_argument("--code", default=str(ROOT), help="the fraudkit checkout to run (default this one; another "
                    "one, e.g. an unmodified commit, for a before/after)")
    ap.add_argument("--prepare", action="store_true", help="only simulate (guarded) the worlds that are missing")
    ap.add_argument("--render", action="store_true", help="only rewrite end_to_end.md from the results file")
    ap.add_argument("--label", default="", help="kept with the result: '<size> <label>' (e.g. 'before')")
    ap.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb", help="fraudkit score --engine")
    ap.add_argument("--side-by-side", action="store_true",
                    help="fraudkit score --side-by-side (the group and graph stages in two threads)")
    ap.add_argument("--one-after-the-other", action="store_true",
                    help="fraudkit score --one-after-the-other (the group and graph stages in a row)")
    ap.add_argument("--spark-cores", type=int, default=2, help="with --engine spark: the run's Spark master is "
                    "local[N] (kept with the result: '<size> spark<N> <label>')")
    ap.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE",
                    help="with --engine spark: fraudkit score --spark-conf (repeatable)")
    args = ap.parse_args(argv)
    if args.side_by_side and args.one_after_the_other:
        ap.error("--side-by-side or --one-after-the-other, not both")
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    results = json.loads(Path(args.results).read_text()) if Path(args.results).exists() else {}
    if args.render:
        Path(args.results).with_suffix(".md").write_text(_markdown(results))
        return
    train = _world(cache, *TRAIN, args)
    for size in args.size or ["demo-small"]:
        data = _world(cache, *SIZES[size], args)
        if args.prepare:
            continue
        engine = [] if args.engine == "duckdb" else ["--engine", "spark", "--spark-master", f"local[{args.spark_cores}]",
                                                     *(x for c in args.spark_conf for x in ("--spark-conf", c))]
        key = " ".join(filter(None, [size, engine and f"spark{args.spark_cores}", args.label]))
        run_dir = cache / f"run-{key.replace(' ', '-')}"
        # after the key: options, not an engine
        engine += ["--side-by-side"] if args.side_by_side else []
        engine += ["--one-after-the-other"] if args.one_after_the_other else []
        cmd = [sys.executable, *_NO_CWD, "-c", CLI, "score", str(data), "--train", str(train), "--out", str(run_dir),
               "--seed", "0", "--force", *engine]
        speed = calibrate()
        res = _guarded(cmd, args, label=f"score {key}", code=args.code)
        res["calibration"] = speed
        res["code"] = str(Path(args.code).resolve())
        res["command"] = " ".join(["fraudkit score", str(data), "--train", str(train), "--out", str(run_dir),
                                   "--seed 0", *engine])
        res["world"] = _counts(data)
        manifest = run_dir / "manifest.json"
        if res["finished"] and manifest.exists():
            m = json.loads(manifest.read_text())
            res["timings"] = m.get("timings", {})
            res["stage_timings"] = m.get("stage_timings", {})
            res["train_timings"] = m.get("train_timings", {})
            res["train_stage_timings"] = m.get("train_stage_timings", {})
        results[key] = res
        print(_summary(key, res), flush=True)
        Path(args.results).write_text(json.dumps(results, indent=1, default=str) + "\n")
        Path(args.results).with_suffix(".md").write_text(_markdown(results))


# --- private helpers ----------------------------------------------------------------------------


def calibrate() -> dict:
    """Seconds of two fixed one-core workloads, run just before a measured run: how fast this machine's cores
    are at the time (a shared virtual machine: the same code's steps ran 1.5-2x as long on 2026-12-04 evening
    and 2026-12-05 as at 2026-12-04 13:30, load alike). ``python_s``: a pure-Python loop of 10 M steps;
    ``numpy_s``: sorting 10 M random floats (seeded), three times. Compare runs of different days by these."""
    t = time.perf_counter()
    x = 0
    for i in range(10_000_000):
        x += i & 7
    py = time.perf_counter() - t
    a = np.random.default_rng(0).random(10_000_000)
    t = time.perf_counter()
    for _ in range(3):
        np.sort(a)
    out = {"python_s": round(py, 2), "numpy_s": round(time.perf_counter() - t, 2)}
    print(f"[bench] calibration: {out['python_s']} s Python loop, {out['numpy_s']} s NumPy sort", flush=True)
    return out


def _world(cache, scenario, seed, args) -> Path:
    """The simulated world ``<cache>/<scenario>-<seed>``, simulated (guarded) when missing."""
    out = cache / f"{scenario}-{seed}"
    if not (out / "manifest.json").exists():
        cmd = [sys.executable, *_NO_CWD, "-c", CLI, "simulate", "--scenario", scenario, "--seed", str(seed), "--out", str(out),
               "--force"]
        res = _guarded(cmd, args, label=f"simulate {scenario} {seed}")
        if not res["finished"]:
            raise SystemExit(f"simulating {scenario} seed {seed} did not finish: {res['why']}")
    return out


_NO_CWD = ("-P",)
"""Python's flag not to put the working directory first on ``sys.path``: with ``-c`` it would, and a run started from
another checkout would import that checkout's fraudkit instead of ``--code``'s (the ``--code`` runs before
2026-12-04 13:00 UTC ran the code of the checkout they were started from, not necessarily ``--code``'s)."""


def _guarded(cmd, args, *, label, code=ROOT):
    """Run ``cmd``; sample its process tree's RSS; kill it above ``args.max_rss_gb`` or after ``args.timeout``."""
    env = dict(os.environ, PYTHONPATH=str(Path(code).resolve()), CI="1")
    load_before = os.getloadavg()
    print(f"[bench] {label}: load {_load(load_before)}, available "
          f"{psutil.virtual_memory().available / 2**30:.1f} GiB", flush=True)
    t0 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    state = {"peak": 0, "peak_pss": 0, "now": 0, "why": None, "since_line": 0, "cpu": 0.0, "cpu_line": 0.0}
    steps, open_steps = [], {}
    stop = threading.Event()

    def sample():
        root = psutil.Process(proc.pid)
        last_pss, pss = 0.0, 0
        while not stop.wait(0.2):
            try:
                tree = [root] + root.children(recursive=True)
                rss = sum(_rss(p) for p in tree)
                state["cpu"] = max(state["cpu"], sum(_cpu(p) for p in tree))
                if len(tree) == 1:
                    pss = rss  # one process: nothing shared to count once (RSS bounds PSS from above)
                elif time.perf_counter() - last_pss >= PSS_EVERY:
                    pss, last_pss = sum(_pss(p) for p in tree), time.perf_counter()
            except psutil.NoSuchProcess:
                break
            state["now"] = rss
            state["peak"] = max(state["peak"], rss)
            state["peak_pss"] = max(state["peak_pss"], pss)
            state["since_line"] = max(state["since_line"], rss)
            for s in open_steps.values():
                s["peak"] = max(s["peak"], rss)
            why = None
            if pss > args.max_rss_gb * 2**30:
                why = (f"process tree memory {pss / 2**30:.1f} GB (PSS: shared pages counted once) above "
                       f"--max-rss-gb {args.max_rss_gb:g}")
            elif time.perf_counter() - t0 > args.timeout:
                why = f"--timeout {args.timeout:g} s"
            if why:
                state["why"] = why
                print(f"[bench] killing {label}: {why}", flush=True)
                for p in reversed(tree):
                    try:
                        p.kill()
                    except psutil.NoSuchProcess:
                        pass
                break

    threading.Thread(target=sample, daemon=True).start()
    tail = []
    for line in proc.stdout:
        line = line.rstrip("\n")
        print(f"  {line}", flush=True)
        tail = (tail + [line])[-20:]
        m = LINE.search(line)
        since_line, state["since_line"] = state["since_line"], state["now"]
        cpu_line, state["cpu_line"] = state["cpu_line"], state["cpu"]
        if m is None:
            continue
        _, what, kind, rest = m.groups()
        if kind == "started":
            open_steps[what] = {"step": what, "peak": state["now"], "cpu": state["cpu"]}
        else:
            # a step that only says when done (the graph stage's, each timed from the line before): its peak and
            # CPU since the line before; no CPU while a step it is not part of runs beside it (the group stage's,
            # side by side), whose CPU the tree's would include
            alone = all(what.startswith(o + " · ") for o in open_steps if o != what)
            s = open_steps.pop(what, {"step": what, "peak": since_line, **({"cpu": cpu_line} if alone else {})})
            secs = re.search(r"([\d.]+) s$", rest.strip())
            steps.append({"step": what, "seconds": float(secs.group(1)) if secs else None,
                          "peak_gb": round(s["peak"] / 2**30, 2), "status": kind,
                          "cpu_seconds": round(state["cpu"] - s["cpu"], 1) if "cpu" in s else None})
    rc = proc.wait()
    stop.set()
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # CPU seconds: less sensitive than wall to a busy machine
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    steps += [{"step": s["step"], "seconds": None, "peak_gb": round(s["peak"] / 2**30, 2), "status": "running"}
              for s in open_steps.values()]  # still running when the run ended (killed)
    why = state["why"] or (None if rc == 0 else f"exit code {rc}: {' / '.join(tail[-3:])}")
    return {"finished": why is None, "why": why, "seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
            "peak_gb": round(state["peak"] / 2**30, 2), "peak_pss_gb": round(state["peak_pss"] / 2**30, 2),
            "load_before": _load(load_before),
            "load_after": _load(os.getloadavg()), "steps": steps, "cpus": os.cpu_count(),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


PSS_EVERY = 5.0
"""Seconds between two PSS samples of a tree of several processes. Reading ``smaps_rollup`` walks the
process's page tables under its memory-map lock: 150 ms a read on a 12 GB process (2026-12-05), so sampled
every 0.2 s it took three quarters of a core of the 2 and held the lock the run's own allocations need (the
runs from 2026-12-04 19:00 to 2026-12-05 06:00 UTC were measured so). RSS (``statm``, microseconds) is still
read every 0.2 s."""


def _rss(p) -> int:
    try:
        return p.memory_info().rss
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0


def _cpu(p) -> float:
    """CPU seconds of ``p`` and of its children it has waited for (user and system): summed over a process tree
    sampled every 0.2 s, the tree's CPU so far, to within a sample (a child's seconds pass from its own line to
    its parent's children line when it ends)."""
    try:
        t = p.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return t.user + t.system + t.children_user + t.children_system


def _pss(p) -> int:
    """Proportional set size: a page shared by k processes counts 1/k in each, so a tree's sum counts it once
    (the sum of RSS counts a shared page once per process: a Spark run read 24.6 GB "in use" on a 24 GB machine
    with 5-9 GB still available). Linux's ``smaps_rollup``; RSS where it is missing."""
    try:
        with open(f"/proc/{p.pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _rss(p)


def _load(avg) -> str:
    return " ".join(f"{x:.2f}" for x in avg)


def _counts(data: Path) -> dict:
    try:
        rows = json.loads((data / "manifest.json").read_text()).get("counts", {})
    except (OSError, ValueError):
        rows = {}
    return {k: rows[k] for k in ("accounts", "interactions", "logins", "orders", "coupon_claims") if k in rows}


def _summary(size, res) -> str:
    if res["finished"]:
        return f"{size} end to end: {res['seconds']:.0f} s, peak {res['peak_gb']:.1f} GB"
    return f"{size} did not finish: {res['why']} after {res['seconds']:.0f} s, peak {res['peak_gb']:.1f} GB"


TARGET_SECONDS, TARGET_GB = 600, 8.0
"""Issue 13's targets for ``large`` end to end on this machine (2 cores, 24 GB, idle)."""


def _events_m(r) -> float:
    w = r.get("world", {})
    return sum(w.get(k, 0) for k in ("interactions", "logins", "orders", "coupon_claims")) / 1e6


def _targets(results) -> list:
    """The targets against the newest finished DuckDB run of each size: the cost curve over the sizes, ``large``
    against 600 s and 8 GB, its cost per million events against the 100 k-account world's. A run of code that was
    reverted or of an option that is not the default (``"reverted": true`` in its record, an experiment) is listed
    but never the targets' run."""
    newest = {}
    for key, r in results.items():
        size = key.split()[0]
        if r.get("finished") and not r.get("reverted") and " spark" not in f" {key}" and _events_m(r):
            if size not in newest or r["when"] > newest[size][1]["when"]:
                newest[size] = (key, r)
    if not newest:
        return []
    out = ["## Targets (newest finished run of each size)", "",
           "| size | run | seconds | peak GB | s per M events | core speed | load before | when |",
           "|---|---|---:|---:|---:|---|---|---|"]
    for size in SIZES:
        if size in newest:
            key, r = newest[size]
            out.append(f"| {size} | {key} | {r['seconds']:.0f} | {r['peak_gb']:.1f} "
                       f"| {r['seconds'] / _events_m(r):.1f} | {_speed(r)} | {r['load_before']} | {r['when']} |")
    out.append("")
    if "large" in newest:
        r = newest["large"][1]
        met = lambda ok: "met" if ok else "not met"  # noqa: E731
        out.append(f"- `large` within {TARGET_SECONDS} s: {r['seconds']:.0f} s, "
                   f"{r['seconds'] / TARGET_SECONDS:.2f}x the target ({met(r['seconds'] <= TARGET_SECONDS)}).")
        out.append(f"- `large` within {TARGET_GB:g} GB: peak {r['peak_gb']:.1f} GB ({met(r['peak_gb'] <= TARGET_GB)}).")
        if "medium" in newest:
            m = newest["medium"][1]
            a, b = r["seconds"] / _events_m(r), m["seconds"] / _events_m(m)
            out.append(f"- cost per million events, `large` against `medium`: {a:.1f} s against {b:.1f} s, "
                       f"{a / b:.2f}x ({met(a <= b)}; runs of different times: compare their core speed).")
    return out + [""]


def _speed(r) -> str:
    c = r.get("calibration")
    return f"{c['python_s']:.2f} / {c['numpy_s']:.2f}" if c else "—"


def _pss_cell(r) -> str:
    """The PSS peak beside the summed RSS, for the records that have it."""
    return f" (PSS {r['peak_pss_gb']:.1f})" if r.get("peak_pss_gb") else ""


def _cpu_cells(st) -> str:
    """A step's CPU seconds and cores busy (CPU seconds / seconds), or dashes for the records without them."""
    cpu, secs = st.get("cpu_seconds"), st.get("seconds")
    if cpu is None:
        return "— | —"
    return f"{cpu} | {cpu / secs:.2f}" if secs else f"{cpu} | —"


def _markdown(results) -> str:
    out = ["# `fraudkit score` end to end", "",
           "Written by `benchmarks/end_to_end.py` (do not edit by hand). One run per size of",
           "`fraudkit score <world> --train demo-small-1000 --out RUN --seed 0` (training pass included), peak RSS of",
           "the whole process tree sampled every 0.2 s (summed; since 2026-12-04 also its PSS, shared pages counted",
           "once, in brackets; since 2026-12-05 06:10 UTC the PSS of one process is its RSS, see PSS_EVERY); machine:",
           "2 cores, 24 GB, shared (load = 1, 5, 15 min). Core speed: seconds of `calibrate()`'s fixed Python loop /",
           "NumPy sort just before the run (since 2026-12-05; lower is faster), to compare runs of different days.", ""]
    order = sorted(results, key=lambda k: (list(SIZES).index(k.split()[0]), k))
    out += _targets(results) + ["## Summary", ""]
    out += [_summary(s, results[s]) for s in order] + [""]
    out += ["| size | accounts | events (M) | seconds | CPU s | peak GB | s per M events | core speed | load before "
            "| load after | when |",
            "|---|---:|---:|---:|---:|---:|---:|---|---|---|---|"]
    for s in order:
        r = results[s]
        w = r.get("world", {})
        ev = sum(w.get(k, 0) for k in ("interactions", "logins", "orders", "coupon_claims")) / 1e6
        per = f"{r['seconds'] / ev:.1f}" if ev and r["finished"] else "—"
        out.append(f"| {s} | {w.get('accounts', '?'):,} | {ev:.2f} | {r['seconds']:.0f}{'' if r['finished'] else ' (killed)'} "
                   f"| {r.get('cpu_seconds', '—')} | {r['peak_gb']:.1f}{_pss_cell(r)} | {per} | {_speed(r)} "
                   f"| {r['load_before']} | {r['load_after']} | {r['when']} |")
    for s in order:
        r = results[s]
        out += ["", f"## {s}", "", f"`{r['command']}`", ""] + ([f"Note: {r['note']}", ""] if r.get("note") else [])
        out += ["Steps (from the progress lines; nested steps are "
                "inside their parent; peak = process-tree RSS while the step ran; CPU s = the process tree's CPU "
                "seconds while it ran, sampled every 0.2 s, since 2026-12-07 12:00 UTC (for a step that only says when "
                "it is done, since the line before, from 13:10 UTC, and none while another stage's step runs beside it); cores busy = CPU s / seconds, "
                "of the machine's 2):", "",
                "| step | seconds | CPU s | cores busy | peak GB |", "|---|---:|---:|---:|---:|"]
        out += [f"| {st['step']}{'' if st['status'] == 'done' else ' (' + st['status'] + ')'} | "
                f"{'' if st['seconds'] is None else st['seconds']} | {_cpu_cells(st)} | "
                f"{'—' if st['peak_gb'] is None else st['peak_gb']} |"
                for st in r["steps"]]
        for name, what in (("timings", "Manifest timings (s)"), ("train_timings", "Training pass timings (s)")):
            if r.get(name):
                out += ["", f"{what}: " + ", ".join(f"{k} {v:.1f}" for k, v in r[name].items())]
        for name, what in (("stage_timings", "scored world"), ("train_stage_timings", "training pass")):
            for stage, rows in (r.get(name) or {}).items():
                out += ["", f"{stage} stage steps, {what} (manifest; peak = the process's own max RSS so far, MB):",
                        "", "| step | seconds | peak MB |", "|---|---:|---:|"]
                out += [f"| {x.get('step')} | {x.get('seconds')} | {x.get('peak_rss_mb')} |" for x in rows]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
