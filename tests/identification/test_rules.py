import numpy as np
import pandas as pd
import pytest
import yaml

from fraudkit.capability.lists import ListStore
from fraudkit.errors import RuleError
from fraudkit.identification.rules import default_ruleset, load_ruleset
from fraudkit.pipeline.frames import check_ruleset


def spec(*rules, **kw):
    return {"name": "t", "version": 2, "aggregate": kw.get("aggregate", "sum"),
            "thresholds": kw.get("thresholds", {"verify": 40, "block": 80}), "rules": list(rules)}


def rule(rid, cond, score=10, **kw):
    return {"id": rid, "condition": cond, "score": score, **kw}


@pytest.fixture
def frame():
    return pd.DataFrame({
        "account_id": ["a", "b", "c", "d"],
        "velocity": [1.0, 50.0, 200.0, np.nan],
        "is_emulator": [False, True, True, False],
        "ip": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "1.1.1.1"],
        "promotion_id": ["p1", "p2", "p1", None],
    })


def test_sum_aggregation_and_thresholds(frame):
    rs = load_ruleset(spec(rule("fast", "velocity > 10", 30), rule("emu", "is_emulator", 30),
                           rule("very_fast", "velocity > 100", 30)))
    r = rs.evaluate(frame).rows
    assert r["score"].tolist() == [0, 60, 90, 0]
    assert r["action"].tolist() == ["pass", "verify", "block", "pass"]
    assert r["matched"].tolist() == ["", "fast,emu", "fast,emu,very_fast", ""]
    assert r["flagged"].tolist() == [False, True, True, False]


def test_max_aggregation_uses_highest_score_and_most_severe_action(frame):
    rs = load_ruleset(spec(rule("fast", "velocity > 10", 30), rule("emu", "is_emulator", 50, action="block"),
                           rule("very_fast", "velocity > 100", 45), aggregate="max"))
    r = rs.evaluate(frame).rows
    assert r["score"].tolist() == [0, 50, 50, 0]
    # a block action blocks even when the aggregate stays under the block threshold
    assert r["action"].tolist() == ["pass", "block", "block", "pass"]
    sum_rs = load_ruleset(spec(rule("fast", "velocity > 10", 30), rule("very_fast", "velocity > 100", 45)))
    assert sum_rs.evaluate(frame).rows["score"].tolist() == [0, 30, 75, 0]


def test_shadow_rules_are_reported_but_never_act(frame):
    rs = load_ruleset(spec(rule("fast", "velocity > 10", 30),
                           rule("shadow_emu", "is_emulator", 100, action="block", status="shadow"),
                           rule("off_rule", "velocity > 0", 100, action="block", status="off")))
    res = rs.evaluate(frame)
    r = res.rows
    assert r["score"].tolist() == [0, 30, 30, 0]
    assert r["action"].tolist() == ["pass", "pass", "pass", "pass"]
    assert r["shadow_matched"].tolist() == ["", "shadow_emu", "shadow_emu", ""]
    assert "shadow_emu" not in ",".join(r["matched"])
    hits = res.hits.set_index("rule_id")
    assert hits.loc["shadow_emu", "hits"] == 2
    assert "off_rule" not in hits.index  # off rules are not evaluated


def test_rule_scope_by_promotion_column_and_scene(frame):
    rs = load_ruleset(spec(rule("p1_only", "velocity > 0", 50, scope="promotion:p1"),
                           rule("like_scene", "velocity > 0", 10, scope="scene:like")))
    assert rs.evaluate(frame).rows["matched"].tolist() == ["p1_only", "", "p1_only", ""]
    r = rs.evaluate(frame, scope="scene:like").rows
    assert r["matched"].tolist() == ["p1_only,like_scene", "like_scene", "p1_only,like_scene", ""]


