import re

import numpy as np
import pandas as pd
import pytest

from fraudkit.data.contract import PII_COLUMNS
from fraudkit.errors import FraudkitError
from fraudkit.report.masking import mask_frame, mask_series, mask_text, mask_value


def test_phone_ip_address_formats():
    assert mask_value("phone", "13812345678") == "138****5678"
    assert mask_value("receiver_phone", 13912345678) == "139****5678"
    assert mask_value("phone", "123") == "****"
    assert re.fullmatch(r"10\.12\.\*\.\* #[0-9a-f]{4}", mask_value("ip", "10.12.3.4", key="k"))
    assert mask_value("ip24", "110.80.1", key="k").startswith("110.80.*.* #")
    assert mask_value("ip", "2001:db8::1", key="k").startswith("2001:db8:* #")
    assert mask_value("ip", "garbage", key="k").startswith("*** #")
    address = mask_value("address", "上海市浦东新区世纪大道100号3室", key="k")
    assert re.fullmatch(r"上海市浦东新… #[0-9a-f]{4}", address)
    assert mask_value("phone", None) is None and mask_value("ip", np.nan) is None


def test_ips_and_addresses_stay_distinct_keyed_and_stable():
    """Different addresses in one district and IPs in one /16 stay different rows; same value, same mask."""
    addresses = pd.Series([f"北京市北京市朝阳区建国路{i}号" for i in range(200)])
    ips = pd.Series([f"139.224.{i // 50}.{i % 50}" for i in range(200)])
    for kind, values in (("address", addresses), ("ip", ips)):
        m = mask_series(kind, values, key="k")
        assert m.nunique() >= 195  # 4 hex digits: a rare collision, never a whole column alike
        assert (m == mask_series(kind, values, key="k")).all()  # stable
        assert (m != mask_series(kind, values, key="k2")).mean() > 0.9  # keyed
        assert not any(v in x for v, x in zip(values, m))
    assert mask_value("ip", " 1.2.3.4", key="k") == mask_value("ip", "1.2.3.4", key="k")
    # free text gets the table's mask of the same IP
    assert mask_text("seen at 139.224.7.9", key="k") == "seen at " + mask_value("ip", "139.224.7.9", key="k")


def test_hashed_ids_are_stable_keyed_and_short():
    a = mask_value("device_id", "A1B2C3", key="k1")
    assert a.startswith("dev:") and len(a) == len("dev:") + 10
    assert a == mask_value("device", "A1B2C3", key="k1")
    assert a != mask_value("device", "A1B2C3", key="k2")
    assert mask_value("fingerprint", "fp", key="k").startswith("fp:")
    assert mask_value("binding_id", "wx_1", key="k").startswith("bind:")
    # nullable integer ids read back as floats mask like the integers they are
    assert mask_value("device", 102.0, key="k") == mask_value("device", 102, key="k") == mask_value("device", "102", key="k")


def test_masks_never_contain_the_value():
    ids = pd.Series([f"device-{i:06d}" for i in range(2000)])
    masked = mask_series("device", ids, key="secret")
    assert masked.nunique() == 2000  # no collisions at this size
    assert not any(v in m for v, m in zip(ids, masked))


def test_mask_frame_masks_every_pii_column_and_leaves_the_rest(tiny_tables):
    orders = tiny_tables["orders"]
    before = orders.copy()
    out = mask_frame(orders, key="k")
    pd.testing.assert_frame_equal(orders, before)  # input untouched
    assert out["receiver_phone"].tolist()[0] == "170****0001"
    assert out["ip"].dropna().str.contains(r"\.\*\.\* #[0-9a-f]{4}$").all()
    assert out["address"].str.contains(r"… #[0-9a-f]{4}$").all()
    assert out["device_id"].dropna().str.startswith("dev:").all()
    assert out["device_id"].isna().tolist() == orders["device_id"].isna().tolist()
    for col in ("order_id", "quantity", "paid_price", "ts"):
        pd.testing.assert_series_equal(out[col], orders[col])
    for name, df in tiny_tables.items():
        masked = mask_frame(df, key="k")
        for col in set(df.columns) & set(PII_COLUMNS) - {"entity_id"}:
            present = df[col].notna()
            raw = df.loc[present, col].astype(str)
            assert not (masked.loc[present, col].astype(str) == raw).any(), (name, col)


