"""Entity resolution of shipping addresses and phone numbers: one canonical key per real-world entity.

Group scalpers type their two real addresses many ways ("张江路88号5号楼301室", "张江路88号5-301",
"Rm 301 Bldg 5, 88 Zhangjiang Rd", with or without the city, an added ``单元``, notes in brackets,
full-width digits) and format their phones differently ("+86 138-0013-8000", "008613800138000").
Exact string keys split such a ring into many entities; these functions give every row a canonical key.

The address method follows the structure of Splink (blocking rules, then comparison levels):

1. **Parse** each distinct string once (capped at ``MAX_CHARS``): NFKC (full-width to ASCII), markup and
   bracketed notes removed, Chinese numerals before a unit word turned into digits, then the Chinese form
   (``[省][市][区]<road>路<no>号[<b>栋|幢|号楼|座][<u>单元]<r>[室]``, dash forms ``5-301`` and
   ``5-3-301``) or the English form (``Rm``/``Room``, ``Bldg``/``Building``/``Block``/``Tower``,
   ``Unit``, ``No.``, ``Rd``/``Road``, ``St``/``Street``, ``Ave``/``Avenue``/``Blvd``, ``Ln``/``Lane``,
   in any order). The road name becomes a language-independent key: Chinese names through their pinyin
   (``pypinyin``, phrase-aware, so 长江 is "changjiang" and 重庆 "chongqing"), English names lower-cased
   with spaces removed and direction words put where Chinese puts them (North Zhongshan Rd and
   中山北路 are both "zhongshanbei").
2. **Normalised form**: language, region, road key, road type, road number, building, unit, room, and a
   floor (``12楼``) when there is neither building nor room. Rows with the same form are the same entity
   with confidence 1.0.
3. **Blocking**: only forms sharing road number, building, room and floor are compared, so the work is
   linear in the number of distinct forms.
4. **Comparison** within a block, most complete form first: a form joins a cluster when the road keys are
   similar (normalised Indel similarity >= ``road_similarity``), the road types agree, and every part both
   specify agrees (unit; province, city and district level by level within Chinese; across languages the
   region names, in pinyin, must share at least one token). A missing part never conflicts; a part one
   member of the cluster has fixed (say unit 3) conflicts with another value (unit 4) even if the
   cluster's first form left it open, so open forms cannot chain two different units together.

The canonical key is the form of the cluster's most complete member (ties: the Chinese form, the most
frequent, the lexicographically first), so it does not depend on row order. The key is relative to the
batch: resolve all of a dataset's addresses in one call.

Limits: there is no gazetteer. Region names are compared through pinyin only when both sides name one; a
Chinese address that names only its district and an English one that names only its city do not merge (they
share no token). A city written without 市 and without a space (杭州文三路…) is read as part of the road name.
Road names signed by translation ("Century Avenue" for 世纪大道) do not match their pinyin. Strings that
differ only in a part another spelling drops (unit 3 / unit 4 against no unit) go to the most complete,
then most frequent, compatible cluster. Addresses without a recognisable road and number keep their cleaned
text as key and merge only on exact equality.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import numpy as np
import pandas as pd
from pypinyin import lazy_pinyin
from rapidfuzz.distance import Indel

from fraudkit.errors import MissingInputError

__all__ = ["canonical_phone", "canonical_address", "with_canonical_keys", "address_pairs", "pair_scores", "MAX_CHARS",
           "ADDRESS_COLUMNS", "PHONE_COLUMNS"]

MAX_CHARS = 200
"""Characters of an address or phone string looked at (after markup removal); the rest is ignored."""

ADDRESS_COLUMNS = ("address_key", "confidence", "compound_key", "form", "language", "province", "city",
                   "district", "road", "road_type", "road_number", "building", "unit", "room", "floor")
"""Columns of :func:`canonical_address`, in order."""

PHONE_COLUMNS = ("phone_key", "valid", "country_code", "national_number")
"""Columns of :func:`canonical_phone`, in order."""

_PARTS = ("language", "province", "city", "district", "region_tokens", "local_tokens", "road", "road_key", "road_type",
          "road_number", "building", "unit", "room", "floor")


def canonical_phone(phones, *, default_country: str = "86") -> pd.DataFrame:
    """Canonical E.164-like key of each phone number.

    Separators, spaces, brackets and full-width digits are removed; ``+CC``, ``00CC`` and a bare ``CC``
    prefix (for the default country) are read as the country code; an 11-digit Chinese mobile number or a
    trunk-prefixed landline (``021-…``) gets ``default_country``; an extension (``转123``, ``ext 12``) is
    dropped.

    Parameters
    ----------
    phones : array-like of str
        One phone string per row (order rows, accounts ...). None / NaN allowed.
    default_country : str, default="86"
        Country calling code for numbers written without one.

    Returns
    -------
    pandas.DataFrame
        One row per input, same order and index 0..n-1. ``phone_key`` (``"+8613800138000"``; null for a
        null, empty, digit-less or over-long input), ``valid`` (nullable boolean: a plausible number — Chinese
        mobile ``1[3-9]`` + 9 digits or landline for +86, 8–15 digits for other countries; null for null
        input), ``country_code`` and ``national_number`` (strings).

    Examples
    --------
    >>> canonical_phone(["+86 138-0013-8000", "008613800138000", "138 0013 8000", None])["phone_key"].tolist()
    ['+8613800138000', '+8613800138000', '+8613800138000', None]
    """
    values = pd.Series(phones, dtype=object).reset_index(drop=True)
    code, uniq = pd.factorize(values, sort=False)
    plain = default_country == "86"  # a bare mobile number is its own national number (_plain_mobile)
    rows = [["+86" + u, True, "86", u] if plain and _plain_mobile(u) else _parse_phone(u, default_country)
            for u in uniq]
    parsed = pd.DataFrame(rows, columns=list(PHONE_COLUMNS)) if rows else pd.DataFrame(columns=list(PHONE_COLUMNS))
    out = _expand(parsed, code).astype({"valid": "boolean"})
    out.attrs.update(method="canonical_phone", default_country=default_country, max_chars=MAX_CHARS)
    return out


def canonical_address(addresses, *, road_similarity: float = 0.85, max_block: int = 200) -> pd.DataFrame:
    """Canonical entity key of each shipping address, with parsed parts and a match confidence.

    Parameters
    ----------
    addresses : array-like of str
        One address string per row. None / NaN allowed; resolve all of a dataset's rows in one call.
    road_similarity : float, default=0.85
        Least normalised Indel similarity of two road keys (pinyin or English) in one block to merge.
    max_block : int, default=200
        Blocks with more distinct forms than this are resolved on exact road keys only (bounds the work
        on pathological data).

    Returns
    -------
    pandas.DataFrame
        One row per input, same order and index 0..n-1, columns :data:`ADDRESS_COLUMNS`:
        ``address_key`` (canonical entity key; null for null / empty input), ``confidence`` (1.0 when the
        row's normalised form is the key's own form, lower for merges on partial or cross-language
        evidence, NaN for null), ``compound_key`` (region, road and number of the key: the building
        compound, for "same compound" signals), ``form`` (the row's own normalised form), ``language``
        (``zh``, ``en`` or null when unparsed), and the parsed parts ``province``, ``city``,
        ``district``, ``road``, ``road_type`` (``rd``, ``st``, ``ave``, ``ln``), ``road_number``,
        ``building``, ``unit``, ``room``, ``floor`` (strings or null). ``attrs`` records the method, its
        parameters and the numbers of distinct strings and forms.

    Examples
    --------
    >>> r = canonical_address(["上海市浦东新区张江路88号5号楼301室", "张江路88号5-301",
    ...                        "Rm 301 Bldg 5, 88 Zhangjiang Rd", "张江路88号5号楼302室"])
    >>> r["address_key"].nunique(), r["confidence"].tolist()
    (2, [1.0, 0.85, 0.79, 1.0])
    """
    if not 0.0 < road_similarity <= 1.0:
        raise ValueError(f"canonical_address: road_similarity must be in (0, 1], got {road_similarity!r}.")
    if int(max_block) < 2:
        raise ValueError(f"canonical_address: max_block must be at least 2, got {max_block!r}.")
    values = pd.Series(addresses, dtype=object).reset_index(drop=True)
    code, uniq = pd.factorize(values, sort=False)
    parsed = pd.DataFrame([_parse_address(u) for u in uniq], columns=["form", *_PARTS])
    counts = np.bincount(code[code >= 0], minlength=len(uniq))
    forms = _resolve_forms(parsed, counts, road_similarity, max_block)
    table = parsed.merge(forms, on="form", how="left")[list(ADDRESS_COLUMNS)]
    out = _expand(table, code).astype({"confidence": float})
    out.attrs.update(method="canonical_address", road_similarity=road_similarity, max_block=max_block,
                     max_chars=MAX_CHARS, distinct_strings=len(uniq), distinct_forms=len(forms))
    return out


def with_canonical_keys(frame: pd.DataFrame, *, address: str | None = "address",
                        phone: str | None = "receiver_phone") -> pd.DataFrame:
    """A copy of ``frame`` (orders) with canonical address and phone keys beside the raw columns.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows to resolve; not modified.
    address, phone : str or None, default="address" / "receiver_phone"
        Columns to resolve; None skips one.

    Returns
    -------
    pandas.DataFrame
        ``frame`` plus ``address_key``, ``address_confidence``, ``compound_key`` (from
        :func:`canonical_address`) and ``phone_key``, ``phone_valid`` (from :func:`canonical_phone`), same
        index and row order.

    Raises
    ------
    MissingInputError
        A named column is not in ``frame``.

    Examples
    --------
    >>> import pandas as pd
    >>> o = pd.DataFrame({"address": ["张江路88号5-301", "Rm 301 Bldg 5, 88 Zhangjiang Rd"],
    ...                   "receiver_phone": ["+86 138-0013-8000", "13800138000"]})
    >>> k = with_canonical_keys(o)
    >>> k["address_key"].nunique(), k["phone_key"].nunique()
    (1, 1)
    """
    missing = [c for c in (address, phone) if c is not None and c not in frame.columns]
    if missing:
        raise MissingInputError(f"with_canonical_keys: missing column(s) {', '.join(missing)}; got "
                                f"{', '.join(map(str, frame.columns))}. Name the columns with address= / phone= "
                                f"or pass None to skip one.")
    out = frame.copy()
    if address is not None:
        a = canonical_address(frame[address])
        out["address_key"] = a["address_key"].to_numpy()
        out["address_confidence"] = a["confidence"].to_numpy()
        out["compound_key"] = a["compound_key"].to_numpy()
    if phone is not None:
        p = canonical_phone(frame[phone])
        out["phone_key"] = p["phone_key"].to_numpy()
        out["phone_valid"] = p["valid"].array
    return out


def address_pairs(keys, entities) -> dict:
    """All pairs of rows sharing a key vs sharing a true entity: the counts behind pair precision/recall.

    Parameters
    ----------
    keys, entities : array-like
        Predicted key and true entity of each row (nulls form no pairs).

    Returns
    -------
    dict
        ``true_pairs``, ``predicted_pairs``, ``correct_pairs``, ``precision``, ``recall``.

    Examples
    --------
    >>> address_pairs(["a", "a", "b"], [1, 1, 1])["recall"]
    0.3333333333333333
    """
    d = pd.DataFrame({"k": pd.Series(keys, dtype=object).to_numpy(), "e": pd.Series(entities, dtype=object).to_numpy()})
    d = d[d["k"].notna() & d["e"].notna()]

    def n_pairs(cols):
        s = d.groupby(cols).size().to_numpy()
        return int((s * (s - 1) // 2).sum())

    true, pred, both = n_pairs(["e"]), n_pairs(["k"]), n_pairs(["k", "e"])
    return {"true_pairs": true, "predicted_pairs": pred, "correct_pairs": both,
            "precision": both / pred if pred else 1.0, "recall": both / true if true else 1.0}


def pair_scores(table: pd.DataFrame, *, key: str = "address_key", entity: str = "entity_id") -> dict:
    """:func:`address_pairs` on two columns of a frame (the labelled variants joined with the result)."""
    return address_pairs(table[key], table[entity])


def _expand(table, code):
    """Rows of ``table`` (one per distinct value) for every input row; null rows where ``code`` is -1."""
    out = table.astype(object).where(table.notna(), None)
    out = out.iloc[np.maximum(code, 0)].reset_index(drop=True) if len(out) else pd.DataFrame(
        index=range(len(code)), columns=table.columns, dtype=object)
    out.loc[code < 0, :] = None
    return out


# ---------------------------------------------------------------------------------------------- phones

_PHONE_EXT = re.compile(r"(?:转|ext\.?|x|分机)\s*\d{1,6}\s*$", re.IGNORECASE)
_CN_PHONE = re.compile(r"1[3-9]\d{9}|(?:10|2\d)\d{8}|[3-9]\d{9,10}")  # mobile; landline: area code + 7-8 digits


_PLAIN_MOBILE = re.compile(r"1[3-9][0-9]{9}")
"""A Chinese mobile number written as its 11 ASCII digits and nothing else: what most phone columns hold."""


def _plain_mobile(value) -> bool:
    """Whether ``value`` is a bare Chinese mobile number, which :func:`_parse_phone` reads as itself (country 86,
    valid): nothing to normalise, no markup, extension, prefix or trunk zero. Checked before the parse (on
    ``large``'s 1.2M distinct phones, all of them bare, :func:`canonical_phone` took 2.8 s against 6.4 s).

    Examples
    --------
    >>> [_plain_mobile(v) for v in ("13800138000", "+8613800138000", "１３８００１３８０００", "12800138000", 1.3e10)]
    [True, False, False, False, False]
    """
    return type(value) is str and len(value) == 11 and _PLAIN_MOBILE.fullmatch(value) is not None


def _parse_phone(value, default_country):
    if isinstance(value, str):  # the closed loop's windows resolve mostly the same strings again
        return list(_parse_phone_text(value, default_country))
    return _parse_phone_value(value, default_country)


@lru_cache(maxsize=65536)
def _parse_phone_text(value, default_country):
    return tuple(_parse_phone_value(value, default_country))


def _parse_phone_value(value, default_country):
    if not isinstance(value, str):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return [None, pd.NA, None, None]
        # a number column read with nulls comes as floats: 13800138000.0
        value = str(int(value)) if isinstance(value, (float, np.floating)) and float(value).is_integer() else str(value)
    s = _strip_markup(unicodedata.normalize("NFKC", value[: 4 * MAX_CHARS]))[:MAX_CHARS].strip()
    s = _PHONE_EXT.sub("", s)
    digits = re.sub(r"\D", "", s)
    if not digits or len(digits) > 20:  # no phone has more than 15 digits (+ a few of an unrecognised extension)
        return [None, False, None, None]
    cc = default_country
    if s.startswith("+"):
        cc, national = _split_country(digits)
    elif digits.startswith("00"):
        cc, national = _split_country(digits[2:])
    elif digits.startswith(default_country) and len(digits) > 11:
        national = digits[len(default_country):]
    else:
        national = digits
    if cc == "86" and national.startswith("0"):
        national = national[1:]  # trunk prefix of a landline (021-…)
    if cc == "86":
        valid = bool(_CN_PHONE.fullmatch(national))
    else:
        valid = 8 <= len(cc + national) <= 15 and not national.startswith("0")
    return ["+" + cc + national, valid, cc, national]


def _split_country(digits):
    # calling codes are prefix-free: 1 and 7 take one digit, a set of two-digit codes, the rest three
    if digits[:1] in ("1", "7"):
        return digits[:1], digits[1:]
    if digits[:2] in _CC2:
        return digits[:2], digits[2:]
    return digits[:3], digits[3:]


_CC2 = {"20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48",
        "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81",
        "82", "84", "86", "90", "91", "92", "93", "94", "95", "98"}

# --------------------------------------------------------------------------------------------- parsing

_MARKUP = re.compile(r"<(script|style)\b[^<>]{0,200}>.{0,2000}?</\1\s*>|<[^<>]{0,200}>|&[a-z]{2,8};|&#\d{1,6};", re.IGNORECASE)
_NOTES = re.compile(r"[(\[{【《][^()\[\]{}【】《》]{0,60}[)\]}】》]")
_CN_NUM = "零〇一二两三四五六七八九十百"
_HAN_CHAR = re.compile(r"[\u4e00-\u9fff]")
_SPACES = re.compile(r"[\u3000\s]+")
_CN_NUMERAL = re.compile(rf"[{_CN_NUM}]{{1,8}}(?=号楼|号院|号|栋|幢|座|单元|室|楼|层|弄)")
_HAN = r"\u4e00-\u9fff"
# a bare municipality name followed by a road is the road's own name (重庆南路, 北京西路, 上海路 in Nanjing)
_MUNICIPALITY = re.compile(r"^(?:(北京|上海|天津|重庆)(?:市|(?![东南西北中]?(?:大道|大街|路|街|巷|弄|道))))+")
_PROVINCE = re.compile(rf"^([{_HAN}]{{2,7}}?)(?:省|自治区|特别行政区)")
_CITY = re.compile(rf"^([{_HAN}]{{2,6}}?)(?:市|自治州|地区|盟)(?!路|街|大道|大街|巷|弄|道)")
_DISTRICT = re.compile(rf"^([{_HAN}]{{1,6}}?)(?:新区|区|县|旗)(?!路|街|大道|大街|巷|弄|道)")
_CN_ROAD = re.compile(rf"((?:(?![市区县省])[{_HAN}a-z]){{1,12}}?)(大道|大街|胡同|路|街|巷|弄|道)/?(\d{{1,5}})/?(?:号院|号|弄)?")
_BARE_REGION = re.compile(rf"^([{_HAN}]{{2,4}})/")  # a place name set off by a space: 上海 浦东 张江路…
_TOWN = re.compile(rf"^([{_HAN}]{{1,6}}?)(?:镇|乡|街道)(?=[{_HAN}])(?!路|街|大道|大街|巷|弄|道)")
_CN_DASH3 = re.compile(r"^(\d{1,3}|[a-z])[-#](\d{1,2})[-#](\d{1,5})")
_CN_DASH2 = re.compile(r"^(\d{1,3}|[a-z])[-#](\d{1,5})")
_CN_BUILDING = re.compile(r"^(\d{1,3}|[a-z])(?:号楼|栋|幢|座|号(?=\d))")
_CN_UNIT = re.compile(r"^(\d{1,2})(?:单元|-(?=\d))")
_CN_ROOM = re.compile(r"^(\d{1,5})(?:室|号|房)?(?![楼层\d])")
_CN_FLOOR = re.compile(r"^(\d{1,3})(?:楼|层|f)")
_CN_ROAD_TYPE = {"路": "rd", "道": "rd", "街": "st", "大街": "st", "大道": "ave", "巷": "ln", "弄": "ln", "胡同": "ln"}

_EN_TYPES = r"road|rd|street|str|st|avenue|ave|av|boulevard|blvd|lane|ln|alley|hutong|dadao|dajie|lu|jie|xiang"
_EN_ROAD_TYPE = {"road": "rd", "rd": "rd", "lu": "rd", "street": "st", "str": "st", "st": "st", "jie": "st",
                 "dajie": "st", "avenue": "ave", "ave": "ave", "av": "ave", "boulevard": "ave", "blvd": "ave",
                 "dadao": "ave", "lane": "ln", "ln": "ln", "alley": "ln", "hutong": "ln", "xiang": "ln"}
_EN_ROOM = re.compile(r"\b(?:rm|room|flat|apt|apartment|suite|ste)(?![a-z])\.?\s*(?:no\.?\s*)?#?\s*(\d{1,5})\b")
_EN_BUILDING = re.compile(r"\b(?:bldg|building|bld|blk|block|tower|twr)(?![a-z])\.?\s*(?:no\.?\s*)?#?\s*(\d{1,3}|[a-z])\b")
_EN_UNIT = re.compile(r"\b(?:unit|entrance)(?![a-z])\.?\s*(?:no\.?\s*)?#?\s*(\d{1,2})\b")
_EN_FLOOR = re.compile(r"\b(?:(\d{1,3})(?:st|nd|rd|th)?\s*(?:floor|fl)\b|(?:floor|fl)\.?\s*(\d{1,3})\b)")
_EN_ROAD_NUM_FIRST = re.compile(
    rf"(?:\bno\.?\s*)?\b(\d{{1,5}})\b[\s,]+((?:[a-z][a-z'\-]*\.?\s+){{0,4}}?[a-z][a-z'\-]*)\s+({_EN_TYPES})\b\.?")
_EN_ROAD_NAME_FIRST = re.compile(
    rf"((?:[a-z][a-z'\-]*\.?\s+){{0,4}}?[a-z][a-z'\-]*)\s+({_EN_TYPES})\b\.?[\s,]*(?:no\.?\s*)?#?\s*(\d{{1,5}})\b")
_EN_DASH = re.compile(r"\b(\d{1,3})-(\d{1,2})-(\d{1,5})\b|\b(\d{1,3})-(\d{1,5})\b")
_DIRECTIONS = {"north": "bei", "n": "bei", "south": "nan", "s": "nan", "east": "dong", "e": "dong",
               "west": "xi", "w": "xi", "middle": "zhong", "central": "zhong", "mid": "zhong"}
_REGION_WORDS = re.compile(r"\b(?:new\s+area|new\s+district|district|dist|city|province|prov|county|"
                           r"municipality|shi|qu|sheng|xian|xinqu|pr\s+china|p\.?\s*r\.?\s*c\.?|prc|china)\b\.?")
_REGION_SUFFIX = re.compile(r"(?:省|市|自治区|特别行政区|自治州|地区|新区|区|县|旗)$")


def _strip_markup(s):
    return _MARKUP.sub(" ", s)


def _clean(value):
    s = unicodedata.normalize("NFKC", value[: 4 * MAX_CHARS])
    if "<" in s or "&" in s:
        s = _strip_markup(s)
    s = _SPACES.sub(" ", s[:MAX_CHARS].lower()).strip()
    for _ in range(2):  # nested notes, at most two levels
        s = _NOTES.sub(" ", s)
    s = _CN_NUMERAL.sub(_numeral_digits, s)
    return s.strip(" ,;.，。")


def _parse_address(value):
    """``[form, *_PARTS]`` of one raw address; form None for null or empty input."""
    if isinstance(value, str):  # the closed loop's windows resolve mostly the same strings again
        return list(_parse_address_text(value))
    return _parse_address_value(value)


@lru_cache(maxsize=65536)
def _parse_address_text(value):
    return tuple(_parse_address_value(value))  # parts are strings and tuples: nothing shared can change


def _parse_address_value(value):
    empty = [None] * (len(_PARTS) + 1)
    if not isinstance(value, str):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return empty
        value = str(value)
    s = _clean(value)
    if not s:
        return empty
    parts = (_parse_cn(s) if _HAN_CHAR.search(s) else None) or _parse_en(s)
    if parts is None:
        text = re.sub(r"[\s,，;。.]+", "", s)
        return [("raw|" + text) if text else None, *([None] * len(_PARTS))]
    p = dict(zip(_PARTS, [None] * len(_PARTS)))
    p.update(parts)
    if p["building"] is not None or p["room"] is not None:
        p["floor"] = None
    region = (f"{p['province'] or ''}/{p['city'] or ''}/{p['district'] or ''}" if p["language"] == "zh"
              else " ".join(sorted(p["region_tokens"] or ())))
    if parts.get("bare"):
        region += "/" + " ".join(parts["bare"])
    form = "|".join([p["language"], region, p["road_key"], p["road_type"] or "", p["road_number"],
                     p["building"] or "", p["unit"] or "", p["room"] or "", p["floor"] or ""])
    return [form, *(p[k] for k in _PARTS)]


def _parse_cn(s):
    # spaces and commas become "/", a boundary no region or road name crosses
    t = re.sub(r"[\s,，、]+", "/", s).strip("/")
    out = {"language": "zh"}
    bare = []
    m = _MUNICIPALITY.match(t)
    if m:
        out["province"] = out["city"] = m.group(1)
        t = t[m.end():].lstrip("/")
    else:
        m = _PROVINCE.match(t)
        if m:
            out["province"], t = m.group(1), t[m.end():].lstrip("/")
        m = _CITY.match(t)
        if m:
            out["city"], t = m.group(1), t[m.end():].lstrip("/")
    m = _DISTRICT.match(t)
    if m:
        out["district"], t = m.group(1), t[m.end():].lstrip("/")
    m = _TOWN.match(t)
    if m and _CN_ROAD.search(t, m.end()):
        bare.append(m.group(1))  # a town or sub-district (张江镇): a place name below the district
        t = t[m.end():].lstrip("/")
    while len(bare) < 3 and (m := _BARE_REGION.match(t)) and _CN_ROAD.search(t, m.end()):
        bare.append(m.group(1))  # a city or district named without 市/区: a region name, at no level
        t = t[m.end():]
    m = _CN_ROAD.search(t)
    if not m:
        return None
    name = m.group(1)
    out.update(road=name + m.group(2), road_key=_road_key_cn(name), road_type=_CN_ROAD_TYPE[m.group(2)],
               road_number=str(int(m.group(3))), bare=bare)
    out["region_tokens"] = tuple(sorted({_pinyin(_REGION_SUFFIX.sub("", x) or x)
                                         for x in (out.get("province"), out.get("city"), out.get("district"), *bare)
                                         if x}))
    upper = {_pinyin(x) for x in (out.get("province"), out.get("city")) if x}
    out["local_tokens"] = tuple(sorted({_pinyin(x) for x in (out.get("district"), *bare) if x} - upper))
    rest = t[m.end():].replace("/", "").lstrip("-#")
    m = _CN_DASH3.match(rest)
    if m:
        out.update(building=_num(m.group(1)), unit=_num(m.group(2)), room=_num(m.group(3)))
        return out
    m = _CN_DASH2.match(rest)
    if m and len(m.group(2)) >= 3:
        out.update(building=_num(m.group(1)), room=_num(m.group(2)))
        return out
    m = _CN_BUILDING.match(rest)
    if m:
        out["building"], rest = _num(m.group(1)), rest[m.end():]
    m = _CN_UNIT.match(rest)
    if m:
        out["unit"], rest = _num(m.group(1)), rest[m.end():]
    m = _CN_FLOOR.match(rest)
    if m and out.get("building") and rest[m.end():m.end() + 1].isdigit():
        rest = rest[m.end():]  # a floor before the room (5号楼3楼301): the room says it already
    m = _CN_ROOM.match(rest)
    if m and (out.get("building") or out.get("unit") or "室" in m.group(0) or len(m.group(1)) >= 3):
        out["room"] = _num(m.group(1))
        return out
    m = _CN_FLOOR.match(rest)
    if m:
        out["floor"] = _num(m.group(1))
    return out


def _parse_en(s):
    t = " " + s.replace("，", ",") + " "
    out = {"language": "en"}
    for key, rx in (("floor", _EN_FLOOR), ("room", _EN_ROOM), ("building", _EN_BUILDING), ("unit", _EN_UNIT)):
        m = rx.search(t)
        if m:
            out[key] = _num(next(g for g in m.groups() if g))
            t = t[:m.start()] + " , " + t[m.end():]
    m = _EN_ROAD_NUM_FIRST.search(t)
    if m:
        num, name, kind = m.group(1), m.group(2), m.group(3)
    else:
        m = _EN_ROAD_NAME_FIRST.search(t)
        if not m:
            return None
        name, kind, num = m.group(1), m.group(2), m.group(3)
    name = re.sub(r"^(?:no\.?|and|the)\s+", "", name)
    t = t[:m.start()] + " , " + t[m.end():]
    if out.get("building") is None and out.get("room") is None:
        d = _EN_DASH.search(t)
        if d:
            g = d.groups()
            b, u, r = (g[0], g[1], g[2]) if g[0] else (g[3], None, g[4])
            if len(r) >= 3:
                out.update(building=_num(b), unit=_num(u) if u else out.get("unit"), room=_num(r))
                t = t[:d.start()] + " , " + t[d.end():]
    out.update(road=f"{name} {kind}", road_key=_road_key_en(name), road_type=_EN_ROAD_TYPE[kind],
               road_number=str(int(num)))
    t = _REGION_WORDS.sub(" ", t)
    tokens = {re.sub(r"[^a-z]", "", x) for x in t.split(",")}
    out["region_tokens"] = tuple(sorted(x for x in tokens if len(x) >= 2))
    return out


def _road_key_en(name):
    words = [w for w in re.split(r"[\s\-'.]+", name) if w]
    dirs = [_DIRECTIONS[w] for w in words if w in _DIRECTIONS]
    core = [w for w in words if w not in _DIRECTIONS] or words
    return "".join(core) + ("".join(dirs) if len(core) < len(words) else "")


@lru_cache(maxsize=65536)
def _road_key_cn(name):
    return _pinyin(name)


@lru_cache(maxsize=65536)
def _pinyin(text):
    return "".join(lazy_pinyin(text)).lower().replace(" ", "")


def _num(x):
    if x is None:
        return None
    return str(int(x)) if x.isdigit() else x


def _numeral_digits(m):
    return _cn_to_digits(m.group(0))


def _cn_to_digits(text):
    digits = {c: i for i, c in enumerate("零一二三四五六七八九")}
    digits.update({"〇": 0, "两": 2})
    if "十" not in text and "百" not in text:
        return "".join(str(digits[c]) for c in text)
    total, current = 0, 0
    for c in text:
        if c == "百":
            total += (current or 1) * 100
            current = 0
        elif c == "十":
            total += (current or 1) * 10
            current = 0
        else:
            current = digits[c]
    return str(total + current)


# ---------------------------------------------------------------------------------------------- linking

_OPEN = ("province", "city", "district", "road_type", "unit")


def _resolve_forms(parsed, counts, road_similarity, max_block):
    """Per distinct form: ``address_key``, ``confidence``, ``compound_key``."""
    ok = parsed["form"].notna().to_numpy()
    f = parsed.loc[ok]
    fcode, _ = pd.factorize(f["form"], sort=False)
    f = f.drop_duplicates("form").assign(n=np.bincount(fcode, weights=counts[ok]))  # same order as factorize
    if f.empty:
        return pd.DataFrame(columns=["form", "address_key", "confidence", "compound_key"])
    complete = f[["road_type", "building", "unit", "room"]].notna().sum(axis=1).to_numpy()
    complete += np.fromiter((min(len(x or ()), 3) for x in f["region_tokens"]), dtype=np.int64, count=len(f))
    f = f.assign(complete=complete).sort_values(["complete", "language", "n", "form"],
                                                ascending=[False, False, False, True], na_position="last",
                                                kind="mergesort").reset_index(drop=True)
    forms = f["form"].to_numpy(dtype=object)
    rep = forms.copy()
    conf = np.ones(len(f))
    parsed_idx = np.flatnonzero(f["language"].notna().to_numpy())
    b = f.loc[parsed_idx, ["road_number", "building", "room", "floor"]].fillna("")
    block, _ = pd.factorize(b["road_number"] + "|" + b["building"] + "|" + b["room"] + "|" + b["floor"])
    order = np.argsort(block, kind="stable")  # blocks together, each in the sorted (most complete first) order
    sorted_idx, sorted_block = parsed_idx[order], block[order]
    starts = np.flatnonzero(np.r_[True, sorted_block[1:] != sorted_block[:-1]])
    sizes = np.diff(np.r_[starts, len(sorted_block)])
    cols = {k: f[k].to_numpy(dtype=object) for k in _PARTS}
    for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
        exact_only = size > max_block
        clusters = []
        for i in sorted_idx[start:start + size]:
            r = {k: cols[k][i] for k in _PARTS}
            for c in clusters:
                sim = _match(r, c, road_similarity, exact_only)
                if sim is not None:
                    rep[i] = c["rep_form"]
                    conf[i] = _confidence(r, c, sim)
                    for k in _OPEN:
                        if c[k] is None and r[k] is not None:
                            c[k] = r[k]
                    c["tokens"].setdefault(r["language"], set()).update(r["region_tokens"] or ())
                    c["local"].update(r["local_tokens"] or ())
                    break
            else:
                clusters.append({"rep_form": forms[i], "rep": r, **{k: r[k] for k in _OPEN},
                                 "tokens": {r["language"]: set(r["region_tokens"] or ())},
                                 "local": set(r["local_tokens"] or ())})
    out = pd.DataFrame({"form": forms, "address_key": [_display_key(x) for x in rep], "confidence": conf})
    out["compound_key"] = [_compound(k) for k in out["address_key"]]
    return out


def _match(r, c, road_similarity, exact_only):
    """Road similarity of record ``r`` to cluster ``c`` when nothing conflicts, else None."""
    a, b = r["road_key"], c["rep"]["road_key"]
    sim = 1.0 if a == b else (0.0 if exact_only else Indel.normalized_similarity(a, b))
    if sim < road_similarity:
        return None
    if r["road_type"] and c["road_type"] and r["road_type"] != c["road_type"]:
        return None
    if r["unit"] and c["unit"] and r["unit"] != c["unit"]:
        return None
    for k in ("province", "city"):  # only Chinese forms fill these levels
        if r[k] and c[k] and r[k] != c[k]:
            return None
    # districts (or place names without 区) of Chinese forms: one must be a prefix of another (东湖高新 / 东湖)
    # (a place name without 区 may be the other's city: 杭州 文三路… against 杭州市西湖区文三路…)
    mine = set(r["local_tokens"] or ()) - {_pinyin(c[k]) for k in ("province", "city") if c[k]}
    theirs = c["local"] - {_pinyin(r[k]) for k in ("province", "city") if r[k]}
    if mine and theirs and not any(a.startswith(b) or b.startswith(a) for a in mine for b in theirs):
        return None
    # Chinese levels were compared above; otherwise the region names (pinyin) must share one
    levels = ("province", "city", "district")
    zh_levels = r["language"] == "zh" and any(r[k] for k in levels) and any(c[k] for k in levels)
    tokens = set(r["region_tokens"] or ())
    known = set().union(*c["tokens"].values())
    if tokens and known and not tokens & known and not zh_levels:
        return None
    return sim


def _confidence(r, c, sim):
    """Splink-like levels: exact form 1.0 (set elsewhere); merged forms lose for each weaker piece of evidence."""
    score = 0.97 - 0.5 * (1.0 - sim)
    if r["language"] != c["rep"]["language"]:
        score -= 0.06
    score -= 0.03 * sum(r[k] is None and c["rep"][k] is not None for k in _OPEN)
    if r["region_tokens"] in (None, ()) and c["rep"]["region_tokens"]:
        score -= 0.03
    return round(max(score, 0.5), 4)


def _compound(key):
    return "|".join(key.split("|")[:4]) if key.count("|") >= 4 else key


def _display_key(form):
    # the form without its language tag: language | region | road | type | no | building | unit | room | floor
    return form.split("|", 1)[1] if form and not form.startswith("raw|") else form