def test_list_conditions_use_list_store_scope_and_expiry(frame):
    store = ListStore()
    store.add("blacklist", "proxy_ips", "ip", ["1.1.1.1"], reason="proxy vendor", actor="t", at="2024-01-01",
              expires_at="2024-02-01")
    store.add("graylist", "promo_ips", "ip", ["3.3.3.3"], reason="p1 drop", actor="t", at="2024-01-01",
              scope="promotion:p1")
    rs = load_ruleset(spec(rule("proxy", "ip in blacklist('proxy_ips')", 50),
                           rule("promo", "ip in list('promo_ips')", 10)), lists=store)
    r = rs.evaluate(frame, lists=store, as_of="2024-01-15").rows
    assert r["matched"].tolist() == ["proxy", "", "promo", "proxy"]
    r = rs.evaluate(frame, lists=store, as_of="2024-03-01").rows  # the blacklist entry has expired
    assert r["matched"].tolist() == ["", "", "promo", ""]
    with pytest.raises(RuleError, match="rule bad: unknown list 'nope'"):
        load_ruleset(spec(rule("bad", "ip in list('nope')")), lists=store)


def test_entity_filter(frame):
    rs = load_ruleset(spec(rule("acc", "velocity > 10", entity="account"), rule("ord", "velocity > 10",
                                                                               entity="order")))
    assert rs.evaluate(frame, entity="order").rule_ids == ("ord",)
    assert rs.entities == ("account", "order")
    assert rs.for_entity("account").ids == ("acc",)


@pytest.mark.parametrize("bad, needle", [
    (rule("r1", "velocity.real > 1"), "rule r1: attribute access"),
    (rule("r2", "__import__('os')"), "rule r2: unsafe name '__import__'"),
    (rule("r3", "foo(velocity) > 1"), "rule r3: unknown function 'foo'"),
    (rule("r4", "1 if velocity else 2"), "rule r4: unsafe construct 'if'"),
    (rule("r5", "velocity > 1", action="ban"), "rule r5: bad action 'ban'"),
    (rule("r6", "velocity > 1", status="live"), "rule r6: bad status 'live'"),
    (rule("r7", "velocity > 1", scope="shop"), "rule r7: bad scope 'shop'"),
    (rule("r8", "velocity > 1", score="high"), "rule r8: score must be a finite number"),
    (rule("r9", "velocity + 1"), "rule r9: the condition 'velocity + 1' yields a num"),
    (rule("r10", "velocity > 1", colour="red"), "rule r10: unknown key(s) colour"),
    (rule("r11", "velocity > 1", entity="shop"), "rule r11: bad entity 'shop'"),
])
def test_load_errors_name_the_rule(bad, needle):
    with pytest.raises(RuleError) as e:
        load_ruleset(spec(rule("ok", "velocity > 1"), bad))
    assert needle in str(e.value)
    assert "rule ok" not in str(e.value)


def test_duplicate_ids_unknown_columns_and_type_errors(frame):
    with pytest.raises(RuleError, match="rule a: duplicate id"):
        load_ruleset(spec(rule("a", "velocity > 1"), rule("a", "velocity > 2")))
    with pytest.raises(RuleError, match="rule u: unknown column 'speed'"):
        load_ruleset(spec(rule("u", "speed > 1")), columns=frame)
    with pytest.raises(RuleError, match="rule t: cannot compare .* a string with a number"):
        load_ruleset(spec(rule("t", "ip > 3")), columns=frame)
    with pytest.raises(RuleError, match="rule s: arithmetic '\\*' on a string"):
        load_ruleset(spec(rule("s", "ip * 2 > 3")), columns=frame)
    # columns by entity: an order rule is checked against the order columns only
    cols = {"account": frame, "order": pd.DataFrame({"qty": [1]})}
    load_ruleset(spec(rule("o", "qty > 1", entity="order"), rule("a", "velocity > 1")), columns=cols)
    with pytest.raises(RuleError, match="rule o: unknown column 'velocity'"):
        load_ruleset(spec(rule("o", "velocity > 1", entity="order")), columns=cols)


def test_every_problem_is_listed_at_once():
    with pytest.raises(RuleError) as e:
        load_ruleset(spec(rule("x1", "a.b"), rule("x2", "a > 1", action="nuke"), rule("x3", "a > 1")))
    msg = str(e.value)
    assert msg.startswith("2 problem(s)") and "rule x1" in msg and "rule x2" in msg


