"""One small report built once per test session, shared by test_report, test_notebooks and test_browser.

The ``micro`` scenario is simulated twice — the evaluated world (seed 0) and a
separate training world (seed 1000) that fits the models and thresholds — and
reported with the red-team drill skipped (``redteam_scenario=""``; the drill
has its own, smaller test) and a two-window closed loop, so the whole build
stays around a minute on two cores.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path


@functools.lru_cache(maxsize=None)
def micro_data(seed: int = 0) -> Path:
    from fraudkit.simulation import simulate

    root = Path(tempfile.mkdtemp(prefix="fk-report-data-"))
    simulate("micro", root / "micro", seed=seed, progress=False)
    return root / "micro"


@functools.lru_cache(maxsize=None)
def micro_report():
    from fraudkit.report.build import build_report

    out = Path(tempfile.mkdtemp(prefix="fk-report-")) / "reports"
    return build_report(data=micro_data(), train=micro_data(1000), out=out, seed=0, as_of="2024-11-11",
                        run_id="test-run", loop_windows=2, parameters={"redteam_scenario": ""}, progress=False)
