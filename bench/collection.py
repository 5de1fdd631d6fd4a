"""berth.engine vs community.docker at fleet scale, side by side in one run.

    python bench/collection.py [--runs 5] [--no-docker]

One playbook per collection: 1 network, 3 volumes and 10 containers, each container
with published ports (on 127.0.0.1), env, a named volume and labels.  Phases:

* **converge**: the first run creates and starts everything;
* **re-run**: the same playbook again, nothing to change (the common fleet case; every
  re-run must report changed=0);
* **removal**: a playbook removing the containers, volumes and network.

berth.engine runs its modules against a temp data root; community.docker 3.13
(``tests/e2e/community_docker.py`` fetches it from PyPI's ``ansible`` package) runs its
modules against a private dockerd started here (its own --data-root, --exec-root,
--pidfile and unix socket under the temp dir, ``--bridge=none --iptables=false``),
stopped by PID at the end.  Both use the same interpreter, ansible-core and settings
(pipelining on).  The sides' runs alternate (and swap order every round) so a change in
machine load hits all alike.

berth.engine runs twice, on two data roots: as Ansible runs it here (the play is on the
controller itself, ``connection: local``, so its action plugins run each module in a fork
of the Ansible worker: plugins/plugin_utils/in_process.py), and with
``-e berth_in_process=false``: Ansible's normal module execution (AnsiballZ, a new
interpreter per call), which is what every call to a remote host costs.

Reported per phase: the wall time of ``ansible-playbook`` and its CPU time (the process
tree: controller and module processes); for docker, dockerd's and containerd's CPU is
added (it does the work berth's modules do in-process).  The *floor* is the same number
of ``ansible.builtin.ping`` calls: what Ansible itself costs per module call, which no
collection can go under.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sdk._internal.testimages import busybox_tar  # noqa: E402

BIN = Path(sys.executable).parent
PARENT = "berth-collbench"
CONTAINERS, VOLUMES = 10, 3
CALLS = 1 + VOLUMES + CONTAINERS          # module calls per playbook


@dataclass
class Side:
    """One collection under test: its playbooks, environment and timings."""

    name: str
    converge: Path
    remove: Path
    env: dict[str, str]
    cpu_extra: Callable[[], float] | None = None   # CPU seconds its daemons spent since
    args: tuple[str, ...] = ()                      # extra ansible-playbook arguments
    times: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def play(self, phase: str, path: Path, changed: str) -> None:
        wall, cpu, count = run(path, self.env, self.args)
        if self.cpu_extra is not None:
            cpu += self.cpu_extra()
        if changed == "none" and count:
            raise RuntimeError(f"{self.name} {phase}: changed={count}, expected 0")
        if changed == "some" and not count:
            raise RuntimeError(f"{self.name} {phase}: nothing changed")
        self.times.setdefault(phase, []).append((wall, cpu))


def playbook(prefix: str, defaults: str, subnet: str, port: int, extra: str) -> str:
    """The fleet play; ``prefix`` is ``berth.engine.`` or ``community.docker.docker_``."""
    berth = prefix.startswith("berth")
    ipam = f"subnet: {subnet}" if berth else f"ipam_config: [{{subnet: {subnet}}}]"
    return f"""- hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
{defaults}
  tasks:
    - name: network
      {prefix}network:
        name: benchnet
        {ipam}
    - name: volumes
      {prefix}volume:
        name: "benchvol{{{{ item }}}}"
      loop: "{{{{ range({VOLUMES}) | list }}}}"
    - name: containers
      {prefix}container:
        name: "bench{{{{ item }}}}"
        image: bb:latest
        command: [sleep, "3600"]
        network_mode: benchnet
        published_ports: ["127.0.0.1:{{{{ {port} + item }}}}:8080"]
        volumes: ["benchvol{{{{ item % {VOLUMES} }}}}:/data"]
        env: {{ROLE: bench, INDEX: "i{{{{ item }}}}"}}
        labels: {{bench: "yes", index: "{{{{ item }}}}"}}
        stop_timeout: 1
        state: started
{extra}      loop: "{{{{ range({CONTAINERS}) | list }}}}"
"""


def removal(prefix: str, defaults: str) -> str:
    return f"""- hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
{defaults}
  tasks:
    - name: containers
      {prefix}container:
        name: "bench{{{{ item }}}}"
        state: absent
        force_kill: true
      loop: "{{{{ range({CONTAINERS}) | list }}}}"
    - name: volumes
      {prefix}volume:
        name: "benchvol{{{{ item }}}}"
        state: absent
      loop: "{{{{ range({VOLUMES}) | list }}}}"
    - name: network
      {prefix}network:
        name: benchnet
        state: absent
