"""``Engine.from_env()`` with the engine service: the same scenario through the service
(``sdk.remote``) and through the embedded Engine on the daemon's data root must give
the same results, errors included."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sdk import Engine
from sdk.errors import (
    Conflict,
    ContainerError,
    ContainerNotFound,
    ImageNotFound,
    InvalidArgument,
    NetworkNotFound,
    SdkError,
    VolumeNotFound,
)
from sdk.remote import RemoteEngine
from sdk.remote.errors import RemoteUnsupported
from tests.root.test_api_daemon import start_daemon, stop_daemon
from tests.root.test_api_tls import (  # noqa: F401 - pki is a fixture
    Pki,
    pki,
    server_flags,
    start_tls_daemon,
)
from tests.root.test_collection import registry  # noqa: F401, F811 - a shared fixture

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]


@pytest.fixture
def daemon(engine: Engine, busybox: str, tmp_path: Path) -> Iterator[Path]:
    sock = tmp_path / "berth.sock"
    proc = start_daemon(engine, sock)
    yield sock
    stop_daemon(proc, sock)


@pytest.fixture
def remote(daemon: Path, monkeypatch: pytest.MonkeyPatch) -> RemoteEngine:
    for key in ("BERTH_ROOT", "BERTH_CONFIG", "DOCKER_HOST"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("BERTH_HOST", f"unix://{daemon}")
    eng = Engine.from_env()
    assert isinstance(eng, RemoteEngine)
    return eng


def error_of(call: Callable[[], Any], prefix: str) -> tuple[str, str]:
    """(exception class, message with the run's prefix neutralised)."""
    try:
        call()
    except SdkError as exc:
        return type(exc).__name__, str(exc).replace(prefix, "P")
    raise AssertionError("no error raised")


def outcome(call: Callable[[], Any], prefix: str) -> Any:
    """The result, or (exception class, message) when it raises."""
    try:
        return call()
    except SdkError as exc:
        return type(exc).__name__, str(exc).replace(prefix, "P")


def scenario(eng: Any, p: str, busybox_tar: Path) -> dict[str, Any]:
    """Everything the comparison looks at, with ``p`` (the run's name prefix) replaced."""
    r: dict[str, Any] = {}
    # run without detach: output, stderr, ContainerError, removal
    r["run"] = eng.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"],
                                  remove=True, network_mode="none")
    r["run_stderr"] = eng.containers.run("busybox", "sh -c 'echo out; sleep 0.1; "
                                         "echo err >&2'", stderr=True, remove=True,
                                         network_mode="none")
    with pytest.raises(ContainerError) as err:
        eng.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 3"], remove=True,
                           name=f"{p}-fail", network_mode="none")
    r["container_error"] = (err.value.exit_status, err.value.stderr, str(err.value))
    r["run_missing"] = outcome(lambda: eng.containers.run(
        "busybox", ["no-such-cmd"], remove=True, network_mode="none"), p)
    r["left_after_run_missing"] = len(eng.containers.list(all=True))
    r["run_missing_kept"] = outcome(lambda: eng.containers.run(
        "busybox", ["no-such-cmd"], name=f"{p}-kept", network_mode="none"), p)
    r["kept"] = [(c.name.replace(p, "P"), c.status) for c in eng.containers.list(all=True)]
    eng.containers.get(f"{p}-kept").remove()
    r["fail_removed"] = f"{p}-fail" not in [c.name for c in eng.containers.list(all=True)]
    # a detached container's lifecycle
    c = eng.containers.run("busybox", ["sleep", "60"], detach=True, name=f"{p}-web",
                           environment={"A": "1"}, labels={"k": "v"}, network_mode="none")
    try:
        r["detached"] = (c.name.replace(p, "P"), c.status, c.labels, type(c.id).__name__,
                         c.short_id == c.id[:12], "A=1" in c.attrs["Config"]["Env"])
        r["by_label"] = [x.name.replace(p, "P")
                         for x in eng.containers.list(filters={"label": "k=v"})]
        code, out = c.exec_run(["sh", "-c", "echo $A; echo oops >&2; exit 4"])
        r["exec"] = (code, sorted(out.splitlines()))
        r["exec_str"] = tuple(c.exec_run("cat /proc/1/cmdline", workdir="/tmp"))
        r["exec_env"] = c.exec_run(["sh", "-c", "echo $B"], environment={"B": "b"}).output
        r["exec_detach"] = tuple(c.exec_run(["true"], detach=True))
        r["exec_missing"] = outcome(lambda: tuple(c.exec_run(["no-such-cmd"])), p)
        r["exec_user"] = outcome(lambda: tuple(c.exec_run("id -u", user="nobody")), p)
        r["exec_bad_user"] = outcome(lambda: tuple(c.exec_run("id", user="nouser")), p)
        c.pause()
        c.reload()
        r["paused"] = c.status
        c.unpause()
        c.reload()
        r["unpaused"] = c.status
        c.rename(f"{p}-web2")
        r["renamed"] = (c.name.replace(p, "P"), eng.containers.get(f"{p}-web2").id == c.id)
        r["update"] = c.update(mem_limit="128m", pids_limit=50)
        r["updated"] = (c.attrs["HostConfig"]["Memory"], c.attrs["HostConfig"]["PidsLimit"])
        c.exec_run("touch /tmp/new-file")
        r["diff"] = sorted((d["Path"], d["Kind"]) for d in c.diff())
        r["export"] = b"bin/busybox" in b"".join(c.export())
        r["stats"] = sorted(set(c.stats(stream=False)) & {"memory_stats", "pids_stats"})
        r["top"] = "sleep" in " ".join(" ".join(row) for row in c.top()["Processes"])
        c.stop(timeout=1)
        r["stopped"] = (c.status, c.attrs["State"]["ExitCode"])
        c.restart(timeout=1)
        r["restarted"] = c.status
        c.kill()
        r["killed"] = c.wait()
        r["remove_running"] = error_of(
            lambda: eng.containers.run("busybox", ["sleep", "60"], detach=True,
                                       name=f"{p}-busy", network_mode="none").remove(), p)
        eng.containers.get(f"{p}-busy").remove(force=True)
    finally:
        c.remove(force=True)
    r["gone"] = error_of(lambda: eng.containers.get(f"{p}-web2"), p)
    # logs of a finished container
    lc = eng.containers.run("busybox", ["sh", "-c", "echo one; sleep 0.1; echo two >&2; "
                                        "sleep 0.1; echo three"], detach=True,
                            network_mode="none")
    r["wait"] = lc.wait(timeout=30)
    r["logs"] = lc.logs()
    r["logs_stdout"] = lc.logs(stderr=False)
    r["logs_stderr"] = lc.logs(stdout=False)
    r["logs_tail"] = lc.logs(tail=1)
    r["logs_stream"] = b"".join(lc.logs(stream=True))
    r["logs_timestamps"] = len(lc.logs(timestamps=True).splitlines()[0].split(b" ")[0])
    lc.remove()
    created = eng.containers.create("busybox", "true", name=f"{p}-created",
                                    network_mode="none")
    r["created"] = (created.status, created.attrs["Config"]["Cmd"])
    r["prune"] = sorted(eng.containers.prune()["ContainersDeleted"] or []) == [created.id]
    # errors
    r["no_container"] = error_of(lambda: eng.containers.get(f"{p}-nope"), p)
    eng.containers.create("busybox", "true", name=f"{p}-dup", network_mode="none")
    dup = eng.containers.get(f"{p}-dup")
    kind, message = error_of(lambda: eng.containers.create(
        "busybox", "true", name=f"{p}-dup", network_mode="none"), p)
    r["name_conflict"] = (kind, message.replace(dup.id, "ID"))
    dup.remove()
    r["bad_memory"] = error_of(lambda: eng.containers.create(
        "busybox", "true", mem_limit="lots", network_mode="none"), p)
    r["bad_kwarg"] = error_of(lambda: eng.containers.create("busybox", "true", colour="red"),
                              p)
    r["no_image"] = error_of(lambda: eng.containers.create(f"{p}/missing:v1", "true",
                                                           pull="never"), p)
    r["run_rm_restart"] = error_of(lambda: eng.containers.run(
        "busybox", "true", remove=True, restart_policy={"Name": "always"}), p)
    # volumes
    vol = eng.volumes.create(f"{p}-vol", labels={"x": "y"})
    r["volume"] = (vol.name.replace(p, "P"), vol.attrs["Labels"], vol.attrs["Driver"],
                   vol.short_id == vol.name)
    r["volume_list"] = [v.name.replace(p, "P") for v in eng.volumes.list(
        filters={"label": "x=y"})]
    r["volume_data"] = eng.containers.run(
        "busybox", ["sh", "-c", "echo data > /v/f; cat /v/f"], network_mode="none",
        volumes={f"{p}-vol": {"bind": "/v", "mode": "rw"}}, remove=True)
    r["volume_get"] = eng.volumes.get(f"{p}-vol").attrs["Mountpoint"].endswith("/_data")
    eng.volumes.get(f"{p}-vol").remove()
    r["volume_gone"] = error_of(lambda: eng.volumes.get(f"{p}-vol"), p)
    eng.volumes.create(f"{p}-unused")
    r["volume_prune"] = [v.replace(p, "P") for v in
                         eng.volumes.prune(filters={"all": "true"})["VolumesDeleted"] or []]
    # networks
    net = eng.networks.create(f"{p}-net", labels={"n": "1"})
    net2 = eng.networks.create(f"{p}-net2")
    try:
        r["network"] = (net.name.replace(p, "P"), net.attrs["Driver"], net.attrs["Labels"])
        r["network_list"] = [n.name.replace(p, "P")
                             for n in eng.networks.list(names=[f"{p}-net", f"{p}-ne"])]
        nc = eng.containers.run("busybox", ["sleep", "60"], detach=True, network=f"{p}-net",
                                name=f"{p}-netc", network_aliases=["web"])
        try:
            r["network_aliases"] = "web" in (nc.attrs["NetworkSettings"]["Networks"]
                                             [f"{p}-net"].get("Aliases") or [])
            net2.connect(nc, aliases=["second"])
            nc.reload()
            r["connected"] = sorted(n.replace(p, "P")
                                    for n in nc.attrs["NetworkSettings"]["Networks"])
            net2.reload()
            r["network_containers"] = [x.name.replace(p, "P") for x in net2.containers]
            net2.disconnect(nc)
            nc.reload()
            r["disconnected"] = sorted(n.replace(p, "P")
                                       for n in nc.attrs["NetworkSettings"]["Networks"])
            kind, message = error_of(net.remove, p)
            r["network_in_use"] = (kind, message.replace(net.id, "ID"))
        finally:
            nc.remove(force=True)
    finally:
        net.remove()
        net2.remove()
    r["network_gone"] = error_of(lambda: eng.networks.get(f"{p}-net"), p)
    # images
    img = eng.images.get("busybox")
    r["image"] = ("busybox:latest" in img.tags, img.id.startswith("sha256:"),
                  img.short_id == img.id[7:19])
    assert img.tag(f"{p}/bb", "v1")
    r["tagged"] = sorted(t.replace(p, "P") for t in img.tags)
    r["image_list"] = [sorted(t.replace(p, "P") for t in i.tags)
                       for i in eng.images.list(name=f"{p}/bb")]
    r["image_remove"] = [{k: v.replace(p, "P") for k, v in d.items()}
                         for d in eng.images.remove(f"{p}/bb:v1")]
    r["image_gone"] = error_of(lambda: eng.images.get(f"{p}/bb:v1"), p)
    r["image_remove_missing"] = error_of(lambda: eng.images.remove(f"{p}/bb:v1"), p)
    imp = eng.images.import_image(str(busybox_tar), repository=f"{p}/imp", tag="t",
                                  changes=['CMD ["echo", "imported"]'])
    r["imported"] = ([t.replace(p, "P") for t in imp.tags], imp.attrs["Config"]["Cmd"],
                     imp.id == img.id)
    r["imported_run"] = eng.containers.run(f"{p}/imp:t", remove=True, network_mode="none")
    r["history"] = len(imp.history())
    eng.images.remove(f"{p}/imp:t")
    r["pull_error"] = error_of(lambda: eng.images.pull("127.0.0.1:1/nothing", "v1"), p)
    return r


