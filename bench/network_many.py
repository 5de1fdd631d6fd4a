"""100 containers on one user network, all reachable from each other by name.

    python bench/network_many.py [--count 100]

Starts COUNT busybox containers on a fresh user network, then has a sample of them ping
others by name (names resolve through each member's /etc/hosts).  Prints the time to
start them all, the time per start, the median start of the first and of the last ten
(a start must not get slower as the network fills: it appends one line to each member's
hosts file instead of rewriting them all), and the reachability checks; then stops one
member (its line leaves the other 99 files) and removes everything.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdk._internal.testimages import busybox_tar  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--checks", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="berth-netmany-"))
    from sdk import Engine

    eng = Engine(root=work / "root", config=work / "d.json")
    names = [f"n{i}" for i in range(args.count)]
    try:
        eng.images.import_image(str(busybox_tar()), repository="busybox")
        eng.networks.create("many")
        t0 = time.perf_counter()
        each = []
        for name in names:
            t = time.perf_counter()
            eng.containers.run("busybox", ["sleep", "600"], detach=True, name=name,
                               network="many")
            each.append(time.perf_counter() - t)
        started = time.perf_counter() - t0
        first, last = (statistics.median(each[:10]) * 1000,
                       statistics.median(each[-10:]) * 1000)
        rng = random.Random(1)
        failures = 0
        t1 = time.perf_counter()
        for _ in range(args.checks):
            src, dst = rng.sample(names, 2)
            code, out = eng.containers.get(src).exec_run(["ping", "-c", "1", "-W", "2", dst])
            failures += code != 0
        pinged = time.perf_counter() - t1
        hosts = eng.containers.get(names[0]).exec_run(["cat", "/etc/hosts"]).output.decode()
        others = names[1:]   # its own entry carries its hostname, as in docker
        listed = sum(1 for n in others if f" {n}" in hosts or f"\t{n}" in hosts)
        svc = eng.networks.service
        victim = eng.containers.get(names[-1])
        rows = [dict(r) for r in eng.db.query(
            "SELECT network_id, address, names FROM net_leases WHERE container_id=?",
            (victim.id,))]
        doc = eng.container_store.load(victim.id)
        t2 = time.perf_counter()
        svc.withdraw(victim.id, rows)           # what a stop does to the others' files
        t3 = time.perf_counter()
        svc.announce(victim.id, [r["network_id"] for r in rows], doc)   # and a start
        t4 = time.perf_counter()
        # what a start cost the others before issue 6: every member's record loaded and
        # its whole hosts file rebuilt from the database
        for r in eng.db.query("SELECT container_id FROM net_leases WHERE network_id=? "
                              "AND container_id!=?", (rows[0]["network_id"], victim.id)):
            member = eng.container_store.load(r["container_id"])
            if member is not None:
                svc.write_hosts_of(member)
        t5 = time.perf_counter()
        print(f"{args.count} containers on one bridge network: started in {started:.1f} s "
              f"({started / args.count * 1000:.0f} ms each; median of the first 10 "
              f"{first:.0f} ms, of the last 10 {last:.0f} ms); hosts files of "
              f"{args.count - 1} members: leave {(t3 - t2) * 1000:.1f} ms, join "
              f"{(t4 - t3) * 1000:.1f} ms (rebuilding them all, as before: "
              f"{(t5 - t4) * 1000:.1f} ms); {args.checks - failures}/"
              f"{args.checks} pings by name answered ({pinged / args.checks * 1000:.0f} ms "
              f"each); {listed}/{len(others)} other members' names in the first member's "
              "/etc/hosts")
        return 0 if failures == 0 and listed == len(others) else 1
    finally:
        for name in names:
            try:
                eng.containers.get(name).remove(force=True)
            except Exception:   # noqa: BLE001 - best effort cleanup
                pass
        try:
            eng.networks.get("many").remove()
        except Exception:   # noqa: BLE001
            pass
        eng.repair()
        eng.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
