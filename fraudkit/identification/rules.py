"""Rule engine: rules as YAML data, a safe condition language, vectorised evaluation.

A rule set is YAML::

    name: default
    version: 1
    aggregate: sum            # sum of matched scores, or max
    thresholds: {verify: 40, block: 80}
    rules:
      - id: emulator_coupon
        description: Emulator or rooted device claiming coupons
        entity: account       # account | order | interaction | device | ip
        condition: (device_is_emulator or device_is_rooted) and n_coupon_claims >= 1
        score: 50
        action: verify        # pass | flag | verify | block
        scope: global         # global | promotion:<id> | scene:<name>
        status: active        # active | shadow | off
        version: 1

Per row, the *aggregate* score is the sum (or max) of the scores of the
active rules that match; the decision is the more severe of (a) the most
severe ``action`` among matched active rules and (b) the thresholds applied
to the aggregate (``>= block`` blocks, ``>= verify`` verifies). ``flag``
records a hit without acting (the hook for delayed interception).
**Shadow** rules are evaluated and reported but never change a score or a
decision; ``off`` rules are not evaluated.

Conditions are parsed by :mod:`fraudkit.identification.expressions`, never by Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from fraudkit.capability.lists import row_scopes
from fraudkit.data.contract import TABLES
from fraudkit.data.yamlfile import parse_yaml, read_yaml
from fraudkit.errors import FraudkitError, RuleError
from fraudkit.identification.base import BaseScorer, inclusive_threshold
from fraudkit.identification.expressions import (
    column_kinds,
    columns_of,
    lists_of,
    parse,
    typecheck,
)
from fraudkit.identification.expressions import evaluate as _eval_node

__all__ = [
    "Rule",
    "RuleSet",
    "RuleResult",
    "RuleScorer",
    "RULE_ACTIONS",
    "RULE_STATUSES",
    "RULE_ENTITIES",
    "load_ruleset",
    "default_ruleset",
]

RULE_ACTIONS = ("pass", "flag", "verify", "block")
RULE_STATUSES = ("active", "shadow", "off")
RULE_ENTITIES = ("account", "order", "interaction", "device", "ip")
_SEVERITY = {"pass": 0, "flag": 0, "verify": 1, "block": 2}
_DECISION = np.array(["pass", "verify", "block"], dtype=object)
_RULE_KEYS = {"id", "description", "condition", "score", "action", "scope", "status", "version", "entity",
              "requires"}
_ENTITY_KEYS = {"account": "account_id", "order": "order_id", "interaction": "event_id", "device": "device_id",
                "ip": "ip"}
TIME_OF_DAY = ":time_of_day"
"""Suffix of a ``requires`` entry asking for times with a time of day (not truncated to dates)."""


@dataclass(frozen=True)
class Rule:
    """One rule. ``node`` is the parsed condition (filled by :func:`load_ruleset`)."""

    id: str
    condition: str
    score: float = 0.0
    action: str = "flag"
    description: str = ""
    scope: str = "global"
    status: str = "active"
    version: int = 1
    entity: str = "account"
    requires: tuple = ()
    node: object = field(default=None, compare=False, repr=False)

    @property
    def columns(self) -> set[str]:
        """Columns the condition reads."""
        return columns_of(self.node) if self.node is not None else set()

    def to_dict(self) -> dict:
        """The rule as YAML-ready data."""
        out = {k: getattr(self, k) for k in ("id", "description", "entity", "condition", "score", "action",
                                             "scope", "status", "version")}
        if self.requires:
            out["requires"] = list(self.requires)
        return out


@dataclass(frozen=True)
class RuleResult:
    """What :meth:`RuleSet.evaluate` found.

    Attributes
    ----------
    rows : pandas.DataFrame
        One row per input row, same order: ``score`` (aggregate of active
        matches), ``action`` (pass | verify | block), ``flagged`` (any active
        match), ``matched`` (comma-joined active rule ids), ``shadow_matched``.
    hits : pandas.DataFrame
        One row per evaluated rule: ``rule_id, status, action, score, hits, hit_rate``.
    rule_ids : tuple of str
        Column order of ``matches``.
    matches : ndarray of shape (n_rows, n_rules), dtype bool
        Which rule matched which row (shadow rules included), for backtests.
    aggregate : str
    """

    rows: pd.DataFrame
    hits: pd.DataFrame
    rule_ids: tuple
    matches: np.ndarray
    aggregate: str
    statuses: tuple = ()

    def match(self, rule_id: str) -> np.ndarray:
        """Boolean mask of the rows ``rule_id`` matched."""
        return self.matches[:, self.rule_ids.index(rule_id)]


@dataclass(frozen=True)
class RuleSet:
    """A versioned, validated set of rules. Build it with :func:`load_ruleset`.

    Examples
    --------
    >>> import pandas as pd
    >>> rs = load_ruleset({"rules": [
    ...     {"id": "fast", "condition": "n_likes_1h > 100", "score": 60, "action": "flag"},
    ...     {"id": "emu", "condition": "is_emulator", "score": 50, "action": "verify"}],
    ...     "thresholds": {"verify": 50, "block": 100}})
    >>> res = rs.evaluate(pd.DataFrame({"n_likes_1h": [5, 500, 500], "is_emulator": [False, False, True]}))
    >>> res.rows[["score", "action", "matched"]].values.tolist()
    [[0.0, 'pass', ''], [60.0, 'verify', 'fast'], [110.0, 'block', 'fast,emu']]
    """

    rules: tuple
    name: str = "ruleset"
    version: int = 1
    aggregate: str = "sum"
    thresholds: tuple = (("verify", 40.0), ("block", 80.0))
    source: str | None = None

    @property
    def ids(self) -> tuple:
        return tuple(r.id for r in self.rules)

    def get(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(f"no rule {rule_id!r} in rule set {self.name!r}; rules: {', '.join(self.ids)}")

    @property
    def threshold(self) -> dict:
        return dict(self.thresholds)

    @property
    def entities(self) -> tuple:
        """Entities the non-off rules apply to, in RULE_ENTITIES order."""
        used = {r.entity for r in self.rules if r.status != "off"}
        return tuple(e for e in RULE_ENTITIES if e in used)

    def for_entity(self, entity: str) -> "RuleSet":
        """The rules for one entity type, same settings."""
        return replace(self, rules=tuple(r for r in self.rules if r.entity == entity))

    def without(self, rule_id: str) -> "RuleSet":
        """The same set with one rule removed (used for lift)."""
        self.get(rule_id)
        return replace(self, rules=tuple(r for r in self.rules if r.id != rule_id))

    def for_inputs(self, missing) -> tuple:
        """Switch off the rules whose ``requires`` inputs are missing from a dataset.

        Parameters
        ----------
        missing : set of str
            Missing inputs: table names, ``table.column`` (a column with no values), and
            ``table.column:time_of_day`` (times truncated to dates); see
            :func:`fraudkit.pipeline.frames.missing_inputs`.

        Returns
        -------
        (RuleSet, dict)
            The rule set with those rules ``off``, and ``{rule_id: [missing inputs]}``.

        Examples
        --------
        >>> rs = load_ruleset({"rules": [{"id": "nodev", "condition": "null_device_share >= 0.8",
        ...                                "score": 40, "requires": ["interactions.device_id"]}]})
        >>> rs2, off = rs.for_inputs({"interactions.device_id"})
        >>> rs2.get("nodev").status, off
        ('off', {'nodev': ['interactions.device_id']})
        """
        missing = set(missing)
        # A rule on orders (devices, interactions) needs that table even when it does not say so.
        implied = {"order": "orders", "device": "devices", "interaction": "interactions"}
        off = {r.id: [q for q in dict.fromkeys((*r.requires, implied.get(r.entity, ""))) if q in missing]
               for r in self.rules if r.status != "off"}
        off = {k: v for k, v in off.items() if v}
        if not off:
            return self, {}
        return replace(self, rules=tuple(replace(r, status="off") if r.id in off else r for r in self.rules)), off

    def columns(self, entity: str | None = None) -> set:
        """Columns read by the (non-off) rules, optionally for one entity."""
        return set().union(*[r.columns for r in self.rules if r.status != "off"
                             and (entity is None or r.entity == entity)])

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "aggregate": self.aggregate,
                "thresholds": dict(self.thresholds), "rules": [r.to_dict() for r in self.rules]}

    def evaluate(self, frame: pd.DataFrame, *, lists=None, scope=None, as_of=None, entity=None) -> RuleResult:
        """Evaluate every non-off rule over ``frame``, vectorised.

        Parameters
        ----------
        frame : pandas.DataFrame
            One row per entity/event, with the columns the rules read.
        lists : ListStore or dict of str to iterable, optional
            Needed when a condition uses ``list(...)``, ``blacklist(...)`` or ``graylist(...)``.
        scope : str, optional
            The evaluation context, e.g. ``"scene:like"`` or ``"promotion:p1"``. A rule scoped
            ``promotion:<id>`` applies to rows whose ``promotion_id`` is ``<id>`` (or to every row
            when ``scope`` names that promotion and the frame has no ``promotion_id``); a rule
            scoped ``scene:<name>`` applies when ``scope`` is that scene or the frame's ``scene``
            column says so. Scoped list entries follow the same rule.
        as_of : timestamp-like or array-like of shape (n,), optional
            When ``list(...)`` conditions look their lists up: entries not yet added or already
            expired then are ignored. Default: each row at its own ``ts`` when the frame has one
            (orders, interactions), else now; entity frames (accounts, devices) should pass the
            data's end time.
        entity : str, optional
            Only evaluate the rules for this entity type.

        Returns
        -------
        RuleResult
        """
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"evaluate needs a pandas DataFrame, got {type(frame).__name__}")
        rules = [r for r in self.rules if r.status != "off" and (entity is None or r.entity == entity)]
        n = len(frame)
        missing = sorted(set().union(*[r.columns for r in rules]) - set(frame.columns)) if rules else []
        if missing:
            who = [r.id for r in rules if r.columns & set(missing)]
            raise RuleError(f"rule {who[0]}: the frame lacks column(s) {', '.join(missing)} "
                            f"(rules needing them: {', '.join(who)}); compute the features first "
                            "or switch those rules off")
        list_scope = _list_scope(frame, scope)
        if as_of is None and "ts" in frame.columns:
            as_of = pd.to_datetime(frame["ts"], cache=False).to_numpy(dtype="datetime64[ns]")
        cache: dict = {}

        matches = np.zeros((n, len(rules)), dtype=bool)
        score = np.zeros(n)
        severity = np.zeros(n, dtype=np.int8)
        flagged = np.zeros(n, dtype=bool)
        for j, r in enumerate(rules):
            try:
                m = _eval_node(r.node, frame, lists=lists, scope=list_scope, as_of=as_of, cache=cache)
            except RuleError as e:
                msg = str(e)
                raise RuleError(msg if msg.startswith(f"rule {r.id}") else f"rule {r.id}: {msg}") from None
            m &= _scope_mask(r.scope, frame, scope, n)
            matches[:, j] = m
            if r.status != "active":
                continue
            flagged |= m
            if self.aggregate == "sum":
                score += np.where(m, r.score, 0.0)
            else:
                score = np.where(m, np.maximum(score, r.score), score)
            if _SEVERITY[r.action]:
                severity = np.where(m, np.maximum(severity, _SEVERITY[r.action]), severity).astype(np.int8)
        th = self.threshold
        if "verify" in th:
            severity = np.where(flagged & (score >= th["verify"]), np.maximum(severity, 1), severity)
        if "block" in th:
            severity = np.where(flagged & (score >= th["block"]), 2, severity)
        active = np.array([r.status == "active" for r in rules], dtype=bool)
        ids = np.array([r.id for r in rules], dtype=object)
        rows = pd.DataFrame({
            "score": score,
            "action": _DECISION[severity],
            "flagged": flagged,
            "matched": _joined(matches, active, ids),
            "shadow_matched": _joined(matches, ~active, ids),
        }, index=frame.index, copy=False)  # the new columns as they are (no object block copied per chunk)
        counts = matches.sum(axis=0)
        hits = pd.DataFrame({
            "rule_id": ids, "status": [r.status for r in rules], "entity": [r.entity for r in rules],
            "action": [r.action for r in rules], "score": [float(r.score) for r in rules],
            "hits": counts.astype(np.int64), "hit_rate": counts / max(n, 1),
        })
        return RuleResult(rows=rows, hits=hits, rule_ids=tuple(ids), matches=matches, aggregate=self.aggregate,
                          statuses=tuple(r.status for r in rules))


class RuleScorer(BaseScorer):
    """A rule set as a detector: one evaluation, the fitted attributes of every fraudkit scorer.

    ``fit(frame)`` evaluates the rule set once (:meth:`RuleSet.evaluate`) over one entity's rows.

    Parameters
    ----------
    ruleset : RuleSet, dict, path or "default", default="default"
        Anything :func:`load_ruleset` reads.
    entity : str or None, default="account"
        Evaluate the rules for this entity type only (:data:`RULE_ENTITIES`); None evaluates all.
    level : {"verify", "block"}, default="verify"
        The rule set's threshold that flags: ``labels_`` marks rows whose aggregate score reaches it
        (the behaviour stage flags rule scores from ``verify``). A set without that threshold uses the
        other one. A rule's own ``action`` can verify or block a row below it: see ``actions_``.
    key : str or None, default=None
        Column holding the entity keys; None takes the entity's usual key (``account_id``,
        ``order_id``, ``event_id``, ``device_id``, ``ip``), else the frame's index.
    scope : str, optional
        Evaluation context, as in :meth:`RuleSet.evaluate`.
    contamination : float or None, default=None
        See :class:`fraudkit.identification.base.BaseScorer`.
    threshold : float or None, default=None
        None: the ``level`` score, stored as the largest float below it (scores reaching it are
        flagged; see :func:`fraudkit.identification.base.inclusive_threshold`).

    Attributes
    ----------
    decision_scores_, threshold_, labels_, entity_ids_, reasons_
        The contract of :class:`fraudkit.identification.base.BaseScorer`, one entry per row: the
        aggregate score of the matched active rules, and their ids comma-joined.
    ruleset_ : RuleSet
    result_ : RuleResult
        The evaluation (per-row actions, shadow matches, hit counts, the match matrix).
    actions_ : ndarray of str
        The rule set's decision per row (pass | verify | block), rule actions included.

    Examples
    --------
    >>> import pandas as pd
    >>> spec = {"rules": [{"id": "fast", "condition": "n_likes_1h > 100", "score": 60, "action": "flag"},
    ...                   {"id": "emu", "condition": "is_emulator", "score": 50, "action": "verify"}],
    ...         "thresholds": {"verify": 50, "block": 100}}
    >>> frame = pd.DataFrame({"account_id": ["a", "b", "c"], "n_likes_1h": [5, 500, 500],
    ...                       "is_emulator": [False, False, True]})
    >>> est = RuleScorer(spec).fit(frame)
    >>> est.decision_scores_.tolist(), est.labels_.tolist(), est.reasons_.tolist()
    ([0.0, 60.0, 110.0], [0, 1, 1], ['', 'fast', 'fast,emu'])
    """

    stage = "behaviour"

    def __init__(self, ruleset="default", *, entity="account", level="verify", key=None, scope=None,
                 contamination=None, threshold=None):
        super().__init__(contamination=contamination, threshold=threshold)
        self.ruleset = ruleset
        self.entity = entity
        self.level = level
        self.key = key
        self.scope = scope

    def fit(self, frame: pd.DataFrame, *, lists=None, as_of=None):
        """Evaluate the rule set over ``frame``.

        Parameters
        ----------
        frame : pandas.DataFrame
            One row per entity, with the columns the rules read.
        lists : ListStore or dict of str to iterable, optional
            For ``list(...)`` conditions.
        as_of : timestamp-like or array-like, optional
            When list entries are looked up (see :meth:`RuleSet.evaluate`).

        Returns
        -------
        self
        """
        if self.level not in ("verify", "block"):
            raise ValueError(f"level must be 'verify' or 'block', got {self.level!r}")
        if self.entity is not None and self.entity not in RULE_ENTITIES:
            raise ValueError(f"entity must be one of {', '.join(RULE_ENTITIES)} or None, got {self.entity!r}")
        rs = self.ruleset if isinstance(self.ruleset, RuleSet) else load_ruleset(self.ruleset)
        res = rs.evaluate(frame, lists=lists, scope=self.scope, as_of=as_of, entity=self.entity)
        th = rs.threshold
        other = "block" if self.level == "verify" else "verify"
        self._level_score = float(th.get(self.level, th.get(other, np.inf)))
        key = self.key if self.key is not None else _ENTITY_KEYS.get(self.entity)
        if self.key is not None and self.key not in frame.columns:
            raise RuleError(f"RuleScorer: the frame has no key column {self.key!r}; columns are "
                            f"{list(frame.columns)[:20]}")
        ids = frame[key].to_numpy() if key in frame.columns else frame.index.to_numpy()
        self.ruleset_ = rs
        self.result_ = res
        self.actions_ = res.rows["action"].to_numpy(dtype=object)
        self.entity_type_ = self.entity or "row"
        return self._set_scores(ids, res.rows["score"].to_numpy(float), res.rows["matched"].to_numpy(dtype=object))

    def _default_threshold(self) -> float:
        return inclusive_threshold(self._level_score)


def load_ruleset(source, *, columns=None, lists=None) -> RuleSet:
    """Load, parse and check a rule set; raise :class:`RuleError` naming every bad rule.

    Parameters
    ----------
    source : str, path, dict or RuleSet
        A YAML file, its parsed content, ``"default"`` for the built-in set, or a RuleSet.
    columns : list, dict, DataFrame or dict of entity to those, optional
        Known columns (and dtypes). When given, unknown columns are rejected, and with
        dtypes, type errors (string compared with a number, arithmetic on strings) too.
        A dict keyed by entity type (``{"account": df_accounts, "order": df_orders}``)
        checks each rule against its own entity.
    lists : iterable of str or ListStore, optional
        Known list names; a condition looking up another list is rejected.

    Returns
    -------
    RuleSet

    Examples
    --------
    >>> rs = load_ruleset({"rules": [{"id": "a", "condition": "x > 1", "score": 10}]})
    >>> rs.ids
    ('a',)
    >>> load_ruleset({"rules": [{"id": "a", "condition": "x.y > 1"}]})
    Traceback (most recent call last):
    ...
    fraudkit.errors.RuleError: 1 problem(s) in rule set 'ruleset':
      - rule a: attribute access is not allowed at position 1 in 'x.y > 1'
    """
    if isinstance(source, RuleSet):
        spec, origin = source.to_dict(), source.source
    elif isinstance(source, dict):
        spec, origin = source, None
    else:
        origin = str(source)
        if origin == "default":
            return default_ruleset(columns=columns, lists=lists)
        path = Path(source)
        if not path.is_file():
            raise RuleError(f"rule set file {path} does not exist; pass a YAML file or 'default'")
        try:
            spec = read_yaml(path, what="rule set")
        except FraudkitError as e:
            raise RuleError(str(e)) from None
    ruleset, problems = _build(spec, origin, columns, lists)
    if problems:
        where = f"rule set {ruleset.name!r}" + (f" ({origin})" if origin else "")
        raise RuleError(f"{len(problems)} problem(s) in {where}:\n" + "\n".join(f"  - {p}" for p in problems))
    return ruleset


def default_ruleset(*, columns=None, lists=None) -> RuleSet:
    """The built-in rule set (``fraudkit/identification/rulesets/default.yaml``)."""
    text = resources.files("fraudkit.identification").joinpath("rulesets/default.yaml").read_text(encoding="utf-8")
    rs = load_ruleset(parse_yaml(text, what="the built-in rule set"), columns=columns, lists=lists)
    return replace(rs, source="fraudkit/identification/rulesets/default.yaml")




# --- private helpers ----------------------------------------------------------------------------


def _build(spec, origin, columns, lists):
    problems = []
    if not isinstance(spec, dict) or not isinstance(spec.get("rules"), list):
        raise RuleError(f"{origin or 'rule set'}: expected a mapping with a 'rules' list")
    name = str(spec.get("name", "ruleset"))
    aggregate = spec.get("aggregate", "sum")
    if aggregate not in ("sum", "max"):
        problems.append(f"aggregate must be 'sum' or 'max', got {aggregate!r}")
    th_spec = spec.get("thresholds", {"verify": 40, "block": 80}) or {}
    thresholds = []
    if not isinstance(th_spec, dict) or set(th_spec) - {"verify", "block"}:
        problems.append(f"thresholds must be a mapping with keys verify and/or block, got {th_spec!r}")
    else:
        for k in ("verify", "block"):
            if k in th_spec:
                try:
                    thresholds.append((k, float(th_spec[k])))
                except (TypeError, ValueError):
                    problems.append(f"threshold {k} must be a number, got {th_spec[k]!r}")
        if len(thresholds) == 2 and thresholds[0][1] > thresholds[1][1]:
            problems.append(f"threshold verify ({thresholds[0][1]:g}) is above block ({thresholds[1][1]:g})")
    per_entity = _per_entity_columns(columns)
    list_names = _list_names(lists)
    rules, seen = [], set()
    for i, raw in enumerate(spec["rules"]):
        rule, errs = _build_rule(i, raw, seen, per_entity, list_names)
        problems += errs
        if rule is not None:
            rules.append(rule)
    try:
        version = int(spec.get("version", 1))
    except (TypeError, ValueError):
        problems.append(f"version must be an integer, got {spec.get('version')!r}")
        version = 1
    rs = RuleSet(rules=tuple(rules), name=name, version=version, aggregate=aggregate,
                 thresholds=tuple(thresholds), source=origin)
    return rs, problems


def _build_rule(i, raw, seen, per_entity, list_names):
    if not isinstance(raw, dict):
        return None, [f"rule #{i + 1}: expected a mapping, got {raw!r}"]
    rid = raw.get("id")
    if not isinstance(rid, str) or not rid:
        return None, [f"rule #{i + 1}: missing 'id' (a short unique name)"]
    errs = []
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        errs.append(f"rule {rid}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_RULE_KEYS))}")
    if rid in seen:
        errs.append(f"rule {rid}: duplicate id; every rule needs its own id")
    seen.add(rid)
    action = raw.get("action", "flag")
    if action not in RULE_ACTIONS:
        errs.append(f"rule {rid}: bad action {action!r}; use one of {', '.join(RULE_ACTIONS)}")
    status = raw.get("status", "active")
    if status not in RULE_STATUSES:
        errs.append(f"rule {rid}: bad status {status!r}; use one of {', '.join(RULE_STATUSES)}")
    entity = raw.get("entity", "account")
    if entity not in RULE_ENTITIES:
        errs.append(f"rule {rid}: bad entity {entity!r}; use one of {', '.join(RULE_ENTITIES)}")
    scope = str(raw.get("scope", "global"))
    if not (scope == "global" or (scope.startswith(("promotion:", "scene:")) and scope.split(":", 1)[1])):
        errs.append(f"rule {rid}: bad scope {scope!r}; use global, promotion:<id> or scene:<name>")
    try:
        score = float(raw.get("score", 0))
        if not np.isfinite(score):
            raise ValueError
    except (TypeError, ValueError):
        errs.append(f"rule {rid}: score must be a finite number, got {raw.get('score')!r}")
        score = 0.0
    try:
        version = int(raw.get("version", 1))
    except (TypeError, ValueError):
        errs.append(f"rule {rid}: version must be an integer, got {raw.get('version')!r}")
        version = 1
    cond = raw.get("condition")
    node = None
    try:
        node = parse(cond if isinstance(cond, str) else "", rule_id=rid)
        kinds = per_entity.get(entity, per_entity.get(None, {}))
        kind = typecheck(node, kinds, rule_id=rid, text=cond)
        if kind in ("num", "str", "time"):
            raise RuleError(f"rule {rid}: the condition {cond!r} yields a {kind}, not true/false")
        if list_names is not None:
            for k, nm in sorted(lists_of(node)):
                if nm not in list_names:
                    raise RuleError(f"rule {rid}: unknown list {nm!r} in {k}('{nm}'); known lists: "
                                    f"{', '.join(sorted(list_names)) or 'none'}")
    except RuleError as e:
        errs.append(str(e))
        node = None
    if errs:
        return None, errs
    requires, req_errs = _requires(rid, raw.get("requires", ()))
    if req_errs:
        return None, req_errs
    return Rule(id=rid, condition=cond, score=score, action=action, description=str(raw.get("description", "")),
                scope=scope, status=status, version=version, entity=entity, requires=requires, node=node), []


def _requires(rid, spec):
    """Validate a rule's ``requires``: contract tables, ``table.column`` or ``table.column:time_of_day``."""

    if isinstance(spec, str):
        spec = [spec]
    if not isinstance(spec, (list, tuple)):
        return (), [f"rule {rid}: requires must be a list of inputs such as interactions.device_id, got {spec!r}"]
    errs = []
    for q in spec:
        base = str(q)[:-len(TIME_OF_DAY)] if str(q).endswith(TIME_OF_DAY) else str(q)
        tab, _, col = base.partition(".")
        if tab not in TABLES:
            errs.append(f"rule {rid}: requires {q!r}: no contract table {tab!r}; tables: {', '.join(TABLES)}")
        elif col and col not in TABLES[tab].column_names:
            errs.append(f"rule {rid}: requires {q!r}: table {tab} has no column {col!r}; columns: "
                        f"{', '.join(TABLES[tab].column_names)}")
        elif str(q).endswith(TIME_OF_DAY) and (not col or TABLES[tab].column(col).dtype != "timestamp"):
            errs.append(f"rule {rid}: requires {q!r}: {TIME_OF_DAY} applies to a timestamp column, e.g. "
                        "interactions.ts:time_of_day")
    return tuple(str(q) for q in spec), errs


