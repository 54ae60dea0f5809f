"""The notebooks' section views on the micro run: what each section shows, and why it is not available.

A view takes the notebook's Context and returns a Table, a Chart, a Note, a Graph, a Text or an
Unavailable (or several, in order). Every branch the notebooks used to carry is here: the full micro
dataset, a dataset without interactions, labels, intelligence and lists, and a bare dataset with an
empty run.
"""

from __future__ import annotations

import inspect
import shutil

import pandas as pd
import pytest
from _report_build import micro_data, micro_report
from matplotlib.figure import Figure

from fraudkit.data.contract import LABEL_TABLE, TABLES
from fraudkit.errors import DataValidationError, MissingInputError
from fraudkit.evaluation.metrics import evaluate_run
from fraudkit.perception import monitors
from fraudkit.report import capability_views as cv
from fraudkit.report import evaluation_views as ev
from fraudkit.report import identification_views as iv
from fraudkit.report import mitigation_views as mv
from fraudkit.report import notebook as nb
from fraudkit.report import perception_views as pv
from fraudkit.report import plots
from fraudkit.report.display import Chart, Graph, Note, Shown, Table, Text, Unavailable

DROPPED = ("interactions", "labels", "intelligence", "list_entries")


@pytest.fixture(scope="module")
def run_copy(tmp_path_factory):
    """The shared micro run without the steps' own artifacts (views write into it)."""
    run = tmp_path_factory.mktemp("views") / "run"
    shutil.copytree(micro_report().run_dir, run, ignore=shutil.ignore_patterns("report"))
    return run


@pytest.fixture(scope="module")
def ctx(run_copy):
    return nb.setup(micro_data(), run_dir=run_copy, train_dir=micro_data(1000), as_of="2024-11-11", seed=0)


@pytest.fixture(scope="module")
def partial(tmp_path_factory, run_copy):
    """The micro run against its dataset without interactions, labels, intelligence and list entries."""
    data = tmp_path_factory.mktemp("partial") / "data"
    shutil.copytree(micro_data(), data, ignore=shutil.ignore_patterns(*(f"{t}.*" for t in DROPPED)))
    run = tmp_path_factory.mktemp("partial") / "run"
    shutil.copytree(run_copy, run)
    return nb.setup(data, run_dir=run, seed=0)


@pytest.fixture
def bare(tmp_path):
    """A dataset with only the accounts table, and an empty run directory (fresh for each test)."""
    root = tmp_path
    (root / "data").mkdir()
    shutil.copy(micro_data() / "accounts.parquet", root / "data" / "accounts.parquet")
    (root / "run").mkdir()
    return nb.setup(root / "data", run_dir=root / "run", seed=0)


def _only(shown, kind):
    items = list(shown) if isinstance(shown, Shown) else [shown]
    return [x for x in items if isinstance(x, kind)]


def _sections(module):
    # a view annotated to return None starts work and shows nothing (perception_views.start_red_team_drill)
    return [getattr(module, n) for n in module.__all__
            if callable(getattr(module, n)) and list(inspect.signature(getattr(module, n)).parameters)[:1] == ["ctx"]
            and inspect.signature(getattr(module, n)).return_annotation != "None"]


def _call(view, ctx):
    kw = {"red_team_drill": {"scenario": "", "size": "micro"}}.get(view.__name__, {})
    if "windows" in inspect.signature(view).parameters:
        kw = {"windows": 0}
    return view(ctx, **kw)


# --- setup, context and display -----------------------------------------------------------------------


def test_setup_resolves_the_folders_and_names_a_missing_one(tmp_path, ctx):
    assert ctx.data_dir == micro_data() and ctx.train_dir == micro_data(1000) and ctx.previous_run_dir is None
    assert ctx.as_of == "2024-11-11" and ctx.seed == 0
    with pytest.raises(MissingInputError, match="no-such"):
        nb.setup(tmp_path / "no-such", run_dir=tmp_path)
    with pytest.raises(MissingInputError, match="train_dir"):
        nb.setup(micro_data(), run_dir=tmp_path, train_dir=tmp_path / "missing")


