# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
name: berth
short_description: Run tasks inside berth containers
version_added: 0.1.0
description:
  - Runs commands in a running berth container through the engine's SDK (an exec into
    the container's namespaces), and copies files in and out through it; no daemon, SSH or
    Python is needed inside the container (use M(ansible.builtin.raw) and
    M(ansible.builtin.script) where it has no Python).
  - The controller opens the engine itself, so it runs as root on the engine's host with
    the berth SDK importable by the controller's Python.
author:
  - berth developers
options:
  remote_addr:
    description: Name or ID of the container.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_berth_host
  remote_user:
    description:
      - User (name, uid or uid:gid) commands run as; the container's user when unset.
    type: str
    vars:
      - name: ansible_user
      - name: ansible_berth_user
    ini:
      - section: defaults
        key: remote_user
    env:
      - name: ANSIBLE_REMOTE_USER
    cli:
      - name: user
    keyword:
      - name: remote_user
  engine_root:
    description: The engine's data root (default C(/var/lib/berth)).
    type: str
    vars:
      - name: ansible_berth_root
    env:
      - name: BERTH_ROOT
  engine_config:
    description: The engine's daemon.json (default C(/etc/berth/daemon.json)).
    type: str
    vars:
      - name: ansible_berth_config
    env:
      - name: BERTH_CONFIG
  privileged:
    description: Run commands with every capability (C(berth exec --privileged)).
    type: bool
    default: false
    vars:
      - name: ansible_berth_privileged
notes:
  - O(remote_user) chooses the exec user directly; M(ansible.builtin.raw) tasks with
    C(become) also work when the container has C(su) or C(sudo), as with any connection.
"""

import os
import shlex
import tempfile

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

MISSING_SDK = ("the berth SDK (Python package 'sdk' of berth-engine) cannot be imported by "
               "the controller's Python: the berth connection opens the engine on the "
               "controller; install berth there (the berth.engine.engine role does it)")


class Connection(ConnectionBase):
    """Exec into berth containers through the SDK."""

    transport = "berth.engine.berth"
    has_pipelining = True
    has_tty = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._engine = None
        self._cid = None

    def _connect(self):
        if self._connected:
            return self
        try:
            from sdk import Engine
            from sdk.errors import SdkError
        except ImportError:
            raise AnsibleConnectionFailure(MISSING_SDK)
        name = self.get_option("remote_addr")
        try:
            self._engine = Engine(root=self.get_option("engine_root") or None,
                                  config=self.get_option("engine_config") or None)
            container = self._engine.containers.get(name)
        except SdkError as exc:
            raise AnsibleConnectionFailure(f"berth container {name}: {exc}")
        if container.status != "running":
            raise AnsibleConnectionFailure(
                f"berth container {name} is {container.status}, not running")
        self._cid = container.id
        display.vvv(f"ESTABLISH BERTH CONNECTION to {name} ({self._cid[:12]})",
                    host=name)
        self._connected = True
        return self

    def _exec(self, argv, stdin=None, stdout=None, stderr=None):
        from sdk.errors import SdkError

        user = self.get_option("remote_user") or None
        try:
            return self._engine.tasks.exec(self._cid, argv, stdin=stdin, stdout=stdout,
                                           stderr=stderr, user=user,
                                           privileged=bool(self.get_option("privileged")))
        except SdkError as exc:
            raise AnsibleConnectionFailure(
                f"berth exec in {self.get_option('remote_addr')} failed: {exc}")

    def exec_command(self, cmd, in_data=None, sudoable=False):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        shell = self._play_context.executable or "/bin/sh"
        argv = [shell, "-c", cmd]
        display.vvv(f"EXEC {argv}", host=self.get_option("remote_addr"))
        with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout, \
                tempfile.TemporaryFile() as ferr:
            if in_data:
                fin.write(in_data if isinstance(in_data, bytes) else in_data.encode())
                fin.seek(0)
            code = self._exec(argv, stdin=fin.fileno(), stdout=fout.fileno(),
                              stderr=ferr.fileno())
            fout.seek(0)
            ferr.seek(0)
            return code, fout.read(), ferr.read()

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        display.vvv(f"PUT {in_path} TO {out_path}", host=self.get_option("remote_addr"))
        if not os.path.exists(in_path):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        cmd = f"cat > {shlex.quote(out_path)}"
        with open(in_path, "rb") as fin, tempfile.TemporaryFile() as ferr:
            code = self._exec(["/bin/sh", "-c", cmd], stdin=fin.fileno(), stdout=ferr.fileno(),
                              stderr=ferr.fileno())
            if code != 0:
                ferr.seek(0)
                raise AnsibleError(f"failed to write {out_path} in the container "
                                   f"(exit {code}): {ferr.read().decode(errors='replace')}")

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH {in_path} TO {out_path}", host=self.get_option("remote_addr"))
        cmd = f"cat {shlex.quote(in_path)}"
        tmp = f"{out_path}.berth-fetch"
        with open(tmp, "wb") as fout, tempfile.TemporaryFile() as ferr:
            code = self._exec(["/bin/sh", "-c", cmd], stdin=None, stdout=fout.fileno(),
                              stderr=ferr.fileno())
            ferr.seek(0)
            err = ferr.read().decode(errors="replace")
        if code != 0:
            os.unlink(tmp)
            raise AnsibleFileNotFound(f"cannot read {in_path} in the container: {err.strip()}")
        os.replace(tmp, out_path)

    def close(self):
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        self._connected = False
