"""The classic builder's log shape (as docker 20.10's), and the build cache's prune."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sdk import Engine
from sdk.errors import InvalidArgument
from tests.root.conftest import Cli

pytestmark = pytest.mark.root


def _mounts_under(root: Path) -> int:
    """Mounts of this test's engine only (other tests may mount and unmount meanwhile)."""
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if str(root) in line)

DOCKERFILE = """\
FROM busybox
ENV A=1
LABEL x=y
COPY a.txt /a.txt
RUN echo hi
WORKDIR /app
CMD ["sh"]
EXPOSE 80
"""
# `DOCKER_BUILDKIT=0 docker build -t t1 .` on dockerd 20.10.24, IDs replaced by ID
# (the "Sending build context" line is the client's, berth reads the directory)
DOCKER_COLD = """\
Step 1/8 : FROM busybox
 ---> ID
Step 2/8 : ENV A=1
 ---> Running in ID
Removing intermediate container ID
 ---> ID
Step 3/8 : LABEL x=y
 ---> Running in ID
Removing intermediate container ID
 ---> ID
Step 4/8 : COPY a.txt /a.txt
 ---> ID
Step 5/8 : RUN echo hi
 ---> Running in ID
hi
Removing intermediate container ID
 ---> ID
Step 6/8 : WORKDIR /app
 ---> Running in ID
Removing intermediate container ID
 ---> ID
Step 7/8 : CMD ["sh"]
 ---> Running in ID
Removing intermediate container ID
 ---> ID
Step 8/8 : EXPOSE 80
 ---> Running in ID
Removing intermediate container ID
 ---> ID
Successfully built ID
Successfully tagged t1:latest
"""
DOCKER_CACHED = """\
Step 1/8 : FROM busybox
 ---> ID
""" + "".join(f"""\
Step {n}/8 : {line}
 ---> Using cache
 ---> ID
""" for n, line in enumerate(DOCKERFILE.splitlines()[1:], start=2)) + """\
Successfully built ID
Successfully tagged t1:latest
"""


def _mask(log: str) -> str:
    return re.sub(r"\b[0-9a-f]{12}\b", "ID", log)


def _ctx(tmp_path: Path, dockerfile: str, name: str = "ctx") -> Path:
    ctx = tmp_path / name
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "a.txt").write_text("hello\n")
    return ctx


def test_log_reads_like_dockers_classic_builder(berth: Cli, engine: Engine,
                                                tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, DOCKERFILE)
    mounts = _mounts_under(engine.root)
    cold = berth("build", "-t", "t1", str(ctx))
    assert cold.returncode == 0, cold.stderr
    assert _mask(cold.stdout) == DOCKER_COLD
    # every "Running in" container was real and is gone again
    ids = re.findall(r"Running in ([0-9a-f]{12})", cold.stdout)
    assert len(set(ids)) == 6
    assert engine.containers.list(all=True) == []
    assert _mounts_under(engine.root) == mounts
    cached = berth("build", "-t", "t1", str(ctx))
    assert cached.returncode == 0, cached.stderr
    assert _mask(cached.stdout) == DOCKER_CACHED
    # the committed history is unchanged by the probe containers
    history = engine.images.get("t1").history()
    assert [h["CreatedBy"] for h in history[:2]] == [
        '/bin/sh -c #(nop)  EXPOSE 80', '/bin/sh -c #(nop)  CMD ["sh"]']


def test_builder_prune_dangling_then_all(berth: Cli, engine: Engine,
                                         tmp_path: Path) -> None:
    kept = _ctx(tmp_path, "FROM busybox\nCOPY a.txt /a\nRUN echo kept > /k\nENV K=1\n",
                "kept")
    loose = _ctx(tmp_path, "FROM busybox\nRUN head -c 300000 /dev/zero > /big\n"
                 "LABEL l=1\n", "loose")
    assert berth("build", "-q", "-t", "kept:1", str(kept)).returncode == 0
    res = berth("build", "-q", str(loose))
    assert res.returncode == 0, res.stderr
    loose_id = res.stdout.strip()
    before = {i.id for i in engine.images.list(all=True)}

    # bad filters change nothing
    res = berth("builder", "prune", "-f", "--filter", "bogus=1")
    assert res.returncode != 0 and "invalid filter 'bogus'" in res.stderr
    assert {i.id for i in engine.images.list(all=True)} == before
    # until: everything is younger than an hour
    res = berth("builder", "prune", "-f", "--filter", "until=1h")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "Total reclaimed space: 0B\n"

    # without -a: the untagged build's steps go, the tagged build's stay
    res = berth("builder", "prune", "-f")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("Deleted build cache objects:\n")
    lines = res.stdout.splitlines()     # docker's: header, keys, a blank line, total
    assert len(lines) == 1 + 2 + 1 + 1 and lines[-2] == ""
    reclaimed = res.stdout.splitlines()[-1]
    assert reclaimed.startswith("Total reclaimed space: ") and reclaimed != \
        "Total reclaimed space: 0B"
    ids = {i.id for i in engine.images.list(all=True)}
    assert loose_id not in ids
    again = berth("build", "-t", "kept:1", str(kept))
    assert again.stdout.count("Using cache") == 3

    # -a: every record goes; the tagged image and what it needs stay usable
    res = berth("builder", "prune", "-a", "-f")
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 1 + 3 + 1 + 1
    assert engine.containers.run("kept:1", ["cat", "/k"], remove=True) == b"kept\n"
    assert engine.images.get("busybox").id
    rebuilt = berth("build", "-t", "kept:1", str(kept))
    assert rebuilt.returncode == 0 and "Using cache" not in rebuilt.stdout
    assert not any((engine.root / "storage" / "containers").iterdir())


def test_prompt_and_sdk_prune_builds(berth: Cli, engine: Engine, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM busybox\nRUN echo x > /x\n")
    assert berth("build", "-q", str(ctx)).returncode == 0
    res = berth("builder", "prune", input=b"n\n")
    assert res.stdout == ("WARNING! This will remove all dangling build cache. Are you "
                          "sure you want to continue? [y/N] ")
    assert len(engine.images.list(all=True)) == 2
    result = engine.images.prune_builds()
    assert set(result) == {"CachesDeleted", "SpaceReclaimed"}
    assert len(result["CachesDeleted"]) == 1 and result["SpaceReclaimed"] > 0
    assert engine.images.prune_builds() == {"CachesDeleted": None, "SpaceReclaimed": 0}
    with pytest.raises(InvalidArgument, match="invalid filter 'label'"):
        engine.images.prune_builds(filters={"label": "a=b"})


def test_image_prune_and_the_build_cache(engine: Engine, busybox: str,
                                         tmp_path: Path) -> None:
    """docker's semantics: ``image prune`` keeps the steps of a tagged build (they are
    its parents, not dangling); ``image prune -a`` removes them, and the next build
    runs every step again."""
    ctx = _ctx(tmp_path, "FROM busybox\nRUN echo x > /x\nENV E=1\n")
    engine.images.build(path=str(ctx), tag="p:1")
    keeper = engine.containers.create("busybox", ["true"])   # busybox stays in use
    engine.images.prune()
    _, log = engine.images.build(path=str(ctx), tag="p:1")
    assert "".join(e.get("stream", "") for e in log).count("Using cache") == 2
    engine.images.prune(filters={"dangling": False})
    _, log = engine.images.build(path=str(ctx), tag="p:1")
    assert "Using cache" not in "".join(e.get("stream", "") for e in log)
    keeper.remove()
