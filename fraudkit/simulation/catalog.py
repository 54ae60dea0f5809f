"""Static catalogues the simulator draws from: devices, phones, networks, places.

Everything here is plain data plus a few vectorised samplers. The device
catalogue ties screen and OS family to the model, so a forged device that
reports an iPhone model with an Android screen is detectable.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = [
    "DEVICE_MODELS",
    "APP_VERSIONS",
    "ODD_APP_VERSIONS",
    "CARRIER_PREFIXES",
    "VIRTUAL_PREFIXES",
    "NOTE_CATEGORIES",
    "PRODUCT_CATEGORIES",
    "HOURLY_RHYTHM",
    "sample_hour_seconds",
    "ip_to_str",
    "sample_phones",
    "make_addresses",
    "address_variants",
    "typed_address_variants",
    "typed_phones",
    "fingerprints",
]

# model, os, screen, os versions, tier (0 low-end, 1 mid, 2 flagship), market weight
DEVICE_MODELS = (
    ("iPhone12,1", "ios", "828x1792", ("15.7", "16.6", "17.2"), 1, 5.0),
    ("iPhone12,8", "ios", "750x1334", ("15.7", "16.6", "17.2"), 0, 3.0),
    ("iPhone13,2", "ios", "1170x2532", ("16.6", "17.2", "17.4"), 1, 6.0),
    ("iPhone14,5", "ios", "1170x2532", ("16.6", "17.2", "17.4"), 1, 8.0),
    ("iPhone14,2", "ios", "1170x2532", ("16.6", "17.2", "17.4"), 2, 5.0),
    ("iPhone15,2", "ios", "1179x2556", ("16.6", "17.2", "17.4"), 2, 5.0),
    ("iPhone15,3", "ios", "1290x2796", ("16.6", "17.2", "17.4"), 2, 4.0),
    ("iPhone16,1", "ios", "1179x2556", ("17.2", "17.4"), 2, 4.0),
    ("SM-G9910", "android", "1080x2400", ("12", "13", "14"), 2, 2.0),
    ("SM-S9080", "android", "1080x2340", ("13", "14"), 2, 1.5),
    ("2201122C", "android", "1440x3200", ("12", "13", "14"), 2, 2.5),
    ("22081212C", "android", "1080x2400", ("13", "14"), 2, 3.0),
    ("ALN-AL00", "android", "1260x2720", ("12",), 2, 4.0),
    ("NOH-AN00", "android", "1344x2772", ("10", "12"), 2, 2.5),
    ("V2154A", "android", "1080x2400", ("12", "13"), 1, 3.0),
    ("PGBM10", "android", "1080x2412", ("12", "13"), 1, 3.0),
    ("PHM110", "android", "1080x2400", ("13", "14"), 1, 2.5),
    ("M2012K11AC", "android", "1080x2400", ("11", "12", "13"), 1, 3.5),
    ("M2006C3LC", "android", "720x1600", ("10", "11"), 0, 3.0),
    ("22120RN86C", "android", "720x1650", ("12", "13"), 0, 3.0),
    ("V2166A", "android", "720x1600", ("11", "12"), 0, 2.0),
    ("PFTM20", "android", "720x1612", ("12", "13"), 0, 2.0),
    ("SM-G955N", "android", "1440x2960", ("7.1.2", "9"), 0, 0.4),
)
"""Device catalogue. ``SM-G955N`` (Android 7/9) is what common emulators report."""

APP_VERSIONS = (("8.20.1", 0.34), ("8.20.0", 0.2), ("8.19.2", 0.16), ("8.18.0", 0.12),
                ("8.16.1", 0.08), ("8.12.0", 0.06), ("7.98.0", 0.04))
"""Released app versions and their share of the installed base."""

ODD_APP_VERSIONS = ("8.99.9", "6.0.0", "8.20", "0.0.1", "8.21.0-dev")
"""Versions that were never released: a signature of protocol scripts."""

CARRIER_PREFIXES = (("138", 8.0), ("139", 7.0), ("135", 5.0), ("136", 4.0), ("137", 4.0), ("150", 4.0),
                    ("151", 4.0), ("152", 3.0), ("157", 2.0), ("158", 4.0), ("159", 4.0), ("182", 3.0),
                    ("183", 3.0), ("187", 3.0), ("188", 3.0), ("130", 4.0), ("131", 3.0), ("132", 3.0),
                    ("155", 3.0), ("156", 3.0), ("185", 3.0), ("186", 4.0), ("133", 3.0), ("153", 3.0),
                    ("180", 3.0), ("189", 4.0), ("177", 2.0), ("199", 2.0), ("166", 2.0), ("176", 2.0))
"""Ordinary mobile-carrier prefixes of 11-digit Chinese numbers, with weights."""

VIRTUAL_PREFIXES = (("170", 4.0), ("171", 3.0), ("165", 2.0), ("167", 1.0))
"""Virtual-operator prefixes (cheap, common on SMS-code platforms, but honest people use them too)."""

NOTE_CATEGORIES = ("beauty", "fashion", "food", "travel", "home", "fitness", "tech", "parenting", "pets", "study")
PRODUCT_CATEGORIES = ("beauty", "apparel", "food", "electronics", "home", "sports", "baby", "pets", "books", "luxury")
_CATEGORY_PRICE = {"beauty": 160, "apparel": 180, "food": 45, "electronics": 900, "home": 120,
                   "sports": 260, "baby": 150, "pets": 90, "books": 50, "luxury": 2500}

HOURLY_RHYTHM = np.array([2.2, 1.2, 0.6, 0.4, 0.3, 0.4, 0.9, 2.0, 3.0, 3.3, 3.6, 4.0,
                          5.0, 4.6, 3.9, 3.8, 4.0, 4.3, 5.0, 6.0, 7.6, 8.4, 8.2, 5.6])
HOURLY_RHYTHM = HOURLY_RHYTHM / HOURLY_RHYTHM.sum()
"""Share of honest activity per hour of day: lunch bump, evening peak, night trough."""

_PROVINCES = (("浙江省", "杭州市", ("西湖区", "滨江区", "余杭区", "拱墅区")),
              ("上海市", "上海市", ("浦东新区", "徐汇区", "闵行区", "静安区")),
              ("广东省", "深圳市", ("南山区", "福田区", "宝安区", "龙岗区")),
              ("广东省", "广州市", ("天河区", "海珠区", "白云区", "番禺区")),
              ("北京市", "北京市", ("朝阳区", "海淀区", "丰台区", "昌平区")),
              ("四川省", "成都市", ("武侯区", "高新区", "锦江区", "双流区")),
              ("江苏省", "南京市", ("鼓楼区", "江宁区", "玄武区", "秦淮区")),
              ("湖北省", "武汉市", ("洪山区", "武昌区", "江汉区", "东湖高新区")))
_ROADS = ("文三路", "学院路", "人民路", "中山路", "解放路", "建设路", "科技园路", "长江路", "和平路", "新华路",
          "滨江大道", "东方路", "幸福路", "光明路", "复兴路", "青年路")
_CN_DIGITS = "零一二三四五六七八九"


def sample_hour_seconds(rng: np.random.Generator, n: int, rhythm=HOURLY_RHYTHM) -> np.ndarray:
    """Seconds since midnight following the daily rhythm (int64, shape (n,))."""
    hours = rng.choice(24, size=n, p=rhythm)
    return hours * 3600 + rng.integers(0, 3600, size=n)


def ip_to_str(ips: np.ndarray) -> np.ndarray:
    """Format uint32 IPv4 addresses as dotted strings (object array)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ips = np.asarray(ips, dtype=np.uint32)
    if ips.size == 0:
        return np.empty(0, dtype=object)
    parts = [pc.cast(pa.array(((ips >> s) & 255).astype(np.uint8)), pa.string()) for s in (24, 16, 8, 0)]
    return pc.binary_join_element_wise(*parts, ".").to_numpy(zero_copy_only=False)


