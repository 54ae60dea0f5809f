import json

import pandas as pd
import pytest
from click.testing import CliRunner

from fraudkit.cli import main
from fraudkit.errors import FraudkitError

pytestmark = pytest.mark.slow(59)  # about 59 s in all here: the file starts early (tests/conftest.py)


@pytest.fixture(scope="module")
def micro():
    """The session's micro world (read only), simulated once for every module that reads it."""
    from _report_build import micro_data

    return micro_data()


@pytest.fixture(scope="module")
def run_dir(micro, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    res = CliRunner().invoke(main, ["score", str(micro), "--out", str(out), "--stages", "behaviour"])
    assert res.exit_code == 0, res.output
    assert "stages run: behaviour" in res.output
    return out


def test_run_directory_layout(run_dir, micro):
    man = json.loads((run_dir / "manifest.json").read_text())
    assert man["stages_run"] == ["behaviour"]
    assert man["data"]["fingerprint"] and man["parameters"]["seed"] == 0
    assert "flagged by any stage" in man["operating_point"]["method"]
    assert man["operating_point"]["source"] == "unsupervised defaults" and man["seed_pool"]["count"] == 0
    assert {"pandas", "numpy"} <= set(man["versions"]) and man["timings"]["total"] > 0
    acc = pd.read_parquet(run_dir / "accounts.parquet")
    n_accounts = len(pd.read_parquet(micro / "accounts.parquet"))
    assert len(acc) == n_accounts and acc["account_id"].is_unique
    assert {"score_behaviour", "flagged_behaviour", "score_rules", "flagged_rules", "score_combined",
            "flagged_combined"} <= set(acc.columns)
    assert (acc["flagged_combined"] == (acc["flagged_behaviour"] | acc["flagged_rules"])).all()
    # the rule set counts at its block level without training (verify asks, it does not identify)
    rs = pd.read_parquet(run_dir / "scores.parquet").query("stage == 'rules' and entity_type == 'account'")
    assert acc["flagged_rules"].sum() < rs["flagged"].sum()
    dec = pd.read_parquet(run_dir / "decisions.parquet")
    n_orders = len(pd.read_parquet(micro / "orders.parquet"))
    n_inter = len(pd.read_parquet(micro / "interactions.parquet"))
    assert (dec["entity_type"] == "order").sum() == n_orders  # no row dropped
    assert (dec["entity_type"] == "interaction").sum() == n_inter
    assert set(dec["decision"]) <= {"pass", "verify", "block"}
    assert (dec.loc[dec["decision"] != "pass", "reasons"] != "").all()
    assert (run_dir / "features" / "account.parquet").is_file()
    assert (run_dir / "rules" / "hits.parquet").is_file()
    assert any("network layer skipped" in n for n in man["notes"])  # no graph stage in this run


def test_evaluate_command(run_dir):
    res = CliRunner().invoke(main, ["evaluate", str(run_dir), "--format", "csv"])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(__import__("io").StringIO(res.output))
    assert list(t.columns[:4]) == ["typology", "n_labelled", "recall_behaviour", "recall_rules"]
    assert "honest_shared_device" in set(t["typology"]) and "all_fraud" in set(t["typology"])
    row = t.set_index("typology").loc["all_fraud"]
    assert 0 < row["recall_combined"] <= 1 and row["n_labelled"] > 0


def test_rules_only_run_matches_the_behaviour_run_rules(micro, run_dir, tmp_path):
    from fraudkit.pipeline.score import score_dataset

    score_dataset(micro, tmp_path / "a", stages=(), seed=0)
    a = pd.read_parquet(tmp_path / "a" / "accounts.parquet")
    b = pd.read_parquet(run_dir / "accounts.parquet")
    pd.testing.assert_series_equal(a["score_rules"], b["score_rules"])
    acc = a
    assert list(acc.columns) == ["account_id", "score_rules", "flagged_rules", "score_combined", "flagged_combined"]


def test_a_run_evaluates_its_rule_set_once_per_entity(micro, tmp_path, monkeypatch):
    """The behaviour stage's evaluation is the one the rules step and decisions use (and the stage's
    rule scores come from it); without the behaviour stage the pipeline evaluates the rules itself."""
    from fraudkit.identification.rules import RuleSet
    from fraudkit.pipeline.score import score_dataset

    calls = []
    evaluate = RuleSet.evaluate

    def counted(self, frame, **kw):
        calls.append(kw["entity"])
        return evaluate(self, frame, **kw)

    monkeypatch.setattr(RuleSet, "evaluate", counted)
    score_dataset(micro, tmp_path / "b", stages=("behaviour",), seed=0)
    assert sorted(calls) == sorted(set(calls)) and {"account", "order", "interaction"} <= set(calls)
    calls.clear()
    score_dataset(micro, tmp_path / "none", stages=(), seed=0)
    assert sorted(calls) == sorted(set(calls)) and {"account", "order", "interaction"} <= set(calls)
    hits_b = pd.read_parquet(tmp_path / "b" / "rules" / "hits.parquet")
    hits_none = pd.read_parquet(tmp_path / "none" / "rules" / "hits.parquet")
    pd.testing.assert_frame_equal(hits_b, hits_none)


def test_rules_check_and_backtest_commands(micro):
    r = CliRunner().invoke(main, ["rules", "check", "fraudkit/identification/rulesets/default.yaml", "--data", str(micro)])
    assert r.exit_code == 0, r.output
    assert r.output.strip().endswith("ok") and "checked against the features" in r.output
    r = CliRunner().invoke(main, ["rules", "backtest", "fraudkit/identification/rulesets/default.yaml", str(micro),
                                  "--against", "fraudkit/identification/rulesets/default.yaml"])
    assert r.exit_code == 0, r.output
    assert "## account rules" in r.output and "| rule_id | status |" in r.output
    assert "gained 0 (0 positive), lost 0 (0 positive)" in r.output


def test_unknown_stage_and_failed_run_keeps_nothing(micro, tmp_path):
    from fraudkit.pipeline.score import score_dataset

    with pytest.raises(FraudkitError, match="unknown stage"):
        score_dataset(micro, tmp_path / "x", stages=("magic",))
    assert not (tmp_path / "x").exists()


def test_seed_pool_and_parameters_reach_the_graph_stage(micro, tmp_path, monkeypatch):
    """score_dataset(seed_pool=, params=, run_id=) reach the stage as RunContext fields; the manifest records
    the seed pool (``seed_pool``) and the parameters (``parameters.context``)."""
    import fraudkit.pipeline.stages.graph as graph_stage
    from fraudkit.capability.lists import ListStore
    from fraudkit.identification.graph.propagation import SeedPool
    from fraudkit.identification.rules import RuleSet
    from fraudkit.pipeline.context import RunContext
    from fraudkit.pipeline.score import score_dataset
    from fraudkit.pipeline.stages import StageOutput

    seen = []

    def fake_run(ds, *, context=None):
        seen.append(context)
        return StageOutput("graph", notes=["fake graph stage"])

    monkeypatch.setattr(graph_stage, "run", fake_run)
    pool = SeedPool.empty().update(pd.DataFrame({"entity_type": ["account", "account", "device"],
                                                 "entity_id": ["1", "2", "d9"], "source": ["analyst", "rules", "x"],
                                                 "score": [1.0, 0.9, 0.8]}), run_id="r0")
    score_dataset(micro, tmp_path / "r", stages=("graph",), seed=4, seed_pool=pool,
                  params={"graph": {"lp_alpha": 0.5}}, run_id="w3")
    (ctx,) = seen
    assert isinstance(ctx, RunContext) and ctx.mode == "score" and ctx.seed == 4
    assert ctx.seed_pool is pool and dict(ctx.graph) == {"lp_alpha": 0.5} and ctx.run_id == "w3"
    assert ctx.target_precision == 0.9 and isinstance(ctx.rules, RuleSet) and isinstance(ctx.lists, ListStore)
    man = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert man["seed_pool"] == {"count": 2, "n_entities": 3, "source": "SeedPool",
                                "by_entity_type": {"account": 2, "device": 1},
                                "by_source": {"analyst": 1, "rules": 1, "x": 1}}
    assert man["parameters"]["context"] == {"graph": {"lp_alpha": 0.5}, "run_id": "w3"}
    assert man["stage_notes"] == {"graph": ["fake graph stage"]}
    assert sorted(pd.read_parquet(tmp_path / "r" / "seed_pool.parquet")["entity_id"]) == ["1", "2", "d9"]
    # a plain seed table works too
    score_dataset(micro, tmp_path / "t", stages=("graph",), seed_pool=pd.DataFrame({"account_id": [5, 6]}))
    assert json.loads((tmp_path / "t" / "manifest.json").read_text())["seed_pool"]["count"] == 2
    with pytest.raises(FraudkitError, match="params: unknown stage.*seeds"):
        score_dataset(micro, tmp_path / "u", stages=(), params={"seeds": pool})
    with pytest.raises(FraudkitError, match="seed table needs an entity_id"):
        score_dataset(micro, tmp_path / "v", stages=(), seed_pool=pd.DataFrame({"x": [1]}))
    with pytest.raises(FraudkitError, match="target_precision must be in"):
        score_dataset(micro, tmp_path / "w", stages=(), target_precision=1.5)
    assert not any((tmp_path / x).exists() for x in "uvw")


def test_unknown_stage_parameter_fails_the_run_and_keeps_nothing(micro, tmp_path):
    from fraudkit.pipeline.score import score_dataset

    with pytest.raises(FraudkitError, match="unknown graph stage parameter.*lp_alfa"):
        score_dataset(micro, tmp_path / "x", stages=("graph",), params={"graph": {"lp_alfa": 0.9}})
    assert not (tmp_path / "x").exists()


def test_stage_modules_are_wired_explicitly():
    from fraudkit.data.contract import STAGES
    from fraudkit.pipeline.score import STAGE_MODULES
    from fraudkit.pipeline.stages import behaviour, graph, group

    assert tuple(STAGE_MODULES) == tuple(STAGES)
    assert STAGE_MODULES == {"behaviour": behaviour, "group": group, "graph": graph}


def test_features_flow_forward_and_the_caller_context_is_untouched(micro, tmp_path, monkeypatch):
    """The behaviour stage's feature tables reach later stages through the context (dataclasses.replace) and
    are the ones written to RUN/features/; each stage gets a context, none writes into it."""
    import fraudkit.pipeline.stages.group as group_stage
    from fraudkit.pipeline.score import score_dataset
    from fraudkit.pipeline.stages import StageOutput

    seen = []

    def fake_group(ds, *, context=None):
        seen.append(context)
        return StageOutput("group")

    monkeypatch.setattr(group_stage, "run", fake_group)
    score_dataset(micro, tmp_path / "r", stages=("behaviour", "group"))
    (ctx,) = seen
    assert {"account", "device", "ip", "ip24", "phone", "address", "order"} <= set(ctx.features)
    written = pd.read_parquet(tmp_path / "r" / "features" / "account.parquet")
    assert list(written.columns) == list(ctx.features["account"].columns) and len(written) == len(ctx.features["account"])
    assert "n_sessions" in written.columns  # the behaviour stage's account table (sequence features joined)


def test_training_dataset_reaches_the_stages_in_both_passes(micro, tmp_path, monkeypatch):
    """With train=, the scored pass (mode "score") hands the training Dataset to every stage as the context's
    train; the operating-point pass scores the training dataset itself in mode "train" (train None), so
    supervised stage parts (the association classifier) score it out-of-fold, on the scale the scored pass
    produces."""
    import fraudkit.pipeline.stages.group as group_stage
    from fraudkit.pipeline.score import score_dataset
    from fraudkit.pipeline.stages import StageOutput

    seen = []

    def fake_run(ds, *, context=None):
        seen.append({"ds": ds, "train": context.train, "mode": context.mode, "seed_pool": context.seed_pool})
        return StageOutput("group", notes=["fake group stage"])

    monkeypatch.setattr(group_stage, "run", fake_run)
    score_dataset(micro, tmp_path / "r", stages=("group",), train=micro, seed_pool=pd.DataFrame({"account_id": [1]}))
    assert len(seen) == 2
    scored, training = seen
    assert scored["mode"] == "score" and scored["train"] is not None and scored["train"].labels is not None
    assert training["mode"] == "train" and training["train"] is None and training["ds"].labels is not None
    assert scored["seed_pool"] is not None and training["seed_pool"] is None


def test_cli_seed_pool_option(micro, tmp_path):
    """``fraudkit score --seed-pool FILE`` loads the pool and records it (``--seeds`` is gone)."""
    from fraudkit.identification.graph.propagation import SeedPool

    pool = SeedPool.empty().update(pd.DataFrame({"entity_type": "account", "entity_id": ["1", "2", "3"],
                                                 "source": "analyst", "score": 1.0}), run_id="r0")
    pool.save(tmp_path / "pool.parquet")
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["score", str(micro), "--out", str(out), "--stages", "",
                                    "--seed-pool", str(tmp_path / "pool.parquet")])
    assert res.exit_code == 0, res.output
    assert "seed pool given but the graph stage is not run" in res.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["seed_pool"]["count"] == 3 and man["seed_pool"]["source"] == "SeedPool"
    res = CliRunner().invoke(main, ["score", str(micro), "--out", str(tmp_path / "x"), "--seeds", "p"])
    assert res.exit_code == 2 and "No such option '--seeds'" in res.output and "--seed-pool" in res.output


