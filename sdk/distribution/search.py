"""``search``: a registry's ``/v2/_catalog`` (private registries have no search API).

``berth search HOST[:PORT]/TERM`` lists the repositories of that registry whose name
contains TERM (all of them for an empty term or ``*``), following ``Link`` pagination.
A term without a registry asks Docker Hub's ``/v1/search``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sdk.distribution.pull import new_client, next_link
from sdk.errors import InvalidArgument

if TYPE_CHECKING:
    from sdk.images.service import ImageService

FILTERS = frozenset({"stars", "is-official", "is-automated"})
#: stop after this many catalog pages, whatever the registry says
MAX_PAGES = 1000


def split_term(term: str) -> tuple[str, str]:
    """``127.0.0.1:5000/app`` -> ("127.0.0.1:5000", "app"); ``nginx`` -> ("docker.io", ...)."""
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "docker.io", term


def _bool(v: str, key: str) -> bool:
    if v.lower() in ("true", "1"):
        return True
    if v.lower() in ("false", "0"):
        return False
    raise InvalidArgument(f'invalid filter \'{key}={v}\'')


def apply_filters(results: list[dict[str, Any]], filters: dict[str, list[str]]
                  ) -> list[dict[str, Any]]:
    for key in filters:
        if key not in FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
    out = results
    for v in filters.get("stars", []):
        try:
            n = int(v)
        except ValueError:
            raise InvalidArgument(f"invalid filter 'stars={v}'") from None
        out = [r for r in out if int(r.get("star_count") or 0) >= n]
    for key, field in (("is-official", "is_official"), ("is-automated", "is_automated")):
        for v in filters.get(key, []):
            want = _bool(v, key)
            out = [r for r in out if bool(r.get(field)) == want]
    return out


def search(svc: ImageService, term: str, *, limit: int = 25,
           filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """Results like docker's: name, description, star_count, is_official, is_automated."""
    if limit < 1 or limit > 100:
        raise InvalidArgument(f"limit {limit} is outside the range of [1, 100]")
    host, query = split_term(term)
    client = new_client(svc, host)
    try:
        if host == "docker.io":
            results = _hub_search(client, query, limit)
        else:
            results = _catalog_search(client, host, query)
    finally:
        client.close()
    return apply_filters(results, filters or {})[:limit]


def _catalog_search(client: Any, host: str, query: str) -> list[dict[str, Any]]:
    q = "" if query in ("", "*") else query.lower()
    path: str | None = "/v2/_catalog?n=100"
    scopes = ("registry:catalog:*",)
    names: list[str] = []
    for _ in range(MAX_PAGES):
        if path is None:
            break
        resp = client.request("GET", path, scopes=scopes)
        if resp.status_code != 200:
            raise client.fail(resp, repository="_catalog", what="the catalog (/v2/_catalog)")
        names += [str(n) for n in (resp.json().get("repositories") or [])]
        path = next_link(resp.headers.get("Link", ""))
    return [{"name": f"{host}/{n}", "description": "", "star_count": 0,
             "is_official": False, "is_automated": False}
            for n in names if q in n]


def _hub_search(client: Any, query: str, limit: int) -> list[dict[str, Any]]:
    url = "https://index.docker.io/v1/search"
    resp = client.session.get(url, params={"q": query, "n": str(limit)}, timeout=(15, 60))
    if resp.status_code != 200:
        raise client.fail(resp, repository="search", what=f"search for {query!r}")
    return list(resp.json().get("results") or [])
