#!/usr/bin/python
# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: daemon_config
short_description: Manage the keys of the engine's daemon.json
version_added: 0.1.0
description:
  - Sets keys of berth's C(/etc/berth/daemon.json) (or any file in its schema, such as
    Docker's C(/etc/docker/daemon.json) with O(path)).
  - Keys the task does not name are kept, unless O(purge=true).
  - The resulting document is validated with the engine's own schema before anything is
    written; a wrong type, a bad value or an unknown key fails the task and leaves the file
    untouched.
  - The file is replaced atomically (temporary file, fsync, rename), optionally after a backup.
  - Each option below is one daemon.json key, with C(-) written as C(_).
    Options left unset are not managed.
author:
  - berth developers
extends_documentation_fragment:
  - berth.engine.engine
  - berth.engine.attributes
  - berth.engine.attributes.actiongroup_engine
  - berth.engine.attributes.full_support
options:
  path:
    description:
      - The daemon.json to manage.
      - When unset, O(engine_config) (so C(module_defaults) of the
        C(group/berth.engine.engine) group apply), else the E(BERTH_CONFIG) environment
        variable, else C(/etc/berth/daemon.json).
      - O(engine_root) is accepted for the same reason and not used.
    type: path
  purge:
    description:
      - Remove every key the task does not set.
    type: bool
    default: false
  backup:
    description:
      - Keep a timestamped copy of the previous file when it changes.
    type: bool
    default: false
  data_root:
    description:
      - 'Root directory of persistent engine state (images, containers, volumes).'
      - 'daemon.json key C(data-root), engine default C("/var/lib/berth").'
      - Changing it needs an engine restart (RV(restart_required)).
    type: str
  storage_driver:
    description:
      - 'Storage driver: overlay (overlay2 is an alias of it) or vfs; empty picks overlay when the kernel supports it.'
      - 'daemon.json key C(storage-driver), engine default C("").'
      - Changing it needs an engine restart (RV(restart_required)).
    type: str
  storage_opts:
    description:
      - 'Storage driver options, key=value.'
      - 'daemon.json key C(storage-opts), engine default C([]).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: list
    elements: str
  log_driver:
    description:
      - 'Default log driver: json-file or none; local is accepted as an alias of json-file.'
      - 'daemon.json key C(log-driver), engine default C("json-file").'
      - Changing it needs an engine restart (RV(restart_required)).
    type: str
  log_opts:
    description:
      - 'Default log driver options: max-size, max-file, compress, labels, env, tag.'
      - 'daemon.json key C(log-opts), engine default C({}).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: dict
  log_level:
    description:
      - 'Engine logging level.'
      - 'daemon.json key C(log-level), engine default C("info").'
      - Changing it needs an engine restart (RV(restart_required)).
    type: str
  debug:
    description:
      - 'Debug output.'
      - 'daemon.json key C(debug), engine default C(false).'
    type: bool
  default_ulimits:
    description:
      - 'Default ulimits for containers, like {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}}.'
      - 'daemon.json key C(default-ulimits), engine default C({}).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: dict
  selinux_enabled:
    description:
      - 'Label containers with SELinux contexts (needs SELinux on the host).'
      - 'daemon.json key C(selinux-enabled), engine default C(false).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: bool
  no_new_privileges:
    description:
      - 'Set no-new-privileges for new containers.'
      - 'daemon.json key C(no-new-privileges), engine default C(false).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: bool
  insecure_registries:
    description:
      - 'Registries (host[:port] or CIDR) reached over plain HTTP or unverified TLS.'
      - 'daemon.json key C(insecure-registries), engine default C([]).'
    type: list
    elements: str
  registry_mirrors:
    description:
      - 'Mirrors (http(s) URLs) tried before Docker Hub.'
      - 'daemon.json key C(registry-mirrors), engine default C([]).'
    type: list
    elements: str
  max_concurrent_downloads:
    description:
      - 'Parallel layer downloads per pull.'
      - 'daemon.json key C(max-concurrent-downloads), engine default C(3).'
    type: int
  max_concurrent_uploads:
    description:
      - 'Parallel layer uploads per push.'
      - 'daemon.json key C(max-concurrent-uploads), engine default C(5).'
    type: int
  max_download_attempts:
    description:
      - 'Attempts per layer download.'
      - 'daemon.json key C(max-download-attempts), engine default C(5).'
    type: int
  bip:
    description:
      - 'Address and prefix of the default bridge, like 172.30.0.1/16.'
      - 'daemon.json key C(bip), engine default C("").'
      - Changing it needs an engine restart (RV(restart_required)).
    type: str
  fixed_cidr:
    description:
      - 'IPv4 range (inside bip) for the default bridge''s containers.'
      - 'daemon.json key C(fixed-cidr), engine default C("").'
      - Changing it needs an engine restart (RV(restart_required)).
    type: str
  default_address_pools:
    description:
      - 'Pools user networks are allocated from, like [{"base": "172.80.0.0/16", "size": 24}].'
      - 'daemon.json key C(default-address-pools), engine default C([]).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: list
    elements: dict
  iptables:
    description:
      - 'Manage iptables rules.'
      - 'daemon.json key C(iptables), engine default C(true).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: bool
  ip_forward:
    description:
      - 'Enable net.ipv4.ip_forward.'
      - 'daemon.json key C(ip-forward), engine default C(true).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: bool
  ip_masq:
    description:
      - 'Masquerade container traffic.'
      - 'daemon.json key C(ip-masq), engine default C(true).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: bool
  userland_proxy:
    description:
      - 'Serve published ports on loopback with a proxy process.'
      - 'daemon.json key C(userland-proxy), engine default C(true).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: bool
  icc:
    description:
      - 'Inter-container communication on the default bridge.'
      - 'daemon.json key C(icc), engine default C(true).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: bool
  mtu:
    description:
      - 'MTU of container interfaces.'
      - 'daemon.json key C(mtu), engine default C(1500).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: int
  dns:
    description:
      - 'DNS servers for containers.'
      - 'daemon.json key C(dns), engine default C([]).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: list
    elements: str
  dns_search:
    description:
      - 'DNS search domains for containers.'
      - 'daemon.json key C(dns-search), engine default C([]).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: list
    elements: str
  dns_opts:
    description:
      - 'resolv.conf options for containers.'
      - 'daemon.json key C(dns-opts), engine default C([]).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: list
    elements: str
  hosts:
    description:
      - 'Sockets the engine service listens on (unix:///path or tcp://host:port).'
      - 'daemon.json key C(hosts), engine default C([]).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: list
    elements: str
  group:
    description:
      - 'Group owning the service''s unix socket.'
      - 'daemon.json key C(group), engine default C("berth").'
      - Changing it needs an engine restart (RV(restart_required)).
    type: str
  tls:
    description:
      - 'Serve TCP hosts with TLS (always: berth refuses plain TCP; implied by tlsverify).'
      - 'daemon.json key C(tls), engine default C(false).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: bool
  tlsverify:
    description:
      - 'Require client certificates signed by tlscacert on TCP hosts (mutual TLS).'
      - 'daemon.json key C(tlsverify), engine default C(false).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: bool
  tlscacert:
    description:
      - 'CA certificate (PEM) that client certificates must chain to.'
      - 'daemon.json key C(tlscacert), engine default C("").'
      - Changing it needs an engine restart (RV(restart_required)).
    type: str
  tlscert:
    description:
      - 'The service''s TLS certificate (PEM) for TCP hosts.'
      - 'daemon.json key C(tlscert), engine default C("").'
      - Changing it needs an engine restart (RV(restart_required)).
    type: str
  tlskey:
    description:
      - 'The service''s TLS private key (PEM) for TCP hosts.'
      - 'daemon.json key C(tlskey), engine default C("").'
      - Changing it needs an engine restart (RV(restart_required)).
    type: str
  live_restore:
    description:
      - 'Keep containers running while the engine service is down.'
      - 'daemon.json key C(live-restore), engine default C(false).'
    type: bool
  shutdown_timeout:
    description:
      - 'Seconds to wait for containers to stop at shutdown.'
      - 'daemon.json key C(shutdown-timeout), engine default C(15).'
    type: int
  exec_opts:
    description:
      - 'Runtime options, like native.cgroupdriver=cgroupfs.'
      - 'daemon.json key C(exec-opts), engine default C([]).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: list
    elements: str
  cgroup_parent:
    description:
      - 'Parent cgroup of containers.'
      - 'daemon.json key C(cgroup-parent), engine default C("").'
      - Changing it needs an engine restart (RV(restart_required)).
    type: str
  default_runtime:
    description:
      - 'Default OCI runtime (berth has one; runc is accepted as its alias).'
      - 'daemon.json key C(default-runtime), engine default C("berth").'
    type: str
  labels:
    description:
      - 'Engine labels, key=value.'
      - 'daemon.json key C(labels), engine default C([]).'
    type: list
    elements: str
  features:
    description:
      - 'Feature flags, name: true/false.'
      - 'daemon.json key C(features), engine default C({}).'
    type: dict
  experimental:
    description:
      - 'Enable experimental features.'
      - 'daemon.json key C(experimental), engine default C(false).'
      - Changing it needs an engine restart (RV(restart_required)).
    type: bool
  default_shm_size:
    description:
      - 'Default /dev/shm size of containers.'
      - 'daemon.json key C(default-shm-size), engine default C("64M").'
      - Changing it needs an engine restart (RV(restart_required)).
    type: raw
