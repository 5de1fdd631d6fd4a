"""``commit``: a container's changes (added, changed, deleted files) become an image."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdk import Engine
from sdk.errors import InvalidArgument
from tests.root.conftest import Cli

pytestmark = pytest.mark.root

SCRIPT = ("echo added > /added.txt && echo changed > /etc/motd-like && "
          "echo new >> /etc/passwd && rm /bin/ls && rm -r /home && mkdir -p /opt/d && "
          "touch /opt/d/f")


def test_commit_added_changed_deleted(engine: Engine, busybox: str) -> None:
    c = engine.containers.create("busybox", ["sh", "-c", SCRIPT])
    c.start()
    assert c.wait()["StatusCode"] == 0
    image = c.commit("committed", "v1", message="my change", author="Me <me@x>",
                     changes=['CMD ["cat", "/added.txt"]', "ENV MODE=committed"])
    assert engine.images.get("committed:v1").id == image.id
    assert engine.containers.run(image.id, remove=True) == b"added\n"
    out = engine.containers.run(image.id, ["sh", "-c",
                                           "tail -1 /etc/passwd; ls /bin/ls /home 2>&1; "
                                           "ls /opt/d; echo $MODE"], remove=True).decode()
    lines = out.splitlines()
    assert lines[0] == "new"
    assert sum("No such file" in line for line in lines) == 2     # whiteouts work
    assert lines[-2:] == ["f", "committed"]

    attrs = image.attrs
    assert attrs["Parent"] == busybox
    assert attrs["Author"] == "Me <me@x>" and attrs["Comment"] == "my change"
    cfg = engine.image_store.config(image.id)
    assert cfg["history"][-1]["created_by"] == f"sh -c {SCRIPT}"
    assert cfg["history"][-1]["comment"] == "my change"
    assert len(cfg["rootfs"]["diff_ids"]) == 2
    # no runtime mount points leak into the layer
    top = engine.image_store.layer_chain(image.id)[-1]
    diff = engine.layer_store.lower_dirs(top.chain_id)[0]
    assert not (diff / "etc" / "hosts").exists()
    assert not (diff / "etc" / "resolv.conf").exists()
    c.remove()


def test_commit_without_changes_is_an_empty_layer(engine: Engine, busybox: str) -> None:
    c = engine.containers.create("busybox", ["true"])
    c.start()
    c.wait()
    image = c.commit()
    cfg = engine.image_store.config(image.id)
    assert cfg["history"][-1]["empty_layer"] is True
    assert len(cfg["rootfs"]["diff_ids"]) == 1
    with pytest.raises(InvalidArgument, match="RUN is not a valid change command"):
        c.commit(changes=["RUN echo no"])
    c.remove()


def test_cli_commit_running_container_with_pause(berth: Cli, engine: Engine) -> None:
    res = berth("run", "-d", "busybox", "sh", "-c", "echo live > /live; sleep 30")
    assert res.returncode == 0, res.stderr
    cid = res.stdout.strip()
    try:
        for _ in range(50):
            done = berth("exec", cid, "cat", "/live")
            if done.stdout == "live\n":
                break
        res = berth("commit", "-c", "EXPOSE 8080", "-c", "USER 1000", cid, "snap:1")
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip().startswith("sha256:")
        assert engine.containers.get(cid).status == "running"     # unpaused again
        img = engine.images.get("snap:1")
        assert img.attrs["Config"]["User"] == "1000"
        assert "8080/tcp" in img.attrs["Config"]["ExposedPorts"]
        out = engine.containers.run("snap:1", ["cat", "/live"], remove=True)
        assert out == b"live\n"
        res = berth("container", "commit", "-c", "BOGUS x", cid)
        assert res.returncode != 0 and "BOGUS is not a valid change command" in res.stderr
    finally:
        berth("rm", "-f", cid)


def test_vfs_build_and_commit(tmp_path: Path, busybox_tar: Path) -> None:
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"storage-driver": "vfs"}))
    eng = Engine(root=tmp_path / "root", config=cfg)
    try:
        eng.images.import_image(str(busybox_tar), repository="busybox")
        assert eng.storage_driver == "vfs"
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo v > /new && rm /bin/ls\n"
                                        "WORKDIR /w\n")
        image, _log = eng.images.build(path=str(ctx))
        out = eng.containers.run(image.id, ["sh", "-c", "cat /new; ls /bin/ls 2>&1; pwd"],
                                 remove=True).decode().splitlines()
        assert out[0] == "v" and "No such file" in out[1] and out[2] == "/w"
        c = eng.containers.create(image.id, ["sh", "-c", "rm /new; echo x > /x"])
        c.start()
        c.wait()
        committed = c.commit()
        out = eng.containers.run(committed.id, ["sh", "-c", "cat /x; ls /new 2>&1; true"],
                                 remove=True).decode().splitlines()
        assert out[0] == "x" and "No such file" in out[1]
        c.remove()
    finally:
        for doc in eng.tasks.all():
            eng.tasks.remove(doc["Id"], force=True, volumes=True)
        eng.repair()      # the idle default bridge goes with the test
        eng.close()
