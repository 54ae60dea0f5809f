"""What a run learns from its training dataset, kept so later runs with the same training data reuse it.

Scoring with ``train=`` computes two things that depend only on the training dataset and the run's
parameters, never on the data being scored:

* the **training pass**: every stage and the rule set run over the training dataset, whose account scores
  set each method's threshold (:func:`fraudkit.pipeline.operating_point.fit_operating_point`);
* the behaviour models' **training features** (the training accounts' behaviour features and labels).

A run writes them to ``RUN/training/`` (``key.json``, ``scores.parquet``, ``features.parquet``).
``score_dataset(..., reuse=RUN)`` reads them back instead of recomputing them, but only when the key
matches: the same fraudkit version and training-data fingerprint, and for the training pass also the same
stages, seed, rule set (its content, after the rules the scored data cannot feed are switched off), stage
parameters and target precision. Results are identical; the red-team drill and the closed loop use it to score
small worlds against the main run's defences without re-scoring the training world each time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fraudkit import __version__
from fraudkit.data.atomic import write_parquet, write_text
from fraudkit.pipeline.context import STAGE_PARAMETERS

__all__ = ["Training", "training_key", "load_training", "write_training", "TRAINING_DIR"]

TRAINING_DIR = "training"
"""The run directory's sub-folder holding what the run learned from its training dataset."""

_SCORE_COLUMNS = ["entity_type", "entity_id", "stage", "method", "score"]
_LABEL = "__training_label"


@dataclass(frozen=True)
class Training:
    """What an earlier run learned from the training dataset; a part is None when it cannot be reused.

    Attributes
    ----------
    scores : pandas.DataFrame or None
        The training pass's account scores (``entity_type, entity_id, stage, method, score``).
    features : tuple of (DataFrame, ndarray) or None
        The behaviour models' training features ``X`` and labels ``y``.
    source : str or None
        The run directory they came from.
    """

    scores: pd.DataFrame | None = None
    features: tuple | None = None
    source: str | None = None


def training_key(train_ds, *, stages, context) -> dict:
    """What the training pass depends on: version, training fingerprint, stages, seed, rules, parameters.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from fraudkit.pipeline.context import RunContext
    >>> k = training_key(SimpleNamespace(fingerprint="ab12"), stages=["graph"], context=RunContext(seed=3))
    >>> k["train_fingerprint"], k["stages"], k["seed"]
    ('ab12', ['graph'], 3)
    """
    rules = context.rules.to_dict() if hasattr(context.rules, "to_dict") else repr(context.rules)
    return {"fraudkit_version": __version__, "train_fingerprint": str(train_ds.fingerprint),
            "stages": list(stages), "seed": int(context.seed), "target_precision": float(context.target_precision),
            "rules_sha256": _sha(rules), "label_frequency": float(context.label_frequency),
            "params": {s: _sha(dict(getattr(context, s))) for s in STAGE_PARAMETERS}}


def load_training(run_dir, key: dict) -> Training:
    """The parts of ``run_dir/training/`` made under ``key`` (see the module docstring); None: nothing to reuse.

    A missing folder, another key or an unreadable file gives empty parts (the caller recomputes them).
    """
    if run_dir is None:
        return Training()
    folder = Path(run_dir) / TRAINING_DIR
    try:
        have = json.loads((folder / "key.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Training()
    same_data = all(have.get(k) == key[k] for k in ("fraudkit_version", "train_fingerprint"))
    scores = features = None
    if have == key and (folder / "scores.parquet").is_file():
        scores = pd.read_parquet(folder / "scores.parquet")
    if same_data and (folder / "features.parquet").is_file():
        f = pd.read_parquet(folder / "features.parquet")
        features = (f.drop(columns=[_LABEL]), f[_LABEL].to_numpy(dtype=int))
    return Training(scores, features, str(run_dir) if scores is not None or features is not None else None)


def write_training(folder, key: dict, *, scores=None, features=None) -> None:
    """Write ``key.json``, the training pass's account ``scores`` and the training ``features`` into ``folder``."""
    folder = Path(folder)
    write_text(folder / "key.json", json.dumps(key, indent=2, sort_keys=True))
    if scores is not None:
        s = scores[scores["entity_type"] == "account"][_SCORE_COLUMNS]
        write_parquet(s.assign(entity_id=s["entity_id"].astype(str)).reset_index(drop=True),
                      folder / "scores.parquet")
    if features is not None:
        X, y = features
        write_parquet(X.reset_index(drop=True).assign(**{_LABEL: np.asarray(y, dtype=np.int64)}),
                      folder / "features.parquet")


def _sha(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
