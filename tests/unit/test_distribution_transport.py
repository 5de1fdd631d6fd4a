"""Endpoint rules: Docker Hub, mirrors, insecure registries (host:port, CIDR, loopback),
CA files; Link pagination; catalog search filters; progress lines."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sdk._internal.reference import parse_docker_ref
from sdk.distribution.pull import next_link
from sdk.distribution.search import apply_filters, split_term
from sdk.distribution.transport import endpoints_for, is_insecure
from sdk.errors import InvalidArgument


def test_reference_to_registry_and_repository() -> None:
    ref = parse_docker_ref("busybox")
    assert (ref.domain, ref.path, ref.tag) == ("docker.io", "library/busybox", "latest")
    ref = parse_docker_ref("127.0.0.1:5000/team/app@sha256:" + "a" * 64)
    assert (ref.domain, ref.path, ref.tag) == ("127.0.0.1:5000", "team/app", "")
    ref = parse_docker_ref("index.docker.io/me/app:1")
    assert (ref.domain, ref.path, ref.tag) == ("docker.io", "me/app", "1")


def test_insecure_rules() -> None:
    assert is_insecure("127.0.0.1:5000")                 # loopback by default
    assert is_insecure("[::1]:5000")
    assert is_insecure("localhost:5000")                 # resolves to loopback
    assert not is_insecure("10.1.2.3:5000")
    assert is_insecure("10.1.2.3:5000", ["10.1.0.0/16"])
    assert not is_insecure("10.2.2.3:5000", ["10.1.0.0/16"])
    assert is_insecure("myreg.local:5000", ["myreg.local:5000"])
    assert not is_insecure("myreg.local:5001", ["myreg.local:5000"])


def test_endpoints(tmp_path: Path) -> None:
    hub = endpoints_for("docker.io", mirrors=["https://mirror.example.com/"])
    assert [(e.url, e.mirror) for e in hub] == [("https://mirror.example.com", True),
                                                ("https://registry-1.docker.io", False)]
    assert [e.url for e in endpoints_for("docker.io", mirrors=["https://m.example"],
                                         push=True)] == ["https://registry-1.docker.io"]
    # mirrors are for docker.io only
    assert [e.url for e in endpoints_for("quay.io", mirrors=["https://m.example"])] == [
        "https://quay.io"]
    local = endpoints_for("127.0.0.1:5000")
    assert [(e.url, e.verify) for e in local] == [("https://127.0.0.1:5000", False),
                                                  ("http://127.0.0.1:5000", False)]
    (tmp_path / "reg.example.com:443").mkdir()
    (tmp_path / "reg.example.com:443" / "ca.crt").write_text("x")
    [secure] = endpoints_for("reg.example.com:443", certs_dir=tmp_path)
    assert secure.verify == str(tmp_path / "reg.example.com:443" / "ca.crt")
    assert endpoints_for("other.example.com", certs_dir=tmp_path)[0].verify is True


def test_next_link() -> None:
    assert next_link('</v2/_catalog?last=b&n=2>; rel="next"') == "/v2/_catalog?last=b&n=2"
    assert next_link('<https://x/a>; rel="prev", </b>; rel=next') == "/b"
    assert next_link("") is None


def test_search_terms_and_filters() -> None:
    assert split_term("127.0.0.1:5000/app") == ("127.0.0.1:5000", "app")
    assert split_term("localhost/app") == ("localhost", "app")
    assert split_term("me/app") == ("docker.io", "me/app")
    rows = [{"name": "a", "star_count": 5, "is_official": True},
            {"name": "b", "star_count": 1, "is_official": False}]
    assert [r["name"] for r in apply_filters(rows, {"stars": ["3"]})] == ["a"]
    assert [r["name"] for r in apply_filters(rows, {"is-official": ["false"]})] == ["b"]
    with pytest.raises(InvalidArgument):
        apply_filters(rows, {"nope": ["1"]})
    with pytest.raises(InvalidArgument):
        apply_filters(rows, {"stars": ["many"]})


def test_progress_lines() -> None:
    from sdk.cli.remote import ProgressPrinter, progress_text

    assert progress_text({"status": "Pull complete", "id": "abc"}) == "abc: Pull complete"
    line = progress_text({"status": "Downloading", "id": "abc",
                          "progressDetail": {"current": 500, "total": 1000}})
    assert line.startswith("abc: Downloading [" + "=" * 24 + ">")
    assert line.endswith("500B/1kB")
    plain = io.StringIO()
    p = ProgressPrinter(plain, tty=False)
    for ev in ({"status": "Pulling from library/x", "id": "latest"},
               {"status": "Pulling fs layer", "id": "abc"},
               {"status": "Downloading", "id": "abc", "progressDetail": {"current": 1,
                                                                         "total": 2}},
               {"status": "Downloading", "id": "abc", "progressDetail": {"current": 2,
                                                                         "total": 2}},
               {"status": "Pull complete", "id": "abc"}, {"status": "Digest: sha256:x"}):
        p(ev)
    assert plain.getvalue().splitlines() == [
        "latest: Pulling from library/x", "abc: Pulling fs layer", "abc: Downloading",
        "abc: Pull complete", "Digest: sha256:x"]
    tty = io.StringIO()
    t = ProgressPrinter(tty, tty=True)
    t({"status": "Pulling fs layer", "id": "a"})
    t({"status": "Pulling fs layer", "id": "b"})
    t({"status": "Pull complete", "id": "a"})
    assert tty.getvalue().endswith("\x1b[2A\r\x1b[2Ka: Pull complete\x1b[2B\r")


def test_cli_startup_does_not_import_requests() -> None:
    import subprocess
    import sys

    code = ("import sys, sdk.cli.main, sdk.cli.remote, sdk.cli.containers, "
            "sdk.images.service, sdk.distribution.credentials, sdk.distribution.manifest; "
            "print('requests' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"