def test_remote_and_embedded_agree(remote: RemoteEngine, engine: Engine,
                                   busybox_tar: Path) -> None:
    embedded = scenario(engine, "qxa", busybox_tar)
    through_service = scenario(remote, "qxb", busybox_tar)
    differ = {k: (embedded[k], through_service[k]) for k in embedded
              if through_service[k] != embedded[k]}
    assert not differ, "\n".join(f"{k}:\n  {a!r}\n  {b!r}" for k, (a, b) in differ.items())
    # spot checks that the shared results are the right ones, not merely equal
    assert embedded["run"] == b"out\n"
    assert embedded["run_stderr"] == b"out\nerr\n"
    assert embedded["container_error"][:2] == (3, b"bad\n")
    assert embedded["exec"] == (4, [b"1", b"oops"])
    assert embedded["logs"] == b"one\ntwo\nthree\n" and embedded["logs_stderr"] == b"two\n"
    assert embedded["killed"]["StatusCode"] == 137
    assert embedded["no_container"][0] == "ContainerNotFound"
    assert embedded["name_conflict"][0] == "Conflict"
    assert embedded["no_image"][0] == "ImageNotFound"
    assert embedded["volume_gone"][0] == "VolumeNotFound"
    assert embedded["network_gone"][0] == "NetworkNotFound"
    assert embedded["image_gone"][0] == "ImageNotFound"
    assert embedded["imported_run"] == b"imported\n"
    assert embedded["connected"] == ["P-net", "P-net2"]
    assert embedded["run_missing"][0] == "CommandNotFound"
    assert embedded["left_after_run_missing"] == 0       # remove=True: nothing left
    assert embedded["kept"] == [("P-kept", "created")]   # without it: kept, as docker
    assert ("/tmp/new-file", 1) in embedded["diff"] and embedded["export"]
    assert embedded["disconnected"] == ["P-net"]


