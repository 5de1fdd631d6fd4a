"""Image references as docker parses them: distribution/reference + go-digest.

``parse_reference`` is ``ParseNormalizedNamed``: a familiar name (``busybox``,
``me/app:1``, ``localhost:5000/x@sha256:...``) becomes domain + path (+ tag, digest) with
docker's normalization (``docker.io``, ``library/``, ``index.docker.io``).  The grammar
is checked by hand rather than with regular expressions to keep CLI start-up cheap::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [domain "/"] path-component ["/" path-component]*
    domain     := host [":" port]          host := dns-ish name | "[" ipv6 "]"
    component  := [a-z0-9]+ ( ([._] | "__" | "-"+) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex{32,}   (sha256/384/512 checked by length)
"""

from __future__ import annotations

from sdk.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ALNUM = _LOWER_ALNUM | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WORD = _ALNUM | frozenset("_")
_TAG_REST = _WORD | frozenset(".-")
_HEX_LOWER = frozenset("0123456789abcdef")
_XDIGIT = _HEX_LOWER | frozenset("ABCDEF")
_DIGITS = frozenset("0123456789")
_ALPHA = _ALNUM - _DIGITS
_DOMAIN_MID = _ALNUM | frozenset("-")
_IPV6 = _XDIGIT | frozenset(":")
_DIGEST_SIZES = {"sha256": 64, "sha384": 96, "sha512": 128}


class Reference:
    """A parsed reference; ``domain`` is empty only for odd names docker keeps domain-less.

    Immutable value object (a plain slotted class: ``NamedTuple`` costs a millisecond of
    CLI start-up).
    """

    __slots__ = ("domain", "path", "tag", "digest")

    def __init__(self, domain: str, path: str, tag: str = "", digest: str = "") -> None:
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "digest", digest)

    domain: str
    path: str
    tag: str
    digest: str

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Reference is immutable (cannot set {name!r})")

    def _key(self) -> tuple[str, str, str, str]:
        return (self.domain, self.path, self.tag, self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reference) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Reference(domain={self.domain!r}, path={self.path!r}, tag={self.tag!r}, "
                f"digest={self.digest!r})")

    def _replace(self, **changes: str) -> Reference:
        fields = dict(zip(("domain", "path", "tag", "digest"), self._key(), strict=True))
        fields.update(changes)
        return Reference(**fields)

    @property
    def name(self) -> str:
        """``docker.io/library/busybox`` (reference ``Name()``)."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def full_name(self) -> str:
        return self.name

    @property
    def familiar_name(self) -> str:
        """``busybox``, ``me/app``, ``myhost:5000/x/y`` (``FamiliarName``)."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        if self.path.startswith(OFFICIAL_PREFIX):
            rest = self.path[len(OFFICIAL_PREFIX):]
            if "/" not in rest:
                return rest
        return self.path

    @property
    def is_name_only(self) -> bool:
        return not self.tag and not self.digest

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def string(self) -> str:
        """``docker.io/library/busybox:latest`` (reference ``String()``)."""
        return self.name + self._suffix()

    @property
    def familiar_string(self) -> str:
        """``busybox:latest`` (``FamiliarString``), as ``docker images``/``ps`` show it."""
        return self.familiar_name + self._suffix()

    def with_default_tag(self) -> Reference:
        """``TagNameOnly``: add ``latest`` when there is neither tag nor digest."""
        return self._replace(tag=DEFAULT_TAG) if self.is_name_only else self

    def with_tag(self, tag: str) -> Reference:
        if not _valid_tag(tag):
            raise InvalidArgument("invalid tag format")
        return self._replace(tag=tag)

    def __str__(self) -> str:
        return self.string


# --------------------------------------------------------------------------- grammar

def _valid_component(text: str) -> bool:
    n, i = len(text), 0
    while True:
        start = i
        while i < n and text[i] in _LOWER_ALNUM:
            i += 1
        if i == start:
            return False
        if i == n:
            return True
        c = text[i]
        if c == ".":
            i += 1
        elif c == "_":
            i += 2 if i + 1 < n and text[i + 1] == "_" else 1
        elif c == "-":
            while i < n and text[i] == "-":
                i += 1
        else:
            return False


def _valid_path(text: str) -> bool:
    return all(_valid_component(part) for part in text.split("/"))


def _valid_domain_component(text: str) -> bool:
    return bool(text) and text[0] in _ALNUM and text[-1] in _ALNUM and \
        all(c in _DOMAIN_MID for c in text)


def _valid_domain(text: str) -> bool:
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1:]
        if end < 0 or not host or not all(c in _IPV6 for c in host):
            return False
    else:
        host, colon, port = text.partition(":")
        rest = colon + port
        if not all(_valid_domain_component(part) for part in host.split(".")):
            return False
    if not rest:
        return True
    return rest[0] == ":" and len(rest) > 1 and all(c in _DIGITS for c in rest[1:])


def _valid_tag(text: str) -> bool:
    return 0 < len(text) <= 128 and text[0] in _WORD and all(c in _TAG_REST for c in text)