def test_context_reads_each_table_once(ctx, bare):
    assert ctx.table("accounts") is ctx.table("accounts")
    assert len(ctx.table("accounts", columns=["account_id"]).columns) == 1
    assert bare.table("orders") is None and bare.artifact("accounts") is None
    assert ctx.artifact("accounts") is ctx.artifact("accounts")


def test_display_objects_mask_caption_and_explain():
    frame = pd.DataFrame({"phone": ["13812345678"] * 3, "n": [1.0, 2.5, 3.25]})
    html = Table(frame, caption="Phones", max_rows=2).html()
    assert "13812345678" not in html and "Phones (first 2 of 3 rows)" in html and ">2.50<" in html
    assert frame["phone"].iloc[0] == "13812345678"  # the input is not modified
    u = Unavailable("lists", "the dataset has no `list_entries` table")
    assert "<code>list_entries</code>" in u.html() and str(u).startswith("Not available: lists.")
    assert Note("careful", kind="warn").html() == '<div class="fk-note fk-note-warn">careful</div>'
    unlabelled = Figure()
    unlabelled.add_subplot().plot([0, 1])
    with pytest.raises(ValueError, match="no title"):
        Chart(unlabelled)
    assert Chart(plots.hist([1, 2], title="t", xlabel="x", ylabel="y")).figure.axes[0].get_title() == "t"
    nested = Shown(Note("a"), Shown(Text("b"), u))
    assert [type(x) for x in nested] == [Note, Text, Unavailable] and nested.of(Unavailable) == [u]


def test_every_section_returns_something_to_show(ctx, partial, bare):
    """On any dataset each section shows content or says why not: never nothing, never an exception."""
    kinds = (Table, Chart, Note, Unavailable, Text, Graph)
    for module in (pv, cv, iv, mv, ev):
        for view in _sections(module):
            for c in (ctx, partial, bare):
                if view is cv.accumulation_factors and c is partial:
                    continue  # an invalid dataset is an error there (test_capability_sections_say_what_is_missing)
                shown = _call(view, c)
                items = list(shown) if isinstance(shown, Shown) else [shown]
                assert items and all(isinstance(x, kinds) for x in items), (view.__name__, items)


# --- notebook 01 ----------------------------------------------------------------------------------------


def test_perception_sections_on_micro(ctx, run_copy):
    health = pv.data_health(ctx)
    assert list(health.frame["table"]) == [*TABLES, LABEL_TABLE.name] and health.max_rows == 30
    # read through the notebook's context (each table once), the same as read from the folder
    pd.testing.assert_frame_equal(health.frame, monitors.data_health(ctx.data_dir))
    assert ctx.table("interactions") is ctx.cache[("table", "interactions", None)]
    pd.testing.assert_frame_equal(pv.missing_values(ctx).frame, monitors.null_report(ctx.data_dir))
    assert pv.report_day(ctx).markdown == "Monitors report on **2024-11-11**."
    spikes = pv.engagement_spikes(ctx)
    assert [type(x) for x in spikes] == [Chart, Table]
    written = pd.read_parquet(run_copy / "report" / "perception" / "engagement_spikes.parquet")
    assert len(written) == len(spikes.of(Table)[0].frame)
    bursts = pv.new_account_bursts(ctx).of(Table)[0]
    assert bursts.caption == "1 burst day(s) (all channels and per channel)" and bursts.frame["burst"].all()
    assert len(pv.promotion_traffic(ctx).of(Table)[0].frame) == 5
    prices = pv.black_market_prices(ctx).of(Table)[0].frame
    assert len(prices) == prices["item"].nunique() == 7


def test_perception_sections_say_what_is_missing(partial, bare):
    assert pv.engagement_spikes(partial) == Unavailable("engagement spikes", "the dataset has no interactions table")
    assert pv.like_view_ratios(partial).why == "the dataset has no interactions table"
    assert pv.black_market_prices(partial).why == "the dataset has no intelligence table"
    assert pv.report_day(partial).markdown == "No dated events."
    assert pv.promotion_traffic(bare).why == "the dataset has neither an orders nor a coupon_claims table"
    assert isinstance(pv.new_account_bursts(bare), Shown)  # accounts alone are enough
    assert "redteam_scenario is empty" in pv.red_team_drill(bare, scenario="", size="micro").why
    assert "`no-such-attack`" in pv.red_team_drill(bare, scenario="no-such-attack", size="micro").why
    for scenario in ("", "no-such-attack"):  # no drill: nothing started
        assert pv.start_red_team_drill(bare, scenario=scenario, size="micro") is None
        assert ("red_team_drill", "normal", "micro") not in bare.cache


