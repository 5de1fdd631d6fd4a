"""Provision a fleet: roles/engine converged on N berth containers by one ansible-playbook.

Every instance is a privileged berth container from the Debian test image
(tests/e2e/images.py, debootstrap, cached), without a network, reached through the
berth.engine.berth connection, as in tests/root/test_roles.py.  For each configuration
(hosts, forks) the same playbook runs twice on fresh instances: the first run converges
(packages already in the image, so no mirror is used; the venv, the wheel, daemon.json,
group, sysctls), the second must change nothing.  The baseline is the same playbook on
one host, measured in the same invocation, so the ratios show what parallel forks buy.

    python bench/fleet.py [--hosts 5] [--forks 1,5]

Runs as root; everything (containers, the engine's temp data root) is removed at the end.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdk import Engine  # noqa: E402
from tests.e2e.ansible_run import (  # noqa: E402
    ansible_env,
    build_wheel,
    collections_dir,
    run_playbook,
)
from tests.e2e.images import IMAGE_REF, debian_ansible_tar  # noqa: E402

PLAY = """\
- hosts: fleet
  gather_facts: true
  vars:
    berth_engine_apt_update_cache: false
    berth_engine_insecure_registries: ['registry.test:5000']
    berth_engine_users: [deploy]
  roles:
    - berth.engine.engine
"""


@dataclass
class Result:
    hosts: int
    forks: int
    first: float
    second: float


def start_fleet(engine: Engine, work: Path, n: int, tag: str) -> list[str]:
    names = []
    for i in range(n):
        name = f"berth-fleet-{tag}-{i}"
        data = work / f"{name}-data"
        data.mkdir()
        engine.containers.run(IMAGE_REF, ["sleep", "infinity"], name=name, hostname=name,
                              detach=True, privileged=True, network_mode="none",
                              volumes={str(data): {"bind": "/var/lib/berth", "mode": "rw"}})
        names.append(name)
    return names


def converge(engine: Engine, work: Path, n: int, forks: int, wheel: Path,
             env: dict[str, str]) -> Result:
    tag = f"{n}x{forks}"
    run_dir = work / tag
    run_dir.mkdir()
    names = start_fleet(engine, run_dir, n, tag)
    try:
        inv = run_dir / "hosts.ini"
        inv.write_text(
            "[fleet]\n" + "".join(f"{h}\n" for h in names) + "[fleet:vars]\n"
            "ansible_connection=berth.engine.berth\n"
            f"ansible_berth_root={engine.root}\nansible_berth_config={engine.config_path}\n"
            f"ansible_python_interpreter=/usr/bin/python3\nberth_engine_wheel={wheel}\n")
        play = run_dir / "fleet.yml"
        play.write_text(PLAY)
        args = ["-i", str(inv), "--forks", str(forks), str(play)]
        times = []
        for attempt in ("first", "second"):
            start = time.monotonic()
            res = run_playbook(args, env, run_dir, timeout=1800)
            times.append(time.monotonic() - start)
            if res.returncode != 0:
                raise SystemExit(f"{tag} {attempt} run failed:\n{res.out[-4000:]}")
            changed = [res.recap(h)["changed"] for h in names]
            if attempt == "second" and any(changed):
                raise SystemExit(f"{tag}: second run changed {changed}")
        return Result(n, forks, times[0], times[1])
    finally:
        for h in names:
            engine.containers.get(h).remove(force=True)


def cores() -> int:
    out = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return int(out or 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=5)
    ap.add_argument("--forks", default="1,5", help="comma-separated forks for the fleet")
    opts = ap.parse_args()
    forks = [int(f) for f in opts.forks.split(",")]
    work = Path(tempfile.mkdtemp(prefix="berth-fleet-"))
    engine = Engine(root=work / "root", config=work / "daemon.json")
    try:
        repo, tag = IMAGE_REF.split(":")
        engine.images.import_image(str(debian_ansible_tar()), repository=repo, tag=tag)
        wheel = build_wheel(work / "wheel")
        env = ansible_env(collections_dir(work / "collections"), work / "home")
        results = [converge(engine, work, 1, 1, wheel, env)]
        results += [converge(engine, work, opts.hosts, f, wheel, env) for f in forks]
    finally:
        engine.close()
        shutil.rmtree(work, ignore_errors=True)
    base = results[0]
    load = re.sub(r"\s+", " ", Path("/proc/loadavg").read_text().strip())
    print(f"roles/engine on berth containers, {cores()} cores, loadavg {load}")
    print("| hosts | forks | first run | second run (changed=0) | first run per host "
          "| first run vs 1 host |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r.hosts} | {r.forks} | {r.first:.1f} s | {r.second:.1f} s "
              f"| {r.first / r.hosts:.1f} s | {r.first / base.first:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