def _valid_algorithm(text: str) -> bool:
    for part in text.replace("+", "-").replace(".", "-").replace("_", "-").split("-"):
        if not part or part[0] not in _ALPHA or not all(c in _ALNUM for c in part):
            return False
    return True


def _valid_digest_syntax(text: str) -> bool:
    algo, colon, hexpart = text.partition(":")
    return bool(colon) and _valid_algorithm(algo) and len(hexpart) >= 32 and \
        all(c in _XDIGIT for c in hexpart)


_GO_DIGEST_ALGO = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_GO_DIGEST_ENCODED = _ALNUM | frozenset("=_-")


def _go_digest_syntax(algo: str, encoded: str) -> bool:
    """go-digest's ``DigestRegexp``: ``[a-z0-9]+([.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+``."""
    for sep in "+._":
        algo = algo.replace(sep, "-")
    return all(part and all(c in _GO_DIGEST_ALGO for c in part) for part in algo.split("-")) \
        and bool(encoded) and all(c in _GO_DIGEST_ENCODED for c in encoded)


def validate_digest(digest: str) -> None:
    """go-digest ``Digest.Validate`` with docker's registered algorithms."""
    algo, colon, hexpart = digest.partition(":")
    if not algo or not colon or not hexpart:
        raise InvalidArgument("invalid checksum digest format")
    size = _DIGEST_SIZES.get(algo)
    if size is None:
        if not _go_digest_syntax(algo, hexpart):
            raise InvalidArgument("invalid checksum digest format")
        raise InvalidArgument("unsupported digest algorithm")
    if len(hexpart) != size:
        raise InvalidArgument("invalid checksum digest length")
    if not all(c in _HEX_LOWER for c in hexpart):
        raise InvalidArgument("invalid checksum digest format")


def _match(text: str) -> Reference | None:
    """distribution's ``ReferenceRegexp`` + ``anchoredNameRegexp`` split, by hand."""
    rest, at, digest = text.partition("@")
    if at and not _valid_digest_syntax(digest):
        return None
    slash = rest.rfind("/")
    colon = rest.find(":", slash + 1)
    name, tag = (rest[:colon], rest[colon + 1:]) if colon >= 0 else (rest, "")
    if colon >= 0 and not _valid_tag(tag):
        return None
    first, sep, path = name.partition("/")
    if sep and _valid_domain(first) and _valid_path(path):
        return Reference(first, path, tag, digest)
    if _valid_path(name):           # the regexp's domain group is optional
        return Reference("", name, tag, digest)
    return None


def parse_plain(text: str) -> Reference:
    """distribution's ``Parse``: the grammar alone, no docker normalization."""
    if not text:
        raise InvalidArgument("repository name must have at least one component")
    ref = _match(text)
    if ref is None:
        lowered = text.lower()
        if lowered != text and _match(lowered) is not None:
            raise InvalidArgument("repository name must be lowercase")
        raise InvalidArgument("invalid reference format")
    if len(ref.path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidArgument(f"repository name must not be more than "
                              f"{NAME_TOTAL_LENGTH_MAX} characters")
    if ref.digest:
        validate_digest(ref.digest)
    return ref


def split_docker_domain(name: str) -> tuple[str, str]:
    """``splitDockerDomain``: is the first component a registry or part of the path?"""
    first, sep, rest = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_PREFIX + name
    if first == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, rest
    elif first == "localhost" or "." in first or ":" in first or first.lower() != first:
        domain, remote = first, rest    # a host, host:port, IP, or uppercase (not a path)
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_PREFIX + remote
    return domain, remote


def parse_reference(text: str) -> Reference:
    """``ParseNormalizedNamed``: ``busybox`` -> docker.io/library/busybox (no tag added).

    Raises docker's messages: ``invalid reference format``, ``invalid reference format:
    repository name (library/Foo) must be lowercase``, digest errors from go-digest.
    """
    text = str(text)
    if is_full_id(text):
        raise InvalidArgument(f"invalid repository name ({text}), cannot specify 64-byte "
                              "hexadecimal strings")
    domain, remainder = split_docker_domain(text)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise InvalidArgument(f"invalid reference format: repository name ({remote}) must "
                              "be lowercase")
    return parse_plain(f"{domain}/{remainder}")


def parse_docker_ref(text: str) -> Reference:
    """``ParseDockerRef``: like pull/run: ``latest`` added, a digest wins over a tag."""
    ref = parse_reference(text)
    if ref.tag and ref.digest:
        return ref._replace(tag="")
    return ref.with_default_tag()


def is_full_id(text: str) -> bool:
    """64 lowercase hex digits: an image/container ID, never a repository name."""
    return len(text) == 64 and all(c in _HEX_LOWER for c in text)


def is_image_id_prefix(text: str) -> bool:
    """Could ``text`` be a (possibly ``sha256:``-prefixed) image ID or ID prefix?"""
    hexpart = text[7:] if text.startswith("sha256:") else text
    return 0 < len(hexpart) <= 64 and all(c in _HEX_LOWER for c in hexpart)


__all__ = ["Reference", "parse_reference", "parse_docker_ref", "parse_plain",
           "split_docker_domain", "validate_digest", "is_full_id", "is_image_id_prefix",
           "DEFAULT_DOMAIN", "DEFAULT_TAG"]
