"""The data contract: every table, column, type and key fraudkit reads.

One module, one vocabulary. The simulator writes it, the loader validates it,
features, graphs and reports read it. ``docs/data-contract.md`` is generated
from this module (``python -m fraudkit.data.contract > docs/data-contract.md``), so
the two never drift.

Logical types
-------------
``id``
    An opaque key: integer or string. fraudkit never does arithmetic on it.
``string``, ``int``, ``float``, ``bool``
    As named; ``int`` and ``float`` accept any width.
``timestamp``
    Naive timestamps in platform-local time (the daily rhythm matters), or
    ISO-8601 strings in CSV files.

Ground truth lives in the ``labels`` table. No feature, rule, model or graph
may read it; only evaluation does (``fraudkit.evaluation.metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "fraud_keys",
    "ColumnSpec",
    "TableSpec",
    "TABLES",
    "LABEL_TABLE",
    "ACTIONS",
    "FRAUD_TYPOLOGIES",
    "CUSTOM_FRAUD_PREFIX",
    "CUSTOM_HONEST_PREFIX",
    "is_fraud_typology",
    "HONEST_LOOKALIKES",
    "TYPOLOGIES",
    "ENTITY_TYPES",
    "STAGES",
    "EVENT_TABLES",
    "STEPS",
    "LIST_TYPES",
    "DECISIONS",
    "PII_COLUMNS",
    "table",
    "render_markdown",
]

# --- Vocabulary (see ../shared/GLOSSARY.md) ---------------------------------

ACTIONS = ("view", "like", "collect", "comment", "share", "follow")
"""Interaction actions, in the order a person usually performs them."""

FRAUD_TYPOLOGIES = (
    "offline_script",
    "device_farm",
    "nurtured_account",
    "crowd_engagement",
    "engagement_buyer",
    "group_scalper",
    "crowd_scalper",
    "coupon_abuser",
    "reported_fraud",
)
"""Attacker typologies. ``engagement_buyer`` labels the notes and authors that
paid for fake engagement (the target of a campaign), not the accounts doing it. ``reported_fraud`` is an
account the analyst's own labels call fraud without naming a typology (a ban, a blacklist entry; see
:mod:`fraudkit.data.labels`); simulated worlds never use it."""

HONEST_LOOKALIKES = (
    "honest_shared_device",
    "honest_shared_ip",
    "honest_flash_sale",
    "honest_viral_fan",
    "honest_carrier_nat",
    "honest_group_buy",
)
"""Honest groups that look like attackers and must not be punished. ``honest_carrier_nat``: accounts behind a
mobile-carrier NAT IP shared by many unrelated users; ``honest_group_buy``: colleagues ordering the same item to
one office address."""

TYPOLOGIES = FRAUD_TYPOLOGIES + HONEST_LOOKALIKES

CUSTOM_FRAUD_PREFIX = "fraud:"
CUSTOM_HONEST_PREFIX = "honest:"
"""A typology outside the built-in vocabulary is declared in the labels by one of these prefixes and a
snake_case name: ``fraud:review_spam`` counts as fraud everywhere labels are read (training, thresholds,
evaluation), ``honest:power_reviewer`` as an honest group."""

ENTITY_TYPES = (
    "account",
    "device",
    "ip",
    "phone",
    "address",
    "binding",
    "note",
    "product",
    "merchant",
    "order",
    "interaction",
    "coupon_claim",
)

STAGES = ("behaviour", "group", "graph")
"""Identification stages: single-entity behaviour, group mining, graphs."""

EVENT_TABLES = ("interactions", "logins", "orders", "coupon_claims")
"""The tables of timed events an account makes (each with ``account_id`` and ``ts``)."""

STEPS = ("perception", "capability", "identification", "mitigation", "evaluation")
"""The five-step process, in order."""

LIST_TYPES = ("blacklist", "graylist")
DECISIONS = ("pass", "verify", "block")
"""Decisions in increasing severity."""


# --- Specs -------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a contract table.

    Parameters
    ----------
    name : str
        Column name, identical in every table that carries the same thing.
    dtype : {"id", "string", "int", "float", "bool", "timestamp"}
        Logical type (see the module docstring).
    description : str
        What the column means, in one line.
    nullable : bool, default=False
        Whether missing values are allowed.
    pii : bool, default=False
        Personal data (phone, address, IP, device identifiers): masked in
        stakeholder HTML.
    min_value : float or None
        Smallest allowed value for numeric columns (``0`` rejects negative
        amounts).
    max_value : float or None
        Largest allowed value for numeric columns.
    allowed : tuple of str or None
        Closed vocabulary for a string column.
    allowed_prefixes : tuple of str, default=()
        Values outside ``allowed`` are accepted when they are one of these prefixes and a snake_case name
        (custom typologies, ``fraud:review_spam``).
    references : str or None
        ``"table.column"`` this column must point into (a foreign key).
    """

    name: str
    dtype: str
    description: str
    nullable: bool = False
    pii: bool = False
    min_value: float | None = None
    max_value: float | None = None
    allowed: tuple[str, ...] | None = None
    references: str | None = None
    allowed_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract.

    Parameters
    ----------
    name : str
        Table name; the file is ``<name>.parquet`` or ``<name>.csv``.
    description : str
        What one row is.
    columns : tuple of ColumnSpec
        Required columns, in canonical order. Extra columns are kept and
        ignored.
    primary_key : tuple of str
        Columns that identify a row; duplicates are rejected.
    required : bool, default=True
        Whether a dataset must contain this table. Optional tables unlock
        stages (orders unlock e-commerce; logins unlock device sharing).
    time_column : str or None
        The event time, used for point-in-time cuts and windows.
    """

    name: str
    description: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    required: bool = True
    time_column: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}; columns: {', '.join(self.column_names)}")


def _c(name, dtype, description, **kw) -> ColumnSpec:
    return ColumnSpec(name, dtype, description, **kw)


_TABLE_LIST = (
    TableSpec(
        "accounts",
        "One platform account.",
        (
            _c("account_id", "id", "Account key."),
            _c("registered_at", "timestamp", "Registration time."),
            _c("register_channel", "string", "Registration channel: app, web, mini_program, third_party."),
            _c("phone", "string", "Bound phone number (11 digits).", nullable=True, pii=True),
        ),
        ("account_id",),
        time_column="registered_at",
    ),
    TableSpec(
        "bindings",
        "A third-party account bound to a platform account (WeChat, Weibo, QQ, Apple).",
        (
            _c("account_id", "id", "Platform account.", references="accounts.account_id"),
            _c("provider", "string", "Third-party provider.", allowed=("wechat", "weibo", "qq", "apple")),
            _c("binding_id", "id", "The third-party account's key.", pii=True),
            _c("bound_at", "timestamp", "When it was bound."),
        ),
        ("account_id", "provider"),
        required=False,
        time_column="bound_at",
    ),
    TableSpec(
        "devices",
        "One device as the app reports it. Cloned devices have distinct keys but identical parameters.",
        (
            _c("device_id", "id", "Device key issued by the app.", pii=True),
            _c("model", "string", "Hardware model, e.g. iPhone14,2 or SM-G9910."),
            _c("os", "string", "Operating system.", allowed=("ios", "android")),
            _c("os_version", "string", "OS version, e.g. 16.4."),
            _c("screen", "string", "Screen resolution WIDTHxHEIGHT as reported."),
            _c("app_version", "string", "App version."),
            _c("is_emulator", "bool", "Emulator signal raised by the client SDK."),
            _c("is_rooted", "bool", "Root (Android) or jailbreak (iOS) signal."),
            _c("fingerprint", "string", "Hash of the reported device parameters.", pii=True),
            _c("first_seen", "timestamp", "First time the platform saw the device."),
        ),
        ("device_id",),
        required=False,
        time_column="first_seen",
    ),
    TableSpec(
        "logins",
        "An account logging in from a device and IP.",
        (
            _c("login_id", "id", "Login key."),
            _c("account_id", "id", "Account.", references="accounts.account_id"),
            _c("device_id", "id", "Device.", pii=True, nullable=True, references="devices.device_id"),
            _c("ip", "string", "IPv4 address.", pii=True),
            _c("ts", "timestamp", "Login time."),
        ),
        ("login_id",),
        required=False,
        time_column="ts",
    ),
    TableSpec(
        "notes",
        "A piece of content (a note) and its author.",
        (
            _c("note_id", "id", "Note key."),
            _c("author_id", "id", "Author account.", references="accounts.account_id"),
            _c("created_at", "timestamp", "Publication time."),
            _c("category", "string", "Topic category."),
        ),
        ("note_id",),
        required=False,
        time_column="created_at",
    ),
    TableSpec(
        "interactions",
        "One engagement action by an account on a note (or, for follow, on an author).",
        (
            _c("event_id", "id", "Interaction key."),
            _c("ts", "timestamp", "Action time."),
            _c("account_id", "id", "Acting account.", references="accounts.account_id"),
            _c("device_id", "id", "Device used.", pii=True, nullable=True, references="devices.device_id"),
            _c("ip", "string", "IPv4 address.", pii=True, nullable=True),
            _c("action", "string", "Action.", allowed=ACTIONS),
            _c("target_id", "id", "A note_id; an author's account_id when action is follow."),
        ),
        ("event_id",),
        time_column="ts",
    ),
    TableSpec(
        "merchants",
        "A merchant (shop).",
        (
            _c("merchant_id", "id", "Merchant key."),
            _c("category", "string", "Main category."),
        ),
        ("merchant_id",),
        required=False,
    ),
    TableSpec(
        "products",
        "A product sold by a merchant.",
        (
            _c("product_id", "id", "Product key."),
            _c("merchant_id", "id", "Merchant.", references="merchants.merchant_id"),
            _c("category", "string", "Product category."),
            _c("price", "float", "List price.", min_value=0),
            _c("discount", "float", "Discount as a fraction of the list price during promotions.", min_value=0, max_value=1),
            _c("limited_stock", "bool", "Limited stock (a flash-sale item)."),
        ),
        ("product_id",),
        required=False,
    ),
    TableSpec(
        "promotions",
        "A promotion (a shopping festival, a live-stream flash sale) and its time window.",
        (
            _c("promotion_id", "id", "Promotion key."),
            _c("name", "string", "Human-readable name."),
            _c("starts_at", "timestamp", "Window start."),
            _c("ends_at", "timestamp", "Window end (after starts_at)."),
        ),
        ("promotion_id",),
        required=False,
        time_column="starts_at",
    ),
    TableSpec(
        "orders",
        "One order line: an account buying a quantity of a product.",
        (
            _c("order_id", "id", "Order key."),
            _c("ts", "timestamp", "Order time."),
            _c("account_id", "id", "Buyer account.", references="accounts.account_id"),
            _c("device_id", "id", "Device used.", pii=True, nullable=True, references="devices.device_id"),
            _c("ip", "string", "IPv4 address.", pii=True, nullable=True),
            _c("product_id", "id", "Product.", references="products.product_id"),
            _c("quantity", "int", "Units.", min_value=1),
            _c("paid_price", "float", "Amount paid for the line.", min_value=0),
            _c("coupon_id", "id", "Coupon used, if any.", nullable=True),
            _c("promotion_id", "id", "Promotion the order fell in, if any.", nullable=True, references="promotions.promotion_id"),
            _c("address", "string", "Shipping address.", pii=True),
            _c("receiver_phone", "string", "Receiver phone.", pii=True),
            _c("received_at", "timestamp", "Receipt time, if delivered.", nullable=True),
        ),
        ("order_id",),
        required=False,
        time_column="ts",
    ),
    TableSpec(
        "coupon_claims",
        "An account claiming a promotion coupon.",
        (
            _c("claim_id", "id", "Claim key."),
            _c("ts", "timestamp", "Claim time."),
            _c("account_id", "id", "Claiming account.", references="accounts.account_id"),
            _c("device_id", "id", "Device used.", pii=True, nullable=True, references="devices.device_id"),
            _c("ip", "string", "IPv4 address.", pii=True, nullable=True),
            _c("promotion_id", "id", "Promotion.", references="promotions.promotion_id"),
            _c("coupon_id", "id", "Coupon key."),
        ),
        ("claim_id",),
        required=False,
        time_column="ts",
    ),
    TableSpec(
        "list_entries",
        "A blacklist or graylist entry, scoped globally, per promotion or per scene.",
        (
            _c("entry_id", "id", "Entry key."),
            _c("list_type", "string", "List.", allowed=LIST_TYPES),
            _c("list_name", "string", "Named list, e.g. proxy_ips, scalper_addresses."),
            _c("entity_type", "string", "What is listed.", allowed=ENTITY_TYPES),
            _c("entity_id", "string", "The listed key, as text.", pii=True),
            _c("scope", "string", "global, promotion:<id> or scene:<name>."),
            _c("reason", "string", "Why it was listed."),
            _c("added_at", "timestamp", "When it was listed."),
            _c("expires_at", "timestamp", "When it stops applying.", nullable=True),
        ),
        ("entry_id",),
        required=False,
        time_column="added_at",
    ),
    TableSpec(
        "intelligence",
        "An observed black-market price (risk perception): accounts, phone numbers, fake-engagement services.",
        (
            _c("date", "timestamp", "Observation date."),
            _c("item", "string", "What is sold, e.g. aged_account, like_per_100, sms_code."),
            _c("price", "float", "Observed price.", min_value=0),
            _c("source", "string", "Where it was observed."),
        ),
        ("date", "item", "source"),
        required=False,
        time_column="date",
    ),
)

LABEL_TABLE = TableSpec(
    "labels",
    "Ground truth. Read only by evaluation, never by features, rules, models or graphs.",
    (
        _c("entity_type", "string", "Labelled entity type.", allowed=ENTITY_TYPES),
        _c("entity_id", "id", "Labelled key."),
        _c("typology", "string", "Typology (fraud or honest look-alike); a custom one as `fraud:<name>` or "
           "`honest:<name>`.", allowed=TYPOLOGIES, allowed_prefixes=(CUSTOM_FRAUD_PREFIX, CUSTOM_HONEST_PREFIX)),
        _c("campaign_id", "id", "Campaign or group the entity belongs to.", nullable=True),
    ),
    ("entity_type", "entity_id", "typology"),
    required=False,
)

TABLES: dict[str, TableSpec] = {t.name: t for t in _TABLE_LIST}
"""Every data table of the contract, by name (the labels table is separate)."""

PII_COLUMNS = tuple(
    sorted({c.name for t in (*_TABLE_LIST, LABEL_TABLE) for c in t.columns if c.pii})
)
"""Column names holding personal data; masked in stakeholder output."""


def table(name: str) -> TableSpec:
    """Return the spec of a contract table, the labels table included.

    Examples
    --------
    >>> table("orders").primary_key
    ('order_id',)
    """
    if name == LABEL_TABLE.name:
        return LABEL_TABLE
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"no contract table {name!r}; tables: {', '.join([*TABLES, LABEL_TABLE.name])}") from None


def render_markdown() -> str:
    """Render the contract as Markdown (the body of ``docs/data-contract.md``)."""
    out = [
        "# Data contract",
        "",
        "Generated from `fraudkit/contract.py` by `python -m fraudkit.data.contract`; do not edit by hand.",
        "",
        "A dataset is a folder with one file per table: `<table>.parquet` or `<table>.csv`.",
        "Required tables: " + ", ".join(f"`{t.name}`" for t in _TABLE_LIST if t.required) + ".",
        "Optional tables unlock stages; a stage whose inputs are missing says so and the rest runs.",
        "Extra columns are kept and ignored. Ids (`id`) are integers or strings; timestamps are",
        "naive platform-local times (ISO-8601 text in CSV).",
        "",
        "Vocabulary: actions " + ", ".join(f"`{a}`" for a in ACTIONS) + "; typologies "
        + ", ".join(f"`{t}`" for t in TYPOLOGIES) + "; stages " + ", ".join(f"`{s}`" for s in STAGES) + ".",
        "",
    ]
    for t in (*_TABLE_LIST, LABEL_TABLE):
        out += [f"## `{t.name}`{'' if t.required else ' (optional)'}", "", t.description, "",
                f"Primary key: {', '.join(f'`{k}`' for k in t.primary_key)}."
                + (f" Time column: `{t.time_column}`." if t.time_column else ""), "",
                "| column | type | null | PII | constraint | meaning |", "|---|---|---|---|---|---|"]
        for c in t.columns:
            cons = []
            if c.min_value is not None:
                cons.append(f">= {c.min_value:g}")
            if c.max_value is not None:
                cons.append(f"<= {c.max_value:g}")
            if c.allowed:
                cons.append("one of " + ", ".join(c.allowed)
                            + "".join(f", `{x}<name>`" for x in c.allowed_prefixes))
            if c.references:
                cons.append(f"→ `{c.references}`")
            out.append(f"| `{c.name}` | {c.dtype} | {'yes' if c.nullable else ''} | {'yes' if c.pii else ''} "
                       f"| {'; '.join(cons)} | {c.description} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(render_markdown())


def is_fraud_typology(typology) -> np.ndarray:
    """Whether each typology is a fraud one: built-in (:data:`FRAUD_TYPOLOGIES`) or custom (``fraud:<name>``).

    Examples
    --------
    >>> is_fraud_typology(["device_farm", "fraud:review_spam", "honest_shared_ip", "honest:power_user"]).tolist()
    [True, True, False, False]
    """
    t = pd.Series(np.asarray(typology, dtype=object)).astype("string")
    return (t.isin(FRAUD_TYPOLOGIES) | t.str.startswith(CUSTOM_FRAUD_PREFIX)).fillna(False).to_numpy(dtype=bool)


def fraud_keys(labels: pd.DataFrame, entity_type: str) -> set:
    """Keys (as text) of entities of one type labelled with a fraud typology (built-in or ``fraud:<name>``)."""
    lab = labels[(labels["entity_type"] == entity_type).to_numpy() & is_fraud_typology(labels["typology"])]
    return set(lab["entity_id"].astype(str))
