"""With SELinux on (daemon.json ``selinux-enabled``), a created container records a process
and a mount label and its runtime spec carries them: the process label for
/proc/thread-self/attr/exec, ``context=`` for the overlay rootfs and the tmpfs mounts.
This host has no SELinux (the config refuses ``selinux-enabled`` here), so the policy's
default contexts are faked at that boundary and the container is not started."""

from __future__ import annotations

import pytest

from sdk import Engine
from sdk._internal import selinux
from sdk.containers.specgen import build_spec

pytestmark = pytest.mark.root


@pytest.fixture
def labelled(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setattr(selinux, "default_contexts", lambda: (
        "system_u:system_r:container_t:s0", "system_u:object_r:container_file_t:s0"))
    engine.container_store.selinux = True
    return engine


def test_containers_get_distinct_labels_in_their_spec(labelled: Engine, busybox: str) -> None:
    a = labelled.containers.create("busybox", ["true"], network_mode="none", tmpfs={"/run": ""})
    b = labelled.containers.create("busybox", ["true"], network_mode="none")
    pa, ma = a.attrs["ProcessLabel"], a.attrs["MountLabel"]
    assert pa.startswith("system_u:system_r:container_t:s0:c")
    assert ma == pa.replace("system_r:container_t", "object_r:container_file_t")
    assert selinux.level_of(b.attrs["ProcessLabel"]) != selinux.level_of(pa)

    spec = build_spec(labelled.container_store.load(a.id), volumes=labelled.volume_store)
    assert spec.process.selinux_label == pa
    assert spec.rootfs.mount_label == ma
    tmpfs = [m for m in spec.mounts if m.kind == "tmpfs"]
    assert {m.target for m in tmpfs} >= {"/dev", "/dev/shm", "/run"}
    assert all(f'context="{ma}"' in m.options for m in tmpfs)
    # an exec in the container runs with the container's label (as docker exec)
    assert labelled.tasks.exec_process(labelled.container_store.load(a.id),
                                       ["true"]).selinux_label == pa


def test_privileged_and_label_disable_run_unlabelled(labelled: Engine, busybox: str) -> None:
    p = labelled.containers.create("busybox", ["true"], privileged=True)
    d = labelled.containers.create("busybox", ["true"], security_opt=["label=disable"])
    for c in (p, d):
        assert (c.attrs["ProcessLabel"], c.attrs["MountLabel"]) == ("", "")
        spec = build_spec(labelled.container_store.load(c.id), volumes=labelled.volume_store)
        assert spec.process.selinux_label == "" and spec.rootfs.mount_label == ""


def test_without_selinux_nothing_is_labelled(engine: Engine, busybox: str) -> None:
    c = engine.containers.create("busybox", ["true"], network_mode="none")
    assert (c.attrs["ProcessLabel"], c.attrs["MountLabel"]) == ("", "")
    out = engine.containers.run("busybox", ["true"], remove=True, network_mode="none")
    assert out == b""