def test_decisions_and_scores_are_the_same_whatever_the_chunk(micro, run_dir, tmp_path, monkeypatch):
    """Orders and interactions are read from DuckDB, their rules evaluated, decided and written a chunk of
    events at a time, the score table part by part (the interactions' ids as Arrow text): every file the
    run writes is that of one pass over every event."""
    import fraudkit.pipeline.frames as frames_mod
    import fraudkit.pipeline.score as score_mod

    monkeypatch.setattr(score_mod, "DECISION_CHUNK", 97)  # many chunks, the last one short
    monkeypatch.setattr(frames_mod, "EVENT_CHUNK", 89)  # the rules' chunks unaligned with the decisions'
    out = tmp_path / "chunked"
    res = CliRunner().invoke(main, ["score", str(micro), "--out", str(out), "--stages", "behaviour"])
    assert res.exit_code == 0, res.output
    names = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*.parquet"))
    assert names == sorted(p.relative_to(out) for p in out.rglob("*.parquet"))
    assert {"decisions.parquet", "scores.parquet", "accounts.parquet", "rules/hits.parquet",
            "behaviour/order_rules.parquet", "behaviour/rule_hits.parquet"} <= {str(n) for n in names}
    for name in names:
        a, b = pd.read_parquet(run_dir / name), pd.read_parquet(out / name)
        # the feature tables' float sums come from DuckDB's parallel aggregation: equal to the last bits or so
        exact = name.parts[0] != "features"
        pd.testing.assert_frame_equal(a, b, check_exact=exact, rtol=1e-12, obj=str(name))
    dec = pd.read_parquet(out / "decisions.parquet")
    assert len(dec) > 3 * 97 and dec["ts"].dtype == "datetime64[ns]"
    scores = pd.read_parquet(out / "scores.parquet")
    inter = scores[scores["entity_type"] == "interaction"]
    assert len(inter) == len(pd.read_parquet(micro / "interactions.parquet"))
    assert inter["entity_id"].map(type).eq(str).all()
    hits = pd.read_parquet(out / "rules" / "hits.parquet")
    assert hits.loc[hits["entity"] == "interaction", "hits"].sum() > 0  # the chunks' hits are added up


