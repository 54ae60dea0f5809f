"""What a run learns from its training dataset, kept so later runs with the same training data reuse it.

Scoring with ``train=`` computes two things that depend only on the training dataset and the run's
parameters, never on the data being scored:

* the **training pass**: every stage and the rule set run over the training dataset, whose account scores
  set each method's threshold (:func:`fraudkit.pipeline.operating_point.fit_operating_point`);
* the behaviour models' **training features** (the training accounts' behaviour features and labels);
* the behaviour **models** fitted on them (:func:`fraudkit.pipeline.stages.behaviour.fit_models`);
* the association classifier's labelled **training groups**
  (:func:`fraudkit.pipeline.stages.group.training_groups`).

A run writes them to ``RUN/training/`` (``key.json``, ``scores.parquet``, ``features.parquet``,
``models.signed``, ``groups.parquet``). ``score_dataset(..., reuse=RUN)`` reads them back instead of
recomputing them, but only when the key matches: the same fraudkit version and training-data fingerprint, and
for everything but the training features also the same stages, seed, rule set (its content, after the rules
the scored data cannot feed are switched off), stage parameters, target precision and label frequency. Results
are identical; the red-team drill and the closed loop use it to score small worlds against the main run's
defences without re-scoring the training world or refitting its models each time.

The models are scikit-learn objects, kept as a pickle behind this user's signature (:mod:`fraudkit.data.signed`):
a file another user or machine wrote, or one altered since, is refused unread and the models are fitted again,
with a note. (skops' safe format was measured and not taken: it imports every estimator module, about 0.6 s in
each process that saves or loads, half of the 1.2 s fit it would save on the demo's 6,390 training accounts.)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn

from fraudkit import __version__
from fraudkit.data.atomic import write_parquet, write_text
from fraudkit.data.signed import read_signed, write_signed
from fraudkit.errors import FraudkitError
from fraudkit.pipeline.context import STAGE_PARAMETERS

__all__ = ["Training", "training_key", "load_training", "write_training", "TRAINING_DIR"]

TRAINING_DIR = "training"
"""The run directory's sub-folder holding what the run learned from its training dataset."""

_MODELS = "models.signed"
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
    models : dict or None
        The behaviour models fitted on them, ``{name: scorer}``.
    groups : DataFrame or None
        The association classifier's labelled training groups.
    source : str or None
        The run directory they came from.
    problems : tuple of str
        Parts that were there but were not read back (they are computed again).
    """

    scores: pd.DataFrame | None = None
    features: tuple | None = None
    models: dict | None = None
    groups: pd.DataFrame | None = None
    source: str | None = None
    problems: tuple = ()


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
    if not isinstance(have, dict):
        return Training()
    same_data = all(have.get(k) == key[k] for k in ("fraudkit_version", "train_fingerprint"))
    scores = features = groups = None
    if have == key and (folder / "scores.parquet").is_file():
        scores = pd.read_parquet(folder / "scores.parquet")
    if same_data and (folder / "features.parquet").is_file():
        f = pd.read_parquet(folder / "features.parquet")
        features = (f.drop(columns=[_LABEL]), f[_LABEL].to_numpy(dtype=int))
    if have == key and (folder / "groups.parquet").is_file():
        groups = pd.read_parquet(folder / "groups.parquet")
    models, problems = None, []
    if have == key and (folder / _MODELS).is_file():
        try:
            saved = read_signed(folder / _MODELS)
        except FraudkitError as e:
            problems.append(f"models fitted again: {e}")
        else:  # a model pickled by another scikit-learn version may load wrong: fitted again instead
            if isinstance(saved, dict) and saved.get("scikit_learn") == sklearn.__version__:
                models = saved["models"]
            else:
                problems.append(f"models fitted again: {folder / _MODELS} was written with scikit-learn "
                                f"{saved.get('scikit_learn') if isinstance(saved, dict) else 'unknown'}, "
                                f"this is {sklearn.__version__}")
    found = any(x is not None for x in (scores, features, models, groups))
    return Training(scores, features, models, groups, str(run_dir) if found else None, tuple(problems))


def write_training(folder, key: dict, *, scores=None, features=None, models=None, groups=None) -> list:
    """Write ``key.json`` and what the run learned from its training data (:class:`Training`'s parts) into
    ``folder``; returns notes on what could not be kept (the models, when this user's signing key cannot be
    made: later runs then fit them again)."""
    folder = Path(folder)
    notes = []
    write_text(folder / "key.json", json.dumps(key, indent=2, sort_keys=True))
    if models:
        try:
            write_signed({"scikit_learn": sklearn.__version__, "models": dict(models)}, folder / _MODELS)
        except OSError as e:
            notes.append(f"the fitted models are not kept for reuse: no signing key ({e})")
    if groups is not None:
        write_parquet(groups.reset_index(drop=True), folder / "groups.parquet")
    if scores is not None:
        s = scores[scores["entity_type"] == "account"][_SCORE_COLUMNS]
        write_parquet(s.assign(entity_id=s["entity_id"].astype(str)).reset_index(drop=True),
                      folder / "scores.parquet")
    if features is not None:
        X, y = features
        write_parquet(X.reset_index(drop=True).assign(**{_LABEL: np.asarray(y, dtype=np.int64)}),
                      folder / "features.parquet")
    return notes


def _sha(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
