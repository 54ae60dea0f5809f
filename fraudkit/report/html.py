"""HTML for the report: executed notebook -> offline, masked, code-free page.

Used by :mod:`fraudkit.report.build`. Three guarantees every page gets here:

* **no code**: nbconvert runs with ``exclude_input`` (markdown and outputs only);
* **offline**: the page is self-contained (the ``basic`` nbconvert template, our own
  CSS inlined, images as ``data:`` URIs) and :func:`make_offline` removes any tag
  that would still fetch something from the network (a CDN script in embedded
  HTML, say); :func:`external_resources` finds what is left, for tests;
* **masked**: :func:`mask_html` runs :func:`fraudkit.report.masking.mask_text` over the
  text of the final page as a last line of defence (``data:`` URIs are left
  intact, so images survive);
* **inert data**: the page template autoescapes (kit-made HTML is passed as
  ``markupsafe.Markup``), every table escapes its values, and a
  Content-Security-Policy meta tag (:func:`content_security_policy`) allows only the
  inline scripts the kit embedded itself: the scripts of the pyvis graphs that
  :func:`embed_html` signed with the report's masking secret. A ``<script>`` that
  came in with the data never runs, even if a value escaped the escaping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html as _html
import re
from importlib import resources

import jinja2
from markupsafe import Markup

from fraudkit.report.masking import mask_text, secret

__all__ = [
    "render_notebook_body",
    "render_page",
    "make_offline",
    "external_resources",
    "mask_html",
    "mask_notebook",
    "embed_html",
    "script_hashes",
    "content_security_policy",
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
_INLINE_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
_GRAPH_FRAME = re.compile(r"<iframe\b[^>]*>", re.IGNORECASE)
_CSP_SLOT = "fraudkit-content-security-policy"
_CSP_BASE = ("default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; img-src data:; font-src data:; "
             "base-uri 'none'; form-action 'none'")


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


def render_page(body: str, *, title: str, run_id: str, steps, current: str, version: str, key=None,
                source: str | None = None) -> str:
    """Wrap a body fragment in the report page (navigation, CSS, CSP), offline and masked.

    ``body`` is the kit's own HTML (a rendered notebook, an error banner) and is inserted as it is;
    ``title``, ``run_id`` and the step names are text and are escaped. ``key`` is the masking secret the
    embedded graphs were signed with (see :func:`content_security_policy`). ``source`` says where the run's
    models and thresholds came from (a simulated world, the analyst's labels, none), shown on every page.

    Examples
    --------
    >>> page = render_page("<p>hi</p>", title="<b>T</b>", run_id="<i>r</i>", steps=[], current="index",
    ...                    version="0")
    >>> "<p>hi</p>" in page and "&lt;b&gt;T&lt;/b&gt;" in page and "<i>r</i>" not in page
    True
    >>> "script-src 'none'" in page
    True
    """
    env = jinja2.Environment(loader=jinja2.PackageLoader("fraudkit.report", "templates"), autoescape=True,
                             keep_trailing_newline=True)
    page = env.get_template("page.html.j2").render(body=Markup(body), title=title, run_id=run_id, steps=steps,
                                                  current=current, version=version, css=Markup(css()),
                                                  csp=_CSP_SLOT, source=source)
    page, _ = make_offline(page)
    page = mask_html(page, key=key)
    # the policy is computed on the final page (masking may not change a script after it was hashed)
    return page.replace(_CSP_SLOT, content_security_policy(page, key=key), 1)


def script_hashes(document: str) -> list[str]:
    """CSP sources (``'sha256-...'``) of the inline scripts of an HTML document, in order, without repeats.

    Examples
    --------
    >>> script_hashes("<p>x</p><script>alert(1)</script><script src='a.js'></script>")
    ["'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"]
    """
    out = []
    for attrs, code in _INLINE_SCRIPT.findall(document):
        if re.search(r"\bsrc\s*=", attrs, re.IGNORECASE):
            continue
        digest = base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode()
        out.append(f"'sha256-{digest}'")
    return list(dict.fromkeys(out))


def content_security_policy(page: str, *, key=None) -> str:
    """The Content-Security-Policy of a report page: scripts only the kit embedded and signed.

    Nothing is fetched (``default-src 'none'``; images and fonts only as ``data:`` URIs); inline styles
    are allowed (tables and the stylesheet); a script runs only if its sha256 hash was listed and signed
    by :func:`embed_html` (the pyvis graphs, whose ``srcdoc`` documents inherit the policy). An
    ``<iframe>`` whose signature does not verify with ``key`` (the masking secret,
    :func:`fraudkit.report.masking.secret`) adds nothing: pages without graphs get ``script-src 'none'``.

    Examples
    --------
    >>> content_security_policy("<p>no scripts</p>").split("; ")[:2]
    ["default-src 'none'", "script-src 'none'"]
    """
    allowed = []
    for tag in _GRAPH_FRAME.findall(page):
        scripts = re.search(r'\bdata-fk-scripts="([^"]*)"', tag)
        signature = re.search(r'\bdata-fk-signature="([A-Za-z0-9_=-]+)"', tag)
        if scripts and signature:
            hashes = _html.unescape(scripts.group(1)).split()
            if hmac.compare_digest(_sign(hashes, key), signature.group(1)):
                allowed += hashes
    allowed = list(dict.fromkeys(allowed))
    return _CSP_BASE.format(scripts=" ".join(allowed) if allowed else "'none'")


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


def mask_html(markup: str, *, key=None) -> str:
    """Mask personal data in the text of a page, leaving ``data:`` URIs (images) untouched.

    Uses :func:`fraudkit.report.masking.mask_text` (the one masking module); ``key`` is the masking secret.
    """
    out, last = [], 0
    for m in _DATA_URI.finditer(markup):
        out.append(mask_text(markup[last:m.start()], key=key))
        out.append(m.group(0))
        last = m.end()
    out.append(mask_text(markup[last:], key=key))
    return "".join(out)


def mask_notebook(nb, *, key=None):
    """A copy of an executed notebook (``nbformat`` node or path) with personal data masked in every text.

    Cell sources, text and HTML outputs, streams and tracebacks go through
    :func:`mask_html`; images are left as they are. The original is not changed.
    """
    import copy

    import nbformat

    nb = nbformat.read(str(nb), as_version=4) if not hasattr(nb, "cells") else copy.deepcopy(nb)

    def _mask(v):
        if isinstance(v, str):
            return mask_html(v, key=key)
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


def embed_html(document: str, *, title: str, height: int = 560, key=None) -> str:
    """An ``<iframe srcdoc>`` holding a whole HTML document (a pyvis graph), made offline and masked first.

    The iframe is sandboxed (scripts only, no same-origin access). The hashes of the document's inline
    scripts are listed on the iframe and signed with the masking secret (``key``, see
    :func:`fraudkit.report.masking.secret`), so the page's Content-Security-Policy
    (:func:`content_security_policy`) lets these scripts, and no others, run.
    """
    document, _ = make_offline(document)
    document = mask_html(document, key=key)
    hashes = script_hashes(document)
    return (f'<iframe class="fk-graph" title="{_html.escape(title)}" sandbox="allow-scripts" '
            f'style="height:{int(height)}px" data-fk-scripts="{" ".join(hashes)}" '
            f'data-fk-signature="{_sign(hashes, key)}" srcdoc="{_html.escape(document, quote=True)}"></iframe>')


# --- private helpers ----------------------------------------------------------------------------


def _sign(hashes, key) -> str:
    """HMAC-SHA256 of the script hashes under the masking secret (base64: page masking leaves it alone)."""
    mac = hmac.new(secret(key).encode(), " ".join(hashes).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode()
