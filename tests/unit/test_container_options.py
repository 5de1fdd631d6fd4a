from __future__ import annotations

import pytest

from sdk.containers.options import build_configs, merge_env, parse_mount_spec, parse_volume_spec
from sdk.errors import InvalidArgument
from sdk.images.changes import apply_changes

IMAGE = {"Env": ["PATH=/bin", "A=image"], "Cmd": ["sh"], "WorkingDir": "/srv",
         "Labels": {"from": "image"}, "Volumes": {"/data": {}}, "ExposedPorts": {"80/tcp": {}}}


def test_merge_with_image_config_like_docker() -> None:
    cfg, host = build_configs("img", IMAGE, None, {"environment": {"A": "user", "B": "2"},
                                                    "labels": ["x=1"]})
    assert cfg["Cmd"] == ["sh"] and cfg["Entrypoint"] is None
    assert cfg["Env"] == ["PATH=/bin", "A=user", "B=2"]
    assert cfg["WorkingDir"] == "/srv" and cfg["Labels"] == {"from": "image", "x": "1"}
    assert cfg["Volumes"] == {"/data": {}}
    assert host["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert host["ShmSize"] == 64 * 1024 * 1024


def test_entrypoint_resets_image_cmd() -> None:
    cfg, _ = build_configs("img", {"Entrypoint": ["/e"], "Cmd": ["a"]}, None,
                           {"entrypoint": "/bin/x"})
    assert cfg["Entrypoint"] == ["/bin/x"] and cfg["Cmd"] is None
    cfg, _ = build_configs("img", {"Entrypoint": ["/e"], "Cmd": ["a"]}, ["b"], {})
    assert cfg["Entrypoint"] == ["/e"] and cfg["Cmd"] == ["b"]


@pytest.mark.parametrize("kwargs, message", [
    ({"mem_limit": "12q"}, "invalid suffix"),
    ({"mem_limit": "1m"}, "Minimum memory limit"),
    ({"mem_limit": "64m", "memswap_limit": "32m"}, "memoryswap"),
    ({"nano_cpus": -1}, "cpus"),
    ({"blkio_weight": 5}, "blkio-weight"),
    ({"restart_policy": "always", "auto_remove": True}, "--restart and --rm"),
    ({"cap_add": ["CAP_NOPE"]}, "unknown capability"),
    ({"volumes": ["rel/path:/x"]}, "invalid characters"),
    ({"volumes": ["/a:b"]}, "invalid mode"),
    ({"volumes": ["/a:/b:/c:/d"]}, "invalid volume specification"),
    ({"tmpfs": ["relative"]}, "absolute"),
    ({"bogus_kw": 1}, "unexpected keyword"),
    ({"log_config": {"Type": "syslog"}}, "not supported"),
])
def test_bad_options(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        build_configs("img", {"Cmd": ["sh"]}, None, kwargs)


def test_no_command() -> None:
    with pytest.raises(InvalidArgument, match="no command specified"):
        build_configs("img", {}, None, {})


def test_volume_and_mount_specs() -> None:
    assert parse_volume_spec("/data")["Source"] == ""
    v = parse_volume_spec("name:/data:ro,nocopy")
    assert (v["Type"], v["Source"], v["ReadOnly"], v["NoCopy"]) == ("volume", "name", True, True)
    assert parse_volume_spec("/host:/c:rslave")["Propagation"] == "rslave"
    m = parse_mount_spec("type=tmpfs,target=/t,tmpfs-size=1m")
    assert m["TmpfsOptions"]["SizeBytes"] == 1024 * 1024
    assert parse_mount_spec("type=bind,src=/a,dst=/b,readonly")["ReadOnly"] is True
    with pytest.raises(InvalidArgument):
        parse_mount_spec("type=nfs,target=/x")


def test_merge_env_keeps_order() -> None:
    assert merge_env(["A=1", "B=2"], ["A=3", "C=4"]) == ["B=2", "A=3", "C=4"]


def test_apply_changes() -> None:
    cfg = apply_changes({}, ['CMD ["nginx", "-g", "daemon off;"]', "ENTRYPOINT run.sh",
                             "ENV A=1 B=two", "ENV C three four", "EXPOSE 80 53/udp",
                             'LABEL a=b "c d"=e', "VOLUME /x /y", "WORKDIR /srv",
                             "WORKDIR app", "USER nobody"])
    assert cfg["Cmd"] == ["nginx", "-g", "daemon off;"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "run.sh"]
    assert cfg["Env"] == ["A=1", "B=two", "C=three four"]
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["Labels"] == {"a": "b", "c d": "e"}
    assert cfg["Volumes"] == {"/x": {}, "/y": {}}
    assert cfg["WorkingDir"] == "/srv/app" and cfg["User"] == "nobody"
    with pytest.raises(InvalidArgument, match="not a valid change command"):
        apply_changes({}, ["RUN echo"])
    with pytest.raises(InvalidArgument, match="invalid port"):
        apply_changes({}, ["EXPOSE 99999"])


def test_unsupported_options_are_errors_not_no_ops() -> None:
    with pytest.raises(InvalidArgument, match="--init is not supported"):
        build_configs("img", {"Cmd": ["sh"]}, None, {"init": True})


def test_exec_result_unpacks_like_docker_py() -> None:
    from sdk.models.containers import ExecResult

    code, output = ExecResult(3, b"out")
    assert (code, output) == (3, b"out")
    assert ExecResult(0, b"").exit_code == 0