def sample_phones(rng: np.random.Generator, n: int, virtual_fraction: float) -> np.ndarray:
    """11-digit phone numbers: carrier prefix + 8 random digits (object array)."""
    if n == 0:
        return np.empty(0, dtype=object)
    pre_c = np.array([p for p, _ in CARRIER_PREFIXES])
    w_c = np.array([w for _, w in CARRIER_PREFIXES])
    pre_v = np.array([p for p, _ in VIRTUAL_PREFIXES])
    w_v = np.array([w for _, w in VIRTUAL_PREFIXES])
    virtual = rng.random(n) < virtual_fraction
    prefix = np.where(virtual, rng.choice(pre_v, size=n, p=w_v / w_v.sum()),
                      rng.choice(pre_c, size=n, p=w_c / w_c.sum()))
    digits = _fixed_digits(rng.integers(0, 100_000_000, size=n), 8, 10)
    return _join_strings(prefix.astype(object), digits)


def make_addresses(rng: np.random.Generator, n: int, kind: str = "home") -> np.ndarray:
    """Chinese shipping addresses. ``kind`` is home, office or station (campus parcel station)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if n == 0:
        return np.empty(0, dtype=object)
    prov = rng.integers(0, len(_PROVINCES), size=n)
    dist = rng.integers(0, 4, size=n)
    heads = pa.array([p + c for p, c, _ in _PROVINCES]).take(pa.array(prov))
    dists = pa.array([d for _, _, ds in _PROVINCES for d in ds]).take(pa.array(prov * 4 + dist))
    roads = pa.array(list(_ROADS)).take(pa.array(rng.integers(0, len(_ROADS), size=n)))
    num = pc.cast(pa.array(rng.integers(1, 400, size=n)), pa.string())
    parts = [heads, dists, roads, num, pa.array(np.full(n, "号", dtype=object), pa.string())]
    if kind == "home":
        for vals, unit in ((rng.integers(1, 30, n), "栋"), (rng.integers(1, 5, n), "单元"),
                           (rng.integers(1, 33, n) * 100 + rng.integers(1, 5, n), "室")):
            parts += [pc.cast(pa.array(vals), pa.string()), pa.array(np.full(n, unit, dtype=object), pa.string())]
    elif kind == "office":
        parts += [pc.cast(pa.array(rng.integers(1, 30, n)), pa.string()), pa.array(np.full(n, "楼前台", dtype=object), pa.string())]
    else:
        parts += [pa.array(np.full(n, "菜鸟驿站", dtype=object), pa.string())]
    return pc.binary_join_element_wise(*parts, "").to_numpy(zero_copy_only=False)


def address_variants(rng: np.random.Generator, base: str, n: int) -> np.ndarray:
    """``n`` spellings of one address with small text variations (what scalpers type)."""
    tweaks = (lambda s: s, lambda s: s.replace("室", ""), lambda s: s.replace("单元", "-"),
              lambda s: s + "(放门口)", lambda s: s.replace("栋", "幢"), lambda s: s + " ",
              lambda s: _cn_digit_swap(s), lambda s: s.replace("号", "号院"))
    suffix = ("", "", "", " 收", "(电话联系)", "快递柜", "门卫", "，放驿站", " 1", "#")
    out = np.empty(n, dtype=object)
    for i in range(n):  # a handful of rows per operator
        s = base
        for k in rng.choice(len(tweaks), size=rng.integers(1, 4), replace=False):
            s = tweaks[k](s)
        out[i] = s + suffix[rng.integers(0, len(suffix))]
    return out


def typed_address_variants(rng: np.random.Generator, bases) -> np.ndarray:
    """One spelling per base address in the many styles group scalpers type (object array, shape (len(bases),)).

    Chinese with or without province / city / district, 栋/幢/号楼/座, 单元 kept or dropped, dash forms
    (5-301, 5-3-301), Chinese numerals, full-width digits, notes in brackets; English short and long forms
    with or without district and city. ``bases`` are :func:`make_addresses` home addresses; another string
    gets the small variations of :func:`address_variants`.
    """
    out = np.empty(len(bases), dtype=object)
    for i, base in enumerate(bases):  # a handful of rows per operator
        m = _HOME.match(base)
        if m is None:
            out[i] = address_variants(rng, base, 1)[0]
            continue
        styles = _address_styles(m.groupdict())
        s = styles[int(rng.integers(0, len(styles)))]
        out[i] = s + _NOTE_SUFFIX[int(rng.integers(0, len(_NOTE_SUFFIX)))] if rng.random() < 0.3 else s
    return out


def typed_phones(rng: np.random.Generator, phones) -> np.ndarray:
    """The 11-digit ``phones`` typed in the ways people type them (+86 138-0013-8000, 0086…, spaces)."""
    out = np.empty(len(phones), dtype=object)
    for i, (p, k) in enumerate(zip(phones, rng.integers(0, 6, len(phones)))):
        out[i] = (p, f"+86 {p[:3]}-{p[3:7]}-{p[7:]}", f"0086{p}", f"{p[:3]} {p[3:7]} {p[7:]}", f"+86{p}",
                  f"86-{p}")[k]
    return out


def fingerprints(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random 16-hex-digit device fingerprints (object array)."""
    if n == 0:
        return np.empty(0, dtype=object)
    return _fixed_digits(rng.integers(0, 2**63, size=n, dtype=np.int64), 16, 16)


