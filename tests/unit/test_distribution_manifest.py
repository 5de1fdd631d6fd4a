"""Manifest validation (CVE-2021-41190 shapes, size cap, digests) and platform choice."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sdk.distribution import manifest as m
from sdk.errors import InvalidArgument

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def image(media: str | None = m.OCI_MANIFEST, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"schemaVersion": 2,
                           "config": {"mediaType": m.OCI_CONFIG, "digest": D1, "size": 10},
                           "layers": [{"mediaType": m.OCI_LAYER_GZIP, "digest": D2,
                                       "size": 20}]}
    if media:
        doc["mediaType"] = media
    doc.update(extra)
    return doc


def entry(arch: str, variant: str = "", os: str = "linux", digest: str = D1,
          **annotations: str) -> dict[str, Any]:
    plat = {"os": os, "architecture": arch}
    if variant:
        plat["variant"] = variant
    out: dict[str, Any] = {"mediaType": m.OCI_MANIFEST, "digest": digest, "size": 5,
                           "platform": plat}
    if annotations:
        out["annotations"] = annotations
    return out


def raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def test_parse_image_manifest_keeps_bytes_and_digest() -> None:
    data = raw(image())
    got = m.parse_manifest(data, m.OCI_MANIFEST)
    assert got.raw == data and got.digest == m.digest_of(data)
    assert got.config and got.config.digest == D1
    assert [layer.size for layer in got.layers] == [20]
    assert not got.is_index
    # docker schema2 with the Content-Type only (no mediaType in the body)
    assert m.parse_manifest(raw(image(None)), m.DOCKER_MANIFEST).media_type == \
        m.DOCKER_MANIFEST


@pytest.mark.parametrize("doc,ctype,match", [
    (image(manifests=[]), m.OCI_MANIFEST, "both an index"),
    ({"schemaVersion": 2, "mediaType": m.OCI_INDEX, "manifests": [],
      "layers": []}, m.OCI_INDEX, "both an index"),
    (image(), m.OCI_INDEX, "contradicts"),
    (image(m.OCI_INDEX), m.OCI_INDEX, "unsupported manifest media type|index"),
    ({"schemaVersion": 2, "mediaType": m.OCI_MANIFEST, "manifests": []}, m.OCI_MANIFEST,
     "an index with mediaType"),
    (image(schemaVersion=1), m.OCI_MANIFEST, "schemaVersion"),
    (image(layers=[{"mediaType": m.OCI_LAYER, "digest": "sha256:../../x", "size": 1}]),
     m.OCI_MANIFEST, "bad digest"),
    (image(layers=[{"mediaType": m.OCI_LAYER, "digest": D1, "size": -1}]), m.OCI_MANIFEST,
     "bad size"),
    (image(layers=[{"mediaType": "text/html", "digest": D1, "size": 1}]), m.OCI_MANIFEST,
     "layer media type"),
    ([1, 2], m.OCI_MANIFEST, "not a JSON object"),
])
def test_refused_documents(doc: Any, ctype: str, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        m.parse_manifest(raw(doc), ctype)


def test_size_cap_and_digest_check() -> None:
    big = raw(image(annotations={"x": "y" * (4 << 20)}))
    with pytest.raises(InvalidArgument, match="too big"):
        m.parse_manifest(big, m.OCI_MANIFEST)
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        m.parse_manifest(raw(image()), m.OCI_MANIFEST, expected_digest=D1)
    # generic content types defer to the document
    assert m.parse_manifest(raw(image()), "application/json; charset=utf-8").media_type == \
        m.OCI_MANIFEST


def index(*entries: dict[str, Any]) -> m.Manifest:
    return m.parse_manifest(raw({"schemaVersion": 2, "mediaType": m.OCI_INDEX,
                                 "manifests": list(entries)}), m.OCI_INDEX)


def test_platform_selection_and_attestations() -> None:
    amd = "sha256:" + "a" * 64
    arm7 = "sha256:" + "b" * 64
    arm64 = "sha256:" + "c" * 64
    att = "sha256:" + "d" * 64
    idx = index(entry("unknown", os="unknown", digest=att,
                      **{"vnd.docker.reference.type": "attestation-manifest"}),
                entry("amd64", digest=amd), entry("arm", "v7", digest=arm7),
                entry("arm64", "v8", digest=arm64))
    assert m.select_platform(idx, m.parse_platform("linux/amd64")).digest == amd
    assert m.select_platform(idx, m.parse_platform("linux/arm64")).digest == arm64
    assert m.select_platform(idx, m.parse_platform("arm64/v8")).digest == arm64
    assert m.select_platform(idx, m.parse_platform("linux/arm/v7")).digest == arm7
    # arm64 runs arm/v7 when there is no arm64 entry; arm/v6 does not run v7
    only_arm = index(entry("arm", "v7", digest=arm7))
    assert m.select_platform(only_arm, m.parse_platform("linux/arm64")).digest == arm7
    with pytest.raises(InvalidArgument, match="no matching manifest for linux/arm/v6"):
        m.select_platform(only_arm, m.parse_platform("linux/arm/v6"))
    # only attestations: nothing to pull
    with pytest.raises(InvalidArgument, match="available: none"):
        m.select_platform(index(entry("unknown", os="unknown", digest=att)),
                          m.parse_platform("linux/amd64"))
    # the host platform by default
    host = m.host_platform()
    mine = index(entry(host.architecture, host.variant, digest=amd))
    assert m.select_platform(mine).digest == amd


@pytest.mark.parametrize("text,want", [
    ("linux/amd64", m.Platform("linux", "amd64")),
    ("amd64", m.Platform("linux", "amd64")),
    ("linux/x86_64", m.Platform("linux", "amd64")),
    ("linux/aarch64", m.Platform("linux", "arm64")),
    ("linux/arm", m.Platform("linux", "arm", "v7")),
    ("linux/arm/6", m.Platform("linux", "arm", "v6")),
])
def test_parse_platform(text: str, want: m.Platform) -> None:
    assert m.parse_platform(text) == want


@pytest.mark.parametrize("bad", ["", "linux/", "a/b/c/d", "linux"])
def test_parse_platform_invalid(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid platform"):
        m.parse_platform(bad)
