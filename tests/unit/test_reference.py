"""distribution/reference normalization and grammar, by known answers."""

from __future__ import annotations

import pytest

from sdk._internal.reference import (
    Reference,
    is_image_id_prefix,
    parse_docker_ref,
    parse_plain,
    parse_reference,
    split_docker_domain,
    validate_digest,
)
from sdk.errors import InvalidArgument

HEX = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa"
DIGEST = "sha256:" + HEX


@pytest.mark.parametrize(("text", "domain", "path", "tag", "digest", "familiar"), [
    ("busybox", "docker.io", "library/busybox", "", "", "busybox"),
    ("busybox:latest", "docker.io", "library/busybox", "latest", "", "busybox"),
    ("docker.io/busybox", "docker.io", "library/busybox", "", "", "busybox"),
    ("index.docker.io/busybox", "docker.io", "library/busybox", "", "", "busybox"),
    ("docker.io/library/busybox", "docker.io", "library/busybox", "", "", "busybox"),
    ("library/busybox:1.36", "docker.io", "library/busybox", "1.36", "", "busybox"),
    ("dmcgowan/myapp", "docker.io", "dmcgowan/myapp", "", "", "dmcgowan/myapp"),
    ("dmcgowan/myapp/sub", "docker.io", "dmcgowan/myapp/sub", "", "", "dmcgowan/myapp/sub"),
    ("library/a/b", "docker.io", "library/a/b", "", "", "library/a/b"),
    ("localhost/foo", "localhost", "foo", "", "", "localhost/foo"),
    ("localhost:5000/foo/bar:tag", "localhost:5000", "foo/bar", "tag", "",
     "localhost:5000/foo/bar"),
    ("myhost:5000/x/y", "myhost:5000", "x/y", "", "", "myhost:5000/x/y"),
    ("example.com/foo", "example.com", "foo", "", "", "example.com/foo"),
    ("192.168.1.1:5000/x", "192.168.1.1:5000", "x", "", "", "192.168.1.1:5000/x"),
    ("[::1]:5000/x:1", "[::1]:5000", "x", "1", "", "[::1]:5000/x"),
    ("[2001:db8::1]/x", "[2001:db8::1]", "x", "", "", "[2001:db8::1]/x"),
    ("Foo/bar", "Foo", "bar", "", "", "Foo/bar"),
    ("foo:BAR_1.x-y", "docker.io", "library/foo", "BAR_1.x-y", "", "foo"),
    ("foo__bar-qux--x/a_b.c", "docker.io", "foo__bar-qux--x/a_b.c", "", "",
     "foo__bar-qux--x/a_b.c"),
    ("a_b.com/x", "", "a_b.com/x", "", "", "a_b.com/x"),
    (f"foo@{DIGEST}", "docker.io", "library/foo", "", DIGEST, "foo"),
    (f"ubuntu:22.04@{DIGEST}", "docker.io", "library/ubuntu", "22.04", DIGEST, "ubuntu"),
    (f"localhost:5000/x@{DIGEST}", "localhost:5000", "x", "", DIGEST, "localhost:5000/x"),
    ("localhost", "docker.io", "library/localhost", "", "", "localhost"),
    ("localhost:5000", "docker.io", "library/localhost", "5000", "", "localhost"),
    ("example.com", "docker.io", "library/example.com", "", "", "example.com"),
    ("foo_bar.com/x", "", "foo_bar.com/x", "", "", "foo_bar.com/x"),
    ("a" * 63, "docker.io", "library/" + "a" * 63, "", "", "a" * 63),
])
def test_parse_normalized(text: str, domain: str, path: str, tag: str, digest: str,
                          familiar: str) -> None:
    ref = parse_reference(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert ref.familiar_name == familiar
    assert ref.full_name == (f"{domain}/{path}" if domain else path)


@pytest.mark.parametrize(("text", "message"), [
    ("", "invalid reference format"),
    ("Foo", "invalid reference format: repository name (library/Foo) must be lowercase"),
    ("foo/Bar:tag", "invalid reference format: repository name (foo/Bar) must be lowercase"),
    ("Bad:Ref", "invalid reference format: repository name (library/Bad) must be lowercase"),
    ("-foo", "invalid reference format"), ("foo-", "invalid reference format"),
    ("foo..bar", "invalid reference format"), ("foo___bar", "invalid reference format"),
    ("foo//bar", "invalid reference format"), ("foo/", "invalid reference format"),
    ("a:b:c", "invalid reference format"), ("foo bar", "invalid reference format"),
    ("foo:" + "a" * 129, "invalid reference format"), ("foo:-x", "invalid reference format"),
    ("foo:", "invalid reference format"), ("foo@", "invalid reference format"),
    ("foo@sha256:abc", "invalid reference format"),
    ("foo@sha256:" + "g" * 64, "invalid reference format"),
    ("foo@sha256:" + HEX.upper(), "invalid checksum digest format"),
    ("foo@sha256:" + "a" * 32, "invalid checksum digest length"),
    ("foo@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("[fe80::1%eth0]:5000/x", "invalid reference format"),
    ("host:port/x", "invalid reference format"),
    (HEX, f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"),
    ("x/" + "a" * 260, "repository name must not be more than 255 characters"),
    ("Foo_Bar/x", "repository name must be lowercase"),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_reference(text)
    assert str(exc.value) == message


def test_tag_length_limit_is_128() -> None:
    assert parse_reference("foo:" + "a" * 128).tag == "a" * 128


def test_path_length_limit_counts_path_only() -> None:
    path = "/".join(["a" * 50] * 5)       # 254 characters
    assert len(parse_reference(f"registry.example.com/{path}").path) == 254


def test_string_forms_and_default_tag() -> None:
    ref = parse_reference("busybox")
    assert ref.is_name_only and str(ref) == "docker.io/library/busybox"
    tagged = ref.with_default_tag()
    assert tagged.tag == "latest" and tagged.string == "docker.io/library/busybox:latest"
    assert tagged.familiar_string == "busybox:latest"
    assert parse_reference("me/app:1").with_default_tag().familiar_string == "me/app:1"
    digested = parse_reference(f"foo@{DIGEST}")
    assert digested.with_default_tag() == digested
    assert digested.familiar_string == f"foo@{DIGEST}"
    assert parse_reference("localhost:5000/a:b").familiar_string == "localhost:5000/a:b"
    assert ref.with_tag("v1").tag == "v1"
    with pytest.raises(InvalidArgument, match="invalid tag format"):
        ref.with_tag("-bad")


def test_parse_docker_ref_prefers_digest() -> None:
    assert parse_docker_ref("busybox") == Reference("docker.io", "library/busybox", "latest")
    both = parse_docker_ref(f"busybox:1@{DIGEST}")
    assert both.tag == "" and both.digest == DIGEST


def test_split_docker_domain() -> None:
    assert split_docker_domain("ubuntu") == ("docker.io", "library/ubuntu")
    assert split_docker_domain("docker.io/ubuntu") == ("docker.io", "library/ubuntu")
    assert split_docker_domain("index.docker.io/a/b") == ("docker.io", "a/b")
    assert split_docker_domain("a/b") == ("docker.io", "a/b")
    assert split_docker_domain("localhost/b") == ("localhost", "b")
    assert split_docker_domain("Upper/b") == ("Upper", "b")


def test_parse_plain_keeps_names_as_given() -> None:
    assert parse_plain("busybox") == Reference("", "busybox")
    with pytest.raises(InvalidArgument, match="at least one component"):
        parse_plain("")


def test_validate_digest() -> None:
    validate_digest(DIGEST)
    validate_digest("sha512:" + "a" * 128)
    for bad, message in [("sha256", "invalid checksum digest format"),
                         (":" + HEX, "invalid checksum digest format"),
                         ("sha256:", "invalid checksum digest format"),
                         ("sha384:" + "a" * 64, "invalid checksum digest length"),
                         ("sha-256:" + HEX, "unsupported digest algorithm"),
                         ("1sha:" + HEX, "unsupported digest algorithm"),
                         ("SHA256:" + HEX, "invalid checksum digest format"),
                         ("sha256:" + HEX + "!", "invalid checksum digest length")]:
        with pytest.raises(InvalidArgument) as exc:
            validate_digest(bad)
        assert str(exc.value) == message


@pytest.mark.parametrize(("text", "want"), [
    ("abc", True), ("sha256:abc", True), (HEX, True), (DIGEST, True), ("", False),
    ("sha256:", False), ("ABC", False), ("xyz", False), (HEX + "a", False),
    ("busybox", False),
])
def test_is_image_id_prefix(text: str, want: bool) -> None:
    assert is_image_id_prefix(text) is want


def test_reference_is_an_immutable_value() -> None:
    ref = parse_reference("busybox:1")
    assert ref == Reference("docker.io", "library/busybox", "1")
    assert hash(ref) == hash(Reference("docker.io", "library/busybox", "1"))
    assert ref != parse_reference("busybox:2") and ref != ("docker.io", "library/busybox")
    assert "library/busybox" in repr(ref)
    with pytest.raises(AttributeError):
        ref.tag = "2"       # type: ignore[misc]
