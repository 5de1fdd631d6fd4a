"""Bridge networking, berth vs docker, side by side in one run.

    python bench/network_docker.py [--runs 20] [--seconds 5]

1. ``run --rm busybox true`` on each engine's default bridge network, interleaved
   (berth's CLI vs docker's CLI against a private dockerd).
2. TCP throughput container to container on that bridge: iperf3 (Debian's, from the
   host) runs inside two containers' network namespaces (``nsenter -n``), so the only
   difference is the engine's veth/bridge setup, not the binary or the image.
3. TCP throughput from the host's 127.0.0.1 to a published port of a container (berth:
   route_localnet + DNAT; docker: its userland proxy, which is what docker uses for
   loopback clients).

The private dockerd has its own data-root, exec-root, pidfile, socket and containerd
namespace under a temp dir and its own bridge (created here with an address in a
subnet that overlaps no route; ``--iptables=false`` so it leaves no chains behind: a
container with no published port gets no rule from docker either).  It is stopped by
PID; the bridge, the temp dirs and berth's root are removed at the end.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers import timed  # noqa: E402
from sdk._internal.testimages import busybox_tar  # noqa: E402

BERTH = str(Path(sys.executable).with_name("berth"))
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
PARENT = "berth-netdocker"
IPERF = shutil.which("iperf3") or "iperf3"


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.213.64.0/18 that overlaps no route of the host."""
    from sdk.network.netlink import host_routes

    taken = [net for net, _dev in host_routes()]
    for cand in ipaddress.IPv4Network("10.213.64.0/18").subnets(new_prefix=24):
        if not any(cand.overlaps(t) for t in taken):
            return cand
    raise SystemExit("no free /24 in 10.213.64.0/18")


