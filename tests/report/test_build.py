"""build_report: failure handling, offline and masked pages, determinism; report helpers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from _report_build import micro_data, micro_report

from fraudkit.perception import monitors as perception
from fraudkit.report import views as runviews
from fraudkit.report.build import STEPS, _run_step, build_report, make_run_id
from fraudkit.report.html import external_resources, make_offline, mask_html

pytestmark = pytest.mark.slow(88)  # about 88 s in all here: the file starts early (tests/conftest.py)


def _tiny_notebooks(folder: Path, *, failing: str | None = None, bodies: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for s in STEPS:
        nbk = nbformat.v4.new_notebook()
        nbk.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        p = nbformat.v4.new_code_cell('data_dir = ""\nrun_dir = ""\nas_of = ""\nseed = 0\nprevious_run_dir = ""')
        p.metadata["tags"] = ["parameters"]
        body = ('raise RuntimeError("boom in step: account phone 13812345678 ip 10.1.2.3")' if s.name == failing
                else (bodies or {}).get(s.name)
                or 'print("rows", len(__import__("pandas").read_parquet(run_dir + "/accounts.parquet")))')
        nbk.cells = [nbformat.v4.new_markdown_cell(f"# {s.title}"), p, nbformat.v4.new_code_cell(body)]
        nbformat.write(nbk, folder / f"{s.name}.ipynb")
    return folder


def test_failing_step_gives_error_page_nonzero_and_keeps_previous_report(tmp_path, monkeypatch):
    """A step that raises: error page, non-zero result, the previous report and latest.html untouched.

    The shared report is the previous good one; scoring is replaced by a copy of its run (cheap).
    """
    import shutil

    import fraudkit.report.build as report

    good = micro_report()
    out = good.report_dir.parent
    before = (good.report_dir / "index.html").read_bytes()
    monkeypatch.setattr(report, "_score", lambda data_dir, run_dir, **kw: shutil.copytree(good.run_dir, run_dir) and [])
    bad = build_report(data=micro_data(), out=out, run_id=good.run_id, seed=0, loop_windows=0,
                       notebooks_dir=_tiny_notebooks(tmp_path / "bad", failing="03_risk_identification"),
                       progress=False)
    assert not bad.ok and bad.report_dir == out / f"{good.run_id}.failed"
    assert [s.ok for s in bad.steps] == [s.name != "03_risk_identification" for s in STEPS]
    page = (bad.report_dir / "03_risk_identification.html").read_text()
    assert "RuntimeError" in page and "boom in step" in page
    assert "13812345678" not in page and "10.1.2.3" not in page  # the traceback is masked
    assert "failed" in (bad.report_dir / "index.html").read_text()
    assert (good.report_dir / "index.html").read_bytes() == before  # previous report intact
    assert f"{good.run_id}/index.html" in (out / "latest.html").read_text()
    assert (good.run_dir / "accounts.parquet").exists() and bad.run_dir != good.run_dir

    from click.testing import CliRunner

    from fraudkit.cli import main

    r = CliRunner().invoke(main, ["report", "--data", str(micro_data()), "--out", str(tmp_path / "o"),
                                  "--run-id", "r2", "--date", "not-a-date"])
    assert r.exit_code != 0


def test_no_published_file_holds_raw_personal_data():
    """Every file of the report folder (pages, manifest, notebooks) is free of the data's phones and IPs."""
    res = micro_report()
    data = micro_data()
    phones = set(pd.read_parquet(data / "accounts.parquet")["phone"].dropna().astype(str))
    ips = set()
    for table, cols in (("orders", ["ip", "receiver_phone"]), ("interactions", ["ip"]), ("logins", ["ip"])):
        t = pd.read_parquet(data / f"{table}.parquet", columns=cols)
        for c in cols:
            (phones if "phone" in c else ips).update(t[c].dropna().astype(str))
    files = [p for p in res.report_dir.rglob("*") if p.is_file()]
    assert {p.name for p in res.report_dir.glob("*.html")} == {"index.html", *(s.page for s in STEPS)}
    assert not any(p.suffix == ".parquet" for p in files) and not (res.report_dir / "run").exists()
    assert {p.name for p in (res.report_dir / "notebooks").iterdir()} == {f"{s.name}.ipynb" for s in STEPS}
    for p in files:
        visible = re.sub(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+", "", p.read_text(errors="ignore"))
        tokens = set(re.findall(r"(?<!\d)\d{11}(?!\d)|\d{1,3}(?:\.\d{1,3}){3}", visible))
        assert not tokens & phones, p
        assert not tokens & ips, p
    # the private run directory does hold raw keys: the check above is not vacuous
    raw = pd.read_parquet(res.run_dir / "features" / "ip.parquet")
    assert set(raw.iloc[:, 0].astype(str)) & ips


def test_pages_are_offline_and_small():
    res = micro_report()
    for p in sorted(res.report_dir.glob("*.html")):
        text = p.read_text()
        assert external_resources(text) == [], p.name
        assert p.stat().st_size < 10_000_000
        visible = re.sub(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+", "", text)
        assert "def " not in visible or "<pre" in visible  # no code cells shown (inputs excluded)


def test_index_has_key_numbers_arms_race_loop_and_links():
    res = micro_report()
    html = res.index_path.read_text()
    for s in STEPS:
        assert f'href="{s.page}"' in html
    for label in ("accounts flagged (combined)", "precision (combined)", "fraud recall (combined)",
                  "leakage rate (fraud events passed)", "interception rate"):
        assert label in html, label
    assert html.index("Key numbers") < html.index("The arms-race table") < html.index("The closed loop") \
        < html.index("Top-risk communities") < html.index("The five steps")
    assert 'class="fk-arms"' in html and "false-positive rate" in html
    assert 'alt="Closed loop recall and precision by iteration"' in html
    assert "training world <code>micro</code>" in html and "neither the models nor the thresholds saw" in html  # where models were fitted
    assert "&lt;table" not in html  # tables are rendered, not escaped
    assert "Run manifest" in html and "fingerprint" in html and res.manifest["versions"]["pandas"]
    manifest_part = html[html.index("Run manifest"):]  # parameters and timings in words, not JSON
    assert "<th>Closed-loop windows</th>" in manifest_part and "<th>Stages</th>" in manifest_part
    assert "behaviour, group, graph" in manifest_part and "not set" in manifest_part
    assert "<td>1. Risk perception</td>" in manifest_part and "<td>Scoring the dataset</td>" in manifest_part
    assert not re.search(r"\bnull\b|&#34;|\[&#39;|01_risk_perception</td>|T\d\d:\d\d:\d\d", manifest_part)
    assert res.manifest["train_fingerprint"] and res.manifest["parameters"]["loop_windows"] == 2


def test_without_training_data_the_index_says_so(tmp_path):
    from fraudkit.report.summary import summarise_run

    res = micro_report()
    run = tmp_path / "run"
    import shutil

    shutil.copytree(res.run_dir, run)
    man = json.loads((run / "manifest.json").read_text())
    man["train"] = None
    (run / "manifest.json").write_text(json.dumps(man))
    s = summarise_run(run, micro_data())
    assert any(n["kind"] == "warn" and "No training data" in n["text"] for n in s.notes)


def test_same_inputs_give_identical_step_pages(tmp_path):
    res = micro_report()
    params = {"data_dir": str(micro_data()), "run_dir": str(res.run_dir), "train_dir": str(micro_data(1000)),
              "as_of": "2024-11-11", "seed": 0, "previous_run_dir": ""}
    step = STEPS[2]  # identification: tables, heat maps and the pyvis community picture
    from fraudkit.report.build import mask_key, notebook_dir, training_source

    again = _run_step(step, notebook_dir() / f"{step.name}.ipynb", tmp_path, params, run_id="test-run", timeout=600,
                      key=mask_key(res.report_dir.parent), run_dir=tmp_path / "private",
                      source=training_source(micro_data(1000)))
    assert again.ok, again.error
    assert (tmp_path / step.page).read_bytes() == (res.report_dir / step.page).read_bytes()


def test_make_offline_and_external_resources():
    page = ('<link rel="stylesheet" href="https://cdn.example/x.css"><script src="//cdn.example/y.js"></script>'
            '<img src="data:image/png;base64,AAAA"><a href="https://example.org">docs</a>'
            '<style>@import url("https://fonts.example/f.css");</style>')
    assert len(external_resources(page)) == 3
    clean, removed = make_offline(page)
    assert external_resources(clean) == [] and len(removed) == 3 and "data:image/png" in clean


def test_mask_html_keeps_images_intact():
    uri = "data:image/png;base64,13812345678AbC="
    out = mask_html(f"<p>13812345678 and 192.168.1.20</p><img src=\"{uri}\">")
    assert "13812345678 " not in out and "192.168.1.20" not in out and uri in out


def test_run_id_depends_on_date_data_and_parameters():
    a = make_run_id("2024-11-11", "abcdef123456", {"seed": 0})
    assert a.startswith("2024-11-11-abcdef12-")
    assert a != make_run_id("2024-11-11", "abcdef123456", {"seed": 1})
    assert a != make_run_id("2024-11-12", "abcdef123456", {"seed": 0})


def test_monitors_flag_what_they_should():
    ts = pd.date_range("2024-01-01", periods=10, freq="D").repeat(5).append(pd.DatetimeIndex(["2024-01-11"] * 60))
    inter = pd.DataFrame({"ts": ts, "action": "like", "target_id": 1})
    spikes = perception.engagement_spikes(inter)
    assert spikes["day"].tolist() == [pd.Timestamp("2024-01-11")]
    views = pd.DataFrame({"ts": pd.Timestamp("2024-01-01"), "target_id": np.repeat(np.arange(6), 30),
                          "action": ["view"] * 30 * 5 + ["like"] * 30})
    likes = pd.DataFrame({"ts": pd.Timestamp("2024-01-01"), "target_id": np.repeat(np.arange(5), 22), "action": "like"})
    ratio = perception.like_view_ratio(pd.concat([views, likes]))
    assert ratio.loc[ratio["outlier"], "note_id"].tolist() == [5]  # 30 likes and no views
    reg = pd.DataFrame({"registered_at": pd.date_range("2024-01-01", periods=30, freq="D").repeat(3)
                        .append(pd.DatetimeIndex(["2024-01-31"] * 50)), "register_channel": "app"})
    bursts = perception.new_account_bursts(reg)
    assert bursts.loc[bursts["burst"] & (bursts["register_channel"] == "all"), "day"].tolist() == [pd.Timestamp("2024-01-31")]


def test_views_are_consistent():
    acc = pd.DataFrame({"flagged_behaviour": [True, True, False, True], "flagged_graph": [True, False, False, True]})
    assert runviews.stage_overlap(acc).values.tolist() == [["behaviour + graph", 2], ["behaviour", 1]]
    daily = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=8),
                          "interception_rate": [.6, .62, .58, .6, .61, .59, .6, .2]})
    warn = runviews.early_warning(daily)
    assert warn.days == ["2024-01-08"] and 0.2 < warn.threshold < 0.6
    with pytest.raises(KeyError):
        runviews.decision_events(pd.DataFrame({"decision": ["pass"]}), micro_data())


