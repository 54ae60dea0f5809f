"""Write ``address_variants.csv``: the labelled address variants the entity-resolution test scores.

Run ``python tests/capability/make_address_variants.py`` to regenerate (deterministic, seed 12). Each true
address (``entity_id``) is typed in several styles, the ways group scalpers type their drop addresses:
Chinese with and without province / city / district, Arabic or Chinese numerals, 栋/幢/号楼/座, 单元 added
or dropped, dash forms (5-301, 5-3-301), full-width digits, notes in brackets, markup, and English forms
(short and long, in several orders, with or without district and city, a postcode, "China"). The English
road names are written by hand (pinyin, the way Chinese streets are signed); one entity (世纪大道, "Century
Avenue") is signed by translation, which the pinyin comparison cannot match, and stays in as a known miss.

Hard negatives are distinct entities close to a true one: the same building with another room, the same
number, building and room on another road (also 人民路 / 人民北路), the neighbouring road number, another
building, another unit of the same building (typed with the unit each time: without it the two are the same
string), the same street name in another city (typed with the city each time, for the same reason).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("address_variants.csv")

# province, city, district (without 区/县), district in English, road (Chinese), road name in English,
# English road type, number, building, unit, room
BASES = [
    ("上海市", "上海市", "浦东新区", "Pudong", "张江路", "Zhangjiang", "Road", 88, 5, 3, 301),
    ("江苏省", "南京市", "鼓楼区", "Gulou", "中山北路", "North Zhongshan", "Road", 105, 2, 1, 602),
    ("江苏省", "南京市", "玄武区", "Xuanwu", "长江路", "Changjiang", "Road", 23, 7, 2, 1101),
    ("广东省", "深圳市", "福田区", "Futian", "人民路", "Renmin", "Road", 12, 3, 1, 501),
    ("浙江省", "杭州市", "西湖区", "Xihu", "文三路", "Wensan", "Road", 477, 1, 2, 204),
    ("北京市", "北京市", "海淀区", "Haidian", "学院路", "Xueyuan", "Road", 30, 9, 4, 402),
    ("湖北省", "武汉市", "江汉区", "Jianghan", "解放大道", "Jiefang", "Avenue", 690, 11, 1, 1703),
    ("广东省", "深圳市", "南山区", "Nanshan", "科技园路", "Kejiyuan", "Road", 8, 4, 2, 803),
    ("四川省", "成都市", "成华区", "Chenghua", "建设路", "Jianshe", "Road", 55, 6, 3, 305),
    ("广东省", "广州市", "天河区", "Tianhe", "天河路", "Tianhe", "Road", 208, 2, 1, 1902),
    ("上海市", "上海市", "浦东新区", "Pudong", "滨江大道", "Binjiang", "Avenue", 1500, 8, 1, 2101),
    ("上海市", "上海市", "徐汇区", "Xuhui", "复兴中路", "Middle Fuxing", "Road", 1331, 3, 2, 602),
    ("上海市", "上海市", "静安区", "Jing'an", "南京西路", "West Nanjing", "Road", 1266, 2, 1, 3305),
    ("上海市", "上海市", "黄浦区", "Huangpu", "淮海中路", "Middle Huaihai", "Road", 283, 1, 1, 1206),
    ("上海市", "上海市", "黄浦区", "Huangpu", "重庆南路", "South Chongqing", "Road", 185, 4, 3, 201),
    ("北京市", "北京市", "东城区", "Dongcheng", "长安街", "Chang'an", "Street", 33, 1, 2, 808),
    ("北京市", "北京市", "东城区", "Dongcheng", "王府井大街", "Wangfujing", "Street", 138, 2, 1, 506),
    ("上海市", "上海市", "浦东新区", "Pudong", "东方路", "Dongfang", "Road", 800, 12, 2, 1403),
    ("广东省", "广州市", "海珠区", "Haizhu", "新华路", "Xinhua", "Road", 66, 5, 1, 702),
    ("天津市", "天津市", "和平区", "Heping", "和平路", "Heping", "Road", 219, 3, 3, 301),
    ("四川省", "成都市", "锦江区", "Jinjiang", "幸福路", "Xingfu", "Road", 17, 2, 2, 1602),
    ("浙江省", "杭州市", "滨江区", "Binjiang", "光明路", "Guangming", "Road", 45, 10, 1, 902),
    ("湖北省", "武汉市", "洪山区", "Hongshan", "青年路", "Qingnian", "Road", 128, 6, 2, 503),
    ("湖北省", "武汉市", "洪山区", "Hongshan", "珞喻路", "Luoyu", "Road", 1037, 15, 4, 1208),
    ("上海市", "上海市", "徐汇区", "Xuhui", "漕溪北路", "North Caoxi", "Road", 398, 2, 1, 1801),
    ("广东省", "深圳市", "南山区", "Nanshan", "深南大道", "Shennan", "Avenue", 9678, 1, 2, 2603),
    ("广东省", "广州市", "天河区", "Tianhe", "体育西路", "West Tiyu", "Road", 191, 3, 1, 1105),
    ("浙江省", "杭州市", "上城区", "Shangcheng", "西湖大道", "Xihu", "Avenue", 18, 4, 2, 601),
    ("北京市", "北京市", "海淀区", "Haidian", "中关村大街", "Zhongguancun", "Street", 27, 8, 1, 1010),
    ("北京市", "北京市", "朝阳区", "Chaoyang", "朝阳路", "Chaoyang", "Road", 69, 2, 5, 1502),
    ("上海市", "上海市", "浦东新区", "Pudong", "金桥路", "Jinqiao", "Road", 1122, 6, 1, 403),
    ("广东省", "深圳市", "龙华区", "Longhua", "龙华路", "Longhua", "Road", 300, 9, 2, 1906),
    ("江苏省", "南京市", "秦淮区", "Qinhuai", "秦淮路", "Qinhuai", "Road", 76, 5, 2, 302),
    ("广东省", "深圳市", "宝安区", "Bao'an", "宝安大道", "Bao'an", "Avenue", 4004, 3, 1, 1207),
    ("广东省", "广州市", "番禺区", "Panyu", "番禺大道", "Panyu", "Avenue", 555, 7, 3, 809),
    ("四川省", "成都市", "武侯区", "Wuhou", "乐山路", "Leshan", "Road", 21, 2, 1, 201),
    ("上海市", "上海市", "浦东新区", "Pudong", "世纪大道", "Century", "Avenue", 100, 1, 1, 4501),
]

# hard negatives: (index of the base, field changes, styles restricted to those that keep the difference)
NEGATIVES = [
    (0, {"room": 302}, None),                                   # same building, another room
    (0, {"road": "东方路", "road_en": "Dongfang"}, None),       # same no./building/room, another road
    (0, {"no": 90}, None),                                      # neighbouring road number
    (0, {"building": 6}, None),                                 # another building
    (0, {"unit": 4}, "unit"),                                   # another unit of the same building
    (3, {"road": "人民北路", "road_en": "North Renmin"}, None),  # 人民路 / 人民北路
    (3, {"prov": "上海市", "city": "上海市", "dist": "黄浦区", "dist_en": "Huangpu"}, "city"),  # same street, other city
    (4, {"no": 478}, None),
    (9, {"room": 1903}, None),
    (17, {"road": "张江路", "road_en": "Zhangjiang"}, None),
]

_CN = "零一二三四五六七八九"
_FULL = str.maketrans("0123456789", "０１２３４５６７８９")
_ABBR = {"Road": "Rd", "Street": "St", "Avenue": "Ave"}
_DIR = {"North": "N.", "South": "S.", "West": "W.", "East": "E.", "Middle": "Middle"}


def _cn_num(n):
    if n < 10:
        return _CN[n]
    if n < 100:
        t, u = divmod(n, 10)
        return ("" if t == 1 else _CN[t]) + "十" + (_CN[u] if u else "")
    return "".join(_CN[int(c)] for c in str(n))


def _styles(a):
    p, c, d, road, no, b, u, r = a["prov"], a["city"], a["dist"], a["road"], a["no"], a["building"], a["unit"], a["room"]
    head = p + (c if c != p else "") + d
    road_en = a["road_en"]
    words = road_en.split()
    short = " ".join(_DIR.get(w, w) for w in words)
    kind = a["kind"]
    city_en = c.rstrip("市").replace("上海", "Shanghai").replace("北京", "Beijing").replace("天津", "Tianjin")
    city_en = {"南京": "Nanjing", "深圳": "Shenzhen", "杭州": "Hangzhou", "武汉": "Wuhan", "成都": "Chengdu",
               "广州": "Guangzhou"}.get(city_en, city_en)
    dist_en = a["dist_en"]
    return {
        "zh_full": f"{head}{road}{no}号{b}栋{u}单元{r}室",
        "zh_bare_haolou": f"{road}{no}号{b}号楼{r}室",
        "zh_dash": f"{d}{road}{no}号{b}-{r}",
        "zh_dash3": f"{c}{road}{no}号{b}-{u}-{r}",
        "zh_numerals_note": f"{road}{_cn_num(no) if no < 100 else no}号{_cn_num(b)}幢{_cn_num(u)}单元{_cn_num(r) if r < 100 else ''.join(_CN[int(x)] for x in str(r))}室（放门口）",
        "zh_fullwidth_zuo": f"{c}{d} {road}{str(no).translate(_FULL)}号 {b}座 {str(r).translate(_FULL)}",
        "zh_markup": f"<br>{head}{road}{no}号院{b}栋{r}室【周末送货】",
        "en_short": f"Rm {r} Bldg {b}, {no} {short} {_ABBR[kind]}",
        "en_long": f"Building {b}, Room {r}, No. {no} {road_en} {kind}, {dist_en}, {city_en}",
        "en_unit": f"Unit {u}, Bldg {b}, Rm {r}, {road_en} {kind} No. {no}, {city_en}",
        "en_dash": f"{b}-{u}-{r}, {no} {road_en} {_ABBR[kind]}., {dist_en} District, {city_en} 200000, China",
    }


def rows(seed: int = 12):
    rng = np.random.default_rng(seed)
    out = []
    keys = ("prov", "city", "dist", "dist_en", "road", "road_en", "kind", "no", "building", "unit", "room")
    entities = [(dict(zip(keys, base)), None) for base in BASES]
    for i, change, keep in NEGATIVES:
        entities.append(({**dict(zip(keys, BASES[i])), **change}, keep))
    for eid, (a, keep) in enumerate(entities):
        styles = _styles(a)
        names = list(styles)
        if keep == "unit":
            names = [n for n in names if n in ("zh_full", "zh_dash3", "zh_numerals_note", "en_unit", "en_dash")]
        elif keep == "city":
            names = [n for n in names if n in ("zh_full", "zh_dash3", "zh_markup", "en_long", "en_unit", "en_dash")]
        pick = sorted(rng.choice(len(names), size=min(len(names), 8), replace=False))
        out += [(f"e{eid:02d}", names[k], styles[names[k]]) for k in pick]
    return out


if __name__ == "__main__":
    with OUT.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["entity_id", "style", "address"])
        w.writerows(rows())
    print(f"wrote {OUT}")
