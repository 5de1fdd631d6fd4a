#!/usr/bin/python
# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry
short_description: Run a berth registry server on the host
version_added: 0.1.0
description:
  - Installs, starts, stops and removes a registry server (C(berth registry serve), OCI
    distribution and Docker Registry v2) on the managed host.
  - The task writes the server's config file (C(CONFIG_DIR/config.yml)) and, with
    O(users), an htpasswd file of bcrypt hashes; a changed config restarts a running server.
  - Where systemd runs (C(/run/systemd/system) exists), the server is a systemd unit
    C(berth-registry-NAME.service), enabled so it survives a reboot.
  - Elsewhere (containers, minimal hosts) it runs as a supervised background process (a
    small supervisor, started in its own session, that restarts the server when it dies
    and writes its pid to O(pid_file)), with its output in C(CONFIG_DIR/registry.log).
    Such a process does not come back after a reboot; run the task again at boot.
  - After a start or restart the task waits until C(/v2/) answers (200, or 401 when
    authentication is on).
author:
  - berth developers
extends_documentation_fragment:
  - berth.engine.engine
  - berth.engine.attributes
  - berth.engine.attributes.actiongroup_engine
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The proxy password is masked and passwords never appear; a changed password
      shows as C(password USER).
  idempotent:
    support: full
