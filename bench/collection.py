"""The berth.engine collection at fleet scale: one playbook, 10 containers, 3 volumes, 1 network.

    python bench/collection.py [--runs 3] [--docker]

Runs the playbook on a temp engine root: the first run converges (creates everything),
then ``--runs`` re-runs that must report changed=0.  Prints wall times (the whole
``ansible-playbook`` process, as a user sees it) as a markdown table.

``--docker`` runs the same playbook written with community.docker against a private
dockerd (its own data root, exec root and socket under the temp dir, no default bridge,
no iptables) when ``dockerd`` is installed and community.docker is importable (a
collections path given with ``--docker-collections`` or ANSIBLE_COLLECTIONS_PATH, e.g.
the directory holding ``ansible_collections`` of the PyPI ``ansible`` package:
``pip install --no-deps --target /tmp/ansible-pkg 'ansible>=10,<11'`` then
``--docker-collections /tmp/ansible-pkg``; ansible 10 pairs with ansible-core 2.17 and
ships community.docker 3.13).

Containers use ``network_mode: none`` in both, so the numbers are the modules' cost and
not a comparison of bridge set-up.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sdk._internal.testimages import busybox_tar  # noqa: E402

BIN = Path(sys.executable).parent
PARENT = "berth-collbench"
CONTAINERS, VOLUMES = 10, 3


def playbook(prefix: str, subnet: str, defaults: str, image: str, extra: str) -> str:
    """The benchmark play; ``prefix`` is ``berth.engine.`` or ``community.docker.docker_``."""
    return f"""- hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
{defaults}
  tasks:
    - name: network
      {prefix}network:
        name: benchnet
        {'subnet: ' + subnet if prefix.startswith('berth') else
         'ipam_config: [{subnet: ' + subnet + '}]'}
    - name: volumes
      {prefix}volume:
        name: "benchvol{{{{ item }}}}"
      loop: "{{{{ range({VOLUMES}) | list }}}}"
    - name: containers
      {prefix}container:
        name: "bench{{{{ item }}}}"
        image: {image}
        command: [sleep, "3600"]
        network_mode: none
        volumes: ["benchvol{{{{ item % {VOLUMES} }}}}:/data"]
        env: {{ROLE: bench, INDEX: "i{{{{ item }}}}"}}
        labels: {{bench: "yes"}}
        memory: 64m
        stop_timeout: 1
        state: started
{extra}      loop: "{{{{ range({CONTAINERS}) | list }}}}"
"""


def env_for(work: Path, collections: list[Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "BERTH_"))}
    env.update(ANSIBLE_COLLECTIONS_PATH=":".join(map(str, collections)),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_RETRY_FILES_ENABLED="0",
               ANSIBLE_PIPELINING="1", ANSIBLE_NOCOLOR="1", ANSIBLE_HOME=str(work / "home"),
               ANSIBLE_LOCAL_TEMP=str(work / "home" / "tmp"),
               PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    return env


def run(play: Path, env: dict[str, str]) -> tuple[float, int]:
    """Wall time and the recap's changed count (a failed play raises)."""
    import re

    t0 = time.perf_counter()
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(play)],
                          capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t0
    m = re.search(r"^localhost\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0",
                  proc.stdout, re.M)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"{play.name} failed:\n{proc.stdout[-3000:]}{proc.stderr[-1000:]}")
    return elapsed, int(m.group(1))


def subnet() -> str:
    return f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(256)}.0/24"


def bench_berth(work: Path, runs: int) -> dict[str, list[float]]:
    from sdk import Engine

    root, config = work / "root", work / "daemon.json"
    engine = Engine(root=root, config=config)
    engine.images.import_image(str(busybox_tar()), repository="bb", tag="latest",
                               changes=['CMD ["sh"]'])
    collections = work / "collections"
    (collections / "ansible_collections" / "berth").mkdir(parents=True)
    (collections / "ansible_collections" / "berth" / "engine").symlink_to(REPO)
    defaults = (f"    group/berth.engine.engine:\n      engine_root: {root}\n"
                f"      engine_config: {config}\n")
    play = work / "berth.yml"
    play.write_text(playbook("berth.engine.", subnet(), defaults, "bb:latest",
                             f"        cgroup_parent: {PARENT}\n"))
    env = env_for(work, [collections])
    try:
        return measure(play, env, runs)
    finally:
        for doc in engine.tasks.all():
            engine.tasks.remove(doc["Id"], force=True, volumes=True)
        for net in engine.networks.list():
            if net.name == "benchnet":
                net.remove()
        engine.close()
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            try:
                (hierarchy / PARENT).rmdir()
            except OSError:
                pass


