"""One small report built once per test session, shared by test_report, test_notebooks and test_browser.

The ``micro`` scenario is simulated twice — the evaluated world (seed 0) and a
separate training world (seed 1000) that fits the models and thresholds — and
reported with the red-team drill skipped (``redteam_scenario=""``; the drill
has its own, smaller test) and a two-window closed loop, so the whole build
stays around a minute on two cores.

Under pytest-xdist (``pytest -n 2``) every worker is its own process: :func:`shared` builds each of these
once per test run for all workers (the first builds under a file lock, the others read its pickled result),
so a world is simulated and a report built once, not once per worker.
"""

from __future__ import annotations

import fcntl
import functools
import os
import pickle
import tempfile
from pathlib import Path


def shared(key: str, build):
    """``build()`` once per test run: per process without xdist; across xdist workers through a file lock.

    The result must pickle (paths, dataclasses); it lives in ``<tmp>/fk-tests-<testrunuid>/<key>.pickle``.
    A build that raises leaves no result behind, so the next worker builds again (and fails the same way).
    """
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not uid:
        return build()
    root = Path(tempfile.gettempdir()) / f"fk-tests-{uid}"
    root.mkdir(exist_ok=True)
    done = root / f"{key}.pickle"
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return pickle.loads(done.read_bytes())
        result = build()
        done.write_bytes(pickle.dumps(result))
        return result


@functools.lru_cache(maxsize=None)
def micro_data(seed: int = 0) -> Path:
    def build():
        from fraudkit.simulation import simulate

        root = Path(tempfile.mkdtemp(prefix="fk-report-data-"))
        simulate("micro", root / "micro", seed=seed, progress=False)
        return root / "micro"

    return shared(f"micro-data-{seed}", build)


@functools.lru_cache(maxsize=None)
def micro_report():
    def build():
        from fraudkit.report.build import build_report

        out = Path(tempfile.mkdtemp(prefix="fk-report-")) / "reports"
        return build_report(data=micro_data(), train=micro_data(1000), out=out, seed=0, as_of="2024-11-11",
                            run_id="test-run", loop_windows=2, parameters={"redteam_scenario": ""}, progress=False)

    return shared("micro-report", build)
