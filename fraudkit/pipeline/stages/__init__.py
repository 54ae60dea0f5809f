"""The three identification stages, wired for the pipeline.

Each stage module (``behaviour``, ``group``, ``graph``) exposes ``run(ds, *, context=None) -> StageOutput``:
it reads the named fields of a :class:`~fraudkit.pipeline.context.RunContext` it needs and returns its
scores, artifacts, notes and (the behaviour stage) the feature tables it computed; it changes nothing it
was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from fraudkit.identification.base import SCORE_COLUMNS

__all__ = ["StageOutput", "empty_scores"]


def empty_scores() -> pd.DataFrame:
    """An empty score table with the common columns.

    Examples
    --------
    >>> list(empty_scores().columns) == list(SCORE_COLUMNS)
    True
    """
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
    features : dict of str to DataFrame
        Feature tables per entity the stage computed (``account``, ``device``, ``ip``, ``order``, ...);
        the pipeline passes them on as :attr:`RunContext.features <fraudkit.pipeline.context.RunContext>`
        and writes them once as ``RUN/features/<entity>.parquet``.
    rules : RuleEvaluation or None
        The rule set's evaluation (:class:`fraudkit.pipeline.frames.RuleEvaluation`), when the stage
        evaluated it (the behaviour stage): the pipeline's rules step and decisions use it, so a run
        evaluates its rule set once.
    """

    stage: str
    scores: pd.DataFrame = field(default_factory=empty_scores)
    artifacts: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    features: dict = field(default_factory=dict)
    rules: object = None
