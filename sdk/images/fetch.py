"""Open an http(s) URL as a byte stream (``import URL``); requests is imported lazily."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from sdk.errors import InvalidArgument


@contextmanager
def open_url(url: str) -> Iterator[IO[bytes]]:
    import requests

    try:
        resp = requests.get(url, stream=True, timeout=60)
    except requests.RequestException as exc:
        raise InvalidArgument(f"error downloading {url}: {exc}") from None
    if resp.status_code != 200:
        resp.close()
        raise InvalidArgument(f"error downloading {url}: HTTP {resp.status_code}")
    resp.raw.decode_content = False
    try:
        yield resp.raw
    finally:
        resp.close()
