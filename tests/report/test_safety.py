"""Nothing injected, nothing lost: data never runs as markup in a page, and report outputs stay where they belong.

Markup in the data (:mod:`_hostile`) is escaped in every published page and the pages carry a
Content-Security-Policy that only lets the kit's own signed scripts run; run ids are one safe folder name; the
reports folder is locked while a report is built, cleaned of killed builds' leftovers, and kept apart from the
data; a failed build says why on the command line.
"""

from __future__ import annotations

import fcntl
import os
import stat

import nbformat
import pandas as pd
import pytest
from _hostile import IMG, SCRIPT, SVG, hostile_report, live_payloads
from _report_build import micro_data, micro_report
from click.testing import CliRunner

from fraudkit.cli import main
from fraudkit.errors import OutputError
from fraudkit.report.build import LOCK, STEPS, build_report
from fraudkit.report.display import Graph, Table, Text
from fraudkit.report.html import content_security_policy, embed_html, render_page


def test_hostile_data_is_shown_as_text_in_every_published_page():
    res = hostile_report()
    assert res.ok
    pages = sorted(res.report_dir.glob("*.html"))
    assert {p.name for p in pages} == {"index.html", *(s.page for s in STEPS)}
    shown = ""
    for p in pages:
        text = p.read_text()
        assert live_payloads(text) == [], p.name
        assert '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; script-src' in text, p.name
        shown += text
    # the payloads are on the pages, as text: escaping, not dropping, kept them readable
    assert "&lt;script&gt;document.title='X'&lt;/script&gt;" in shown  # promotion name, step 1
    assert "&lt;img src=x onerror=alert(1)&gt;" in shown  # list names, device models
    for nb in sorted((res.report_dir / "notebooks").glob("*.ipynb")):  # the masked notebooks as published
        for cell in nbformat.read(nb, as_version=4).cells:
            for out in cell.get("outputs", []):
                assert live_payloads(str((out.get("data") or {}).get("text/html", ""))) == [], nb.name
                assert SCRIPT not in str((out.get("data") or {}).get("text/markdown", "")), nb.name


def test_table_escapes_values_headers_and_masked_addresses():
    frame = pd.DataFrame({"address": [SVG + " Road 1"], "promotion": [SCRIPT], IMG: [1.5]})
    html = Table(frame, caption=IMG).html()
    assert live_payloads(html) == [] and "<script>" not in html and "<svg" not in html
    assert "&lt;svg o… #" in html  # masked first (6 characters and a keyed tag kept), then escaped
    assert "&lt;script&gt;" in html and ">1.50<" in html
    assert Text(f"drill **{SCRIPT}**")._repr_markdown_() == "drill **&lt;script&gt;document.title='X'&lt;/script&gt;**"


def test_page_escapes_run_id_and_title_and_allows_only_signed_scripts():
    page = render_page("<p>body</p>", title=SCRIPT, run_id=IMG, steps=[{"name": IMG, "number": "1", "title": SCRIPT,
                                                                      "page": "x.html", "ok": True}],
                       current="index", version="0", key="k")
    assert live_payloads(page) == [] and "<script>" not in page and "<p>body</p>" in page
    assert "script-src 'none'" in page
    doc = "<html><body><script>draw()</script></body></html>"
    graph = Graph(doc, title="g").html()  # signed with the notebook's key
    signed = embed_html(doc, title="g", key="k")
    assert "'sha256-" in content_security_policy(signed, key="k")
    assert "script-src 'none'" in content_security_policy(signed, key="another key")  # a forged iframe adds nothing
    forged = signed.replace("draw()", "alert(1)").replace('data-fk-scripts="', 'data-fk-scripts="\'sha256-AAAA\' ')
    assert "sha256-AAAA" not in content_security_policy(forged, key="k")
    assert 'data-fk-signature="' in graph


@pytest.mark.parametrize("run_id", [".", "..", "../escape", "a/b", ".hidden", "<script>"])
def test_unsafe_run_id_is_refused_and_the_reports_folder_is_untouched(run_id, tmp_path):
    out = tmp_path / "reports"
    (out / "earlier").mkdir(parents=True)
    (out / "earlier" / "index.html").write_text("earlier report")
    (out / ".mask-key").write_text("k")
    r = CliRunner().invoke(main, ["report", "--data", str(micro_data()), "--out", str(out), "--run-id", run_id])
    assert r.exit_code != 0
    assert f"run id {run_id!r} is not a safe folder name" in r.output and "e.g. 2026-12-02-demo" in r.output
    assert (out / "earlier" / "index.html").read_text() == "earlier report" and (out / ".mask-key").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]  # nothing published beside it


def test_reports_folder_may_not_be_inside_or_contain_the_data(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "accounts.parquet").write_bytes(b"")
    for out, rel in ((data / "reports", "is inside"), (tmp_path, "contains"), (data, "is")):
        with pytest.raises(OutputError, match=f"output folder {out} {rel} the input {data}"):
            build_report(data=data, out=out, run_id="r", progress=False)
    assert sorted(p.name for p in data.iterdir()) == ["accounts.parquet"]  # the input is untouched


def test_a_second_build_into_the_same_reports_folder_is_refused(tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another `fraudkit report` holds it
        r = CliRunner().invoke(main, ["report", "--data", str(micro_data()), "--out", str(out), "--run-id", "r"])
    finally:
        os.close(fd)
    assert r.exit_code != 0
    assert "another fraudkit report is being built in" in r.output and "pass another --out" in r.output


def test_failed_scoring_says_why_and_leftovers_of_killed_builds_are_removed(tmp_path):
    """`--data notebooks` (not a dataset): the command prints the reason; a killed build's raw data is gone."""
    out = tmp_path / "reports"
    leftovers = [out / ".r.a1b2.tmp", out / ".runs" / ".r.building", out / ".runs" / ".old.building",
                 out / ".r2.old-123"]
    for d in leftovers:
        d.mkdir(parents=True)
        (d / "raw.parquet").write_bytes(b"raw, unmasked")
    (out / ".latest.html.x1.tmp").write_text("half")
    (out / ".runs" / "kept").mkdir()
    not_data = tmp_path / "notebooks"
    not_data.mkdir()
    (not_data / "01.ipynb").write_text("{}")
    r = CliRunner().invoke(main, ["report", "--data", str(not_data), "--out", str(out), "--run-id", "r",
                                  "--loop-windows", "0"])
    assert r.exit_code == 1
    line = next(ln for ln in r.output.splitlines() if "scoring failed:" in ln)
    assert "DataValidationError" in line, r.output
    assert "missing required table accounts" in r.output and "Fix: add accounts.parquet" in r.output  # the message
    assert not any(p.exists() for p in leftovers) and not (out / ".latest.html.x1.tmp").exists()
    assert (out / ".runs" / "kept").is_dir() and (out / "r.failed" / "index.html").exists()
    assert (not_data / "01.ipynb").read_text() == "{}"


def test_published_files_share_one_mode_and_private_ones_stay_private():
    res = micro_report()
    out = res.report_dir.parent
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(out / "latest.html") == 0o644
    for p in [res.report_dir, *res.report_dir.rglob("*")]:
        assert mode(p) == (0o755 if p.is_dir() else 0o644), p
    assert mode(out / ".runs") == 0o700  # raw, unmasked run data
    if (out / ".mask-key").exists():
        assert mode(out / ".mask-key") == 0o600
    assert '<meta http-equiv="Content-Security-Policy"' in (out / "latest.html").read_text()
