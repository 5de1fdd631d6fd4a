"""Verify roles/engine inside a berth instance (testinfra through berth_testinfra)."""

import json


def test_berth_is_on_the_path(host):
    link = host.file("/usr/local/bin/berth")
    assert link.is_symlink and link.linked_to == "/opt/berth/venv/bin/berth"
    assert "Version:        0.1.0" in host.check_output("berth version")


def test_daemon_json(host):
    config = json.loads(host.file("/etc/berth/daemon.json").content_string)
    assert config["insecure-registries"] == ["registry.test:5000"]
    assert config["log-opts"] == {"max-size": "10m"}
    assert config["hosts"] == ["unix:///run/berth.sock"]


def test_group_and_users(host):
    assert host.group("berth").exists
    assert "berth" in host.user("alice").groups


def test_prerequisites(host):
    for pkg in ("iptables", "nftables", "python3-venv"):
        assert host.package(pkg).is_installed
    assert host.sysctl("net.ipv4.ip_forward") == 1
    # bridged traffic between containers passes iptables (icc=false, as Docker needs)
    assert host.sysctl("net.bridge.bridge-nf-call-iptables") == 1
    persisted = host.file("/etc/sysctl.d/99-berth.conf").content_string
    assert "net.bridge.bridge-nf-call-ip6tables = 1" in persisted
    assert "overlay" in host.file("/etc/modules-load.d/berth.conf").content_string


def test_the_engine_runs_a_container(host):
    # /srv/busybox.tar: bind-mounted by create.yml (platform volumes in molecule.yml)
    host.check_output("berth import /srv/busybox.tar busybox:latest")
    out = host.check_output("berth run --rm busybox echo nested-ok")
    assert out == "nested-ok"
    assert host.check_output("berth info --format '{{.Driver}}'") == "overlay"
