"""The run context: everything an identification stage of one run may read, as named fields.

:class:`RunContext` is frozen. A stage reads the fields it needs and *returns* what it made in its
:class:`~fraudkit.pipeline.stages.StageOutput`; it never writes into the context. The pipeline builds one
context per pass and hands results forward with :func:`dataclasses.replace` (the feature tables the
behaviour stage computes become ``features`` for every later step).

Two passes, one meaning each (``mode``):

``"score"``
    The dataset being scored. ``train`` is the separate labelled dataset (or ``(X, y)``) supervised
    parts train on, or None.
``"train"``
    The labelled training dataset itself, scored to set the operating point (``score_dataset(train=)``).
    ``train`` is None: supervised parts that can (the group stage's association classifier) train on the
    scored dataset's own labels out-of-fold, so its scores are on the scale the scored pass produces;
    stage-1 models are not fitted in this pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Mapping

from fraudkit.errors import FraudkitError
from fraudkit.pipeline.frames import FeatureTables

__all__ = ["RunContext", "MODES", "STAGE_PARAMETERS"]

MODES = ("score", "train")
"""The two passes of a run (see the module docstring)."""

STAGE_PARAMETERS = ("behaviour", "group", "graph")
"""Fields of :class:`RunContext` holding one stage's parameter overrides each."""


