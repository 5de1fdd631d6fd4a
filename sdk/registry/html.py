"""The read-only web page (GET /): repositories, tags, digests, sizes, platforms, layers.

Server-rendered HTML without JavaScript; the app sends it with a Content-Security-Policy
that forbids scripts, and every string that comes from storage (names, tags, media
types, platforms, labels) goes through ``html.escape`` (tags and names are restricted
by the spec, but media types, platforms and labels are free text chosen by whoever
pushed).  ``/`` lists repositories a page at a time (``n``, ``last``, as ``_catalog``),
each with its first ``OVERVIEW_TAGS`` tags; ``/?repo=NAME`` lists one repository's
tags a page at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from urllib.parse import urlencode

from sdk.registry.inventory import ImageView, TagView, describe_tag
from sdk.registry.names import valid_name, valid_tag
from sdk.registry.storage import Storage

REPOS_PER_PAGE = 20
TAGS_PER_PAGE = 100
OVERVIEW_TAGS = 10
# the most a page describes (each tag costs a manifest and a config read): n above this
# is refused like n above catalog.maxentries
MAX_REPOS_PER_PAGE = 100
MAX_TAGS_PER_PAGE = 500
STYLE = ("body{font-family:sans-serif;margin:1em 2em;color:#222}"
         "table{border-collapse:collapse;margin-bottom:1.5em;width:100%}"
         "code.digest{word-break:break-all}td.digest{max-width:22em}"
         "td.layers{max-width:40em}td.labels{max-width:24em;overflow-wrap:anywhere}"
         "td,th{padding:3px 8px;text-align:left;vertical-align:top;"
         "border-bottom:1px solid #ddd}"
         "th{background:#f0f0f0}code{font-size:85%}.size{white-space:nowrap}"
         "ol.layers{margin:0;padding-left:1.5em}.media,.note{color:#666}"
         "dl.labels{margin:0}dl.labels dt{font-weight:bold}dl.labels dd{margin-left:1em}"
         "nav{margin:1em 0}")


class PageError(Exception):
    """A bad query: answered as an HTML page with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class PageQuery:
    repo: str | None = None   # one repository's tags, or None for the overview
    n: int = REPOS_PER_PAGE
    last: str = ""


def parse_query(query: Mapping[str, str], max_entries: int) -> PageQuery:
    """Validate ``repo``, ``n`` (1 to the smaller of catalog.maxentries and the page's
    own cap) and ``last``; other parameters are ignored."""
    repo = query.get("repo")
    if repo is not None and not valid_name(repo):
        raise PageError(400, f"invalid repository name {repo[:100]!r}")
    if repo is None:
        default, max_entries = REPOS_PER_PAGE, min(max_entries, MAX_REPOS_PER_PAGE)
    else:
        default, max_entries = TAGS_PER_PAGE, min(max_entries, MAX_TAGS_PER_PAGE)
    raw = query.get("n")
    n = min(default, max_entries)
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= max_entries:
            raise PageError(400, f"invalid n {raw[:20]!r}: expected a number from 1 to "
                                 f"{max_entries}")
        n = int(raw)
    last = query.get("last", "")
    if last and not (valid_tag(last) if repo is not None else valid_name(last)):
        raise PageError(400, f"invalid last {last[:100]!r}: expected a "
                             f"{'tag' if repo is not None else 'repository name'}")
    return PageQuery(repo, n, last)


def human(n: int) -> str:
    """Decimal units, as docker's SIZE column: 999 B, 1.2 kB, 4.3 MB."""
    size = float(n)
    if n < 1000:
        return f"{n} B"
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if size < 1000 or unit == "TB":
            break
    return f"{size:.1f} {unit}"


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _size(n: int) -> str:
    return f"<span class='size' title='{n} bytes' data-bytes='{n}'>{human(n)}</span>"


def _href(**params: object) -> str:
    return _e("?" + urlencode({k: v for k, v in params.items() if v not in (None, "")}))


def _after(items: list[str], last: str) -> list[str]:
    return [x for x in items if x > last] if last else items


@dataclass
class _Page:
    parts: list[str] = field(default_factory=list)

    def add(self, *text: str) -> None:
        self.parts.extend(text)

    def text(self) -> str:
        return "".join(self.parts)


def _head(title: str) -> str:
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
            "<h1><a href='/'>berth registry</a></h1>")


def error_page(status: int, message: str) -> str:
    return (_head(f"{status} - berth registry") +
            f"<p id='error' class='error'>{status}: {_e(message)}</p></body></html>")