def measure(play: Path, env: dict[str, str], runs: int) -> dict[str, list[float]]:
    first, changed = run(play, env)
    if changed == 0:
        raise RuntimeError("the first run changed nothing")
    again = []
    for _ in range(runs):
        elapsed, changed = run(play, env)
        if changed:
            raise RuntimeError(f"a re-run reported changed={changed}")
        again.append(elapsed)
    return {"first run (converge)": [first], "re-run (nothing to change)": again}


def bench_docker(work: Path, runs: int, collections: list[Path]) -> dict[str, list[float]]:
    sock = work / "docker.sock"
    with open(work / "dockerd.log", "wb") as log:     # the child keeps its own fd
        proc = subprocess.Popen(
            ["dockerd", "--data-root", str(work / "docker"), "--exec-root",
             str(work / "exec"), "-H", f"unix://{sock}", "--pidfile", str(work / "docker.pid"),
             "--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
             "--containerd-namespace", "collbench", "--containerd-plugins-namespace",
             "collbench-plugins"], stdout=log, stderr=log, start_new_session=True)
    docker = ["docker", "-H", f"unix://{sock}"]
    try:
        for _ in range(300):
            if subprocess.run([*docker, "version"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("dockerd did not start: " +
                               (work / "dockerd.log").read_text()[-1000:])
        subprocess.run([*docker, "import", "-c", 'CMD ["sh"]', str(busybox_tar()),
                        "bb:latest"], check=True, capture_output=True)
        defaults = (f"    group/community.docker.docker:\n"
                    f"      docker_host: unix://{sock}\n")
        play = work / "docker.yml"
        play.write_text(playbook("community.docker.docker_", subnet(), defaults, "bb:latest",
                                 "        pull: never\n"))
        return measure(play, env_for(work, collections), runs)
    finally:
        subprocess.run(f"{' '.join(docker)} rm -f $({' '.join(docker)} ps -aq)", shell=True,
                       capture_output=True)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        subprocess.run(["umount", "-R", str(work / "exec")], capture_output=True)
        subprocess.run(["umount", "-R", str(work / "docker")], capture_output=True)


def has_community_docker(collections: list[Path]) -> bool:
    return any((c / "ansible_collections" / "community" / "docker").is_dir()
               for c in collections)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3, help="idempotent re-runs")
    parser.add_argument("--docker", action="store_true",
                        help="also community.docker against a private dockerd")
    parser.add_argument("--docker-collections", default=os.environ.get(
        "ANSIBLE_COLLECTIONS_PATH", ""), help="collections path holding community.docker")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/collection.py: run as root")
        return 1
    results: dict[str, dict[str, list[float]]] = {}
    work = Path(tempfile.mkdtemp(prefix="berth-collbench-"))
    try:
        results["berth.engine"] = bench_berth(work / "berth", args.runs)
        if args.docker:
            cols = [Path(p) for p in args.docker_collections.split(":") if p]
            if not shutil.which("dockerd"):
                print("skipped community.docker: dockerd is not installed")
            elif not has_community_docker(cols):
                print("skipped community.docker: not found in --docker-collections")
            else:
                (work / "docker").mkdir()
                results["community.docker"] = bench_docker(work / "docker", args.runs, cols)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{CONTAINERS} containers, {VOLUMES} volumes, 1 network; wall time of "
          f"ansible-playbook (median of {args.runs} re-runs)\n")
    print("| collection | first run (converge) | re-run (nothing to change) |")
    print("|---|---|---|")
    import statistics

    for name, r in results.items():
        print(f"| {name} | {r['first run (converge)'][0]:.2f} s | "
              f"{statistics.median(r['re-run (nothing to change)']):.2f} s |")
    if len(results) == 2:
        ratio = statistics.median(results["berth.engine"]["re-run (nothing to change)"]) / \
            statistics.median(results["community.docker"]["re-run (nothing to change)"])
        print(f"\nre-run berth/docker: {ratio:.2f}x (target <= 0.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
