"""build_report: failure handling, offline and masked pages, determinism; report helpers."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from fraudkit import perception, runviews
from fraudkit.report import STEPS, _run_step, build_report, make_run_id
from fraudkit.report_html import external_resources, make_offline, mask_html

from _report_build import micro_data, micro_report


def _tiny_notebooks(folder: Path, *, failing: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for s in STEPS:
        nbk = nbformat.v4.new_notebook()
        nbk.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        p = nbformat.v4.new_code_cell('data_dir = ""\nrun_dir = ""\nas_of = ""\nseed = 0\nprevious_run_dir = ""')
        p.metadata["tags"] = ["parameters"]
        body = ('raise RuntimeError("boom in step: account phone 13812345678 ip 10.1.2.3")' if s.name == failing
                else 'print("rows", len(__import__("pandas").read_parquet(run_dir + "/accounts.parquet")))')
        nbk.cells = [nbformat.v4.new_markdown_cell(f"# {s.title}"), p, nbformat.v4.new_code_cell(body)]
        nbformat.write(nbk, folder / f"{s.name}.ipynb")
    return folder


def test_failing_step_gives_error_page_nonzero_and_keeps_previous_report(tmp_path):
    data, out = micro_data(), tmp_path / "reports"
    good = build_report(data=data, out=out, run_id="r1", notebooks_dir=_tiny_notebooks(tmp_path / "ok"),
                        progress=False)
    assert good.ok and (out / "latest.html").read_text().count("r1/index.html") >= 1
    before = (out / "r1" / "index.html").read_bytes()
    bad = build_report(data=data, out=out, run_id="r1", seed=0,
                       notebooks_dir=_tiny_notebooks(tmp_path / "bad", failing="03_risk_identification"),
                       progress=False)
    assert not bad.ok and bad.report_dir == out / "r1.failed"
    assert [s.ok for s in bad.steps] == [s.name != "03_risk_identification" for s in STEPS]
    page = (out / "r1.failed" / "03_risk_identification.html").read_text()
    assert "RuntimeError" in page and "boom in step" in page
    assert "13812345678" not in page and "10.1.2.3" not in page  # the traceback is masked
    assert "failed" in (out / "r1.failed" / "index.html").read_text()
    assert (out / "r1" / "index.html").read_bytes() == before  # previous report intact
    assert "r1/index.html" in (out / "latest.html").read_text()

    from click.testing import CliRunner
    from fraudkit.cli import main

    r = CliRunner().invoke(main, ["report", "--data", str(data), "--out", str(out), "--run-id", "r2",
                                  "--date", "not-a-date"])
    assert r.exit_code != 0


def test_pages_are_offline_small_and_masked():
    res = micro_report()
    accounts = pd.read_parquet(micro_data() / "accounts.parquet")
    inter = pd.read_parquet(micro_data() / "interactions.parquet")
    phones = set(accounts["phone"].dropna().astype(str))
    ips = set(inter["ip"].dropna().astype(str))
    pages = sorted(res.report_dir.glob("*.html"))
    assert {p.name for p in pages} == {"index.html", *(s.page for s in STEPS)}
    for p in pages:
        text = p.read_text()
        assert external_resources(text) == [], p.name
        assert "cdn" not in text.lower() or "cdnjs" not in text.lower()
        assert p.stat().st_size < 10_000_000
        visible = re.sub(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+", "", text)
        tokens = set(re.findall(r"\d{11}|\d{1,3}(?:\.\d{1,3}){3}", visible))
        assert not tokens & phones, p.name
        assert not tokens & ips, p.name
        assert "def " not in visible or "<pre" in visible  # no code cells shown (inputs excluded)


def test_index_has_key_numbers_links_and_manifest():
    res = micro_report()
    html = res.index_path.read_text()
    for s in STEPS:
        assert f'href="{s.page}"' in html
    assert "accounts flagged (combined)" in html and "fraud recall (combined)" in html
    assert "&lt;table" not in html  # tables are rendered, not escaped
    assert "Run manifest" in html and "fingerprint" in html and res.manifest["versions"]["pandas"]


def test_same_inputs_give_identical_step_pages(tmp_path):
    res = micro_report()
    params = {"data_dir": str(micro_data()), "run_dir": str(res.report_dir / "run"), "as_of": "2024-11-11",
              "seed": 0, "previous_run_dir": "", "redteam_scenario": ""}
    step = STEPS[2]  # identification: tables, heat maps and the pyvis community picture
    from fraudkit.report import mask_key, notebook_dir

    again = _run_step(step, notebook_dir() / f"{step.name}.ipynb", tmp_path, params, run_id="test-run", timeout=600,
                      key=mask_key(res.report_dir.parent))
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
