"""Dockerfile 1.4 heredocs (RUN and COPY) and remote contexts over loopback HTTP."""

from __future__ import annotations

import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdk import Engine
from sdk.errors import InvalidArgument
from tests.root.conftest import Cli

pytestmark = pytest.mark.root


def _build(engine: Engine, **kw: Any) -> tuple[str, str]:
    image, log = engine.images.build(**kw)
    return image.id, "".join(e.get("stream", "") for e in log)


def _run(engine: Engine, image: str, cmd: str) -> str:
    return engine.containers.run(image, ["sh", "-c", cmd], remove=True,
                                 entrypoint=[""]).decode()


def test_run_and_copy_heredocs(engine: Engine, busybox: str, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "plain.txt").write_text("from the context\n")
    (ctx / "Dockerfile").write_text("""\
FROM busybox
ARG WHO=world
RUN <<EOF
echo "hello $WHO" > /run-simple
echo second line >> /run-simple
EOF
RUN cat <<-EOT > /run-inline && echo after >> /run-inline
\tindented $WHO
\tEOT
RUN <<EOF
#!/bin/sh
echo "script as $0" > /run-script
EOF
COPY <<greeting.txt <<"raw.txt" plain.txt /files/
hi ${WHO}
greeting.txt
keep $WHO
raw.txt
COPY --chmod=600 <<EOF /single
one file
EOF
""")
    image_id, log = _build(engine, path=str(ctx))
    assert "Step 7/7" in log
    assert _run(engine, image_id, "cat /run-simple /run-inline /run-script") == \
        "hello world\nsecond line\nindented world\nafter\nscript as /dev/pipes/EOF\n"
    assert _run(engine, image_id, "cd /files; for f in *; do stat -c '%n %a' $f; cat $f; "
                "done; stat -c '%a' /single; cat /single") == (
        "greeting.txt 664\nhi world\nplain.txt 644\nfrom the context\n"
        "raw.txt 664\nkeep $WHO\n600\none file\n")
    # nothing of the script mount is left in the image
    assert _run(engine, image_id, "ls /dev/pipes 2>&1 || true").count("No such file") == 1

    again, log = _build(engine, path=str(ctx))
    assert again == image_id and log.count("Using cache") == 6
    # a changed build arg reaches the heredoc bodies (new content, no cache)
    changed, log = _build(engine, path=str(ctx), buildargs={"WHO": "berth"})
    assert _run(engine, changed, "cat /files/greeting.txt") == "hi berth\n"
    # a changed script body is a new step, not a cache hit
    text = (ctx / "Dockerfile").read_text().replace("script as", "now as")
    (ctx / "Dockerfile").write_text(text)
    edited, log = _build(engine, path=str(ctx))
    assert _run(engine, edited, "cat /run-script") == "now as /dev/pipes/EOF\n"


def test_copy_cache_knows_the_file_name(engine: Engine, busybox: str,
                                        tmp_path: Path) -> None:
    """Same content under another name is another COPY (docker hashes the name too)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("same\n")
    (ctx / "b.txt").write_text("same\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY a.txt /d/\n")
    _build(engine, path=str(ctx))
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY b.txt /d/\n")
    image_id, log = _build(engine, path=str(ctx))
    assert "Using cache" not in log
    assert _run(engine, image_id, "ls /d") == "b.txt\n"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    root = tmp_path / "srv"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *a: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_url_context_tar_and_dockerfile(berth: Cli, engine: Engine,
                                        served: tuple[Path, int]) -> None:
    root, port = served
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY app.txt /app.txt\n"),
                           ("app.txt", b"remote context\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (root / "ctx.tar.gz").write_bytes(buf.getvalue())
    (root / "Dockerfile.remote").write_text("FROM busybox\nLABEL from=url\n")

    res = berth("build", "-t", "remote:1", f"http://127.0.0.1:{port}/ctx.tar.gz")
    assert res.returncode == 0, res.stderr
    assert "Successfully tagged remote:1" in res.stdout
    assert _run(engine, "remote:1", "cat /app.txt") == "remote context\n"

    image_id, _ = _build(engine, path=f"http://127.0.0.1:{port}/Dockerfile.remote")
    assert engine.images.get(image_id).labels == {"from": "url"}

    before = {i.id for i in engine.images.list(all=True)}
    res = berth("build", "-t", "missing:1", f"http://127.0.0.1:{port}/nope.tar")
    assert res.returncode != 0
    assert "unable to download remote context" in res.stderr and "404" in res.stderr
    assert {i.id for i in engine.images.list(all=True)} == before
    with pytest.raises(InvalidArgument, match="git repository"):
        _build(engine, path=f"http://127.0.0.1:{port}/repo.git")