notes:
  - O(selinux_enabled=true) fails on a host without SELinux, saying so, as the engine would
    refuse to start with it.
  - Values keep daemon.json's JSON types; O(log_opts) values are turned into strings.
"""

EXAMPLES = r"""
- name: Trust a local registry and keep logs small
  berth.engine.daemon_config:
    insecure_registries:
      - registry.local:5000
    log_opts:
      max-size: 10m
      max-file: 3
  register: daemon

- name: Manage Docker's file instead, with only these keys
  berth.engine.daemon_config:
    path: /etc/docker/daemon.json
    purge: true
    backup: true
    live_restore: true
    default_ulimits:
      nofile:
        Name: nofile
        Soft: 65536
        Hard: 65536

- name: Tell the operator when the engine must restart
  ansible.builtin.debug:
    msg: "restart the engine: {{ daemon.changed_keys }}"
  when: daemon.restart_required
"""

RETURN = r"""
path:
  description: The file managed.
  returned: always
  type: str
  sample: /etc/berth/daemon.json
config:
  description: The document the file holds after the task (what it would hold, in check mode).
  returned: always
  type: dict
  sample: {"insecure-registries": ["registry.local:5000"]}
changed_keys:
  description: daemon.json keys added, changed or removed.
  returned: always
  type: list
  elements: str
  sample: ["insecure-registries"]