def test_rules_evaluated_in_chunks_match_the_whole_frame(micro, run_dir):
    """Every event's rule row, the hits and the per-account rollups of a chunked evaluation are those of the
    whole frame evaluated at once (the pandas frame of ``rule_frames``)."""
    import fraudkit.pipeline.frames as frames_mod
    from fraudkit.data.dataset import load_dataset
    from fraudkit.identification.rules import default_ruleset

    ds, rs = load_dataset(micro), default_ruleset()
    feats = {e: pd.read_parquet(run_dir / "features" / f"{e}.parquet") for e in ("account", "device", "ip", "order")}
    lists = frames_mod.list_store_for(ds)
    whole = rs.evaluate(frames_mod.rule_frames(ds, rs, features=feats)["interaction"], lists=lists,
                        entity="interaction")
    ev = frames_mod.evaluate_rules(rs, frames_mod.rule_frames(ds, rs, features=feats, stream=True), lists,
                                   as_of=frames_mod.data_end(ds), chunk=53)
    res = ev.results["interaction"]
    rows = pd.concat([r.rows for _, r in res.chunks(53)], ignore_index=True)
    pd.testing.assert_frame_equal(rows, whole.rows.reset_index(drop=True), check_exact=True)
    pd.testing.assert_frame_equal(res.hits, whole.hits, check_exact=True)
    assert 0 < int(whole.hits["hits"].sum()) < len(rows)
    worst, pairs = ev.rollups["interaction"]
    frame = ev.frames["interaction"].to_pandas()
    assert worst.sort_index().equals(whole.rows.groupby(frame["account_id"]).score.max().sort_index())
    assert set(map(tuple, pairs.to_numpy())) == {
        (a, m) for a, m in zip(frame["account_id"], whole.rows["matched"]) if m}
    # on the dataset's connection the rule frame and the results are Parquet files (a view over the frame's),
    # never tables held in DuckDB's memory; closing removes both
    con = frames_mod._raw_connection(ds)
    assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'fk_rule%'").fetchone()[0]
    files = [ev.frames["interaction"]._parked, res._path]
    assert all(f.exists() for f in files)
    ev.close()
    assert len(ev.results["interaction"]) == 0
    assert not any(f.parent.exists() for f in files)
    assert not con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name LIKE 'fk_rule%'").fetchone()[0]