def price_for(category: str) -> int:
    """Typical list price of a product category (median of its lognormal)."""
    return _CATEGORY_PRICE[category]


_HOME = re.compile(r"^(?P<prov>[^省市]+省)?(?P<city>[^市]+市)(?P=city)?(?P<dist>.+?区)(?P<road>.+?(?:大道|路))"
                   r"(?P<no>\d+)号(?P<b>\d+)栋(?P<u>\d+)单元(?P<r>\d+)室$")
_EN_NAMES = {"杭州": "Hangzhou", "上海": "Shanghai", "深圳": "Shenzhen", "广州": "Guangzhou", "北京": "Beijing",
             "成都": "Chengdu", "南京": "Nanjing", "武汉": "Wuhan", "西湖": "Xihu", "滨江": "Binjiang", "余杭": "Yuhang",
             "拱墅": "Gongshu", "浦东新": "Pudong New", "徐汇": "Xuhui", "闵行": "Minhang", "静安": "Jing'an",
             "南山": "Nanshan", "福田": "Futian", "宝安": "Bao'an", "龙岗": "Longgang", "天河": "Tianhe",
             "海珠": "Haizhu", "白云": "Baiyun", "番禺": "Panyu", "朝阳": "Chaoyang", "海淀": "Haidian",
             "丰台": "Fengtai", "昌平": "Changping", "武侯": "Wuhou", "高新": "Gaoxin", "锦江": "Jinjiang",
             "双流": "Shuangliu", "鼓楼": "Gulou", "江宁": "Jiangning", "玄武": "Xuanwu", "秦淮": "Qinhuai",
             "洪山": "Hongshan", "武昌": "Wuchang", "江汉": "Jianghan", "东湖高新": "Donghu Hi-tech",
             "文三": "Wensan", "学院": "Xueyuan", "人民": "Renmin", "中山": "Zhongshan", "解放": "Jiefang",
             "建设": "Jianshe", "科技园": "Kejiyuan", "长江": "Changjiang", "和平": "Heping", "新华": "Xinhua",
             "滨江大道": "Binjiang", "东方": "Dongfang", "幸福": "Xingfu", "光明": "Guangming", "复兴": "Fuxing",
             "青年": "Qingnian"}
