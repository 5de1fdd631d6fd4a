"""community.docker (3.13, code nobody here wrote) drives ``berth daemon``.

A real ansible-playbook runs docker_host_info, docker_image (load and local),
docker_volume, docker_network, docker_container, docker_container_copy_into (the
archive endpoints) and docker_container_info against
berth's socket.  The second run must change nothing: community.docker compares what
it asked for with what ``inspect`` answers, field by field, so idempotency is the
proof that berth's API reports containers, images, volumes and networks the way
dockerd does.  A last play removes everything (state: absent).
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk import Engine
from tests.e2e.ansible_run import PLAYBOOK, ansible_env, run_playbook

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not PLAYBOOK.exists(), reason="ansible-core is not installed")]

CONVERGE = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  module_defaults:
    group/community.docker.docker:
      docker_host: "unix://{{ sock }}"
  tasks:
    - name: the engine answers like a docker host
      community.docker.docker_host_info:
        containers: true
        images: true
        volumes: true
        networks: true
      register: host
    - name: load an image from a docker archive
      community.docker.docker_image:
        name: cdtest/bb:v1
        source: load
        load_path: "{{ archive }}"
    - name: an image that is already there
      community.docker.docker_image:
        name: busybox:latest
        source: local
    - name: a volume
      community.docker.docker_volume:
        name: cdvol
        labels:
          purpose: cd-test
    - name: a network
      community.docker.docker_network:
        name: cdnet
        labels:
          purpose: cd-test
    - name: a web server with ports, env, volumes and labels
      community.docker.docker_container:
        name: cdweb
        image: cdtest/bb:v1
        command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
        state: started
        env:
          GREETING: hello
        labels:
          role: web
        volumes:
          - cdvol:/www
        published_ports:
          - "127.0.0.1:{{ web_port }}:8080"
        networks:
          - name: cdnet
            aliases: [web]
        restart_policy: unless-stopped
        memory: 64m
    - name: a container with many of docker_container's options
      community.docker.docker_container:
        name: cdfull
        image: busybox:latest
        entrypoint: ["sh", "-c"]
        command: ["sleep 600"]
        state: started
        user: "1000:1000"
        working_dir: /tmp
        hostname: full
        env:
          A: "1"
        labels:
          role: full
        exposed_ports: ["9000/udp"]
        cap_drop: [NET_RAW]
        capabilities: [SYS_TIME]
        read_only: true
        tmpfs: ["/run:size=1m"]
        ulimits: ["nofile:1024:2048"]
        memory: 32m
        memory_reservation: 16m
        cpu_shares: 512
        pids_limit: 64
        stop_signal: SIGTERM
        stop_timeout: 3
        dns_servers: [127.0.0.1]
        etc_hosts:
          db.local: 10.9.9.9
        healthcheck:
          test: ["CMD", "true"]
          interval: 30s
          timeout: 5s
          retries: 2
        log_driver: json-file
        log_options:
          max-size: 1m
        network_mode: none
        sysctls:
          net.ipv4.ip_forward: "0"
        restart_policy: on-failure
        restart_retries: 2
    - name: put a page into the volume
      community.docker.docker_container:
        name: cdwriter
        image: busybox:latest
        command: ["sh", "-c", "echo served-by-berth > /www/index.html"]
        volumes:
          - cdvol:/www
        detach: false
        cleanup: true
      when: not (reconverge | bool)
    - name: a file copied in (PUT archive; GET compares it on the second run)
      community.docker.docker_container_copy_into:
        container: cdweb
        content: "copied-in\\n"
        container_path: /www/copied.txt
        mode: "0640"
        owner_id: 0
        group_id: 0
    - name: look at it
      community.docker.docker_container_info:
        name: cdweb
      register: info
    - name: it runs as asked
      ansible.builtin.assert:
        that:
          - info.exists
          - info.container.State.Running
          - "'GREETING=hello' in info.container.Config.Env"
          - info.container.Config.Labels.role == 'web'
          - "'cdnet' in info.container.NetworkSettings.Networks"
          - info.container.HostConfig.Memory == 67108864
          - host.host_info.ServerVersion is defined
"""

TEARDOWN = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  module_defaults:
    group/community.docker.docker:
      docker_host: "unix://{{ sock }}"
  tasks:
    - community.docker.docker_container:
        name: cdweb
        state: absent
    - community.docker.docker_container:
        name: cdfull
        state: absent
    - community.docker.docker_network:
        name: cdnet
        state: absent
    - community.docker.docker_volume:
        name: cdvol
        state: absent
    - community.docker.docker_image:
        name: cdtest/bb:v1
        state: absent
"""


@pytest.fixture
def daemon(engine: Engine, busybox: str, tmp_path: Path) -> Iterator[str]:
    from tests.root.test_api_daemon import start_daemon, stop_daemon

    sock = tmp_path / "berth.sock"
    proc = start_daemon(engine, sock)
    yield str(sock)
    stop_daemon(proc, sock)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_community_docker_converges_idempotently(engine: Engine, daemon: str,
                                                 tmp_path: Path) -> None:
    from tests.e2e.community_docker import community_docker

    collections = community_docker()
    archive = tmp_path / "bb.tar"
    engine.image_store.tag("busybox:latest", "cdtest/bb:v1")
    with open(archive, "wb") as f:
        for chunk in engine.images.get("cdtest/bb:v1").save(named="cdtest/bb:v1"):
            f.write(chunk)
    engine.images.remove("cdtest/bb:v1")
    env = ansible_env(collections, tmp_path / "home")
    (tmp_path / "converge.yml").write_text(CONVERGE)
    (tmp_path / "teardown.yml").write_text(TEARDOWN)
    port = free_port()
    extra = {"sock": daemon, "archive": str(archive), "web_port": port}

    def play(name: str, **more: object) -> object:
        args = ["--diff", "-i", "localhost,", "-e", json.dumps({**extra, **more}), name]
        return run_playbook(args, env, tmp_path, timeout=300)

    first = play("converge.yml", reconverge=False)
    assert first.returncode == 0, first.out[-6000:] + first.err[-3000:]
    assert first.recap("localhost")["changed"] >= 5, first.out[-3000:]
    assert "more images than specified" not in first.err     # load lists the archive's tags
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10).read()
    assert page == b"served-by-berth\n"
    copied = urllib.request.urlopen(f"http://127.0.0.1:{port}/copied.txt", timeout=10).read()
    assert copied == b"copied-in\n"
    second = play("converge.yml", reconverge=True)
    assert second.returncode == 0, second.out[-6000:] + second.err[-3000:]
    assert second.recap("localhost")["changed"] == 0, second.out[-8000:]  # with the diff
    gone = play("teardown.yml")
    assert gone.returncode == 0, gone.out[-6000:] + gone.err[-3000:]
    assert gone.recap("localhost")["changed"] == 5, gone.changed_tasks()
    assert [c.name for c in engine.containers.list(all=True)] == []
    assert "cdvol" not in [v.name for v in engine.volumes.list()]
    assert "cdnet" not in [n.name for n in engine.networks.list()]
