"""``build`` for real: Dockerfiles on the busybox image, run through the engine."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from sdk import Engine
from sdk.build.builder import BuildError
from sdk.errors import InvalidArgument, NotFound
from tests.root.conftest import BERTH, Cli

pytestmark = pytest.mark.root


def _mounts_under(root: Path) -> int:
    """Mounts of this test's engine only (other tests may mount and unmount meanwhile)."""
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if str(root) in line)


def _ctx(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return ctx


def _build(engine: Engine, ctx: Path, **kw: Any) -> tuple[str, str]:
    image, log = engine.images.build(path=str(ctx), **kw)
    text = "".join(e.get("stream", "") for e in log)
    return image.id, text


def _run(engine: Engine, image: str, cmd: str) -> str:
    out = engine.containers.run(image, ["sh", "-c", cmd], remove=True, entrypoint=[""])
    return out.decode()


def test_build_run_copy_add_workdir_user_env(engine: Engine, busybox: str,
                                             tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, """\
FROM busybox
ENV GREETING="hello world" \\
    EMPTY=
ARG V=1
RUN echo "$GREETING v=$V" > /greeting && rm /bin/ls
WORKDIR app
WORKDIR sub
COPY file.txt dir ./
ADD layer.tar /unpacked/
COPY --chown=1000:1000 --chmod=640 file.txt /owned
USER 1000
CMD ["cat", "/greeting"]
""", {"file.txt": "content\n", "dir/nested/deep.txt": "deep\n", "ignored.log": "x",
      ".dockerignore": "*.log\n"})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"from the tar\n"
        info = tarfile.TarInfo("t/inside.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (ctx / "layer.tar").write_bytes(buf.getvalue())

    image_id, log = _build(engine, ctx, tag="built:1", buildargs={"V": "7"})
    assert "Successfully tagged built:1" in log
    assert engine.images.get("built:1").id == image_id
    out = engine.containers.run("built:1", remove=True).decode()
    assert out == "hello world v=7\n"
    listing = _run(engine, "built:1", "id -u; pwd; cat file.txt nested/deep.txt "
                   "/unpacked/t/inside.txt; ls ignored.log /bin/ls 2>&1; stat -c '%a %u' "
                   "/owned")
    lines = listing.splitlines()
    assert lines[:5] == ["1000", "/app/sub", "content", "deep", "from the tar"]
    assert any("ignored.log" in line and "No such file" in line for line in lines)
    assert any("/bin/ls" in line and "No such file" in line for line in lines)
    assert lines[-1] == "640 1000"

    attrs = engine.images.get(image_id).attrs
    cfg = attrs["Config"]
    assert cfg["Env"][-2:] == ["GREETING=hello world", "EMPTY="]
    assert not any(e.startswith("V=") for e in cfg["Env"])       # ARG is not persisted
    assert cfg["User"] == "1000"
    assert cfg["WorkingDir"] == "/app/sub"
    history = engine.image_store.config(image_id)["history"]
    by = [h["created_by"] for h in history[1:]]
    assert by[0] == '/bin/sh -c #(nop)  ENV GREETING=hello world EMPTY='
    assert by[2] == '|1 V=7 /bin/sh -c echo "$GREETING v=$V" > /greeting && rm /bin/ls'
    assert by[3] == "/bin/sh -c #(nop) WORKDIR /app"
    assert by[-1] == '/bin/sh -c #(nop)  CMD ["cat" "/greeting"]'
    assert history[1]["empty_layer"] is True and "empty_layer" not in history[3]
    layers = sum(1 for h in history if not h.get("empty_layer"))
    assert layers == len(attrs["RootFS"]["Layers"])


def test_cache_hit_on_rebuild_and_no_cache(engine: Engine, busybox: str,
                                           tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n"
               "CMD [\"sh\"]\n", {"a.txt": "one\n"})
    first, _ = _build(engine, ctx)
    second, log = _build(engine, ctx)
    assert second == first
    assert log.count("Using cache") == 3
    assert "Running in" not in log
    # a new engine (another process) sees the same cache
    with Engine(root=engine.root, config=engine.config_path) as other:
        third, _ = _build(other, ctx)
    assert third == first
    uncached, log = _build(engine, ctx, nocache=True)
    assert "Using cache" not in log and uncached != first
    (ctx / "a.txt").write_text("two\n")
    changed, log = _build(engine, ctx)
    assert log.count("Using cache") == 0 and changed != first
    assert _run(engine, changed, "cat /b.txt") == "two\n"


def test_multi_stage_copy_from_and_target(engine: Engine, busybox: str,
                                          tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, """\
FROM busybox AS builder
RUN mkdir /out && echo built > /out/artifact && echo gone > /out/gone
RUN rm /out/gone && echo later > /out/later
FROM busybox AS second
RUN echo second > /second
FROM busybox
COPY --from=builder /out/artifact /final/
COPY --from=0 /out /copied
COPY --from=builder /etc /etc2
""")
    image_id, log = _build(engine, ctx)
    assert "Step 9/9" in log
    assert _run(engine, image_id, "cat /final/artifact; ls /copied; ls /second "
                "2>/dev/null || echo none") == "built\nartifact\nlater\nnone\n"
    # a directory merged from several layers of the stage (the base's /etc included)
    assert _run(engine, image_id, "cmp /etc/passwd /etc2/passwd && echo same") == "same\n"
    target_id, log = _build(engine, ctx, target="second")
    assert "Step 5/5" in log
    assert _run(engine, target_id, "cat /second") == "second\n"
    with pytest.raises(InvalidArgument, match="failed to reach build target nope"):
        _build(engine, ctx, target="nope")


def test_failing_run_leaves_nothing(engine: Engine, busybox: str, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM busybox\nRUN echo before-fail && exit 3\n")
    mounts = _mounts_under(engine.root)
    log: list[str] = []
    from sdk.build.api import open_context, run_build
    from sdk.build.builder import BuildOptions

    with open_context(path=str(ctx)) as c, pytest.raises(BuildError) as exc:
        run_build(engine, c, BuildOptions(tags=["bad:1"]), log.append)
    assert "returned a non-zero code: 3" in str(exc.value)
    assert "before-fail" in "".join(log)
    assert engine.containers.list(all=True) == []
    assert not any((engine.root / "storage" / "containers").iterdir())
    assert _mounts_under(engine.root) == mounts
    with pytest.raises(NotFound):
        engine.images.get("bad:1")


@pytest.mark.parametrize(("dockerfile", "line", "text"), [
    ("FROM busybox\nCOPY missing.txt /\n", 2, "file not found in build context"),
    ("FROM busybox\n\nCOPY ../outside /\n", 3, "outside the build context"),
    ("FROM busybox\nRUN true\nBOGUS x\n", 3, "unknown instruction: BOGUS"),
    ("ARG BASE\nFROM $BASE\n", 2, "base name ($BASE) should not be blank"),
    ("FROM busybox\nENV A\n", 2, "ENV must have two arguments"),
    ("FROM busybox\nEXPOSE 99999\n", 2, "invalid port range"),
])
def test_bad_input_names_the_line(engine: Engine, busybox: str, tmp_path: Path,
                                  dockerfile: str, line: int, text: str) -> None:
    ctx = _ctx(tmp_path, dockerfile)
    before = set(engine.image_store.list_ids())
    with pytest.raises(InvalidArgument) as exc:
        _build(engine, ctx, tag="bad:input")
    assert f"Dockerfile:{line}:" in str(exc.value) and text in str(exc.value)
    with pytest.raises(NotFound):
        engine.images.get("bad:input")
    if line == 3 and "BOGUS" in text:
        assert set(engine.image_store.list_ids()) == before     # parse errors: no work


def test_onbuild_triggers_run_in_the_child(engine: Engine, busybox: str,
                                           tmp_path: Path) -> None:
    parent = _ctx(tmp_path, "FROM busybox\nONBUILD RUN echo triggered > /trig\n")
    _build(engine, parent, tag="parent:1")
    assert engine.images.get("parent:1").attrs["Config"]["OnBuild"] == [
        "RUN echo triggered > /trig"]
    child_dir = tmp_path / "child"
    child_dir.mkdir()
    (child_dir / "Dockerfile").write_text("FROM parent:1\nCMD [\"cat\", \"/trig\"]\n")
    image_id, log = _build(engine, child_dir)
    assert "# Executing 1 build trigger" in log
    assert engine.containers.run(image_id, remove=True) == b"triggered\n"
    assert not engine.images.get(image_id).attrs["Config"]["OnBuild"]


def test_add_url_from_loopback(engine: Engine, busybox: str, tmp_path: Path) -> None:
    import http.server
    import threading

    served = tmp_path / "srv"
    served.mkdir()
    (served / "remote.txt").write_text("over http\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, directory=str(served), **k)

        def log_message(self, *a: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        ctx = _ctx(tmp_path, f"FROM busybox\nADD http://127.0.0.1:{port}/remote.txt /dl/\n")
        image_id, _ = _build(engine, ctx)
        digest = __import__("hashlib").sha256(b"over http\n").hexdigest()
        good = _ctx(tmp_path / "good", f"FROM busybox\nADD --checksum=sha256:{digest} "
                    f"http://127.0.0.1:{port}/remote.txt /dl/\n")
        _build(engine, good)
        bad = _ctx(tmp_path / "bad", f"FROM busybox\nADD --checksum=sha256:{'0' * 64} "
                   f"http://127.0.0.1:{port}/remote.txt /dl/\n")
        with pytest.raises(InvalidArgument, match="Dockerfile:2: .*digest mismatch"):
            _build(engine, bad)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert _run(engine, image_id, "cat /dl/remote.txt; stat -c %a /dl/remote.txt") == \
        "over http\n600\n"


def test_cli_build_quiet_stdin_and_file_dash(berth: Cli, engine: Engine,
                                             tmp_path: Path) -> None:
    res = berth("build", "-q", "-t", "fromstdin", "-", input=b"FROM busybox\nLABEL a=b\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().startswith("sha256:") and len(res.stdout.strip()) == 71
    assert engine.images.get("fromstdin").labels == {"a": "b"}

    ctx = _ctx(tmp_path, "unused", {"f.txt": "ctx file\n"})
    res = berth("build", "-t", "dash", "-f", "-", "--label", "x=y", str(ctx),
                input=b"FROM busybox\nCOPY f.txt /\n")
    assert res.returncode == 0, res.stderr
    assert "Step 3/3 : LABEL \"x\"=\"y\"" in res.stdout
    assert "Successfully tagged dash:latest" in res.stdout
    assert engine.images.get("dash").labels == {"x": "y"}

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(ctx / "f.txt", "f.txt")
        df = b"FROM busybox\nCOPY f.txt /from-tar\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(df)
        tar.addfile(info, io.BytesIO(df))
    raw = subprocess.run([BERTH, "build", "-q", "-t", "tarctx", "-"], env=berth.env,
                         input=buf.getvalue(), capture_output=True, timeout=60)
    assert raw.returncode == 0, raw.stderr
    out = engine.containers.run("tarctx", ["cat", "/from-tar"], remove=True)
    assert out == b"ctx file\n"

    res = berth("build", "-q", "-", input=b"FROM busybox\nRUN echo oops; exit 5\n")
    assert res.returncode == 1
    assert "oops" in res.stderr and "returned a non-zero code: 5" in res.stderr
    assert os.path.isdir(engine.root)


def test_metadata_instructions_and_shell(engine: Engine, busybox: str,
                                         tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, """\
ARG TAG=latest
FROM busybox:${TAG}
ARG TAG
SHELL ["/bin/sh", "-ec"]
RUN echo "tag=$TAG" > /tag
USER 1000
RUN id -u > /tmp/uid
USER root
EXPOSE 80 8000-8001/udp
VOLUME ["/data", "/logs"]
HEALTHCHECK --interval=30s --retries=2 CMD ["true"]
STOPSIGNAL SIGQUIT
MAINTAINER someone
ENTRYPOINT echo
""")
    image_id, _log = _build(engine, ctx)
    cfg = engine.images.get(image_id).attrs["Config"]
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "8000/udp", "8001/udp"}
    assert set(cfg["Volumes"]) == {"/data", "/logs"}
    assert cfg["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 30 * 10**9,
                                  "Retries": 2}
    assert cfg["StopSignal"] == "SIGQUIT" and cfg["Shell"] == ["/bin/sh", "-ec"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-ec", "echo"] and cfg["Cmd"] is None
    assert _run(engine, image_id, "cat /tag /tmp/uid") == "tag=latest\n1000\n"
    full = engine.image_store.config(image_id)
    assert full["author"] == "someone"
    by = [h["created_by"] for h in full["history"]]
    assert by[-1] == '/bin/sh -ec #(nop)  ENTRYPOINT ["/bin/sh" "-ec" "echo"]'
    assert '/bin/sh -ec #(nop)  VOLUME [/data /logs]' in by
    assert '|1 TAG=latest /bin/sh -ec echo "tag=$TAG" > /tag' in by
    assert ('/bin/sh -ec #(nop)  HEALTHCHECK &{["CMD" "true"] "30s" "0s" "0s" "0s" '
            "'\\x02'}") in by

    none = _ctx(tmp_path / "n", "FROM busybox\nHEALTHCHECK NONE\n")
    none_id, _ = _build(engine, none)
    assert engine.images.get(none_id).attrs["Config"]["Healthcheck"] == {"Test": ["NONE"]}


def test_scratch_and_layer_limit(engine: Engine, busybox: str, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from sdk.build import steps

    ctx = _ctx(tmp_path, "FROM scratch\nCOPY a /a\nCOPY b /b\nCMD [\"/a\"]\n",
               {"a": "1", "b": "2"})
    image_id, log = _build(engine, ctx)
    assert "Step 1/4 : FROM scratch" in log
    attrs = engine.images.get(image_id).attrs
    assert len(attrs["RootFS"]["Layers"]) == 2 and attrs["Config"]["Cmd"] == ["/a"]
    monkeypatch.setattr(steps, "MAX_LAYERS", 2)
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY a /a\nCOPY b /b\nCOPY a /c\n")
    with pytest.raises(InvalidArgument, match="Dockerfile:4: .*max depth exceeded"):
        _build(engine, ctx, nocache=True)


def test_build_args_are_part_of_the_cache_key(engine: Engine, busybox: str,
                                              tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM busybox\nARG V=0\nRUN echo $V > /v\n")
    one, _ = _build(engine, ctx, buildargs={"V": "1"})
    again, log = _build(engine, ctx, buildargs={"V": "1"})
    assert again == one and log.count("Using cache") == 2
    two, log = _build(engine, ctx, buildargs={"V": "2"})
    assert two != one and "Running in" in log
    assert _run(engine, two, "cat /v") == "2\n"
    _img, log = _build(engine, ctx, buildargs={"V": "2", "UNUSED": "x"})
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in log
