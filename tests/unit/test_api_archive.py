"""docker cp's path rules, stat header encoding, X-Registry-Auth and the create body's
NetworkingConfig/ExposedPorts: the parts of issue 9 that need no kernel."""

from __future__ import annotations

import base64
import io
import json
import stat
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from sdk.api.params import registry_auth
from sdk.api.translate import create_kwargs
from sdk.cli.cp import archive_base, rebase, split_arg
from sdk.containers.archive import (
    GO_DIR,
    GO_SYMLINK,
    container_path,
    extract,
    go_file_mode,
    go_time,
)
from sdk.errors import InvalidArgument


@pytest.mark.parametrize(("given", "expected"), [
    ("/etc/passwd", "/etc/passwd"), ("etc", "/etc"), ("../../etc/passwd", "/etc/passwd"),
    ("/a/b/", "/a/b/"), ("/a/b/.", "/a/b/."), ("/", "/"), ("/.", "/."), (".", "/."),
    ("//x//y/../z", "/x/z"), ("/a/./b", "/a/b"),
])
def test_container_path_is_docker_s(given: str, expected: str) -> None:
    assert container_path(given) == expected


@pytest.mark.parametrize("bad", ["", "a\x00b"])
def test_container_path_refuses(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        container_path(bad)


def test_go_file_mode_and_time() -> None:
    assert go_file_mode(stat.S_IFREG | 0o644) == 0o644
    assert go_file_mode(stat.S_IFDIR | 0o755) == GO_DIR | 0o755
    assert go_file_mode(stat.S_IFLNK | 0o777) == GO_SYMLINK | 0o777
    assert go_file_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == (1 << 23) | 0o755
    assert go_file_mode(stat.S_IFCHR | 0o600) == (1 << 26) | (1 << 21) | 0o600
    assert go_time(1_700_000_000_500_000_000) == "2023-11-14T22:13:20.5Z"
    assert go_time(0) == "1970-01-01T00:00:00Z"


def test_cp_argument_forms() -> None:
    assert split_arg("web:/etc/hosts") == ("web", "/etc/hosts")
    assert split_arg("./web:x") == ("", "./web:x")
    assert split_arg("/abs:x") == ("", "/abs:x")
    assert split_arg("-") == ("", "-")
    assert archive_base("/a/b/") == "b" and archive_base("/a/b/.") == "."
    assert archive_base("/") == ""
    assert rebase("b", "c")("b/x") == "c/x" and rebase("b", "c")("bb/x") == "bb/x"
    assert rebase(".", "n")("./x") == "n/x" and rebase("", "n")("/bin") == "n/bin"


def _tar(*members: tarfile.TarInfo) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for m in members:
            t.addfile(m, io.BytesIO(b"x" * m.size) if m.isreg() else None)
    buf.seek(0)
    return buf


def _reg(name: str, data: bytes = b"x") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info


def test_extract_rules(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("old")
    extract(_tar(_reg(".wh.keep")), tmp_path)       # not a whiteout: a plain file
    assert (tmp_path / ".wh.keep").read_bytes() == b"x"
    extract(_tar(_reg("f")), tmp_path)              # replaces a file
    assert (tmp_path / "f").read_bytes() == b"x"
    with pytest.raises(InvalidArgument, match="cannot overwrite directory"):
        extract(_tar(_reg("d")), tmp_path, no_overwrite_dir_non_dir=True)
    (tmp_path / "link").symlink_to(tmp_path / "d")
    with pytest.raises(InvalidArgument, match="not a directory"):
        extract(_tar(_reg("link/x")), tmp_path)     # never written through a symlink
    assert not (tmp_path / "d" / "x").exists()
    with pytest.raises(InvalidArgument):
        extract(_tar(_reg("../out")), tmp_path / "d")
    extract(_tar(_reg("b/y")), tmp_path, rename=rebase("b", "renamed"))
    assert (tmp_path / "renamed" / "y").exists()


def _request(value: str | None) -> SimpleNamespace:
    return SimpleNamespace(headers={} if value is None else {"X-Registry-Auth": value})


def test_x_registry_auth() -> None:
    def enc(doc: object, alphabet: object = base64.urlsafe_b64encode) -> str:
        return alphabet(json.dumps(doc).encode()).decode()  # type: ignore[operator]

    assert registry_auth(_request(None)) is None
    assert registry_auth(_request(enc({}))) is None
    assert registry_auth(_request(enc({"username": "u", "password": "p?>"}))) == ("u", "p?>")
    assert registry_auth(_request(enc({"username": "u", "password": "p?>"}).rstrip("="))) \
        == ("u", "p?>")
    assert registry_auth(_request(enc({"identitytoken": "t"}))) == ("<token>", "t")
    auth = base64.b64encode(b"alice:s3:cret").decode()
    assert registry_auth(_request(enc({"auth": auth}, base64.b64encode))) == \
        ("alice", "s3:cret")
    for bad in ("%%%", enc([1, 2])):
        with pytest.raises(InvalidArgument, match="X-Registry-Auth"):
            registry_auth(_request(bad))


def test_networking_config_and_exposed_ports() -> None:
    body = {"Image": "busybox", "ExposedPorts": {"9000/udp": {}},
            "HostConfig": {"NetworkMode": "net1"},
            "NetworkingConfig": {"EndpointsConfig": {"net1": {
                "Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.1.0.5"}}}}}
    _, kwargs = create_kwargs(body, None)
    assert kwargs["network_mode"] == "net1" and kwargs["network_aliases"] == ["web"]
    assert kwargs["ip"] == "10.1.0.5" and kwargs["expose"] == ["9000/udp"]
    body = {"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": {"n2": {}}}}
    assert create_kwargs(body, None)[1]["network_mode"] == "n2"
    body["HostConfig"] = {"NetworkMode": "other"}
    with pytest.raises(InvalidArgument, match="n2"):
        create_kwargs(body, None)
