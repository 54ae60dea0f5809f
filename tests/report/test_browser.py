"""Open the report in headless Chromium: no console errors, no network requests, no injected script running.

Every page of the shared micro report and of a report on hostile data (markup and formula payloads in every
free-text column, :mod:`_hostile`) is opened: no dialog fires, the title stays the kit's, the
Content-Security-Policy meta tag is there, and the embedded graph still draws under that policy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _hostile import hostile_report
from _report_build import micro_report

from fraudkit.report.build import STEPS

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGES = ["index.html", *(s.page for s in STEPS)]

pytestmark = [pytest.mark.browser, pytest.mark.slow(65),  # about 65 s here: starts early (tests/conftest.py)
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")]


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module; every page opens in its own fresh context (no shared state)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _open(browser, page_path: Path, *, screenshot: Path | None = None, graph: bool = False) -> dict:
    """Load one page offline; what happened: console errors, remote requests, dialogs, title, CSP, canvases."""
    seen = {"errors": [], "remote": [], "dialogs": []}
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        pg = context.new_page()
        pg.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: seen["errors"].append(str(e)))
        pg.on("request", lambda r: seen["remote"].append(r.url)
              if not r.url.startswith(("file://", "data:", "about:")) else None)

        def _dialog(d):
            seen["dialogs"].append(d.message)
            d.dismiss()

        pg.on("dialog", _dialog)
        pg.goto(page_path.resolve().as_uri(), wait_until="load")
        pg.wait_for_timeout(1500 if graph else 300)  # let the graph's physics settle
        if screenshot is not None:
            pg.screenshot(path=str(screenshot), full_page=page_path.name == "index.html")
        seen["title"] = pg.title()
        seen["csp"] = pg.locator('meta[http-equiv="Content-Security-Policy"]').get_attribute("content")
        seen["canvases"] = pg.frame_locator("iframe.fk-graph").locator("canvas").count() if graph else 0
    finally:
        context.close()
    return seen


@pytest.mark.parametrize("page", ["index.html", "03_risk_identification.html"])
def test_page_loads_offline_without_errors(page, browser):
    res = micro_report()
    assert res.ok
    shot = res.report_dir.parent / f"screenshot-{page.removesuffix('.html')}.png"
    seen = _open(browser, res.report_dir / page, screenshot=shot, graph=page.startswith("03"))
    assert seen["title"]
    if page.startswith("03"):
        assert seen["canvases"] >= 1  # vis-network drew the graph: the CSP lets the kit's own scripts run
    assert shot.stat().st_size > 10_000
    assert seen["errors"] == []
    assert seen["remote"] == []


@pytest.mark.parametrize("page", PAGES)
def test_data_payloads_do_not_run_in_any_page(page, browser):
    """Markup in promotion names, list names, addresses, device models...: shown as text, never run."""
    res = hostile_report()
    assert res.ok
    seen = _open(browser, res.report_dir / page, graph=page.startswith("03"))
    assert seen["dialogs"] == []  # no onerror=alert(1) fired
    assert seen["title"] != "X" and "fraudkit report hostile-run" in seen["title"]  # no <script> ran
    assert seen["csp"] and "default-src 'none'" in seen["csp"] and "script-src" in seen["csp"]
    assert "'unsafe-inline'" not in seen["csp"].split("script-src")[1].split(";")[0]
    assert seen["errors"] == [] and seen["remote"] == []
    if page.startswith("03"):
        assert seen["canvases"] >= 1


_OVERFLOW_JS = """() => {
  const main = document.querySelector('main');
  const cs = getComputedStyle(main);
  const right = main.getBoundingClientRect().right - parseFloat(cs.paddingRight) + 1;
  const scrolls = el => { for (let a = el.parentElement; a && a !== main; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden') return true; }
    return false; };
  const out = [];
  for (const el of main.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.right <= right || scrolls(el)) continue;
    const cls = el.className && typeof el.className === 'string' ? '.' + el.className.split(' ')[0] : '';
    out.push(el.tagName.toLowerCase() + cls
             + ' ' + Math.round(r.right - right) + 'px: ' + (el.textContent || '').trim().slice(0, 60));
  }
  return {items: out.slice(0, 10), pageWidth: document.documentElement.scrollWidth};
}"""


def _overflow(browser, page_path: Path, width: int = 1280) -> dict:
    """Elements of the page column wider than the column at ``width`` px (outside a box that scrolls)."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        pg = context.new_page()
        pg.goto(page_path.resolve().as_uri(), wait_until="load")
        pg.wait_for_timeout(200)
        return pg.evaluate(_OVERFLOW_JS)
    finally:
        context.close()


@pytest.mark.parametrize("page", PAGES)
def test_nothing_is_wider_than_the_page_column_at_1280px(page, browser):
    """Wide tables scroll inside their own box; figures, notes and graphs fit the column; no sideways page scroll."""
    res = micro_report()
    seen = _overflow(browser, res.report_dir / page)
    assert seen["items"] == [], seen["items"]
    assert seen["pageWidth"] <= 1280


def test_width_check_catches_a_table_outside_its_box(tmp_path, browser):
    """The check itself: a wide table without its scrolling box is caught."""
    from fraudkit.report.html import render_page

    cells = "".join(f"<td>column-number-{i}</td>" for i in range(40))
    page = tmp_path / "wide.html"
    page.write_text(render_page(f"<table><tr>{cells}</tr></table>", title="w", run_id="r", steps=[],
                                current="index", version="0"))
    assert _overflow(browser, page)["items"]
    page.write_text(render_page(f'<div class="fk-table"><table><tr>{cells}</tr></table></div>', title="w",
                                run_id="r", steps=[], current="index", version="0"))
    assert _overflow(browser, page)["items"] == []