@pytest.mark.parametrize("write_features", [True, False])
def test_parked_event_tables_give_the_same_run_and_leave_no_file(micro, tmp_path, monkeypatch, write_features):
    """Event tables and feature tables moved to Parquet between the behaviour stage and decisions: the same
    decisions, scores, accounts and feature tables, and the parked files are gone once the run is written."""
    from fraudkit.pipeline import frames as frames_module
    from fraudkit.pipeline import score as score_module
    from fraudkit.pipeline.frames import ParkedTable, RuleEvaluation
    from fraudkit.pipeline.score import score_dataset

    monkeypatch.setenv("FRAUDKIT_DUCKDB_TEMP_DIRECTORY", str(tmp_path / "spill"))
    stages = ("behaviour", "graph")
    kept = score_dataset(micro, tmp_path / "kept", stages=stages, seed=0, write_features=write_features)
    parked, let_go = [], []
    real_park = RuleEvaluation.park

    def park(self, features=None):
        real_park(self, features=features)
        parked.extend((tmp_path / "spill").glob("fraudkit-parked-*/*.parquet"))
        let_go.extend(e for e, f in self.frames.items() if isinstance(f, ParkedTable))

    graph_run, held = score_module.STAGE_MODULES["graph"].run, []

    def graph(ds, *, context=None):  # what the later stage runs beside: no feature table in memory
        held.extend(n for n in context.features if not context.features.parked(n))
        return graph_run(ds, context=context)

    monkeypatch.setattr(frames_module, "PARK_MIN_ROWS", 0)
    monkeypatch.setattr(RuleEvaluation, "park", park)
    monkeypatch.setattr(score_module.STAGE_MODULES["graph"], "run", graph)
    moved = score_dataset(micro, tmp_path / "parked", stages=stages, seed=0, write_features=write_features)
    assert not held, f"feature tables {held} were in memory during the graph stage"
    names = {p.name for p in parked}
    assert any(n.startswith("fk_rule_") for n in names), "the event tables were not parked"
    # the feature tables: in the run's features folder when it writes them, else in the temporary folder
    assert ({"account.parquet", "order.parquet"} <= names) != write_features
    assert "account" in let_go, "the rules' account frame was kept in memory"
    assert not list((tmp_path / "spill").glob("fraudkit-parked-*"))
    files = ["decisions.parquet", "scores.parquet", "accounts.parquet"] + sorted(
        str(p.relative_to(kept.run_dir)) for st in ("behaviour", "graph") for p in (kept.run_dir / st).glob("*.parquet"))
    assert any(f.startswith("behaviour/") for f in files)
    feature_files = sorted(p.name for p in (kept.run_dir / "features").glob("*.parquet"))
    assert feature_files == sorted(p.name for p in (moved.run_dir / "features").glob("*.parquet"))
    assert bool(feature_files) == write_features
    for name in files:
        pd.testing.assert_frame_equal(pd.read_parquet(kept.run_dir / name), pd.read_parquet(moved.run_dir / name),
                                      check_exact=True)
    for name in feature_files:  # DuckDB's parallel float sums differ in the last bits from run to run
        pd.testing.assert_frame_equal(pd.read_parquet(kept.run_dir / "features" / name),
                                      pd.read_parquet(moved.run_dir / "features" / name), check_exact=False, rtol=1e-12)