restart_required:
  description: Whether a changed key only takes effect when the engine restarts.
  returned: always
  type: bool
  sample: false
backup_file:
  description: The copy of the previous file, when O(backup=true) and the file changed.
  returned: changed and backup requested
  type: str
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.berth.engine.plugins.module_utils.common import (
    ENGINE_ARGUMENT_SPEC,
    HAS_SDK,
    SDK_IMPORT_ERROR,
    atomic_write,
    sdk_missing_message,
)

# (module option, daemon.json key, Ansible type, list element type): mirrors
# sdk.config.OPTIONS; tests/unit/test_module_utils_daemon_config.py keeps them in step.
KEYS = (
    ("data_root", "data-root", "str", None),
    ("storage_driver", "storage-driver", "str", None),
    ("storage_opts", "storage-opts", "list", 'str'),
    ("log_driver", "log-driver", "str", None),
    ("log_opts", "log-opts", "dict", None),
    ("log_level", "log-level", "str", None),
    ("debug", "debug", "bool", None),
    ("default_ulimits", "default-ulimits", "dict", None),
    ("selinux_enabled", "selinux-enabled", "bool", None),
    ("no_new_privileges", "no-new-privileges", "bool", None),
    ("insecure_registries", "insecure-registries", "list", 'str'),
    ("registry_mirrors", "registry-mirrors", "list", 'str'),
    ("max_concurrent_downloads", "max-concurrent-downloads", "int", None),
    ("max_concurrent_uploads", "max-concurrent-uploads", "int", None),
    ("max_download_attempts", "max-download-attempts", "int", None),
    ("bip", "bip", "str", None),
    ("fixed_cidr", "fixed-cidr", "str", None),
    ("default_address_pools", "default-address-pools", "list", 'dict'),
    ("iptables", "iptables", "bool", None),
    ("ip_forward", "ip-forward", "bool", None),
    ("ip_masq", "ip-masq", "bool", None),
    ("userland_proxy", "userland-proxy", "bool", None),
    ("icc", "icc", "bool", None),
    ("mtu", "mtu", "int", None),
    ("dns", "dns", "list", 'str'),
    ("dns_search", "dns-search", "list", 'str'),
    ("dns_opts", "dns-opts", "list", 'str'),
    ("hosts", "hosts", "list", 'str'),
    ("group", "group", "str", None),
    ("tls", "tls", "bool", None),
    ("tlsverify", "tlsverify", "bool", None),
    ("tlscacert", "tlscacert", "str", None),
    ("tlscert", "tlscert", "str", None),
    ("tlskey", "tlskey", "str", None),
    ("live_restore", "live-restore", "bool", None),
    ("shutdown_timeout", "shutdown-timeout", "int", None),
    ("exec_opts", "exec-opts", "list", 'str'),
    ("cgroup_parent", "cgroup-parent", "str", None),
    ("default_runtime", "default-runtime", "str", None),
    ("labels", "labels", "list", 'str'),
    ("features", "features", "dict", None),
    ("experimental", "experimental", "bool", None),
    ("default_shm_size", "default-shm-size", "raw", None),
)