def test_entity_id_masked_by_entity_type():
    scores = pd.DataFrame({"entity_type": ["account", "device", "ip", "phone", "address"],
                           "entity_id": ["4", "102", "110.80.1.7", "13812345678", "Beijing Chaoyang 9"]})
    out = mask_frame(scores, key="k")
    assert out["entity_id"].tolist() == ["4", mask_value("device", "102", key="k"),
                                         mask_value("ip", "110.80.1.7", key="k"), "138****5678",
                                         mask_value("address", "Beijing Chaoyang 9", key="k")]
    assert out["entity_id"].iloc[4].startswith("Beijin… #")
    no_type = mask_frame(pd.DataFrame({"entity_id": ["x"]}), key="k")
    assert no_type["entity_id"].item().startswith("id:")


def test_extra_columns_and_bad_input():
    df = pd.DataFrame({"src_device": ["a", "b"], "n": [1, 2]})
    out = mask_frame(df, key="k", columns={"src_device": "device"})
    assert out["src_device"].str.startswith("dev:").all() and out["n"].tolist() == [1, 2]
    with pytest.raises(FraudkitError, match="unknown mask kind"):
        mask_value("email", "a@b.c")
    with pytest.raises(FraudkitError, match="not in the frame"):
        mask_frame(df, columns={"dst_device": "device"})
    with pytest.raises(FraudkitError, match="expects a str"):
        mask_text(None)


def test_mask_text_catches_phones_and_ips_in_html():
    html = ("<tr><td>13812345678</td><td>+86 13912345678</td><td>10.0.0.255</td>"
            "<td>order 202403011234567890</td><td>price 5399.10</td></tr>")
    out = mask_text(html)
    assert "13812345678" not in out and "138****5678" in out
    assert "139****5678" in out and "10.0.*.*" in out
    assert "202403011234567890" in out and "5399.10" in out  # long ids and prices are not phones
    assert mask_text(out) == out  # idempotent


def test_no_published_value_contains_a_raw_prefix_of_a_device_id(tmp_path):
    """Devices, fingerprints and bindings are keyed hashes wherever a report shows them: table cells
    (:func:`mask_frame`, also ``fraudkit.report.notebook.mask_frame``), graph node labels and tooltips
    (:func:`fraudkit.report.viz.render_neighbourhood`) — never the first characters of the raw id."""
    from fraudkit.report import notebook
    from fraudkit.report.masking import mask_entity
    from fraudkit.report.viz import render_neighbourhood

    assert notebook.mask_frame is mask_frame  # one implementation
    raw = {"device": ["QXZT-7781-WWKP", "QXZT-7781-WWKR", "RMNV-0042-PPQS"],  # shared prefixes, non-hex letters
           "fingerprint": ["ZZTOP-fp-0001", "ZZTOP-fp-0002", "YYKM-fp-0003"],
           "binding": ["WXUSR-1", "WXUSR-2", "QQUSR-3"]}
    df = pd.DataFrame({"device_id": raw["device"], "fingerprint": raw["fingerprint"], "binding_id": raw["binding"],
                       "entity_type": ["device", "fingerprint", "binding"],
                       "entity_id": [raw["device"][0], raw["fingerprint"][0], raw["binding"][0]]})
    published = mask_frame(df, key="k").astype(str).to_numpy().ravel().tolist()
    published += [mask_entity(kind, v, key="k") for kind, vs in raw.items() for v in vs]
    edges = pd.DataFrame({"src": "acc1", "src_type": "account",
                          "dst": raw["device"] + raw["binding"], "dst_type": ["device"] * 3 + ["binding"] * 3})
    page = render_neighbourhood(edges, ["acc1"], path=tmp_path / "g.html").read_text()
    for values in raw.values():
        for v in values:
            for n in (4, len(v)):
                assert not any(v[:n] in p for p in published), (v[:n], published)
                assert v[:n] not in page
    # equal ids mask equally and ids sharing a prefix do not share the mask's start
    a, b = mask_entity("device", raw["device"][0], key="k"), mask_entity("device", raw["device"][1], key="k")
    assert a == mask_value("device_id", raw["device"][0], key="k") and a[:8] != b[:8]


def test_simulated_device_ids_never_appear_in_masks():
    from fraudkit.report.masking import mask_entity

    ids = pd.Series([204030754216, 540011337603, 204030754217, None], dtype="Int64")
    masked = mask_series("device_id", ids, key="k")
    assert masked.iloc[3] is None
    for v, m in zip(ids.iloc[:3].astype(str), masked.iloc[:3]):
        assert m.startswith("dev:") and v[:6] not in m
        assert mask_entity("device", v, key="k") == m