_NOTE_SUFFIX = ("(放门口)", "【周末送货】", " 收", "，放驿站")
_FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _cn_number(n: str) -> str:
    k = int(n)
    if k < 10:
        return _CN_DIGITS[k]
    if k < 100:
        t, u = divmod(k, 10)
        return ("" if t == 1 else _CN_DIGITS[t]) + "十" + (_CN_DIGITS[u] if u else "")
    return "".join(_CN_DIGITS[int(c)] for c in n)


def _address_styles(a: dict) -> tuple:
    prov, city, dist, road = a["prov"] or "", a["city"], a["dist"], a["road"]
    no, b, u, r = a["no"], a["b"], a["u"], a["r"]
    avenue = road.endswith("大道")
    name_en = _EN_NAMES.get(road if avenue else road[:-1], "")
    kind, abbr = ("Avenue", "Ave") if avenue else ("Road", "Rd")
    city_en = _EN_NAMES.get(city[:-1], "")
    dist_en = _EN_NAMES.get(dist[:-1], "")
    return (
        f"{prov}{city}{dist}{road}{no}号{b}栋{u}单元{r}室",
        f"{road}{no}号{b}号楼{r}室",
        f"{road}{no}号{b}-{r}",
        f"{city}{road}{no}号{b}-{u}-{r}",
        f"{dist}{road}{no}号{b}栋{r}",
        f"{road}{no}号{_cn_number(b)}幢{_cn_number(u)}单元{_cn_number(r)}室",
        f"{city}{dist} {road}{no.translate(_FULL_WIDTH)}号 {b}座 {r.translate(_FULL_WIDTH)}",
        f"Rm {r} Bldg {b}, {no} {name_en} {abbr}",
        f"Building {b}, Room {r}, No. {no} {name_en} {kind}, {dist_en} District, {city_en}",
        f"Unit {u}, Bldg {b}, Rm {r}, {name_en} {kind} No. {no}, {city_en}",
    )


def _fixed_digits(x: np.ndarray, width: int, base: int) -> np.ndarray:
    """Non-negative integers as zero-padded strings of ``width`` digits in ``base`` (object array)."""
    x = np.asarray(x, dtype=np.uint64)
    powers = np.uint64(base) ** np.arange(width - 1, -1, -1, dtype=np.uint64)
    d = (x[:, None] // powers[None, :]) % np.uint64(base)
    chars = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[d.astype(np.int64)]
    return np.ascontiguousarray(chars).view(f"S{width}").ravel().astype(str).astype(object)


def _join_strings(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(pa.array(a, pa.string()), pa.array(b, pa.string()), "").to_numpy(
        zero_copy_only=False)


def _cn_digit_swap(s: str) -> str:
    import re

    return re.sub(r"(\d+)栋", lambda m: "".join(_CN_DIGITS[int(c)] for c in m.group(1)) + "栋", s, count=1)