def test_threshold_and_aggregate_validation():
    with pytest.raises(RuleError, match="aggregate must be 'sum' or 'max'"):
        load_ruleset(spec(rule("a", "x > 1"), aggregate="mean"))
    with pytest.raises(RuleError, match="verify \\(90\\) is above block \\(10\\)"):
        load_ruleset(spec(rule("a", "x > 1"), thresholds={"verify": 90, "block": 10}))


def test_evaluate_missing_column_names_rule(frame):
    rs = load_ruleset(spec(rule("needs_qty", "qty > 1")))
    with pytest.raises(RuleError, match="rule needs_qty: the frame lacks column\\(s\\) qty"):
        rs.evaluate(frame)


def test_yaml_file_roundtrip_and_check(tmp_path, frame):
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(spec(rule("fast", "velocity > 10", 30, description="fast"))))
    rs = load_ruleset(p)
    assert rs.source == str(p) and rs.version == 2
    assert load_ruleset(rs.to_dict()).get("fast") == rs.get("fast")
    text = check_ruleset(p)
    assert "1 rules (1 active, 0 shadow, 0 off)" in text and text.endswith("ok")
    p.write_text("rules: [{id: x, condition: 'a[1] > 2'}]")
    with pytest.raises(RuleError, match="rule x: subscripts are not allowed"):
        check_ruleset(p)
    with pytest.raises(RuleError, match="does not exist"):
        load_ruleset(tmp_path / "missing.yaml")


def test_matched_ids_for_many_rules():
    # more than 63 rules exercises the multi-word bit pattern path
    rules = [rule(f"r{i}", f"x >= {i}", 1) for i in range(70)]
    res = load_ruleset(spec(*rules, thresholds={"verify": 1000, "block": 2000})).evaluate(
        pd.DataFrame({"x": [0, 65, 69, -1]}))
    m = res.rows["matched"].tolist()
    assert m[0] == "r0" and m[3] == ""
    assert m[1].split(",") == [f"r{i}" for i in range(66)]
    assert res.rows["score"].tolist() == [1, 66, 70, 0]


def test_default_ruleset_compiles_against_real_feature_columns():
    from fraudkit.capability.accumulators import DEFAULT_ACCUMULATORS
    from fraudkit.capability.features import account_features, device_features, order_features

    rs = default_ruleset()
    assert {"account", "order", "interaction"} <= set(rs.entities)
    # the documented feature names, as the features module declares them
    from fraudkit.capability import features as F

    account_cols = {"account_id": "id", **{c: "float" for c in F.ACCOUNT_FEATURES}, "register_channel": "string"}
    acc_rules = rs.for_entity("account")
    missing = acc_rules.columns() - set(account_cols)
    assert not missing, f"default account rules read unknown feature columns {missing}"
    order_acc = {a.name for a in DEFAULT_ACCUMULATORS if a.table == "orders"}
    order_needed = rs.columns("order")
    unknown = {c for c in order_needed if c.startswith("acc_")} - order_acc
    assert not unknown, unknown
    inter_acc = {a.name for a in DEFAULT_ACCUMULATORS if a.table == "interactions"}
    assert {c for c in rs.columns("interaction") if c.startswith("acc_")} <= inter_acc
    assert callable(account_features) and callable(device_features) and callable(order_features)


def test_check_ruleset_switches_off_rules_whose_inputs_the_dataset_lacks(tmp_path):
    """A dataset without a shop: order rules are reported as switched off, not as unknown columns."""
    from fraudkit.simulation import generate, load_scenario

    shop = {"orders", "products", "merchants", "promotions", "coupon_claims"}
    tables = generate(load_scenario("micro"), seed=5)
    for name, df in tables.items():
        if name not in shop:
            df.to_parquet(tmp_path / f"{name}.parquet")
    out = check_ruleset("default", data=tmp_path)
    off = [line for line in out.splitlines() if "switched off for this dataset" in line]
    assert any("proxy_ip_order (missing orders)" in line for line in off)
    for line in off:  # every switched-off rule names only tables that were removed
        missing = line.split("(missing ")[1].rstrip(")").split(", ")
        assert set(missing) <= shop, line
    assert not any("likes_without_views" in line for line in off)  # community rules still run
    assert out.splitlines()[-1] == "ok"
