"""The Engine API's create body maps onto the SDK's docker-py keyword arguments."""

from __future__ import annotations

import struct

import pytest

from sdk.api.streams import frame
from sdk.api.translate import create_kwargs
from sdk.containers.options import CREATE_KWARGS
from sdk.errors import InvalidArgument

# what `docker run -d --name web -e A=1 -v data:/data -v /anon -p 127.0.0.1:8080:80
# --memory 64m --restart always --cap-drop NET_RAW busybox httpd -f` sends (trimmed)
DOCKER_CLI_BODY = {
    "Hostname": "", "User": "", "AttachStdin": False, "Tty": False, "OpenStdin": False,
    "Env": ["A=1"], "Cmd": ["httpd", "-f"], "Image": "busybox",
    "Volumes": {"/anon": {}}, "WorkingDir": "", "Entrypoint": None, "Labels": {},
    "ExposedPorts": {"80/tcp": {}},
    "HostConfig": {
        "Binds": ["data:/data"], "NetworkMode": "default",
        "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
        "RestartPolicy": {"Name": "always", "MaximumRetryCount": 0}, "AutoRemove": False,
        "CapDrop": ["NET_RAW"], "Memory": 67108864, "MemorySwap": 0, "NanoCpus": 0,
        "CpuShares": 0, "PidsLimit": None, "Privileged": False, "ReadonlyRootfs": False,
        "LogConfig": {"Type": "", "Config": {}}, "ShmSize": 0, "OomKillDisable": False,
        "Mounts": None, "Init": None,
    },
}


def test_docker_cli_body_maps_to_known_kwargs() -> None:
    image, kwargs = create_kwargs(DOCKER_CLI_BODY, "web")
    assert image == "busybox"
    assert set(kwargs) <= CREATE_KWARGS
    assert kwargs["name"] == "web"
    assert kwargs["command"] == ["httpd", "-f"]
    assert kwargs["environment"] == ["A=1"]
    assert kwargs["volumes"] == ["data:/data", "/anon"]
    assert kwargs["ports"] == {"80/tcp": ("127.0.0.1", 8080)}
    assert kwargs["mem_limit"] == 67108864
    assert kwargs["restart_policy"] == {"Name": "always", "MaximumRetryCount": 0}
    assert kwargs["cap_drop"] == ["NET_RAW"]
    # zeros and empty values the CLI always sends mean "unset"
    for unset in ("memswap_limit", "nano_cpus", "cpu_shares", "pids_limit", "privileged",
                  "read_only", "log_config", "shm_size", "network_mode", "entrypoint",
                  "init", "auto_remove"):
        assert unset not in kwargs, unset


def test_entrypoint_reset_and_random_ports() -> None:
    body = {"Image": "x", "Entrypoint": [""], "ExposedPorts": {"80/tcp": {}},
            "HostConfig": {"PublishAllPorts": True,
                           "PortBindings": {"53/udp": [{"HostIp": "", "HostPort": ""}]}}}
    _, kwargs = create_kwargs(body, None)
    assert kwargs["entrypoint"] == [""]
    assert kwargs["publish_all_ports"] is True
    assert kwargs["ports"] == {"53/udp": None}


def test_mounts_ulimits_devices_throttles() -> None:
    body = {"Image": "x", "HostConfig": {
        "Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1024}}],
        "Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 20}],
        "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n",
                     "CgroupPermissions": "rw"}],
        "BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": 1000}]}}
    _, kwargs = create_kwargs(body, None)
    assert kwargs["mounts"][0]["Type"] == "tmpfs"
    assert kwargs["mounts"][0]["TmpfsOptions"] == {"SizeBytes": 1024}
    assert kwargs["ulimits"] == [{"Name": "nofile", "Soft": 10, "Hard": 20}]
    assert kwargs["devices"] == ["/dev/null:/dev/n:rw"]
    assert kwargs["device_read_bps"] == [{"Path": "/dev/sda", "Rate": 1000}]


@pytest.mark.parametrize("body", [[], {"Cmd": ["x"]}, {"Image": ""},
                                  {"Image": "x", "HostConfig": []}])
def test_bad_bodies(body: object) -> None:
    with pytest.raises(InvalidArgument):
        create_kwargs(body, None)   # type: ignore[arg-type]


def test_stream_frame_header() -> None:
    data = frame(2, b"hello")
    assert data[:8] == struct.pack(">BxxxL", 2, 5)
    assert data[8:] == b"hello"
