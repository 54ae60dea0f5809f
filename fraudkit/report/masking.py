"""PII masking for stakeholder output: stable, vectorised, never reversible.

=============  ====================  ======================================
kind           example in            example out
=============  ====================  ======================================
``phone``      ``13812345678``       ``138****5678``
``ip``         ``10.12.3.4``         ``10.12.*.* #77c0`` (also ``ip24``; keyed tag)
``address``    ``上海市浦东新区...``  ``上海市浦东新… #a41f`` (keyed tag)
``device``     ``A1B2-...``          ``dev:3fa2c19e`` (keyed hash)
``fingerprint``, ``binding``         ``fp:...``, ``bind:...``
=============  ====================  ======================================

Hashed identifiers use SipHash (pandas' vectorised keyed hash) with a secret
key, so equal inputs give equal masks (a device can be followed through a
report) but nobody without the key can enumerate ids back from their masks.
IPs and addresses keep their coarse, public part (the /16, the first characters
of the address) and add a short keyed tag of the whole value, so two different
addresses in one city stay two different rows.
The key is ``key=`` if given, else the ``FRAUDKIT_MASK_KEY`` environment
variable, else a random key drawn once per process: set the variable when
several processes (report notebooks) must produce the same masks.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets

import numpy as np
import pandas as pd

from fraudkit.data.contract import PII_COLUMNS
from fraudkit.errors import FraudkitError

__all__ = ["mask_value", "mask_entity", "mask_series", "mask_frame", "mask_text", "secret", "MASK_KINDS",
           "COLUMN_KINDS", "PERSONAL_ENTITY_TYPES"]

MASK_KINDS = ("phone", "ip", "address", "device", "fingerprint", "binding", "id")
"""How a value is masked."""

COLUMN_KINDS = {
    "phone": "phone",
    "receiver_phone": "phone",
    "ip": "ip",
    "ip24": "ip",
    "address": "address",
    "device_id": "device",
    "fingerprint": "fingerprint",
    "binding_id": "binding",
}
"""Mask kind of each PII column (``entity_id`` depends on ``entity_type``)."""

PERSONAL_ENTITY_TYPES = {"device": "device", "ip": "ip", "ip24": "ip", "phone": "phone", "address": "address",
                         "binding": "binding", "fingerprint": "fingerprint"}
"""Mask kind of each entity (graph node) type that is personal data; other types (account, note...) are shown."""

_PREFIX = {"device": "dev", "fingerprint": "fp", "binding": "bind", "id": "id"}
_ADDRESS_KEEP = 6
_TAG = 4
"""Hex digits of the keyed tag next to a masked IP or address."""
_PROCESS_KEY = secrets.token_hex(16)

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\d.])({_OCTET}\.{_OCTET})\.{_OCTET}\.{_OCTET}(?![\d.]|\.\d)")
_PHONE = re.compile(r"(?<![\d+])((?:\+?86[- ]?)?1[3-9]\d)\d{4}(\d{4})(?!\d)")


def mask_value(kind: str, value, *, key=None):
    """Mask one value.

    Parameters
    ----------
    kind : str
        A kind from :data:`MASK_KINDS` or a column name from :data:`COLUMN_KINDS`.
    value : object
        The value; ``None`` / NaN stay missing.
    key : str or None, default=None
        Secret for hashed kinds (see the module docstring).

    Returns
    -------
    str or None

    Examples
    --------
    >>> mask_value("phone", "13812345678")
    '138****5678'
    >>> mask_value("ip", "10.12.3.4", key="k")[:9]
    '10.12.*.*'
    >>> a, b = mask_value("ip", "10.12.3.4", key="k"), mask_value("ip", "10.12.3.5", key="k")
    >>> a == mask_value("ip", "10.12.3.4", key="k") and a != b
    True
    >>> mask_value("device_id", 102, key="k") == mask_value("device", "102", key="k")
    True
    """
    return mask_series(kind, pd.Series([value]), key=key).iloc[0]


def mask_entity(entity_type: str, value, *, key=None) -> str:
    """Display text of an entity key (a graph node): masked when ``entity_type`` is personal data.

    Devices, fingerprints and bindings become keyed hashes (never a prefix of
    the raw id), phones keep only their public head, IPs and addresses their
    coarse part and a keyed tag; accounts, notes, products and other opaque ids are shown
    as they are.

    Parameters
    ----------
    entity_type : str
        A node type (:data:`PERSONAL_ENTITY_TYPES` are masked).
    value : object
        The raw key.
    key : str or None, default=None
        Secret for hashed ids (see the module docstring).

    Examples
    --------
    >>> mask_entity("account", "a17")
    'a17'
    >>> mask_entity("phone", "13812345678")
    '138****5678'
    >>> mask_entity("device", "D-8F2A", key="k").startswith("dev:")
    True
    """
    kind = PERSONAL_ENTITY_TYPES.get(entity_type)
    return str(value) if kind is None else str(mask_value(kind, value, key=key))


def mask_series(kind: str, values, *, key=None) -> pd.Series:
    """Mask a column of values of one kind (vectorised; returns a new Series of text).

    Examples
    --------
    >>> mask_series("address", pd.Series(["Shanghai Pudong Road 1", None]), key="k").str.slice(0, 9).tolist()
    ['Shangh… #', None]
    """
    kind = COLUMN_KINDS.get(kind, kind)
    if kind not in MASK_KINDS:
        raise FraudkitError(f"unknown mask kind {kind!r}; kinds: {', '.join(MASK_KINDS)} "
                            f"or columns {', '.join(COLUMN_KINDS)}")
    s = pd.Series(values)
    missing = s.isna().to_numpy()
    text = _as_text(s)
    if kind == "phone":
        digits = text.str.replace(r"\D", "", regex=True)
        long = digits.str.len() >= 7
        out = (digits.str.slice(0, 3) + "****" + digits.str.slice(-4)).where(long, "****")
    elif kind == "ip":
        text = text.str.strip()
        head = text.str.extract(r"^(\d{1,3}\.\d{1,3})(?:\.|$)", expand=False)
        v6 = text.str.extract(r"^([0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}):", expand=False)
        coarse = pd.Series(np.where(head.notna(), head + ".*.*", np.where(v6.notna(), v6 + ":*", "***")),
                           index=s.index)
        out = coarse + " #" + _tag(text, key)
    elif kind == "address":
        clean = text.str.strip()
        out = clean.str.slice(0, _ADDRESS_KEEP) + "… #" + _tag(clean, key)
    else:
        out = _PREFIX[kind] + ":" + _keyed_hash(text, key)
    out = out.astype(object)
    out[missing] = None
    out.index = s.index
    return out


def mask_frame(df: pd.DataFrame, *, key=None, columns=None) -> pd.DataFrame:
    """Return a copy of ``df`` with every PII column masked.

    Masks the contract's PII columns (:data:`fraudkit.data.contract.PII_COLUMNS`)
    and ``ip24``; ``entity_id`` is masked on the rows whose ``entity_type``
    is a personal entity (:data:`PERSONAL_ENTITY_TYPES`) and, when
    there is no ``entity_type`` column, everywhere (as an opaque id).

    Parameters
    ----------
    df : pandas.DataFrame
        Not modified.
    key : str or None, default=None
        Secret for hashed ids.
    columns : dict of str to str or None, default=None
        Extra columns to mask: name -> kind (e.g. ``{"src_device": "device"}``).

    Examples
    --------
    >>> df = pd.DataFrame({"account_id": [1], "phone": ["13812345678"], "ip": ["10.12.3.4"]})
    >>> out = mask_frame(df, key="k")
    >>> out["phone"].item(), out["ip"].item().startswith("10.12.*.* #")
    ('138****5678', True)
    """
    out = df.copy()
    kinds = {c: COLUMN_KINDS[c] for c in out.columns if c in COLUMN_KINDS}
    kinds.update(columns or {})
    for col, kind in kinds.items():
        if col not in out.columns:
            raise FraudkitError(f"cannot mask column {col!r}: not in the frame ({', '.join(map(str, out.columns))})")
        out[col] = mask_series(kind, out[col], key=key)
    if "entity_id" in out.columns and "entity_id" in PII_COLUMNS and "entity_id" not in kinds:
        if "entity_type" not in out.columns:
            out["entity_id"] = mask_series("id", out["entity_id"], key=key)
        else:
            ids = out["entity_id"].astype(object)
            for etype, kind in PERSONAL_ENTITY_TYPES.items():
                rows = (out["entity_type"] == etype).to_numpy()
                if rows.any():
                    ids = ids.where(~rows, mask_series(kind, out.loc[rows, "entity_id"], key=key).reindex(ids.index))
            out["entity_id"] = ids
    return out


def mask_text(text: str, *, key=None) -> str:
    """Mask mainland mobile numbers (11 digits) and IPv4 addresses inside free text (HTML, logs).

    A last line of defence for rendered reports; mask the data itself with
    :func:`mask_frame` first. An IP gets the same mask as in a table (its /16 and keyed tag).

    Examples
    --------
    >>> mask_text("<td>13812345678</td><td>ip 110.80.1.7</td>", key="k") == (
    ...     "<td>138****5678</td><td>ip " + mask_value("ip", "110.80.1.7", key="k") + "</td>")
    True
    """
    if not isinstance(text, str):
        raise FraudkitError(f"mask_text expects a str, got {type(text).__name__}")
    text = _PHONE.sub(r"\1****\2", text)
    return _IPV4.sub(lambda m: mask_value("ip", m.group(0), key=key), text)


def secret(key=None) -> str:
    """The masking secret: ``key`` if given, else ``FRAUDKIT_MASK_KEY``, else this process's random key.

    The report also signs the inline scripts it embeds with it (:func:`fraudkit.report.html.embed_html`).
    """
    return str(key if key is not None else os.environ.get("FRAUDKIT_MASK_KEY") or _PROCESS_KEY)


# --- private helpers ---------------------------------------------------------


def _as_text(s: pd.Series) -> pd.Series:
    """Values as text; integral floats (nullable ints read back as float) lose their '.0'."""
    if s.dtype == object:
        s = s.infer_objects()
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype=float, na_value=np.nan)
        whole = np.isfinite(v) & (v == np.round(v))
        txt = s.astype(str)
        txt[whole] = v[whole].astype(np.int64).astype(str)
        return txt
    return s.astype(str)


def _tag(text: pd.Series, key) -> pd.Series:
    """A short keyed tag of each value (distinct from the id hashes: a different domain)."""
    return _keyed_hash("tag:" + text, key).str.slice(0, _TAG)


def _keyed_hash(text: pd.Series, key) -> pd.Series:
    hash_key = hashlib.sha256(secret(key).encode()).hexdigest()[:16]
    h = pd.util.hash_array(text.to_numpy(dtype=object), hash_key=hash_key, categorize=True)
    return pd.Series(np.char.mod("%016x", h), index=text.index).str.slice(0, 10)
