"""The three identification stages, wired for the pipeline.

Each stage module (``behaviour``, ``group``, ``graph``) exposes
``run(ds, *, run_dir, seed, context) -> StageOutput``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from fraudkit.identification.base import SCORE_COLUMNS

__all__ = ["StageOutput", "empty_scores"]


def empty_scores() -> pd.DataFrame:
    """An empty score table with the common columns."""
    return pd.DataFrame({c: pd.Series(dtype="float64" if c == "score" else "bool" if c == "flagged" else "object")
                         for c in SCORE_COLUMNS})


@dataclass(frozen=True)
class StageOutput:
    """What a stage hands the pipeline.

    Parameters
    ----------
    stage : str
        One of :data:`fraudkit.data.contract.STAGES`.
    scores : pandas.DataFrame
        Score table (:data:`fraudkit.identification.base.SCORE_COLUMNS`) with at least account rows.
    artifacts : dict of str to DataFrame
        Written as ``RUN/<stage>/<name>.parquet``.
    notes : list of str
        What the stage skipped and why, shown on report pages.
    """

    stage: str
    scores: pd.DataFrame = field(default_factory=empty_scores)
    artifacts: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
