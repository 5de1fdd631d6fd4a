"""save/load through the real CLI, and interop with skopeo (docker-archive:, oci-archive:,
oci:) into fresh engine roots, with the loaded images run."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk import Engine
from tests.unit.test_archive_load import Img, config, docker_old

from .conftest import Cli, close_engine

pytestmark = pytest.mark.root
SKOPEO = shutil.which("skopeo")
needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed "
                                  "(it is in the Makefile's APT_PACKAGES)")


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Cli]:
    """A second, empty engine root (the other side of a transfer)."""
    eng = Engine(root=tmp_path / "fresh-root", config=tmp_path / "fresh.json")
    yield Cli(eng)
    close_engine(eng)


def skopeo(*args: str) -> str:
    r = subprocess.run([SKOPEO or "skopeo", *args], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def image_id(cli: Cli, ref: str) -> str:
    r = cli("image", "inspect", "-f", "{{.Id}}", ref)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def inspect(cli: Cli, ref: str) -> dict:
    r = cli("image", "inspect", ref)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def runs(cli: Cli, ref: str) -> None:
    r = cli("run", "--rm", "--network", "none", ref, "echo", "loaded-and-running")
    assert (r.returncode, r.stdout) == (0, "loaded-and-running\n"), r.stderr


def tar_dir(directory: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w") as t:
        for p in sorted(directory.rglob("*")):
            t.add(p, str(p.relative_to(directory)), recursive=False)
    return dest


@pytest.fixture
def canonical(berth: Cli, busybox_tar: Path, tmp_path: Path) -> str:
    """busybox with a config already in the form skopeo writes (Go's OCI field order),
    so skopeo's docker-archive -> OCI conversion leaves its bytes, hence its ID, alone."""
    layer = busybox_tar.read_bytes()
    archive = tmp_path / "canon-src.tar"
    archive.write_bytes(docker_old([Img([layer], ["busybox:canon"], config([layer]))]))
    r = berth("load", "-q", "-i", str(archive))
    assert r.returncode == 0 and r.stdout == "Loaded image: busybox:canon\n", r.stderr
    return image_id(berth, "busybox:canon")


def test_save_load_round_trip_runs(berth: Cli, fresh: Cli, busybox: str,
                                   tmp_path: Path) -> None:
    out = tmp_path / "bb.tar"
    assert berth("tag", "busybox", "busybox:second").returncode == 0
    r = berth("save", "-o", str(out), "busybox")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    streamed = subprocess.run(["sh", "-c", f'"$0" save busybox | cmp - {out}',
                               berth_bin()], env=berth.env, capture_output=True, timeout=60)
    assert streamed.returncode == 0, streamed.stderr     # stdout == -o == deterministic
    r = fresh("load", "-i", str(out))
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == "Loaded image: busybox:latest\nLoaded image: busybox:second\n"
    assert image_id(fresh, "busybox:second") == busybox
    assert inspect(fresh, "busybox")["Config"] == inspect(berth, "busybox")["Config"]
    runs(fresh, "busybox")
    # again, quietly, from a gzip-compressed stdin: idempotent, same lines
    r = subprocess.run(["sh", "-c", f'gzip -c {out} | "$0" load -q', berth_bin()],
                       env=fresh.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.count("Loaded image:") == 2, r.stderr
    assert fresh("images", "-q").stdout == f"{busybox[7:19]}\n"


def berth_bin() -> str:
    from .conftest import BERTH

    return BERTH


def test_save_refuses_a_terminal_and_bad_names(berth: Cli) -> None:
    master, slave = pty.openpty()
    try:
        r = subprocess.run([berth_bin(), "save", "busybox"], stdout=slave,
                           stderr=subprocess.PIPE, env=berth.env, timeout=30)
    finally:
        os.close(slave)
        os.close(master)
    # docker's client errors, exactly as docker 28 prints them (exit status 1)
    assert (r.returncode, r.stderr) == (1, b"cowardly refusing to save to a terminal. "
                                           b"Use the -o flag or redirect\n")
    r = berth("save", "-o", "/nonexistent-dir/sub/x.tar", "busybox")
    assert (r.returncode, r.stderr) == (1, "failed to save image: invalid output path: stat "
                                           "/nonexistent-dir/sub: no such file or directory\n")
    r = subprocess.run([berth_bin(), "save", "-o", "missing-rel/x.tar", "nosuch:image"],
                       capture_output=True, text=True, env=berth.env, cwd="/", timeout=30)
    assert (r.returncode, r.stderr) == (1, "failed to save image: invalid output path: stat "
                                           "missing-rel: no such file or directory\n")
    r = berth("save", "-o", "/tmp", "busybox")
    assert (r.returncode, r.stderr) == (1, "failed to save image: cannot write to a "
                                           "directory\n")
    master, slave = pty.openpty()
    try:
        r = subprocess.run([berth_bin(), "load", "-q"], stdin=slave, capture_output=True,
                           env=berth.env, timeout=30)
    finally:
        os.close(slave)
        os.close(master)
    assert (r.returncode, r.stderr) == (1, b"requested load from stdin, but stdin is empty\n")
    r = berth("save", "-o", "/tmp/never-written.tar", "busybox", "nosuch:image")
    assert r.returncode == 1 and "No such image: nosuch:image" in r.stderr
    assert not os.path.exists("/tmp/never-written.tar")


def test_save_to_a_fifo_writes_in_place(berth: Cli, tmp_path: Path) -> None:
    """-o on something that is not a regular file (a FIFO, /dev/stdout) must be written
    to, never replaced by a renamed temp file."""
    import io
    import stat

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    copy = tmp_path / "copy.tar"
    with open(copy, "wb") as sink:
        reader = subprocess.Popen(["cat", str(fifo)], stdout=sink)
    try:
        r = berth("save", "-o", str(fifo), "busybox")
        reader.wait(timeout=30)
    finally:
        reader.kill()
        reader.wait()
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    with tarfile.open(fileobj=io.BytesIO(copy.read_bytes())) as t:
        assert "manifest.json" in t.getnames()


def test_bad_archive_is_one_line_and_changes_nothing(berth: Cli, tmp_path: Path) -> None:
    before = berth("images", "-q", "--no-trunc").stdout
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as t:
        info = tarfile.TarInfo("manifest.json")
        info.size = 5
        import io

        t.addfile(info, io.BytesIO(b"[{bad"))
    r = berth("load", "-i", str(bad))
    assert r.returncode == 125
    assert r.stderr.count("\n") == 1 and "manifest.json is not valid JSON" in r.stderr
    r = berth("load", "-i", str(tmp_path / "missing.tar"))
    assert r.returncode == 125 and "no such file or directory" in r.stderr
    assert berth("images", "-q", "--no-trunc").stdout == before


@needs_skopeo
def test_skopeo_inspects_berth_archives(berth: Cli, busybox: str, tmp_path: Path) -> None:
    out = tmp_path / "bb.tar"
    assert berth("save", "-o", str(out), "busybox").returncode == 0
    diff_ids = inspect(berth, "busybox")["RootFS"]["Layers"]
    for transport in (f"docker-archive:{out}", f"oci-archive:{out}:latest"):
        info = json.loads(skopeo("inspect", transport))
        assert info["Layers"] == diff_ids, transport
        raw = json.loads(skopeo("inspect", "--config", "--raw", transport))
        assert raw["rootfs"]["diff_ids"] == diff_ids


@needs_skopeo
def test_skopeo_round_trips_keep_the_image_id(berth: Cli, fresh: Cli, canonical: str,
                                              tmp_path: Path) -> None:
    out = tmp_path / "canon.tar"
    assert berth("save", "-o", str(out), "busybox:canon").returncode == 0
    oci_archive = tmp_path / "oci-archive.tar"
    oci_dir = tmp_path / "oci-dir"
    docker_archive = tmp_path / "docker-archive.tar"
    skopeo("copy", "-q", f"docker-archive:{out}", f"oci-archive:{oci_archive}:busybox:oa")
    skopeo("copy", "-q", f"docker-archive:{out}", f"oci:{oci_dir}:busybox:od")
    skopeo("copy", "-q", f"oci-archive:{oci_archive}", f"docker-archive:{docker_archive}"
           ":busybox:da")
    sources = [(oci_archive, "busybox:oa"), (tar_dir(oci_dir, tmp_path / "oci-dir.tar"),
                                             "busybox:od"), (docker_archive, "busybox:da")]
    original = inspect(berth, "busybox:canon")
    for archive, tag in sources:
        r = fresh("load", "-i", str(archive))
        assert (r.returncode, r.stdout) == (0, f"Loaded image: {tag}\n"), r.stderr
        got = inspect(fresh, tag)
        assert got["Id"] == canonical, archive
        assert got["RootFS"] == original["RootFS"]
        assert got["Config"] == original["Config"]
    runs(fresh, "busybox:oa")
    # the gzip layers skopeo wrote are stored as they are, and saved uncompressed again
    again = tmp_path / "again.tar"
    assert fresh("save", "-o", str(again), "busybox:oa").returncode == 0
    with tarfile.open(again) as t:
        layer = original["RootFS"]["Layers"][0]
        assert t.getmember(f"blobs/sha256/{layer[7:]}").size > 0
    assert json.loads(skopeo("inspect", f"docker-archive:{again}"))["Layers"] == \
        original["RootFS"]["Layers"]


@needs_skopeo
def test_skopeo_conversion_of_an_imported_image(berth: Cli, fresh: Cli, busybox: str,
                                                tmp_path: Path) -> None:
    """An imported image's config is not in Go's field order: skopeo's docker -> OCI
    conversion re-serialises it (a new ID, same content), while an OCI -> OCI copy of
    berth's archive keeps it byte for byte."""
    out = tmp_path / "bb.tar"
    assert berth("save", "-o", str(out), "busybox").returncode == 0
    converted = tmp_path / "converted.tar"
    skopeo("copy", "-q", f"docker-archive:{out}", f"oci-archive:{converted}:busybox:conv")
    same = tmp_path / "same.tar"
    skopeo("copy", "-q", f"oci-archive:{out}:latest", f"oci-archive:{same}:busybox:same")
    assert fresh("load", "-q", "-i", str(converted)).returncode == 0
    assert fresh("load", "-q", "-i", str(same)).returncode == 0
    original = inspect(berth, "busybox")
    assert image_id(fresh, "busybox:same") == busybox
    conv = inspect(fresh, "busybox:conv")
    skopeo_cfg = skopeo("inspect", "--config", "--raw", f"oci-archive:{converted}")
    assert conv["Id"] == "sha256:" + __import__("hashlib").sha256(
        skopeo_cfg.encode()).hexdigest()        # skopeo's bytes, kept exactly
    for key in ("RootFS", "Config", "Architecture", "Os"):
        assert conv[key] == original[key], key
    # Go re-formats the time: trailing zeros of the fraction go (…53.61786Z vs …53.617860Z)
    from sdk._internal.timefmt import parse_rfc3339

    assert parse_rfc3339(conv["Created"]) == parse_rfc3339(original["Created"])
    runs(fresh, "busybox:conv")