options:
  name:
    description:
      - Name of this registry instance (several can run on one host).
    type: str
    default: registry
  state:
    description:
      - V(started) installs the config and service and makes sure the server runs.
      - V(present) installs them; a running server is restarted when its config changes,
        a stopped one is left stopped.
      - V(stopped) installs them and stops the server.
      - V(absent) stops the server and removes its service, config and htpasswd files.
        The stored images (O(storage_path)) are kept.
    type: str
    choices: [present, started, stopped, absent]
    default: started
  listen_address:
    description:
      - Address the server listens on.
    type: str
    default: 0.0.0.0
  port:
    description:
      - TCP port.
    type: int
    default: 5000
  storage_path:
    description:
      - Directory of the stored images. Default C(/var/lib/berth-registry/NAME).
    type: path
  users:
    description:
      - Users allowed to pull and push (HTTP Basic, bcrypt htpasswd). Unset or empty means
        no authentication.
      - A stored hash that matches the password is kept, so a run changes the file only
        when a user or password changed; plaintext is never stored.
    type: list
    elements: dict
    suboptions:
      username:
        description: User name.
        type: str
        required: true
      password:
        description: Password (never logged or returned).
        type: str
        required: true
  realm:
    description:
      - Realm of the Basic authentication.
    type: str
    default: berth-registry
  tls_cert:
    description:
      - Path of the TLS certificate (PEM) on the host; needs O(tls_key).
    type: path
  tls_key:
    description:
      - Path of the TLS private key (PEM) on the host.
    type: path
  delete_enabled:
    description:
      - Allow deleting manifests and blobs through the API.
    type: bool
    default: false
  readonly:
    description:
      - Refuse every write.
    type: bool
    default: false
  proxy_remote_url:
    description:
      - Run as a pull-through cache of this registry, like C(https://registry-1.docker.io).
    type: str
  proxy_username:
    description:
      - User name at the upstream registry.
    type: str
  proxy_password:
    description:
      - Password at the upstream registry (stored in the config file, mode 0600).
    type: str
  config_dir:
    description:
      - Directory of the config and htpasswd files. Default C(/etc/berth/registry/NAME).
    type: path
  pid_file:
    description:
      - Pid file of the supervised process (hosts without systemd). Default
        C(/run/berth/registry-NAME.pid).
    type: path
  service_manager:
    description:
      - V(auto) uses systemd when it runs, else the supervised process.
    type: str
    choices: [auto, systemd, process]
    default: auto
  berth_executable:
    description:
      - The C(berth) command. Default the one next to the module's Python, else the one
        on C(PATH).
    type: path
  wait_timeout:
    description:
      - Seconds to wait for C(/v2/) to answer after a start.
    type: int
    default: 30
notes:
  - The server needs the SDK's registry extras (aiohttp, bcrypt, PyYAML) on the host.
  - The registry does not use the engine's data root; O(engine_root) and O(engine_config)
    are accepted (and ignored) so that C(module_defaults) of C(group/berth.engine.engine)
    apply to every module of the group.
"""

EXAMPLES = r"""
- name: A private registry on port 5000 with two users
  berth.engine.registry:
    port: 5000
    storage_path: /srv/registry
    users:
      - username: ci
        password: "{{ vault_ci_password }}"
      - username: deploy
        password: "{{ vault_deploy_password }}"
    tls_cert: /etc/ssl/registry.crt
    tls_key: /etc/ssl/private/registry.key
    delete_enabled: true

- name: A local pull-through cache of Docker Hub
  berth.engine.registry:
    name: hub-mirror
    listen_address: 127.0.0.1
    port: 5001
    proxy_remote_url: https://registry-1.docker.io

- name: Stop it
  berth.engine.registry:
    name: hub-mirror
    state: stopped

- name: Remove it (the stored images stay)
  berth.engine.registry:
    name: hub-mirror
    state: absent
"""

RETURN = r"""
registry:
  description: Where the registry is and how it runs.
  returned: always
  type: dict
  sample: {"url": "http://127.0.0.1:5000", "running": true, "service_manager": "process",
           "pid": 4242, "config_path": "/etc/berth/registry/registry/config.yml",
           "storage_path": "/var/lib/berth-registry/registry"}
actions:
  description: What the task did (would do, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["write /etc/berth/registry/registry/config.yml", "start registry registry"]
"""

import os
import shutil
import subprocess
import sys

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.berth.engine.plugins.module_utils import registry_host as rh
from ansible_collections.berth.engine.plugins.module_utils.common import ENGINE_ARGUMENT_SPEC


def berth_command(p):
    if p["berth_executable"]:
        return p["berth_executable"]
    beside = os.path.join(os.path.dirname(sys.executable), "berth")
    return beside if os.access(beside, os.X_OK) else (shutil.which("berth") or "berth")


class Registry:
    def __init__(self, module):
        self.module = module
        self.p = p = module.params
        self.check = module.check_mode
        self.actions = []
        name = p["name"]
        self.config_dir = p["config_dir"] or f"/etc/berth/registry/{name}"
        self.config_path = os.path.join(self.config_dir, "config.yml")
        self.htpasswd_path = os.path.join(self.config_dir, "htpasswd")
        self.log_path = os.path.join(self.config_dir, "registry.log")
        self.pid_file = p["pid_file"] or f"/run/berth/registry-{name}.pid"
        self.unit = f"berth-registry-{name}.service"
        self.unit_path = f"/etc/systemd/system/{self.unit}"
        manager = p["service_manager"]
        if manager == "auto":
            manager = "systemd" if os.path.isdir("/run/systemd/system") else "process"
        self.manager = manager
        if manager == "systemd" and not self.check and not os.path.isdir("/run/systemd/system"):
            self.fail("service_manager=systemd, but systemd is not running on this host (no "
                      "/run/systemd/system): use service_manager: process")
        host = p["listen_address"]
        host = "127.0.0.1" if host in ("0.0.0.0", "") else \
            ("[::1]" if host == "::" else (f"[{host}]" if ":" in host else host))
        scheme = "https" if p["tls_cert"] else "http"
        self.url = f"{scheme}://{host}:{p['port']}"

    def act(self, description, fn=None):
        if not self.check and fn is not None:
            fn()
        self.actions.append(description)

    def fail(self, msg):
        self.module.fail_json(msg=msg, actions=self.actions,
                              changed=bool(self.actions) and not self.check)

    # ---- service ---------------------------------------------------------------------
    def systemctl(self, *args, check=True):
        try:
            proc = subprocess.run(["systemctl", *args], capture_output=True, text=True)
        except FileNotFoundError:
            proc = subprocess.CompletedProcess(["systemctl"], 127, "", "systemctl not found")
        if check and proc.returncode != 0:
            self.fail(f"systemctl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def running(self):
        if self.manager == "systemd":
            return self.systemctl("is-active", "--quiet", self.unit,
                                  check=False).returncode == 0
        return rh.supervisor_pid(self.p["name"], self.pid_file) is not None

    def start(self):
        if self.manager == "systemd":
            self.systemctl("start", self.unit)
            alive = self.running
        else:
            rh.start_supervised(sys.executable, self.p["name"], self.pid_file, self.log_path,
                                [berth_command(self.p), "registry", "serve", "--config",
                                 self.config_path])
            alive = self.running
        if not rh.wait_answering(f"{self.url}/v2/", self.p["wait_timeout"], alive):
            log = rh.read(self.log_path).strip().splitlines()[-5:] \
                if self.manager == "process" else []
            self.stop()
            detail = ("; last log lines: " + " | ".join(log)) if log else ""
            self.fail(f"registry {self.p['name']} did not answer on {self.url}/v2/ within "
                      f"{self.p['wait_timeout']}s{detail}")
        if self.manager == "process":
            rh.mark_up(self.pid_file)

    def stop(self):
        if self.manager == "systemd":
            self.systemctl("stop", self.unit, check=False)
            return
        pid = rh.supervisor_pid(self.p["name"], self.pid_file)
        if pid is not None:
            rh.stop_supervised(pid, self.pid_file)

    # ---- files -----------------------------------------------------------------------
    def write(self, path, text, mode):
        from ansible_collections.berth.engine.plugins.module_utils.common import atomic_write

        atomic_write(path, text.encode(), mode)

    def remove(self, path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def validate(self, config_text):
        """The engine's own config loader, on a temp copy: a bad value fails before any
        file changes."""
        import tempfile

        p = self.p
        if bool(p["tls_cert"]) != bool(p["tls_key"]):
            self.fail("tls_cert and tls_key must be given together")
        for key in ("tls_cert", "tls_key"):
            if p[key] and not os.path.isfile(p[key]):
                self.fail(f"{key}: {p[key]} does not exist")
        if not 1 <= p["port"] <= 65535:
            self.fail(f"port {p['port']} is out of range (1-65535)")
        if p["proxy_password"] and not p["proxy_username"]:
            self.fail("proxy_password needs proxy_username")
        for user in p["users"] or []:
            if not user["username"] or ":" in user["username"]:
                self.fail(f"users: invalid user name {user['username']!r}")
        try:
            from sdk.errors import SdkError
            from sdk.registry.config import load_config
        except ImportError:
            return                  # the server itself reports it at start
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            f.write(config_text)
            f.flush()
            try:
                load_config(f.name)
            except SdkError as exc:
                self.fail(str(exc))

    # ---- the task --------------------------------------------------------------------
    def run(self):
        p = self.p
        state = p["state"]
        before_config = rh.read(self.config_path)
        before_users = sorted(rh.parse_htpasswd(rh.read(self.htpasswd_path)))
        was_running = self.running()
        result = {"changed": False}
        if state == "absent":
            if was_running:
                self.act(f"stop registry {p['name']}", self.stop)
            if self.manager == "systemd" and os.path.exists(self.unit_path):
                self.act(f"disable {self.unit}",
                         lambda: self.systemctl("disable", self.unit, check=False))
                self.act(f"remove {self.unit_path}", lambda: self.remove(self.unit_path))
                self.act("systemctl daemon-reload",
                         lambda: self.systemctl("daemon-reload", check=False))
            for path in (self.config_path, self.htpasswd_path):
                if os.path.exists(path):
                    self.act(f"remove {path}", lambda path=path: self.remove(path))
            after_config, after_users, running = "", [], False
        else:
            p["storage_path"] = p["storage_path"] or f"/var/lib/berth-registry/{p['name']}"
            config = rh.render_config(p, self.htpasswd_path)
            self.validate(config)
            htpasswd, user_changes = self.users_plan()
            config_changed = config != before_config
            if config_changed:
                self.act(f"write {self.config_path}",
                         lambda: self.write(self.config_path, config, 0o600))
            if user_changes:
                text = htpasswd
                if text:
                    self.act(f"write {self.htpasswd_path} ({', '.join(user_changes)})",
                             lambda: self.write(self.htpasswd_path, text, 0o600))
                else:
                    self.act(f"remove {self.htpasswd_path} ({', '.join(user_changes)})",
                             lambda: self.remove(self.htpasswd_path))
            if not os.path.isdir(p["storage_path"]):
                self.act(f"create {p['storage_path']}",
                         lambda: os.makedirs(p["storage_path"], 0o700, exist_ok=True))
            if self.manager == "systemd":
                unit = rh.unit_text(p["name"], berth_command(p), self.config_path)
                if rh.read(self.unit_path) != unit:
                    self.act(f"write {self.unit_path}",
                             lambda: self.write(self.unit_path, unit, 0o644))
                    self.act("systemctl daemon-reload",
                             lambda: self.systemctl("daemon-reload"))
                if self.systemctl("is-enabled", "--quiet", self.unit,
                                  check=False).returncode != 0:
                    self.act(f"enable {self.unit}",
                             lambda: self.systemctl("enable", self.unit))
            changed_files = config_changed or bool(user_changes)
            running = was_running
            if state == "stopped" and was_running:
                self.act(f"stop registry {p['name']}", self.stop)
                running = False
            elif was_running and changed_files:
                self.act(f"stop registry {p['name']}", self.stop)
                self.act(f"start registry {p['name']}", self.start)
            elif state == "started" and not was_running:
                self.act(f"start registry {p['name']}", self.start)
                running = True
            after_config = config
            after_users = sorted(u["username"] for u in p["users"] or [])
        result["changed"] = bool(self.actions)
        result["actions"] = self.actions
        info = {"url": self.url, "running": running, "service_manager": self.manager,
                "config_path": self.config_path, "storage_path": p["storage_path"] or "",
                "name": p["name"]}
        if self.manager == "process" and running and not self.check:
            info["pid"] = rh.supervisor_pid(p["name"], self.pid_file)
            info["pid_file"] = self.pid_file
        else:
            info["unit"] = self.unit if self.manager == "systemd" else None
        result["registry"] = info
        if self.module._diff:
            result["diff"] = {
                "before": {"config": rh.masked(before_config), "users": before_users,
                           "running": was_running},
                "after": {"config": rh.masked(after_config), "users": after_users,
                          "running": running}}
        self.module.exit_json(**result)

    def users_plan(self):
        users = self.p["users"] or []
        existing = rh.read(self.htpasswd_path)
        if not users:
            return "", ([f"remove {u}" for u in sorted(rh.parse_htpasswd(existing))])
        try:
            import bcrypt
        except ImportError:
            self.fail(f"users need the Python package bcrypt on the host ({sys.executable})")
        return rh.htpasswd_plan(users, existing, bcrypt)


def main():
    module = AnsibleModule(argument_spec={
        **ENGINE_ARGUMENT_SPEC,
        "name": {"type": "str", "default": "registry"},
        "state": {"type": "str", "default": "started",
                  "choices": ["present", "started", "stopped", "absent"]},
        "listen_address": {"type": "str", "default": "0.0.0.0"},
        "port": {"type": "int", "default": 5000},
        "storage_path": {"type": "path"},
        "users": {"type": "list", "elements": "dict", "options": {
            "username": {"type": "str", "required": True},
            "password": {"type": "str", "required": True, "no_log": True}}},
        "realm": {"type": "str", "default": "berth-registry"},
        "tls_cert": {"type": "path"},
        "tls_key": {"type": "path", "no_log": False},
        "delete_enabled": {"type": "bool", "default": False},
        "readonly": {"type": "bool", "default": False},
        "proxy_remote_url": {"type": "str"},
        "proxy_username": {"type": "str"},
        "proxy_password": {"type": "str", "no_log": True},
        "config_dir": {"type": "path"},
        "pid_file": {"type": "path"},
        "service_manager": {"type": "str", "default": "auto",
                            "choices": ["auto", "systemd", "process"]},
        "berth_executable": {"type": "path"},
        "wait_timeout": {"type": "int", "default": 30},
    }, supports_check_mode=True)
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", module.params["name"]):
        module.fail_json(msg=f"invalid registry name {module.params['name']!r}: only "
                         "[A-Za-z0-9][A-Za-z0-9_.-] are allowed")
    Registry(module).run()


if __name__ == "__main__":
    main()
