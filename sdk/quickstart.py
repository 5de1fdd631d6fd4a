"""``make quickstart``: a walk-through of the engine on this host.

Makes a busybox image from Debian's busybox-static, imports it, runs containers that
share a named volume, and shows them with the usual commands.  Every step is a real
``berth`` command line, printed before it runs.
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


def main() -> int:
    if os.geteuid() != 0:
        print("quickstart: run as root (berth manages namespaces, mounts and cgroups)")
        return 1
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