def test_the_behaviour_models_run_beside_the_account_features_only(micro, tmp_path, monkeypatch):
    """On a large dataset the behaviour stage parks the script pairs as they are computed, every feature table
    but those the rules read whole (``account``, ``device``, ``ip``) before its rules, and its rule evaluation and
    every feature table but ``account`` before its models: while they fit and score, no other feature table is in
    memory and no rule event table in DuckDB; each table is parked once, and the run (training pass included,
    its parked pairs removed) is the same as one kept in memory."""
    from _report_build import micro_data
    from fraudkit.pipeline import frames as frames_module
    from fraudkit.pipeline.frames import FeatureTables
    from fraudkit.pipeline.score import score_dataset
    from fraudkit.pipeline.stages import behaviour

    monkeypatch.setenv("FRAUDKIT_DUCKDB_TEMP_DIRECTORY", str(tmp_path / "spill"))
    train, stages = micro_data(1000), ("behaviour", "graph")
    kept = score_dataset(micro, tmp_path / "kept", stages=stages, seed=0, train=train)
    asked, during, written = [], [], []
    real_worth, real_models, real_park = behaviour.worth_parking, behaviour._run_models, FeatureTables.park
    real_rules, beside_rules = behaviour._evaluate_rules, []

    def rules(ds, features, *args, **kwargs):
        beside_rules.append(sorted(n for n in features if not features.parked(n)))
        return real_rules(ds, features, *args, **kwargs)

    def worth(features=None, rules=None):
        asked.append((features, rules))
        return real_worth(features, rules)

    def models(*args, **kwargs):
        features, rules = asked[-1]
        con = rules.frames["interaction"].connection
        frames_held = sorted(e for e, f in rules.frames.items() if isinstance(f, pd.DataFrame))
        during.append({"features in memory": [n for n in features if not features.parked(n)],
                       "rule frames in memory": frames_held,
                       "rule event tables": con.execute("SELECT table_name FROM duckdb_tables() "
                                                        "WHERE table_name LIKE 'fk_rule_%'").fetchall()})
        return real_models(*args, **kwargs)

    def park(self, folder=None, *, keep=()):
        written.extend((id(self), n) for n in self if not self.parked(n) and n not in keep)
        real_park(self, folder, keep=keep)

    monkeypatch.setattr(frames_module, "PARK_MIN_ROWS", 0)
    monkeypatch.setattr(behaviour, "worth_parking", worth)
    monkeypatch.setattr(behaviour, "_run_models", models)
    monkeypatch.setattr(FeatureTables, "park", park)
    monkeypatch.setattr(behaviour, "_evaluate_rules", rules)
    moved = score_dataset(micro, tmp_path / "parked", stages=stages, seed=0, train=train)
    assert beside_rules == [["account", "device", "ip"]] * 2  # the training pass's and the scored pass's
    # one models' step (the scored pass: the training pass fits none), beside the account table only
    assert during == [{"features in memory": ["account"], "rule frames in memory": ["account"],
                       "rule event tables": []}]
    scored = asked[0][0]
    assert len(written) == len(set(written)), "a feature table was parked twice"
    assert sorted(n for i, n in written if i == id(scored)) == sorted(scored)  # every table, account after the stage
    assert not list((tmp_path / "spill").glob("fraudkit-parked-*"))
    files = sorted(str(p.relative_to(kept.run_dir)) for p in kept.run_dir.rglob("*.parquet"))
    assert files == sorted(str(p.relative_to(moved.run_dir)) for p in moved.run_dir.rglob("*.parquet"))
    assert {"decisions.parquet", "scores.parquet", "accounts.parquet", "features/account.parquet"} <= set(files)
    for name in files:  # feature tables: DuckDB's parallel float sums differ in the last bits from run to run
        exact = not (name.startswith("features/") or name == "training/features.parquet")
        pd.testing.assert_frame_equal(pd.read_parquet(kept.run_dir / name), pd.read_parquet(moved.run_dir / name),
                                      check_exact=exact, **({} if exact else {"rtol": 1e-12}))


