"""The copy-based vfs driver and daemon.json validation, through the real engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdk import Engine
from sdk.errors import ConfigError, FailedPrecondition

pytestmark = pytest.mark.root


def test_vfs_driver_runs_diffs_and_exports(tmp_path: Path, busybox_tar: Path) -> None:
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"storage-driver": "vfs"}))
    eng = Engine(root=tmp_path / "root", config=cfg)
    try:
        eng.images.import_image(str(busybox_tar), repository="busybox")
        assert eng.storage_driver == "vfs"
        c = eng.containers.create("busybox", ["sh", "-c", "echo v > /new; rm /etc/os-release"])
        c.start()
        assert c.wait(timeout=10)["StatusCode"] == 0
        changes = {(d["Kind"], d["Path"]) for d in c.diff()}
        assert (1, "/new") in changes and (2, "/etc/os-release") in changes
        import io
        import tarfile

        data = b"".join(c.export())
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            names = tar.getnames()
        assert "new" in names and "etc/os-release" not in names
        assert eng.info()["Driver"] == "vfs"
        c.remove()
    finally:
        eng.repair()      # the idle default bridge goes with the test
        eng.close()


@pytest.mark.parametrize("content, error", [
    ('{"storage-driver": "aufs"}', ConfigError),
    ('{"max-concurrent-downloads": "3"}', ConfigError),
    ('{"no-such-key": 1}', ConfigError),
    ("{not json", ConfigError),
    ('{"selinux-enabled": true}', FailedPrecondition),
])
def test_bad_daemon_json_is_refused(tmp_path: Path, content: str, error: type) -> None:
    cfg = tmp_path / "daemon.json"
    cfg.write_text(content)
    with pytest.raises(error) as info:
        Engine(root=tmp_path / "root", config=cfg)
    assert str(cfg) in str(info.value)
    assert not (tmp_path / "root").exists()