def test_red_team_drill_compares_the_attack_with_the_normal_world_of_the_same_size(tmp_path):
    from fraudkit.simulation import load_scenario

    spec = load_scenario(perception.drill_scenario("evasive", size="micro", out=tmp_path))
    micro, evasive = load_scenario("micro"), load_scenario("evasive")
    assert spec.population == micro.population and spec.days == micro.days
    assert spec.attackers.device_farm.campaigns == micro.attackers.device_farm.campaigns  # the world's size
    assert spec.attackers.device_farm.ip_scatter == evasive.attackers.device_farm.ip_scatter  # the attack's evasion
    drill = perception.red_team_drill("evasive", work_dir=tmp_path / "w", seed=3, stages=("behaviour",), size="micro")
    assert not drill.trained and drill.normal is not None
    c = drill.comparison.set_index("typology")
    assert {"device_farm", "coupon_abuser", "all_fraud"} <= set(c.index)
    assert np.allclose(c["extra_leakage"], c["leakage_rate_attack"] - c["leakage_rate_normal"], equal_nan=True)
    assert (c["n_attack"] > 0).all()
    assert "**evasive**" in perception.drill_headline(drill)


def test_prune_runs_keeps_newest_private_runs_and_every_published_report(tmp_path):
    from fraudkit.errors import FraudkitError
    from fraudkit.report.build import prune_runs

    out = tmp_path / "reports"
    runs = out / ".runs"
    for i, name in enumerate(["r1", "r2", "r3", "r4", "r5.failed", "r6.failed"]):
        (out / name).mkdir(parents=True)
        man = {"ok": not name.endswith(".failed"), "finished_at": f"2024-11-1{i}T00:00:00+00:00"}
        (out / name / "manifest.json").write_text(json.dumps(man))
        (runs / name).mkdir(parents=True)
        (runs / name / "accounts.parquet").write_text("raw")
    (runs / "orphan").mkdir()                      # its report folder is gone
    (runs / ".r7.building").mkdir()                # a build in progress is never touched

    removed = prune_runs(out, keep=2)

    assert [p.name for p in removed] == ["orphan", "r1", "r2"]
    assert sorted(p.name for p in runs.iterdir()) == [".r7.building", "r3", "r4", "r5.failed", "r6.failed"]
    assert all((out / n / "manifest.json").exists() for n in ["r1", "r2", "r3", "r4"])
    assert prune_runs(out, keep=2) == []
    with pytest.raises(FraudkitError, match="keep-runs"):
        prune_runs(out, keep=0)