@pytest.mark.parametrize("values", [
    pd.Series([7, 12, 7, -3], dtype="int64"),
    pd.Series(["a", "b", "a", "é"], dtype=object),
    pd.Series([1, "1", 2.5, None], dtype=object),  # 1 and "1": one text; None: "None" as astype(str) gives
    pd.Series([1.0, float("nan"), 3.0, 1.0]),
    pd.Series(["x", "y", None, "x"], dtype=pd.ArrowDtype(__import__("pyarrow").string())),
    pd.Series(["x", "y", "z", "x"], dtype=pd.ArrowDtype(__import__("pyarrow").large_string())),
])
def test_decision_texts_equal_astype_str(values):
    """The decisions' account and event ids, made text per distinct value or cast in Arrow, are the texts
    ``astype(str)`` gives row by row."""
    from fraudkit.pipeline.frames import arrow_text as _arrow_text
    from fraudkit.pipeline.score import _text_categorical

    want = values.astype(str).tolist()
    cat = _text_categorical(values)
    assert list(cat.astype(str)) == want and cat.categories.is_unique
    assert _arrow_text(values).to_pylist() == want


@pytest.mark.parametrize("keys", [pd.Series([5, 9, 12]),
                                  pd.Series(["e1", "e2", "e3"], dtype=pd.ArrowDtype(__import__("pyarrow").string())),
                                  pd.Series([1.5, 2.0, 3.0])])