# --- notebook 02 ----------------------------------------------------------------------------------------


def test_capability_sections_on_micro(ctx):
    feats = cv.feature_distributions(ctx)
    assert [t.caption.split(":")[0] for t in feats] == ["account", "address", "device", "ip", "ip24", "order", "phone"]
    for t in feats:  # identifiers are not features
        assert not any(f == "id" or f.endswith("_id") for f in t.frame["feature"]), t.caption
    arts = cv.run_artifacts(ctx)
    assert not arts.frame["examples"].str.contains("/|parquet").any() and "run results" in set(arts.frame["part"])
    acc = cv.accumulation_factors(ctx)
    rows = {t.caption.split(" on ")[1].split(" (")[0]: t.caption for t in acc}
    assert set(rows) == {"orders", "coupon_claims", "interactions"}
    assert f"({len(ctx.table('orders')):,} rows)" in rows["orders"]
    dev = cv.device_fingerprints(ctx)
    assert [type(x) for x in dev] == [Chart, Table]
    top = dev.of(Table)[0].frame["fingerprint_devices"]
    assert top.is_monotonic_decreasing
    lists = cv.lists(ctx).frame
    assert lists["entries"].sum() == len(ctx.table("list_entries"))


def test_capability_sections_say_what_is_missing(partial, bare):
    assert cv.lists(partial).why == "the dataset has no list_entries table"
    assert cv.run_artifacts(bare).why.startswith("the run directory is empty")
    assert cv.feature_distributions(bare).why == "the run has no features/ folder"
    assert cv.risk_portraits(bare).why == "the run has no scores.parquet"
    assert "devices table" in cv.device_fingerprints(bare).why
    assert cv.accumulation_factors(bare).what == "accumulation factors"
    with pytest.raises(DataValidationError, match="interactions"):  # a required table is missing: an error
        cv.accumulation_factors(partial)


# --- notebook 03 ----------------------------------------------------------------------------------------


def test_identification_sections_on_micro(ctx, run_copy):
    overview = iv.run_overview(ctx)
    assert overview.of(Note)[0].kind == "ok" and not overview.of(Unavailable)
    arms = iv.arms_race(ctx)
    assert [type(x) for x in arms] == [Table, Chart, Chart]
    pd.testing.assert_frame_equal(arms[0].frame, evaluate_run(run_copy, data=micro_data()))
    assert (run_copy / "report" / "identification" / "arms_race.parquet").exists()
    comm = iv.communities(ctx)
    assert [type(x) for x in comm] == [Table, Graph] and "<html" in comm[1].document.lower()
    flags = iv.stage_flags(ctx).of(Table)
    accounts = ctx.artifact("accounts")
    assert flags[1].frame["accounts"].sum() == int(accounts[[c for c in accounts.columns if c in
                                                              ("flagged_behaviour", "flagged_group", "flagged_graph")]]
                                                    .any(axis=1).sum())


def test_identification_sections_say_what_is_missing(partial, bare):
    # without labels and before any review: what to do to get the figures, not "not available"
    assert isinstance(iv.arms_race(partial), Note) and "`--review FILE`" in iv.arms_race(partial).text
    assert iv.arms_race(bare).why == "the run has no accounts.parquet"
    assert iv.run_overview(bare).of(Unavailable)[0].what == "identification results"
    assert iv.communities(bare).what == "communities"
    assert iv.stage_flags(bare).what == "what each stage flags"


# --- notebook 04 ----------------------------------------------------------------------------------------


