"""HTML for the report: executed notebook -> offline, masked, code-free page.

Used by :mod:`fraudkit.report.build`. Three guarantees every page gets here:

* **no code**: nbconvert runs with ``exclude_input`` (markdown and outputs only);
* **offline**: the page is self-contained (the ``basic`` nbconvert template, our own
  CSS inlined, images as ``data:`` URIs) and :func:`make_offline` removes any tag
  that would still fetch something from the network (a CDN script in embedded
  HTML, say); :func:`external_resources` finds what is left, for tests;
* **masked**: :func:`mask_html` runs :func:`fraudkit.report.masking.mask_text` over the
  text of the final page as a last line of defence (``data:`` URIs are left
  intact, so images survive).
"""

from __future__ import annotations

import html as _html
import re
from importlib import resources

from fraudkit.report.masking import mask_text

__all__ = [
    "render_notebook_body",
    "render_page",
    "make_offline",
    "external_resources",
    "mask_html",
    "mask_notebook",
    "embed_html",
    "css",
]

_EXTERNAL = r"(?:https?:)?//[^\s\"'<>)]+"
# tags whose src/href makes the browser fetch something
_FETCH_TAG = re.compile(
    r"<(script|link|img|iframe|source|embed|object|video|audio)\b[^>]*?\b(?:src|href|data)\s*=\s*[\"']?"
    + _EXTERNAL + r"[^>]*>(?:\s*</\1>)?", re.IGNORECASE | re.DOTALL)
_CSS_URL = re.compile(r"(@import\s+(?:url\()?\s*[\"']?" + _EXTERNAL + r"[^;]*;?)|(url\(\s*[\"']?" + _EXTERNAL
                      + r"[\"']?\s*\))", re.IGNORECASE)
_RESOURCE_REF = re.compile(r"\b(?:src|href|data|action|poster)\s*=\s*[\"']?(" + _EXTERNAL + ")|url\\(\\s*[\"']?("
                           + _EXTERNAL + ")|@import\\s+[\"']?(" + _EXTERNAL + ")", re.IGNORECASE)
_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+")


def css() -> str:
    """The report stylesheet (inlined into every page)."""
    return resources.files("fraudkit.report").joinpath("templates/report.css").read_text(encoding="utf-8")


def render_notebook_body(nb) -> str:
    """Render an executed notebook (``nbformat`` node or path) to an HTML fragment without code.

    The ``basic`` template gives the cells only; prompts and inputs are
    excluded; papermill's parameter cells are dropped as well.
    """
    import nbformat
    from nbconvert import HTMLExporter

    if not hasattr(nb, "cells"):
        nb = nbformat.read(str(nb), as_version=4)
    nb = nbformat.from_dict(nb)
    nb.cells = [c for c in nb.cells if not {"parameters", "injected-parameters"} & set(c.metadata.get("tags", []))]
    exporter = HTMLExporter(template_name="basic", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, anchor_link_text="")
    body, _ = exporter.from_notebook_node(nb)
    return body


def render_page(body: str, *, title: str, run_id: str, steps, current: str, version: str) -> str:
    """Wrap a body fragment in the report page (navigation, CSS), offline and masked."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("fraudkit.report", "templates"), autoescape=False,
                             keep_trailing_newline=True)
    page = env.get_template("page.html.j2").render(body=body, title=_html.escape(title), run_id=run_id,
                                                  steps=steps, current=current, version=version, css=css())
    page, _ = make_offline(page)
    return mask_html(page)


def make_offline(markup: str) -> tuple[str, list[str]]:
    """Remove every tag or CSS rule that would fetch from the network.

    Returns
    -------
    html : str
        The page without them.
    removed : list of str
        What was removed (for the run manifest's warnings).

    Examples
    --------
    >>> make_offline('<p>x</p><script src="https://cdn.example/x.js"></script>')
    ('<p>x</p>', ['<script src="https://cdn.example/x.js"></script>'])
    """
    removed: list[str] = []

    def _drop(m):
        removed.append(m.group(0))
        return ""

    markup = _FETCH_TAG.sub(_drop, markup)
    markup = _CSS_URL.sub(_drop, markup)
    return markup, removed


def external_resources(markup: str) -> list[str]:
    """URLs a browser would fetch from the network when opening ``markup`` (src/href/url()/@import).

    Plain text that happens to contain a URL is not a request and is not listed.
    ``srcdoc`` documents (embedded graphs) are unescaped and searched too.
    """
    found = [next(g for g in m.groups() if g) for m in _RESOURCE_REF.finditer(markup)]
    for doc in re.findall(r"srcdoc\s*=\s*\"([^\"]*)\"", markup):
        found += external_resources(_html.unescape(doc))
    # <a href> to an external page is a link, not a resource; keep only fetched ones
    links = {m.group(1) for m in re.finditer(r"<a\b[^>]*\bhref\s*=\s*[\"']?(" + _EXTERNAL + ")", markup, re.I)}
    return [u for u in found if u not in links]


def mask_html(markup: str) -> str:
    """Mask personal data in the text of a page, leaving ``data:`` URIs (images) untouched.

    Uses :func:`fraudkit.report.masking.mask_text` (the one masking module).
    """
    out, last = [], 0
    for m in _DATA_URI.finditer(markup):
        out.append(mask_text(markup[last:m.start()]))
        out.append(m.group(0))
        last = m.end()
    out.append(mask_text(markup[last:]))
    return "".join(out)


def mask_notebook(nb):
    """A copy of an executed notebook (``nbformat`` node or path) with personal data masked in every text.

    Cell sources, text and HTML outputs, streams and tracebacks go through
    :func:`mask_html`; images are left as they are. The original is not changed.
    """
    import copy

    import nbformat

    nb = nbformat.read(str(nb), as_version=4) if not hasattr(nb, "cells") else copy.deepcopy(nb)

    def _mask(v):
        if isinstance(v, str):
            return mask_html(v)
        if isinstance(v, list):
            return [_mask(x) for x in v]
        return v

    for cell in nb.cells:
        cell.source = _mask(cell.source)
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = _mask(out["text"])
            for k in ("evalue", "traceback"):
                if k in out:
                    out[k] = _mask(out[k])
            for mime, v in (out.get("data") or {}).items():
                if mime.startswith("text/") or mime in ("application/json", "application/javascript"):
                    out["data"][mime] = _mask(v)
    return nb


def embed_html(document: str, *, title: str, height: int = 560) -> str:
    """An ``<iframe srcdoc>`` holding a whole HTML document (a pyvis graph), made offline first.

    The iframe is sandboxed (scripts only, no same-origin access).
    """
    document, _ = make_offline(document)
    return (f'<iframe class="fk-graph" title="{_html.escape(title)}" sandbox="allow-scripts" '
            f'style="height:{int(height)}px" srcdoc="{_html.escape(document, quote=True)}"></iframe>')