def test_event_score_tables_equal_the_score_frames(keys):
    """The events' score rows built in Arrow are the score frame's rows as the run file had them."""
    import pyarrow as pa

    from fraudkit.pipeline.frames import _score_rows, _score_table

    rows = pd.DataFrame({"score": [0.0, 2.5, 1.0], "action": ["pass", "block", "verify"],
                         "matched": ["", "r1,r2", "r3"]})
    got = _score_table("interaction", keys, rows)
    frame = _score_rows("interaction", keys, rows)
    if not isinstance(frame["entity_id"].dtype, pd.ArrowDtype):
        frame = frame.assign(entity_id=frame["entity_id"].astype(str))
    want = pa.Table.from_pandas(frame, preserve_index=False)
    assert got.equals(want.cast(got.schema)) and got.schema.remove_metadata().equals(want.schema.remove_metadata())


def test_group_and_graph_side_by_side_give_the_same_run(micro, tmp_path, monkeypatch):
    """The group and graph stages in two threads on one DuckDB connection: every file of the run the same as one
    after the other (asked for); the graph stage ran on the worker thread while the group stage ran, by default
    on the micro world (far below SIDE_BY_SIDE_EVENTS)."""
    import threading
    import time

    from fraudkit.pipeline import score as score_module
    from fraudkit.pipeline.score import score_dataset

    ran, real = {}, {name: score_module.STAGE_MODULES[name].run for name in ("group", "graph")}
    group_started = threading.Event()

    def watched(name):
        def run(ds, *, context=None):
            if name == "group":
                group_started.set()
            else:  # side by side: the graph stage starts while the group stage runs
                group_started.wait(5)
            t = time.perf_counter()
            out = real[name](ds, context=context)
            ran.setdefault(name, []).append((threading.current_thread().name, t, time.perf_counter()))
            return out
        return run

    for name in real:
        monkeypatch.setattr(score_module.STAGE_MODULES[name], "run", watched(name))
    stages = ("group", "graph")
    one = score_dataset(micro, tmp_path / "one", stages=stages, seed=0, side_by_side=False)
    assert [r[0][0] for r in ran.values()] == ["MainThread", "MainThread"]  # asked: one after the other
    ran.clear()
    group_started.clear()
    two_dir = tmp_path / "two"  # the command line's default on a small world
    res = CliRunner().invoke(main, ["score", str(micro), "--out", str(two_dir), "--stages", "group,graph",
                                    "--seed", "0", "--quiet"])
    assert res.exit_code == 0, res.output
    assert ran["group"][0][0] == "MainThread" and ran["graph"][0][0] == "fraudkit-alongside"
    (_, g0, g1), (_, h0, h1) = ran["group"][0], ran["graph"][0]
    assert h0 < g1 and g0 < h1, "the two stages did not overlap"
    files = sorted(str(p.relative_to(one.run_dir)) for p in one.run_dir.rglob("*.parquet"))
    assert files == sorted(str(p.relative_to(two_dir)) for p in two_dir.rglob("*.parquet"))
    assert {"group/device_clusters.parquet", "graph/communities.parquet"} & set(files)
    for name in files:
        pd.testing.assert_frame_equal(pd.read_parquet(one.run_dir / name), pd.read_parquet(two_dir / name),
                                      check_exact=not name.startswith("features/"), rtol=1e-12)
    manifests = [json.loads((r / "manifest.json").read_text()) for r in (one.run_dir, two_dir)]
    assert manifests[0]["notes"] == manifests[1]["notes"]
    assert list(manifests[0]["timings"]) == list(manifests[1]["timings"])