def test_remote_errors_and_unsupported(remote: RemoteEngine) -> None:
    with pytest.raises(ContainerNotFound, match="No such container: nope"):
        remote.containers.get("nope")
    with pytest.raises(ImageNotFound):
        remote.images.get("nope:v0")
    with pytest.raises(VolumeNotFound):
        remote.volumes.get("nope")
    with pytest.raises(NetworkNotFound):
        remote.networks.get("nope")
    c = remote.containers.create("busybox", "true", network_mode="none")
    with pytest.raises(Conflict):
        remote.containers.create("busybox", "true", name=c.name, network_mode="none")
    with pytest.raises(InvalidArgument, match="platform"):
        remote.containers.create("busybox", "true", platform="linux/s390x")
    with pytest.raises(RemoteUnsupported, match="Container.commit"):
        c.commit("x")
    with pytest.raises(RemoteUnsupported, match="Engine.tasks"):
        remote.tasks  # noqa: B018 - the attribute access is the test
    assert getattr(remote, "root", None) is None and not hasattr(remote, "db")
    c.remove()
    assert remote.ping() and remote.version()["ApiVersion"]
    assert remote.info()["DockerRootDir"]


def test_unreachable_service_is_one_clear_error(tmp_path: Path) -> None:
    eng = RemoteEngine(f"unix://{tmp_path}/none.sock")
    with pytest.raises(SdkError, match=f"cannot reach the engine service at unix://{tmp_path}"):
        eng.containers.list()


