"""A micro dataset whose free-text columns carry markup and spreadsheet-formula payloads, and its report.

Built once per test session (shared by test_build and test_browser). The payloads are what an attacker who
controls a promotion name, a list name, a shipping address or a device model would type; none may reach a
published page as live markup (the report escapes every value it shows).
"""

from __future__ import annotations

import functools
from html.parser import HTMLParser
import tempfile
from pathlib import Path

import pandas as pd
from _report_build import micro_data, shared

SCRIPT = "<script>document.title='X'</script>"
IMG = '"><img src=x onerror=alert(1)>'
SVG = "<svg onload=alert(1)>"
FORMULA = '=HYPERLINK("http://evil.example","x")'
PAYLOADS = (SCRIPT, IMG, SVG, FORMULA)

# table -> {column: payload}: every free-text column a page may show
_FREE_TEXT = {
    "promotions": {"name": SCRIPT},
    "list_entries": {"list_name": IMG, "reason": SCRIPT},
    "orders": {"address": SVG},
    "devices": {"model": IMG, "os_version": SCRIPT, "screen": SVG, "app_version": FORMULA},
    "notes": {"category": SCRIPT},
    "merchants": {"category": IMG},
    "products": {"category": SVG},
    "intelligence": {"item": SCRIPT, "source": IMG},
    "accounts": {"register_channel": FORMULA},
}


@functools.lru_cache(maxsize=None)
def hostile_data() -> Path:
    """A copy of the micro dataset with payloads in every free-text column (a third to all of the rows)."""
    return shared("hostile-data", _write_hostile_data)


def _write_hostile_data() -> Path:
    src = micro_data()
    out = Path(tempfile.mkdtemp(prefix="fk-hostile-data-")) / "hostile"
    out.mkdir()
    for p in sorted(src.iterdir()):
        if p.suffix != ".parquet":
            continue
        df = pd.read_parquet(p)
        for col, payload in _FREE_TEXT.get(p.stem, {}).items():
            every = 1 if len(df) < 30 else 3
            rows = df.index[::every]
            df.loc[rows, col] = payload + df.loc[rows, col].astype(str)
        if p.stem == "list_entries":  # a scope is global, promotion:<id> or scene:<free text>
            df.loc[df.index[1::3], "scope"] = "scene:" + IMG
        df.to_parquet(out / p.name, index=False)
    return out


@functools.lru_cache(maxsize=None)
def hostile_report():
    """The report of :func:`hostile_data` (no drill, no loop: the pages, not the numbers, are under test)."""
    def build():
        from fraudkit.report.build import build_report

        out = Path(tempfile.mkdtemp(prefix="fk-hostile-")) / "reports"
        return build_report(data=hostile_data(), train=micro_data(1000), out=out, seed=0, as_of="2024-11-11",
                            run_id="hostile-run", loop_windows=0,
                            parameters={"redteam_scenario": ""}, progress=False)

    return shared("hostile-report", build)


class _Live(HTMLParser):
    """Collects what a browser would run: tags, event-handler attributes, script bodies (srcdoc documents too)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found, self._in_script = [], False

    def handle_starttag(self, tag, attrs):
        if tag == "svg" or (tag == "img" and ("src", "x") in attrs):
            self.found.append(f"<{tag} {attrs}>")
        for k, v in attrs:
            if k.startswith("on"):
                self.found.append(f"<{tag} {k}={v!r}>")
            if k == "srcdoc" and v:
                self.found += live_payloads(v)
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.lstrip().startswith("document.title="):
            self.found.append(f"<script>{data[:60]}")


def live_payloads(markup: str) -> list[str]:
    """The payload markup a browser would turn into live elements or handlers in ``markup`` (and its srcdocs)."""
    parser = _Live()
    parser.feed(markup)
    parser.close()
    return parser.found