def test_a_failing_group_stage_stops_the_graph_stage_beside_it(micro, tmp_path, monkeypatch):
    """Side by side, the group stage's error ends the run once the graph stage is stopped, and no run is kept."""
    import threading
    import time

    from fraudkit.pipeline import score as score_module
    from fraudkit.pipeline.score import score_dataset

    stopped, real_graph = [], score_module.STAGE_MODULES["graph"].run
    graph_started = threading.Event()

    def group(ds, *, context=None):
        graph_started.wait(10)
        raise FraudkitError("the group stage broke")

    def graph(ds, *, context=None):  # works (in Python) until stopped, 30 s at most
        graph_started.set()
        try:
            for _ in range(3000):
                time.sleep(0.01)
        except KeyboardInterrupt:
            stopped.append(True)
            raise
        return real_graph(ds, context=context)

    monkeypatch.setattr(score_module.STAGE_MODULES["group"], "run", group)
    monkeypatch.setattr(score_module.STAGE_MODULES["graph"], "run", graph)
    with pytest.raises(FraudkitError, match="the group stage broke"):
        score_dataset(micro, tmp_path / "run", stages=("group", "graph"), seed=0, side_by_side=True)
    assert stopped == [True], "the graph stage was not stopped"
    assert not (tmp_path / "run").exists()


def test_side_by_side_only_on_duckdb_and_by_default_up_to_the_event_count(micro, tmp_path, monkeypatch):
    """The group and graph stages run side by side when the context asks for it and the transforms run on DuckDB;
    on Spark (its SQL on the cluster) one after the other. Unasked (None), side by side when the data holds at
    most SIDE_BY_SIDE_EVENTS events (interactions, logins, orders, coupon claims) and SIDE_BY_SIDE_ORDERS orders,
    one after the other above;
    the command line's --side-by-side / --one-after-the-other reach the run, unset is None."""
    from types import SimpleNamespace

    from fraudkit.data.dataset import load_dataset
    from fraudkit.pipeline import score as score_module
    from fraudkit.pipeline.context import RunContext
    from fraudkit.pipeline.score import _side_by_side

    def on(engine):
        return SimpleNamespace(transform_dataset=SimpleNamespace(engine=SimpleNamespace(name=engine)))

    assert _side_by_side(on("duckdb"), RunContext(side_by_side=True))
    assert not _side_by_side(on("spark"), RunContext(side_by_side=True))
    assert not _side_by_side(on("spark"), RunContext())
    ds = load_dataset(micro)
    events = sum(ds.count(t) for t in ("interactions", "logins", "orders", "coupon_claims"))
    assert events > 1000 and RunContext().side_by_side is None
    assert not _side_by_side(ds, RunContext(side_by_side=False))
    orders = ds.count("orders")
    assert 0 < orders < events
    for limit, expected in ((events, True), (events - 1, False), (10, False),
                            (score_module.SIDE_BY_SIDE_EVENTS, True)):
        monkeypatch.setattr(score_module, "SIDE_BY_SIDE_EVENTS", limit)
        assert _side_by_side(ds, RunContext()) is expected, limit
        assert _side_by_side(ds, RunContext(side_by_side=True))
        assert not _side_by_side(ds, RunContext(side_by_side=False))
    for limit, expected in ((orders, True), (orders - 1, False)):  # few events but many orders: one after the other
        monkeypatch.setattr(score_module, "SIDE_BY_SIDE_ORDERS", limit)
        assert _side_by_side(ds, RunContext()) is expected, limit
    asked = []

    def score_dataset(*args, side_by_side, **kwargs):
        asked.append(side_by_side)
        return SimpleNamespace(describe=lambda: "scored")

    monkeypatch.setattr(score_module, "score_dataset", score_dataset)
    for flags in ([], ["--side-by-side"], ["--one-after-the-other"]):
        res = CliRunner().invoke(main, ["score", str(micro), "--out", str(tmp_path / "run"), "--quiet", *flags])
        assert res.exit_code == 0 and "scored" in res.output, res.output
    assert asked == [None, True, False]
