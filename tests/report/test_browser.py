"""Open the report in headless Chromium: no console errors, no network requests, a screenshot to look at."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _report_build import micro_report

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")]


@pytest.mark.parametrize("page", ["index.html", "03_risk_identification.html"])
def test_page_loads_offline_without_errors(page, tmp_path):
    from playwright.sync_api import sync_playwright

    res = micro_report()
    assert res.ok
    url = (res.report_dir / page).resolve().as_uri()
    errors, remote = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1280, "height": 900})
            pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.on("request", lambda r: remote.append(r.url)
                  if not r.url.startswith(("file://", "data:", "about:")) else None)
            pg.goto(url, wait_until="load")
            pg.wait_for_timeout(1500)  # let the graph's physics settle
            shot = res.report_dir.parent / f"screenshot-{page.removesuffix('.html')}.png"
            pg.screenshot(path=str(shot), full_page=page == "index.html")
            assert pg.title()
            if page.startswith("03"):
                frame = pg.frame_locator("iframe.fk-graph")
                assert frame.locator("canvas").count() >= 1  # vis-network drew the graph
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    assert errors == []
    assert remote == []