def test_mitigation_sections_on_micro(ctx):
    assert len(mv.governance_overview(ctx).frame) == 8
    banned = int(ctx.artifact("accounts")["flagged_combined"].sum())
    assert mv.supply_chain(ctx).caption == f"Resources of the {banned:,} banned accounts: touched and burned"
    demoted, restricted = mv.motive(ctx)
    assert demoted.frame["demoted"].all() and restricted.frame["restricted"].all()
    assert demoted.frame["fake_count"].is_monotonic_decreasing
    assert len(mv.purchase_limits(ctx)[0].frame) == 3
    assert mv.scoped_lists(ctx).caption.startswith("Keys listed for promotion ")
    delayed, relation = mv.delayed_interception(ctx)
    assert delayed.frame["act"].tolist() == ["at the next key step", "at the end of the promotion"]
    flagged = int(ctx.artifact("accounts")["flagged_combined"].sum())
    assert (delayed.frame["flagged accounts (combined)"] == flagged).all()
    assert f"{flagged:,} accounts are flagged (combined)" in relation.text
    chart, table = mv.honest_collateral(ctx)
    t = table.frame
    assert isinstance(chart, Chart) and (t["n_fraud"] + t["n_honest"] == t["n_affected"]).all()
    assert mv.layered_decisions(ctx)[0].frame["events"].sum() == len(ctx.artifact("decisions"))


def test_mitigation_sections_say_what_is_missing(partial, bare):
    assert mv.impact(partial) == Unavailable("clean_engagement", "the dataset has no interactions table")
    assert [u.what for u in mv.motive(partial)] == ["demote_notes", "restrict_commerce"]
    touched = mv.honest_collateral(partial)
    assert _only(touched, Table)[0].caption == "What each action touches"
    assert "`--review" in _only(touched, Note)[0].text
    assert isinstance(mv.supply_chain(partial), Table)
    for view in (mv.governance_overview, mv.impact, mv.supply_chain, mv.purchase_limits, mv.scoped_lists,
                 mv.delayed_interception, mv.honest_collateral):
        assert view(bare).why == "the run has no accounts.parquet", view.__name__
    assert mv.layered_decisions(bare).why == "the run has no decisions.parquet"


# --- notebook 05 ----------------------------------------------------------------------------------------


def test_evaluation_sections_on_micro(ctx, run_copy):
    assert ev.how_trained(ctx).kind == "ok"
    table, note = ev.precision_recall(ctx)
    pr = table.frame
    assert "Over all fraud: precision" in note.text
    assert pr["typology"].iloc[-1] == "all_fraud" and (pr["caught"] + pr["leaked"] == pr["n_labelled"]).all()
    leak, relation, chart, note = ev.leakage_and_interception(ctx)
    row = leak.frame.iloc[0]
    assert row["passed (leaked)"] <= row["fraud events"] and row["intercepted"] <= row["all events"]
    assert "leakage counts events" in relation.text
    assert isinstance(chart, Chart) and note.kind in ("ok", "warn")
    assert (run_copy / "report" / "evaluation" / "interception_by_day.parquet").exists()
    burned = ev.cost_to_attackers(ctx).frame.set_index("resource")
    assert burned.loc["accounts", "used_by_flagged"] == int(ctx.artifact("accounts")["flagged_combined"].sum())
    assert ev.closed_loop(ctx, windows=0) == Unavailable("the closed loop", "loop_windows is 0")
    assert ev.loop_memory(ctx, windows=0).why == "loop_windows is 0"
    assert ev.previous_run(ctx).text.startswith("This is the first report with its run data")
    same = nb.setup(ctx.data_dir, run_dir=ctx.run_dir, previous_run_dir=str(ctx.run_dir))
    assert (ev.previous_run(same).frame["change"] == 0).all()


def test_evaluation_sections_say_what_is_missing(partial, bare):
    assert isinstance(ev.precision_recall(partial), Note) and "`fraudkit report --review FILE`" in \
        ev.precision_recall(partial).text
    interception = ev.leakage_and_interception(partial)     # label-free: interception per day, no leakage
    assert _only(interception, Chart) and "Leakage counts the events of fraudulent accounts" in \
        _only(interception, Note)[0].text
    assert ev.leakage_and_interception(bare).why == "the run has no decisions.parquet"
    assert ev.cost_to_attackers(bare).why == "the run has no combined flags"
    assert ev.how_trained(bare).kind == "warn"