def _per_entity_columns(columns):
    if columns is None:
        return {}
    if isinstance(columns, dict) and columns and all(k in RULE_ENTITIES for k in columns) \
            and all(not isinstance(v, str) for v in columns.values()):
        return {k: column_kinds(v) for k, v in columns.items()}
    return {None: column_kinds(columns)}


def _list_names(lists):
    if lists is None:
        return None
    if hasattr(lists, "names"):
        return set(lists.names())
    if isinstance(lists, dict):
        return set(lists)
    return set(lists)


def _scope_mask(rule_scope, frame, scope, n):
    if rule_scope == "global":
        return np.ones(n, dtype=bool)
    kind, name = rule_scope.split(":", 1)
    col = "promotion_id" if kind == "promotion" else "scene"
    if col in frame.columns:
        return (frame[col].astype("string") == name).fillna(False).to_numpy(dtype=bool)
    return np.full(n, scope == rule_scope)


def _list_scope(frame, scope):
    out = []
    if scope is not None:
        out.append(scope)
    if "promotion_id" in frame.columns:

        out.append(row_scopes("promotion", frame["promotion_id"]))
    if "scene" in frame.columns:
        out.append(("scene:" + frame["scene"].astype("string")).to_numpy(dtype=object, na_value=None))
    return out or None


def _joined(matches, keep, ids):
    """Comma-joined ids of matched rules per row, built from a hash of the unique match patterns."""
    n = matches.shape[0]
    cols = np.flatnonzero(keep)
    if n == 0 or len(cols) == 0:
        return np.full(n, "", dtype=object)
    words = []
    for start in range(0, len(cols), 63):
        chunk = cols[start:start + 63]
        w = np.zeros(n, dtype=np.uint64)
        for b, j in enumerate(chunk):
            w |= matches[:, j].astype(np.uint64) << np.uint64(b)
        words.append(w)
    if len(words) == 1:
        codes, uniq = pd.factorize(words[0])
        uniq_rows = [np.array([u], dtype=np.uint64) for u in uniq]
    else:
        key = pd.MultiIndex.from_arrays(words)
        codes, uniq = pd.factorize(key)
        uniq_rows = [np.array(u, dtype=np.uint64) for u in uniq]
    labels = []
    for u in uniq_rows:
        names = []
        for wi, word in enumerate(u):
            chunk = cols[wi * 63:(wi + 1) * 63]
            names += [ids[j] for b, j in enumerate(chunk) if (int(word) >> b) & 1]
        labels.append(",".join(names))
    return np.asarray(labels, dtype=object)[codes]
