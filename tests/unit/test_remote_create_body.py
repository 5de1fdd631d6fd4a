"""docker-py kwargs -> API body (sdk.remote) -> kwargs (sdk.api.translate): a round trip."""

from __future__ import annotations

from typing import Any

import pytest

from sdk.api.translate import create_kwargs
from sdk.errors import InvalidArgument
from sdk.remote.create_body import create_body, port_bindings


def round_trip(command: Any, **kwargs: Any) -> dict[str, Any]:
    body, name = create_body("busybox", command, kwargs)
    image, back = create_kwargs(body, name)
    assert image == "busybox"
    return back


def test_plain_options_come_back_unchanged() -> None:
    given = {"name": "web", "environment": {"A": "1"}, "working_dir": "/w", "user": "1:2",
             "hostname": "h", "labels": {"k": "v"}, "tty": True, "stop_signal": "KILL",
             "volumes": {"data": {"bind": "/d", "mode": "rw"}}, "read_only": True,
             "cap_add": ["NET_ADMIN"], "mem_limit": "64m", "cpu_shares": 512,
             "pids_limit": 20, "restart_policy": {"Name": "always"},
             "network_mode": "none", "tmpfs": {"/t": "size=1m"}, "sysctls": {"a.b": "1"},
             "extra_hosts": {"x": "1.2.3.4"}, "dns": ["1.1.1.1"], "init": True,
             "log_config": {"Type": "json-file", "Config": {"max-size": "1m"}},
             "device_read_bps": [{"Path": "/dev/sda", "Rate": 1024}]}
    back = round_trip(["sleep", "1"], **given)
    assert back.pop("command") == ["sleep", "1"]
    assert back == given


def test_converted_shapes() -> None:
    back = round_trip("sh -c 'echo hi'", ports={80: 8080, "53/udp": ("127.0.0.1", 53),
                                              22: None},
                      devices=["/dev/null:/dev/x:rw"], cpus="1.5",
                      entrypoint="/bin/sh -c", network="mynet",
                      network_aliases=["web"], ip="10.9.0.5", remove=True)
    assert back["command"] == ["sh", "-c", "echo hi"]
    assert back["ports"] == {"80/tcp": 8080, "53/udp": ("127.0.0.1", 53), "22/tcp": None}
    assert back["devices"] == ["/dev/null:/dev/x:rw"]
    assert back["nano_cpus"] == 1_500_000_000
    assert back["entrypoint"] == ["/bin/sh", "-c"]
    assert (back["network_mode"], back["network_aliases"], back["ip"]) == \
        ("mynet", ["web"], "10.9.0.5")
    assert back["auto_remove"] is True


def test_port_lists() -> None:
    assert port_bindings({8000: [8001, 8002]}) == {"8000/tcp": [
        {"HostIp": "", "HostPort": "8001"}, {"HostIp": "", "HostPort": "8002"}]}


def test_refusals_name_the_option() -> None:
    with pytest.raises(InvalidArgument, match="colour"):
        create_body("busybox", None, {"colour": "red"})
    with pytest.raises(InvalidArgument, match="egress_rate"):
        create_body("busybox", None, {"egress_rate": "1mbit"})
    with pytest.raises(InvalidArgument, match="invalid command"):
        create_body("busybox", "sh -c 'unclosed", {})