def test_each_phase_is_announced_as_it_starts_and_ends():
    """`fraudkit report` says when a phase starts, that it is still running, and when it ends."""
    import time

    from fraudkit.report.build import _phase

    said = []
    with _phase(said.append, "scoring", every=0.05):
        time.sleep(0.18)
    assert said[0] == "scoring ..." and said[-1].startswith("scoring: done (")
    assert any("still running" in s for s in said[1:-1])


def test_scoring_reports_its_phases_to_the_report_progress(monkeypatch, tmp_path):
    """The scoring's own phases (stage, step, rows, elapsed) reach `fraudkit report`'s progress lines."""
    import io
    from types import SimpleNamespace

    import fraudkit.report.build as report
    from fraudkit.pipeline.progress import Progress

    seen = {}
    monkeypatch.setattr(report, "score_dataset", lambda *a, **kw: seen.update(kw) or SimpleNamespace(notes=["n"]))
    tracker = Progress("report", stream=io.StringIO(), animate=False)
    assert report._score(tmp_path, tmp_path / "run", stages=["behaviour"], seed=0, progress=tracker) == ["n"]
    assert seen["progress"] is tracker


def test_the_closed_loop_runs_beside_steps_2_to_4_and_step_5_finds_it(tmp_path, monkeypatch, capsys):
    """The report starts step 5's closed loop in a second process once step 1 has ended, waits for it before step 5,
    and step 5 finds it where it looks, made with its windows and seed on its data."""
    import shutil

    import fraudkit.report.build as report

    good = micro_report()
    monkeypatch.setattr(report, "_score", lambda data_dir, run_dir, **kw: shutil.copytree(
        good.run_dir, run_dir, ignore=shutil.ignore_patterns("report")) and [])  # no loop in the copy
    step5 = ("from fraudkit.evaluation.loop import finished_loop\n"
             "from fraudkit.report.notebook import loop_folder\n"
             "loop = finished_loop(loop_folder(run_dir), data_dir, n_windows=loop_windows, seed=seed)\n"
             "assert loop is not None and loop.summary['iteration'].tolist() == [0, 1], 'no loop'")
    res = build_report(data=micro_data(), out=tmp_path / "reports", run_id="r", seed=0, loop_windows=2,
                       notebooks_dir=_tiny_notebooks(tmp_path / "nb", bodies={STEPS[-1].name: step5}), progress=True)
    assert res.ok, [s.error for s in res.steps]
    said = capsys.readouterr().err
    started = said.index("closed loop (2 windows, for step 5) started in a second process")
    assert said.index(f"{STEPS[0].name} ok") < started < said.index(f"step 2/{len(STEPS)} {STEPS[1].name} started")


def test_step_5_reads_the_loop_the_report_started_and_runs_its_own_otherwise(tmp_path, monkeypatch):
    import shutil

    from fraudkit.evaluation.loop import LoopResult
    from fraudkit.report import evaluation_views as ev
    from fraudkit.report.notebook import Context, loop_folder

    good = micro_report()  # built with loop_windows=2, seed 0
    run = tmp_path / "run"
    shutil.copytree(loop_folder(good.run_dir), loop_folder(run))

    def boom(*a, **kw):
        raise RuntimeError("ran the loop again")

    monkeypatch.setattr(ev, "run_closed_loop", boom)
    got = ev._loop_result(Context(micro_data(), run, seed=0), 2)
    pd.testing.assert_frame_equal(got.summary, LoopResult.load(loop_folder(good.run_dir)).summary)
    for other in (Context(micro_data(), run, seed=1), Context(micro_data(1000), run, seed=0)):
        with pytest.raises(RuntimeError, match="ran the loop again"):
            ev._loop_result(other, 2)
    with pytest.raises(RuntimeError, match="ran the loop again"):
        ev._loop_result(Context(micro_data(), run, seed=0), 3)