DEFAULT_PATH = "/etc/berth/daemon.json"


def _argument_spec():
    spec = {
        **ENGINE_ARGUMENT_SPEC,
        "path": {"type": "path"},
        "purge": {"type": "bool", "default": False},
        "backup": {"type": "bool", "default": False},
    }
    for name, _key, kind, elements in KEYS:
        spec[name] = {"type": kind}
        if elements:
            spec[name]["elements"] = elements
    spec["tlskey"]["no_log"] = False    # a path to the key, not the key itself
    return spec


def _json_value(key, value):
    if key == "log-opts":
        return {str(k): (str(v).lower() if isinstance(v, bool) else str(v))
                for k, v in value.items()}
    return value


def _read(module, path):
    """(document, raw text); a missing or empty file is an empty document."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        module.fail_json(msg=f"cannot read {path}: {exc.strerror or exc}")
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    if not text.strip():
        return {}, text
    try:
        data = json.loads(text)
    except ValueError as exc:
        if module.params["purge"]:
            return None, text
        module.fail_json(msg=f"{path} is not valid JSON ({exc}); fix it, or set purge: true "
                             "to replace it")
    if not isinstance(data, dict):
        if module.params["purge"]:
            return None, text
        module.fail_json(msg=f"{path} must contain a JSON object; set purge: true to replace it")
    return data, text


def _render(doc):
    return json.dumps(doc, indent=2) + "\n"


def main():
    module = AnsibleModule(argument_spec=_argument_spec(), supports_check_mode=True)
    if not HAS_SDK:
        module.fail_json(msg=sdk_missing_message(), exception=SDK_IMPORT_ERROR)
    from sdk.config import BY_KEY, validate_config_dict
    from sdk.errors import SdkError

    path = module.params["path"] or module.params["engine_config"] or DEFAULT_PATH
    current, text = _read(module, path)
    desired = {} if module.params["purge"] or current is None else dict(current)
    for name, key, _kind, _elements in KEYS:
        value = module.params[name]
        if value is not None:
            desired[key] = _json_value(key, value)
    try:
        validate_config_dict(json.loads(json.dumps(desired)), path)
    except SdkError as exc:
        module.fail_json(msg=str(exc), path=path, changed=False)

    before = current if current is not None else {}
    changed_keys = sorted(k for k in set(before) | set(desired)
                          if k not in before or k not in desired or before[k] != desired[k])
    changed = current is None or bool(changed_keys) or (text is None and bool(desired))
    restart_required = any(not BY_KEY[k].reloadable for k in changed_keys if k in BY_KEY)
    result = {"changed": changed, "path": path, "config": desired,
              "changed_keys": changed_keys, "restart_required": restart_required}
    if module._diff:
        result["diff"] = {
            "before_header": path if text is not None else f"{path} (absent)",
            "after_header": path,
            "before": (_render(current) if current is not None else (text or "")),
            "after": _render(desired),
        }
    if changed and not module.check_mode:
        if module.params["backup"] and text is not None:
            result["backup_file"] = module.backup_local(path)
        try:
            atomic_write(path, _render(desired).encode())
        except OSError as exc:
            module.fail_json(msg=f"cannot write {path}: {exc.strerror or exc}", path=path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