class Dockerd:
    """A private dockerd on a bridge created here; stopped by PID."""

    def __init__(self, work: Path, bridge: str) -> None:
        self.work, self.bridge = work, bridge
        self.sock = work / "docker.sock"
        self.cli = [DOCKER, "-H", f"unix://{self.sock}"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.ns = "netbench" + secrets.token_hex(3)

    def start(self) -> None:
        with open(self.work / "dockerd.log", "wb") as log:
            self.proc = subprocess.Popen(
                ["dockerd", "--data-root", str(self.work / "data"), "--exec-root",
                 str(self.work / "exec"), "-H", f"unix://{self.sock}", "--pidfile",
                 str(self.work / "docker.pid"), "--bridge", self.bridge, "--iptables=false",
                 "--ip6tables=false", "--ip-masq=false", "--containerd-namespace", self.ns,
                 "--containerd-plugins-namespace", self.ns + "-plugins"],
                stdout=log, stderr=log, start_new_session=True)
        for _ in range(300):
            if subprocess.run([*self.cli, "version"], capture_output=True).returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("dockerd did not start: " +
                           (self.work / "dockerd.log").read_text()[-1500:])

    def stop(self) -> None:
        if self.proc is None:
            return
        ids = subprocess.run([*self.cli, "ps", "-aq"], capture_output=True, text=True)
        if ids.stdout.split():
            subprocess.run([*self.cli, "rm", "-f", *ids.stdout.split()], capture_output=True)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for mount in ("exec", "data"):
            subprocess.run(["umount", "-R", str(self.work / mount)], capture_output=True)


def wait_listening(pid: int, port: int, limit: float = 10.0) -> None:
    """Until a TCP socket listens on ``port`` in ``pid``'s netns (docker's proxy accepts
    at once and resets the client when the server behind it is not up yet)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/net/tcp") as f:
            if any(ln.split()[1].endswith(f":{port:04X}") and ln.split()[3] == "0A"
                   for ln in list(f)[1:]):
                return
        time.sleep(0.02)
    raise RuntimeError(f"iperf3 server on port {port} did not come up")


def iperf(server_pid: int, server_ip: str, client_pid: int | None, port: int,
          seconds: int, target: str | None = None, target_port: int | None = None) -> float:
    """Gbit/s received: an iperf3 server in ``server_pid``'s netns, the client in
    ``client_pid``'s (or on the host when None) connecting to ``target``."""
    server = subprocess.Popen(["nsenter", "-t", str(server_pid), "-n", IPERF, "-s", "-1",
                               "-B", server_ip, "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(server_pid, port)
        client = [IPERF, "-c", target or server_ip, "-p", str(target_port or port), "-t",
                  str(seconds), "-J"]
        if client_pid is not None:
            client = ["nsenter", "-t", str(client_pid), "-n", *client]
        for _ in range(50):
            res = subprocess.run(client, capture_output=True, text=True)
            try:
                data = json.loads(res.stdout)
            except ValueError:
                data = {}
            if "sum_received" in data.get("end", {}):
                return float(data["end"]["sum_received"]["bits_per_second"]) / 1e9
            if "unable to connect" not in str(data.get("error", "")):
                raise RuntimeError(f"iperf3: {data.get('error') or res.stdout[-500:]}")
            time.sleep(0.1)       # the server is not listening yet
        raise RuntimeError(f"iperf3 client failed: {res.stdout[-500:]} {res.stderr[-300:]}")
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="iperf3 rounds per engine")
    args = parser.parse_args()
    if not shutil.which("iperf3"):
        raise SystemExit("iperf3 is not installed (apt-get install iperf3)")
    work = Path(tempfile.mkdtemp(prefix="berth-netdocker-"))
    env = dict(os.environ, BERTH_ROOT=str(work / "root"), BERTH_CONFIG=str(work / "d.json"))
    subnet = free_subnet()
    bridge = "bd" + secrets.token_hex(4)
    dockerd = Dockerd(work / "docker", bridge)
    (work / "docker").mkdir()
    from sdk import Engine

    eng = Engine(root=work / "root", config=work / "d.json")
    daemon: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", f"{subnet.network_address + 1}/24", "dev",
                        bridge], check=True)
        subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
        dockerd.start()
        subprocess.run([*dockerd.cli, "import", "-c", 'CMD ["sh"]', str(busybox_tar()),
                        "nb-busybox"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([BERTH, "import", str(busybox_tar()), "nb-busybox"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        sock = work / "berth.sock"
        daemon = subprocess.Popen([BERTH, "daemon", "-H", f"unix://{sock}", "-G", ""],
                                  env=env, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if sock.exists():
                break
            time.sleep(0.05)
        warm_env = {k: v for k, v in env.items() if k not in ("BERTH_ROOT", "BERTH_CONFIG")}
        warm_env["BERTH_HOST"] = f"unix://{sock}"
        run_args = ["run", "--rm", "--cgroup-parent", PARENT, "nb-busybox", "true"]
        cmds = {"berth": [BERTH, *run_args],
                "berth (warm daemon)": [BERTH, *run_args],
                "docker": [*dockerd.cli, "run", "--rm", "nb-busybox", "true"]}
        envs = {"berth": env, "berth (warm daemon)": warm_env, "docker": None}
        for key, cmd in cmds.items():        # warm: page cache, bridges
            timed(cmd, envs[key])
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(args.runs):
            for key, cmd in cmds.items():
                times[key].append(timed(cmd, envs[key]))
        daemon.terminate()
        daemon.wait(timeout=30)
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        load = os.getloadavg()[0]
        print(f"run --rm busybox true, default bridge, {args.runs} runs interleaved, "
              f"load {load:.1f}:")
        print("| engine | median ms | min ms |\n|---|---:|---:|")
        for key in cmds:
            print(f"| {key} | {med[key]:.0f} | {min(times[key]) * 1000:.0f} |")
        for key in ("berth", "berth (warm daemon)"):
            print(f"| ratio {key}/docker | {med[key] / med['docker']:.2f}x | |")

        # ---- throughput --------------------------------------------------------------
        pids: dict[str, list[tuple[int, str]]] = {"berth": [], "docker": []}
        for name in ("ipa", "ipb"):
            c = eng.containers.run("nb-busybox", ["sleep", "600"], detach=True, name=name,
                                   cgroup_parent=PARENT,
                                   ports={"5301/tcp": ("127.0.0.1", None)} if name == "ipa"
                                   else None)
            c.reload()
            pids["berth"].append((int(c.attrs["State"]["Pid"]),
                                  c.attrs["NetworkSettings"]["IPAddress"]))
            flags = ["-p", "127.0.0.1::5301"] if name == "ipa" else []
            subprocess.run([*dockerd.cli, "run", "-d", "--name", name, *flags,
                            "nb-busybox", "sleep", "600"], check=True,
                           stdout=subprocess.DEVNULL)
            out = subprocess.run([*dockerd.cli, "inspect", "-f",
                                  "{{.State.Pid}} {{.NetworkSettings.IPAddress}}", name],
                                 capture_output=True, text=True, check=True).stdout.split()
            pids["docker"].append((int(out[0]), out[1]))
        host_port = {
            "berth": int(eng.containers.get("ipa").attrs["NetworkSettings"]["Ports"]
                         ["5301/tcp"][0]["HostPort"]),
            "docker": int(subprocess.run([*dockerd.cli, "port", "ipa", "5301/tcp"],
                                         capture_output=True, text=True, check=True)
                          .stdout.split(":")[-1])}
        c2c: dict[str, list[float]] = {"berth": [], "docker": []}
        pub: dict[str, list[float]] = {"berth": [], "docker": []}
        for _ in range(args.rounds):
            for key in ("berth", "docker"):
                (spid, sip), (cpid, _cip) = pids[key]
                c2c[key].append(iperf(spid, sip, cpid, 5301, args.seconds))
                pub[key].append(iperf(spid, "0.0.0.0", None, 5301, args.seconds,
                                      target="127.0.0.1", target_port=host_port[key]))
        print(f"\niperf3 TCP, {args.seconds} s x {args.rounds} rounds interleaved, "
              f"load {os.getloadavg()[0]:.1f} (median Gbit/s):")
        print("| path | berth | docker | berth/docker |\n|---|---:|---:|---:|")
        for label, data in (("container to container, same bridge", c2c),
                            ("host 127.0.0.1 to a published port", pub)):
            b, d = statistics.median(data["berth"]), statistics.median(data["docker"])
            print(f"| {label} | {b:.1f} | {d:.1f} | {b / d:.2f}x |")
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.terminate()
            daemon.wait(timeout=30)
        for c in eng.containers.list(all=True):
            try:
                c.remove(force=True)
            except Exception:   # noqa: BLE001 - best effort cleanup
                pass
        eng.repair()
        eng.close()
        dockerd.stop()
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            try:
                (hierarchy / PARENT).rmdir()
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