def test_remote_over_mutual_tls(engine: Engine, busybox: str, pki: Pki,  # noqa: F811
                                monkeypatch: pytest.MonkeyPatch) -> None:
    d = start_tls_daemon(engine, *server_flags(pki))
    try:
        for key in ("BERTH_ROOT", "BERTH_CONFIG", "BERTH_HOST"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("DOCKER_HOST", d.url)
        monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
        monkeypatch.setenv("DOCKER_CERT_PATH", str(pki.client_dir))
        eng = Engine.from_env()
        assert isinstance(eng, RemoteEngine)
        assert eng.containers.run("busybox", ["echo", "hello tls"], remove=True,
                                  network_mode="none") == b"hello tls\n"
        c = eng.containers.run("busybox", ["sleep", "30"], detach=True, network_mode="none")
        assert c.exec_run(["echo", "exec"]) == (0, b"exec\n")
        c.remove(force=True)
        monkeypatch.setenv("DOCKER_CERT_PATH", str(pki.rogue_dir))
        with pytest.raises(SdkError, match="cannot reach the engine service"):
            Engine.from_env().containers.list()
    finally:
        d.stop()


def test_remote_pull_and_pull_on_run(remote: RemoteEngine, engine: Engine, busybox: str,
                                     registry: str) -> None:  # noqa: F811
    engine.images.get("busybox").tag(f"{registry}/bb", "v1")
    engine.images.push(f"{registry}/bb", "v1")
    engine.images.remove(f"{registry}/bb:v1")
    events: list[dict[str, Any]] = []
    img = remote.images.pull(f"{registry}/bb", "v1", progress=events.append)
    assert img.id == busybox and f"{registry}/bb:v1" in img.tags
    assert any("Digest" in str(e.get("status")) or "Downloaded" in str(e.get("status"))
               for e in events), events
    with pytest.raises(ImageNotFound):
        remote.images.pull(f"{registry}/nothing", "v1")
    remote.images.remove(f"{registry}/bb:v1")
    # create pulls a missing image (pull="missing"), as docker-py and the embedded one do
    out = remote.containers.run(f"{registry}/bb:v1", ["echo", "pulled"], remove=True,
                                network_mode="none")
    assert out == b"pulled\n"
    remote.images.remove(f"{registry}/bb:v1")
    with pytest.raises(ImageNotFound):
        remote.containers.create(f"{registry}/bb:v1", "true", pull="never")
