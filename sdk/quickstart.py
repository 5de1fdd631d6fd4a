"""``make quickstart``: the quickstart playbook, or a walk-through of the CLI.

With ansible-core in this venv (the ``test`` extra), it runs playbooks/quickstart.yml on
localhost with the berth.engine collection of this checkout: a private registry, an image
built from a Dockerfile and pushed there, a web container with a named volume and a
published port, then checks that the page and the catalog answer.  Extra arguments go to
ansible-playbook (``python -m sdk.quickstart -e qs_web_port=8089``).

Without ansible-core (or with ``--cli``): makes a busybox image from Debian's
busybox-static, imports it, runs containers that share a named volume, and shows them
with the usual commands.  Every step is a real ``berth`` command line, printed before it
runs.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

BERTH = str(Path(sys.executable).with_name("berth"))


def step(*args: str, check: bool = True) -> str:
    print(f"\n$ berth {shlex.join(args)}", flush=True)
    proc = subprocess.run([BERTH, *args], capture_output=True, text=True)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if check and proc.returncode != 0:
        raise SystemExit(f"quickstart: `berth {shlex.join(args)}` exited {proc.returncode}")
    return proc.stdout


PLAYBOOK = Path(__file__).resolve().parents[1] / "playbooks" / "quickstart.yml"


def run_playbook(extra: list[str]) -> int:
    """ansible-playbook on localhost, with this checkout as the berth.engine collection."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="berth-quickstart-"))
    try:
        ns = base / "ansible_collections" / "berth"
        ns.mkdir(parents=True)
        (ns / "engine").symlink_to(PLAYBOOK.parents[1])
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(base),
                   ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_LOCALHOST_WARNING="0",
                   ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_RETRY_FILES_ENABLED="0",
                   PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,",
               str(PLAYBOOK), *extra]
        print(f"$ {shlex.join(cmd)}", flush=True)
        return subprocess.run(cmd, env=env).returncode
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    if os.geteuid() != 0:
        print("quickstart: run as root (berth manages namespaces, mounts and cgroups)")
        return 1
    argv = sys.argv[1:]
    if "--cli" not in argv and PLAYBOOK.is_file() and \
            Path(sys.executable).with_name("ansible-playbook").exists():
        return run_playbook(argv)
    return walkthrough()


def walkthrough() -> int:
    from sdk._internal.testimages import busybox_tar

    tar = busybox_tar()
    print(f"busybox root filesystem: {tar}")
    for name in ("qs-web", "qs-writer"):
        subprocess.run([BERTH, "rm", "-f", name], capture_output=True)
    step("import", "-c", "CMD [\"sh\"]", "-m", "busybox from Debian's busybox-static",
         str(tar), "busybox:latest")
    step("images")
    step("volume", "create", "qs-data")
    step("run", "--rm", "--name", "qs-writer", "-v", "qs-data:/data", "busybox",
         "sh", "-c", "echo hello from a berth volume > /data/greeting; hostname")
    step("run", "-d", "--name", "qs-web", "-v", "qs-data:/data:ro", "--memory", "64m",
         "--pids-limit", "64", "busybox", "sh", "-c",
         "while true; do cat /data/greeting; sleep 1; done")
    time.sleep(1.2)
    step("ps")
    step("logs", "--tail", "2", "qs-web")
    step("exec", "qs-web", "sh", "-c", "id; cat /proc/1/cmdline | tr '\\0' ' '; echo")
    step("inspect", "-f", "{{.State.Status}} pid={{.State.Pid}} "
         "memory={{.HostConfig.Memory}}", "qs-web")
    step("top", "qs-web")
    step("stop", "-t", "1", "qs-web")
    step("ps", "-a", "--filter", "name=qs-")
    step("rm", "qs-web")
    step("volume", "ls")
    step("system", "df")
    print("\nquickstart: done. The busybox image and the qs-data volume are kept; remove "
          "them with `berth rmi busybox` and `berth volume rm qs-data`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