"""


PING = f"""- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ping:
      loop: "{{{{ range({CALLS}) | list }}}}"
"""


def env_for(work: Path, collections: list[Path]) -> dict[str, str]:
    # the SDK keeps its bytecode cache as an installed package does (a stale .pyc under
    # PYTHONDONTWRITEBYTECODE would be compiled again by every module run)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANSIBLE_", "BERTH_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(ANSIBLE_COLLECTIONS_PATH=":".join(map(str, collections)),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_RETRY_FILES_ENABLED="0",
               ANSIBLE_PIPELINING="1", ANSIBLE_NOCOLOR="1", ANSIBLE_HOME=str(work / "home"),
               ANSIBLE_LOCAL_TEMP=str(work / "home" / "tmp"), ANSIBLE_GATHERING="explicit",
               PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    return env


def run(play: Path, env: dict[str, str],
        args: tuple[str, ...] = ()) -> tuple[float, float, int]:
    """Wall time, CPU time of the process tree, and the recap's changed count."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([str(BIN / "ansible-playbook"), "-i", "localhost,", *args,
                                 str(play)],
                                stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
    m = re.search(r"^localhost\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0",
                  text, re.M)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"{play.name} failed:\n{text[-4000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, int(m.group(1))


def free_subnet(taken: list[str]) -> str:
    from sdk.network.netlink import host_routes

    used = [net for net, _ in host_routes()] + [IPv4Network(t) for t in taken]
    while True:
        net = IPv4Network(f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(256)}.0/24")
        if not any(net.overlaps(u) for u in used):
            return str(net)


def free_ports(count: int) -> int:
    """A base port such that ``base .. base+count-1`` are free on 127.0.0.1 now."""
    while True:
        base = 30000 + secrets.randbelow(20000)
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue


def collections_dir(work: Path) -> Path:
    base = work / "collections"
    (base / "ansible_collections" / "berth").mkdir(parents=True)
    (base / "ansible_collections" / "berth" / "engine").symlink_to(REPO)
    return base


# ---- berth -------------------------------------------------------------------------------
def berth_side(work: Path, subnet: str, port: int,
               in_process: bool = True) -> tuple[Side, Any]:
    from sdk import Engine

    work.mkdir(parents=True)
    root, config = work / "root", work / "daemon.json"
    engine = Engine(root=root, config=config)
    engine.images.import_image(str(busybox_tar()), repository="bb", tag="latest",
                               changes=['CMD ["sh"]'])
    defaults = (f"    group/berth.engine.engine:\n      engine_root: {root}\n"
                f"      engine_config: {config}\n")
    (work / "converge.yml").write_text(playbook(
        "berth.engine.", defaults, subnet, port, f"        cgroup_parent: {PARENT}\n"))
    (work / "remove.yml").write_text(removal("berth.engine.", defaults))
    name = "berth.engine" if in_process else "berth.engine, normal module execution"
    side = Side(name, work / "converge.yml", work / "remove.yml",
                env_for(work, [collections_dir(work)]),
                args=() if in_process else ("-e", "berth_in_process=false"))
    return side, engine


