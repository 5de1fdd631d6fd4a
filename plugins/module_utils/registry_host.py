# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The registry module's host side (pure Python, no Ansible imports): the config file, the
htpasswd file, the systemd unit, and the supervised background process used where systemd
does not run.

The config is written as JSON, which is YAML too (``berth registry serve --config`` reads
YAML): deterministic text, so "changed" is a plain text comparison, with no dependency.

Without systemd the server runs under a tiny supervisor (``SUPERVISOR``, run with the same
Python as ``python -c``) started in its own session: it restarts the server when it dies
after having run a while, forwards SIGTERM (graceful stop) and removes its pid file on
exit.  Its command line carries ``berth-registry-supervisor NAME`` so a pid file whose
pid was recycled by another program is never mistaken for the registry.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

MARKER = "berth-registry-supervisor"

SUPERVISOR = r"""
import os, signal, subprocess, sys, time
marker, name, pidfile, log, *cmd = sys.argv[1:]
stopping = False
child = None
def stop(signum, frame):
    global stopping
    stopping = True
    if child is not None and child.poll() is None:
        child.send_signal(signal.SIGTERM)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
code = 0
try:
    fails = 0
    while not stopping:
        started = time.monotonic()
        with open(log, "ab") as out:
            child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        code = child.wait()
        if stopping:
            break
        ran = time.monotonic() - started
        fails = 0 if ran > 30 else fails + 1
        if ran < 3 and fails == 1 and code != 0 and not os.path.exists(pidfile + ".ok"):
            break                  # never came up (bad port, bad TLS file): give up at once
        time.sleep(min(30, 2 ** min(fails, 5)))
finally:
    try:
        os.unlink(pidfile)
    except OSError:
        pass
sys.exit(code)
"""


def render_config(p: Mapping[str, Any], htpasswd_path: str) -> str:
    """distribution-shaped registry config (JSON text) from the module's parameters."""
    doc: dict[str, Any] = {
        "version": "0.1",
        "storage": {"filesystem": {"rootdirectory": p["storage_path"]},
                    "delete": {"enabled": bool(p["delete_enabled"])}},
        "http": {"addr": f"{p['listen_address']}:{p['port']}"},
    }
    if p.get("tls_cert"):
        doc["http"]["tls"] = {"certificate": p["tls_cert"], "key": p["tls_key"]}
    if p.get("users"):
        doc["auth"] = {"htpasswd": {"realm": p.get("realm") or "berth-registry",
                                    "path": htpasswd_path}}
    if p.get("proxy_remote_url"):
        proxy = {"remoteurl": p["proxy_remote_url"]}
        if p.get("proxy_username"):
            proxy["username"] = p["proxy_username"]
            proxy["password"] = p.get("proxy_password") or ""
        doc["proxy"] = proxy
    if p.get("readonly"):
        doc["readonly"] = True
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def masked(config_text: str) -> str:
    """The config for ``diff`` output: the proxy password replaced."""
    if not config_text:
        return ""
    try:
        doc = json.loads(config_text)
    except ValueError:
        return "(not written by this module)\n"
    if isinstance(doc, dict) and isinstance(doc.get("proxy"), dict) and \
            doc["proxy"].get("password"):
        doc["proxy"]["password"] = "********"
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def parse_htpasswd(text: str) -> dict[str, str]:
    users = {}
    for line in text.splitlines():
        user, sep, hashed = line.strip().partition(":")
        if sep and user and not user.startswith("#"):
            users[user] = hashed
    return users


def htpasswd_plan(users: Sequence[Mapping[str, str]], existing_text: str,
                  hasher: Any) -> tuple[str, list[str]]:
    """The new htpasswd text and what changes (``add U``, ``password U``, ``remove U``).

    A user whose stored bcrypt hash matches the given password keeps it (bcrypt salts
    every hash, so re-hashing would change the file on each run); nothing stores or
    compares plaintext.  ``hasher`` is the bcrypt module."""
    current = parse_htpasswd(existing_text)
    lines, changes = [], []
    for entry in sorted(users, key=lambda u: u["username"]):
        name, password = entry["username"], entry["password"]
        stored = current.get(name, "")
        ok = False
        if stored.startswith(("$2a$", "$2b$", "$2y$")):
            try:
                ok = hasher.checkpw(password.encode(),
                                    stored.replace("$2y$", "$2b$", 1).encode())
            except ValueError:
                ok = False
        if not ok:
            changes.append(f"{'password' if name in current else 'add'} {name}")
            stored = hasher.hashpw(password.encode(), hasher.gensalt(10)).decode()
        lines.append(f"{name}:{stored}")
    wanted = {u["username"] for u in users}
    changes += [f"remove {name}" for name in sorted(set(current) - wanted)]
    return ("\n".join(lines) + "\n" if lines else ""), changes


def unit_text(name: str, berth: str, config_path: str) -> str:
    return (
        "# managed by berth.engine.registry\n"
        "[Unit]\n"
        f"Description=berth registry {name}\n"
        "After=network-online.target\nWants=network-online.target\n\n"
        "[Service]\n"
        f"ExecStart={berth} registry serve --config {config_path}\n"
        "Restart=on-failure\nRestartSec=2\nKillSignal=SIGTERM\nTimeoutStopSec=40\n\n"
        "[Install]\nWantedBy=multi-user.target\n")


def read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


# ---- the supervised background process -----------------------------------------------
def supervisor_pid(name: str, pidfile: str) -> int | None:
    """The live supervisor's pid (checked against its command line), else None."""
    try:
        pid = int(read(pidfile).strip() or 0)
    except ValueError:
        return None
    if pid <= 0:
        return None
    for _ in range(40):         # empty while the process is in the middle of its exec
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            return None
        if len(argv) > 4:
            break
        time.sleep(0.005)
    marker = [a.decode(errors="replace") for a in argv[3:5]] if len(argv) > 4 else []
    return pid if marker == [MARKER, name] else None


def start_supervised(python: str, name: str, pidfile: str, log: str,
                     command: Sequence[str]) -> int:
    os.makedirs(os.path.dirname(pidfile) or ".", exist_ok=True)
    try:
        os.unlink(pidfile + ".ok")
    except FileNotFoundError:
        pass
    proc = subprocess.Popen(
        [python, "-c", SUPERVISOR, MARKER, name, pidfile, log, *command],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True, cwd="/")
    with open(pidfile + ".tmp", "w") as f:
        f.write(f"{proc.pid}\n")
    os.replace(pidfile + ".tmp", pidfile)
    return proc.pid


def mark_up(pidfile: str) -> None:
    """Once it answered: later deaths are restarted by the supervisor, not given up."""
    with open(pidfile + ".ok", "w"):
        pass


def stop_supervised(pid: int, pidfile: str, timeout: float = 40.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)      # its own session: the server goes too
        except ProcessLookupError:
            pass
        while _alive(pid) and time.monotonic() < deadline + 5:
            time.sleep(0.05)
    for path in (pidfile, pidfile + ".ok"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _alive(pid: int) -> bool:
    """Alive and not a zombie (a supervisor we started is our child until we reap it)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def probe(url: str, timeout: float = 1.0) -> int | None:
    """The HTTP status of ``GET url`` (TLS not verified: this is a liveness check)."""
    import ssl
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def wait_answering(url: str, timeout: float, alive: Any) -> bool:
    """Poll ``url`` until it answers 200 or 401 (auth enabled); False on timeout or
    when ``alive()`` says the server is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe(url) in (200, 401):
            return True
        if not alive():
            return False
        time.sleep(0.1)
    return False