@dataclass(frozen=True)
class RunContext:
    """What every stage of one run may read; frozen (stages return outputs, they never write here).

    Parameters
    ----------
    seed : int, default=0
        Randomness (community detection, model splits, MinHash): the same seed gives the same run.
    mode : {"score", "train"}, default="score"
        Which pass this is (see :mod:`fraudkit.pipeline.context`).
    rules : RuleSet, path, dict, "default" or False, default="default"
        The rule set; ``False`` switches the behaviour stage's rules off.
    lists : ListStore, optional
        Lists for ``list(...)`` conditions (default: the stage reads the dataset's ``list_entries``).
    seed_pool : SeedPool, DataFrame or sequence of account keys, optional
        The risk seed pool the graph stage propagates weak labels from (a table with ``entity_id`` or
        ``account_id``, optionally ``entity_type``, ``source``, ``flagged``).
    train : Dataset, (X, y) or dict, optional
        Labelled training data from a *different* dataset or an earlier window (``mode="score"`` only).
    target_precision : float, default=0.9
        Precision the stage-1 models' thresholds are validated at, in (0, 1].
    label_frequency : float, default=1.0
        Share of the training data's fraud that carries a label, in (0, 1]: 1 for a simulated world (every
        attacker labelled); below 1 for the analyst's own labels (positive-unlabelled), where a threshold's
        precision is estimated as ``min(1, labelled fraud flagged / label_frequency / flagged)``
        (:func:`fraudkit.identification.base.threshold_for_precision`).
    behaviour, group, graph : mapping, default={}
        Parameter overrides of each stage, key by key over the stage's ``DEFAULTS``; an unknown key is
        an error naming the stage's parameters.
    features : mapping of str to DataFrame, default={}
        Feature tables per entity (``account``, ``device``, ``ip``, ``order``, ...), once computed; a
        :class:`~fraudkit.pipeline.frames.FeatureTables` is kept as it is (its tables may be parked).
    run_id : str, optional
        Recorded in the seed pool the graph stage writes.
    now : timestamp-like, optional
        When the run sees the data (the seed pool's ``seen_at``); the pipeline sets it to the data's end.
    train_features : tuple of (DataFrame, ndarray), optional
        The behaviour models' training features and labels ``(X, y)``, once computed from ``train`` (the
        behaviour stage computes them itself when this is None).
    train_models : mapping of str to scorer, optional
        The behaviour models fitted on ``train_features``
        (:func:`fraudkit.pipeline.stages.behaviour.fit_models`); the behaviour stage fits them itself when
        this is None.
    train_groups : DataFrame, optional
        The association classifier's labelled training groups of ``train``
        (:meth:`fraudkit.identification.graph.association.AssociationNetwork.training_groups`); the group stage
        builds them itself when this is None.
    progress : fraudkit.pipeline.progress.Progress, optional
        Where stages report their steps (:func:`fraudkit.pipeline.progress.step`); None reports nothing.
        Not a parameter: it changes no result and is not recorded.
    parking : bool, default=False
        Whether a stage parks, on a large dataset (:func:`fraudkit.pipeline.frames.worth_parking`), the tables
        only the end of the run reads again (the behaviour stage: its rule evaluation and the feature tables its
        models do not read, before they run). The pipeline sets it; a stage run on its own keeps its tables in
        memory. Not a parameter: it changes no result.
    features_folder : path, optional
        Where parked feature tables are written: the run's ``features`` folder when the run writes its feature
        tables; None: a temporary folder, removed when the run ends
        (:meth:`fraudkit.pipeline.frames.FeatureTables.close`).
    side_by_side : bool or None, default=None
        Whether the pipeline runs the group and graph stages side by side in two threads, on DuckDB: sooner on
        two cores or more, with both stages' memory at once (on ``large`` 12.5 GB peak against 7.8 GB,
        ``benchmarks/stages_in_threads.md``). None: when the data holds at most
        :data:`fraudkit.pipeline.score.SIDE_BY_SIDE_EVENTS` events and
        :data:`~fraudkit.pipeline.score.SIDE_BY_SIDE_ORDERS` orders. Not a parameter: it changes no result.

    Examples
    --------
    >>> from dataclasses import replace
    >>> ctx = RunContext(seed=3, graph={"lp_alpha": 0.9})
    >>> ctx.parameters("graph", {"lp_alpha": 0.85, "lp_threshold": 0.25})
    {'lp_alpha': 0.9, 'lp_threshold': 0.25}
    >>> replace(ctx, mode="train").mode, ctx.mode
    ('train', 'score')
    >>> RunContext(mode="fit")
    Traceback (most recent call last):
    ...
    fraudkit.errors.FraudkitError: RunContext.mode must be one of score, train, got 'fit'
    """

    seed: int = 0
    mode: str = "score"
    rules: Any = "default"
    lists: Any = None
    seed_pool: Any = None
    train: Any = None
    target_precision: float = 0.9
    label_frequency: float = 1.0
    behaviour: Mapping = field(default_factory=dict)
    group: Mapping = field(default_factory=dict)
    graph: Mapping = field(default_factory=dict)
    features: Mapping = field(default_factory=dict)
    run_id: str | None = None
    now: Any = None
    train_features: Any = field(default=None, compare=False, repr=False)
    train_models: Any = field(default=None, compare=False, repr=False)
    train_groups: Any = field(default=None, compare=False, repr=False)
    progress: Any = field(default=None, compare=False, repr=False)
    parking: bool = field(default=False, compare=False, repr=False)
    features_folder: Any = field(default=None, compare=False, repr=False)
    side_by_side: bool | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.mode not in MODES:
            raise FraudkitError(f"RunContext.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "train" and self.train is not None:
            raise FraudkitError("RunContext: mode='train' scores the training dataset itself, so train must be "
                                "None; pass the training data with mode='score' to train on it")
        for name in ("target_precision", "label_frequency"):
            value = getattr(self, name)
            try:
                ok = 0 < float(value) <= 1
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise FraudkitError(f"{name} must be in (0, 1], got {value!r}")
        for name in (*STAGE_PARAMETERS, "features"):
            value = getattr(self, name)
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise FraudkitError(f"RunContext.{name} must be a dict, got {type(value).__name__}; "
                                    f"e.g. RunContext(graph={{'lp_alpha': 0.9}})")
            if name == "features" and isinstance(value, FeatureTables):
                continue  # kept as it is: copying it into a dict would read parked tables back into memory
            object.__setattr__(self, name, MappingProxyType(dict(value)))

    def parameters(self, stage: str, defaults: Mapping) -> dict:
        """A stage's parameters: its ``defaults`` overridden key by key by this context's entry.

        Raises
        ------
        FraudkitError
            When an override names a parameter the stage does not have.
        """
        overrides = getattr(self, stage)
        unknown = sorted(set(overrides) - set(defaults))
        if unknown:
            raise FraudkitError(f"unknown {stage} stage parameter(s) {', '.join(map(str, unknown))}; "
                                f"the {stage} stage takes {', '.join(map(str, defaults))}")
        return {**defaults, **overrides}

    def describe(self) -> dict:
        """The caller-set stage parameters, ``run_id`` and ``now`` (the run manifest's ``context`` entry).

        Examples
        --------
        >>> RunContext(graph={"lp_alpha": 0.9}, run_id="w1").describe()
        {'graph': {'lp_alpha': 0.9}, 'run_id': 'w1'}
        """
        out = {name: dict(getattr(self, name)) for name in STAGE_PARAMETERS if getattr(self, name)}
        out |= {f.name: getattr(self, f.name) for f in fields(self)
                if f.name in ("run_id", "now") and getattr(self, f.name) is not None}
        return out