def berth_cleanup(engine: Any) -> None:
    """Whatever a failed run left: containers, the network (a host bridge), cgroups."""
    for doc in engine.tasks.all():
        engine.tasks.remove(doc["Id"], force=True, volumes=True)
    for net in engine.networks.list():
        if net.name == "benchnet":
            net.remove()
    engine.repair()           # the root's default bridge and orphan rules too
    engine.close()
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        try:
            (hierarchy / PARENT).rmdir()
        except OSError:
            pass


# ---- docker ------------------------------------------------------------------------------
class Dockerd:
    """A private dockerd under ``work``: no default bridge, no iptables; stopped by PID."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.sock = work / "docker.sock"
        self.cli = ["docker", "-H", f"unix://{self.sock}"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.work / "dockerd.log", "wb") as log:     # the child keeps its own fd
            self.proc = subprocess.Popen(
                ["dockerd", "--data-root", str(self.work / "data"), "--exec-root",
                 str(self.work / "exec"), "-H", f"unix://{self.sock}", "--pidfile",
                 str(self.work / "docker.pid"), "--bridge=none", "--iptables=false",
                 "--ip6tables=false", "--ip-masq=false", "--containerd-namespace",
                 "collbench", "--containerd-plugins-namespace", "collbench-plugins"],
                stdout=log, stderr=log, start_new_session=True)
        for _ in range(300):
            if subprocess.run([*self.cli, "version"], capture_output=True).returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("dockerd did not start: " +
                           (self.work / "dockerd.log").read_text()[-1500:])

    def cpu(self) -> float:
        """CPU seconds of dockerd and its children (containerd) so far."""
        if self.proc is None:
            return 0.0
        tick = os.sysconf("SC_CLK_TCK")
        total, todo = 0.0, [self.proc.pid]
        while todo:
            pid = todo.pop()
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError, IndexError):
                continue
        return total

    def stop(self) -> None:
        if self.proc is None:
            return
        rm = subprocess.run([*self.cli, "ps", "-aq"], capture_output=True, text=True)
        if rm.stdout.split():
            subprocess.run([*self.cli, "rm", "-f", *rm.stdout.split()], capture_output=True)
        # a network left behind keeps its bridge on the host after dockerd stops
        subprocess.run([*self.cli, "network", "rm", "benchnet"], capture_output=True)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for mount in ("exec", "data"):
            subprocess.run(["umount", "-R", str(self.work / mount)], capture_output=True)


def docker_side(work: Path, dockerd: Dockerd, subnet: str, port: int,
                community: Path) -> Side:
    subprocess.run([*dockerd.cli, "import", "-c", 'CMD ["sh"]', str(busybox_tar()),
                    "bb:latest"], check=True, capture_output=True)
    defaults = f"    group/community.docker.docker:\n      docker_host: unix://{dockerd.sock}\n"
    (work / "converge.yml").write_text(playbook(
        "community.docker.docker_", defaults, subnet, port, "        pull: never\n"))
    (work / "remove.yml").write_text(removal("community.docker.docker_", defaults))
    extra_cpu = {"last": dockerd.cpu()}

    def daemon_cpu() -> float:
        now = dockerd.cpu()
        spent, extra_cpu["last"] = now - extra_cpu["last"], now
        return spent

    return Side("community.docker", work / "converge.yml", work / "remove.yml",
                env_for(work, [collections_dir(work), community]), daemon_cpu)


# ---- report ------------------------------------------------------------------------------
def cell(samples: list[tuple[float, float]]) -> str:
    walls = [w for w, _ in samples]
    cpu = statistics.median(c for _, c in samples)
    spread = f" ({min(walls):.1f}–{max(walls):.1f})" if len(walls) > 1 else ""
    return f"{statistics.median(walls):.2f} s{spread}, CPU {cpu:.1f} s"


def report(sides: list[Side], floor: list[tuple[float, float]], runs: int) -> None:
    load = os.getloadavg()[0]
    print(f"\n{CONTAINERS} containers (ports, env, volume, labels), {VOLUMES} volumes, "
          f"1 network; {CALLS} module calls per playbook; wall time of ansible-playbook, "
          f"median of {runs} re-runs (min–max); load average at the end {load:.1f}\n")
    print("| | converge | re-run (nothing to change) | removal |")
    print("|---|---:|---:|---:|")
    for side in sides:
        t = side.times
        print(f"| {side.name} | {cell(t['converge'])} | {cell(t['re-run'])} | "
              f"{cell(t['removal'])} |")
    print(f"| floor: {CALLS} × ansible.builtin.ping | | {cell(floor)} | |")
    docker = [side for side in sides if side.name == "community.docker"]
    f = statistics.median(w for w, _ in floor)
    for b in [side for side in sides if side.name.startswith("berth")]:
        print(f"\n{b.name}: re-run above the ping floor "
              f"{statistics.median(w for w, _ in b.times['re-run']) - f:+.2f} s")
        if not docker:
            continue
        d = docker[0]
        for phase in ("converge", "re-run", "removal"):
            wall = statistics.median(w for w, _ in b.times[phase]) / \
                statistics.median(w for w, _ in d.times[phase])
            cpu = statistics.median(c for _, c in b.times[phase]) / \
                statistics.median(c for _, c in d.times[phase])
            print(f"  {phase}: berth/docker wall {wall:.2f}x, CPU {cpu:.2f}x")
        # paired per round: both ran back to back under the same load
        pairs = [bw / dw for (bw, _), (dw, _) in
                 zip(b.times["re-run"], d.times["re-run"], strict=True)]
        print(f"  re-run, per-round ratios: {', '.join(f'{r:.2f}' for r in pairs)} "
              f"(target <= 0.5x)")
    if docker:
        print(f"\ncommunity.docker: re-run above the ping floor "
              f"{statistics.median(w for w, _ in docker[0].times['re-run']) - f:+.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="idempotent re-runs")
    parser.add_argument("--no-docker", action="store_true",
                        help="berth.engine only (no community.docker side)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/collection.py: run as root")
        return 1
    work = Path(tempfile.mkdtemp(prefix="berth-collbench-"))
    engines: list[Any] = []
    dockerd = Dockerd(work / "docker")
    try:
        base = free_ports(3 * CONTAINERS)
        subnets: list[str] = []
        for _ in range(3):
            subnets += [free_subnet(subnets)]
        sides = []
        for i, (name, in_process) in enumerate((("berth", True), ("berth-normal", False))):
            side, engine = berth_side(work / name, subnets[i], base + i * CONTAINERS,
                                      in_process)
            sides.append(side)
            engines.append(engine)
        if not args.no_docker:
            if not shutil.which("dockerd"):
                raise SystemExit("dockerd is not installed (or use --no-docker)")
            from tests.e2e.community_docker import community_docker

            community = community_docker()
            (work / "docker").mkdir()
            dockerd.start()
            sides.append(docker_side(work / "docker", dockerd, subnets[2],
                                     base + 2 * CONTAINERS, community))
        (work / "ping.yml").write_text(PING)
        ping_env = env_for(work / "ping", [])
        floor: list[tuple[float, float]] = []
        for side in sides:
            side.play("converge", side.converge, "some")
        for i in range(args.runs):
            for side in (sides if i % 2 == 0 else sides[::-1]):
                side.play("re-run", side.converge, "none")
            wall, cpu, _ = run(work / "ping.yml", ping_env)
            floor.append((wall, cpu))
        for side in sides:
            side.play("removal", side.remove, "some")
        report(sides, floor, args.runs)
    finally:
        try:
            dockerd.stop()
        finally:
            for engine in engines:
                berth_cleanup(engine)
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