def _image_cells(img: ImageView) -> str:
    if not img.stored:
        return ("<td class='layers note'>manifest not stored in this repository</td>"
                "<td class='labels'></td>")
    rows = "".join(f"<li class='layer'><code class='digest'>{_e(b.digest)}</code> "
                   f"{_size(b.size)} <span class='media'>{_e(b.media_type)}</span></li>"
                   for b in img.layers)
    layers = f"<ol class='layers'>{rows}</ol>" if rows else "<span class='note'>none</span>"
    labels = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in img.labels.items())
    return (f"<td class='layers'>{layers}</td>"
            f"<td class='labels'>{f'<dl class=labels>{labels}</dl>' if labels else ''}</td>")


def _tag_rows(view: TagView) -> str:
    """One row per image: an index spans its entries (platforms) in the tag's cells."""
    span = max(len(view.images), 1)
    kind = "index" if view.index else "image"
    head = (f"<td rowspan='{span}' class='tagname'>{_e(view.tag)}</td>"
            f"<td rowspan='{span}' class='digest'><code class='digest'>{_e(view.digest)}</code><br>"
            f"<span class='media'>{_e(view.media_type)}</span></td>"
            f"<td rowspan='{span}' class='total'>{_size(view.size)}<br>"
            f"<span class='note'>{kind}</span></td>")
    out = []
    for i, img in enumerate(view.images or [ImageView("", "", 0, stored=False)]):
        platform = _e(img.platform or "-")
        if view.index:
            platform += f"<br><code class='digest'>{_e(img.digest)}</code>"
        cells = f"<td class='platform'>{platform}</td>{_image_cells(img)}"
        out.append(f"<tr class='tag' data-tag='{_e(view.tag)}'>{head if i == 0 else ''}"
                   f"{cells}</tr>")
    if view.more_entries:
        out.append(f"<tr><td colspan='6' class='note'>{view.more_entries} more index "
                   "entries not shown</td></tr>")
    return "".join(out)


def _repo_section(storage: Storage, name: str, tags: list[str], more: int,
                  more_href: str) -> str:
    views = []
    for tag in tags:
        d = storage.resolve_tag(name, tag)
        view = describe_tag(storage, name, tag, d) if d is not None else None
        if view is not None:
            views.append(view)
    body = "".join(_tag_rows(v) for v in views)
    table = ("<table><tr><th>tag</th><th>digest</th><th>size</th><th>platform</th>"
             f"<th>layers</th><th>labels</th></tr>{body}</table>" if views
             else "<p class='note'>no tags</p>")
    tail = (f"<p class='more'><a href='{more_href}'>{more} more tags</a></p>"
            if more else "")
    return (f"<section class='repo' id='{_e(name)}'><h2 class='repo'>"
            f"<a href='{_href(repo=name)}'>{_e(name)}</a></h2>{table}{tail}</section>")


def overview(storage: Storage, repos: list[str], q: PageQuery) -> str:
    """``repos``: every repository the viewer may see, sorted."""
    rest = _after(repos, q.last)
    shown = rest[:q.n]
    page = _Page([_head("berth registry"),
                  f"<p id='count'>{len(repos)} repositories</p>"])
    for name in shown:
        tags = storage.tags(name)
        page.add(_repo_section(storage, name, tags[:OVERVIEW_TAGS],
                               max(len(tags) - OVERVIEW_TAGS, 0), _href(repo=name)))
    if len(rest) > len(shown):
        page.add(f"<nav><a rel='next' id='next' href='{_href(n=q.n, last=shown[-1])}'>"
                 "next repositories</a></nav>")
    page.add("</body></html>")
    return page.text()


def repository(storage: Storage, name: str, q: PageQuery) -> str:
    tags = storage.tags(name)
    rest = _after(tags, q.last)
    shown = rest[:q.n]
    more = len(rest) - len(shown)
    page = _Page([_head(f"{name} - berth registry"),
                  f"<p id='count'>{len(tags)} tags</p>"])
    page.add(_repo_section(storage, name, shown, more,
                           _href(repo=name, n=q.n, last=shown[-1] if shown else "")))
    page.add("</body></html>")
    return page.text()


def render(storage: Storage, repos: list[str], q: PageQuery) -> str:
    """The page for query ``q``; ``repos`` are the repositories the viewer may pull (a
    repository outside it answers 404 like one that does not exist: nothing leaks)."""
    if q.repo is None:
        return overview(storage, repos, q)
    if q.repo not in repos:
        raise PageError(404, f"repository {q.repo!r} not known to this registry")
    return repository(storage, q.repo, q)
