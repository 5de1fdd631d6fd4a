"""roles/engine's per-family code paths, on the OS families this machine cannot run.

No RHEL-family image can be made here (no internet beyond Debian's mirror and PyPI), so
the dnf path is checked as far as it goes without one: ansible-playbook runs the role's
facts.yml and packages.yml in check mode on localhost, with the facts of a Rocky 9 or
Fedora host injected (set_fact, cacheable, so they are real facts: the dnf action plugin
reads ``ansible_facts.pkg_mgr``).  The role must resolve the family's variables (vars/
RedHat.yml, overridable), skip apt, and hand ansible.builtin.dnf exactly the RHEL package
names; dnf itself is absent here, so the module stops at importing its Python bindings,
after Ansible has recorded the arguments it was given.  Whether those names exist in
RHEL's repositories is not checked (see roles/engine/README.md).  Nothing is changed on
this machine: check mode, and the apt/dnf tasks are the only ones touching packages.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.ansible_run import PLAYBOOK, ansible_env, collections_dir, run_playbook

pytestmark = pytest.mark.skipif(not PLAYBOOK.exists(), reason="ansible-core is not installed")

EL_PACKAGES = ["python3.11", "python3.11-pip", "iptables-nft", "nftables", "kmod",
               "procps-ng", "iproute", "ca-certificates"]
FEDORA_PACKAGES = ["python3", "python3-aiohttp", "python3-pyroute2", "python3-requests",
                   "python3-zstandard", "iptables-nft", "nftables", "kmod", "procps-ng",
                   "iproute", "ca-certificates"]
DEBIAN_PACKAGES = ["python3", "python3-venv", "python3-aiohttp", "python3-pyroute2",
                   "python3-requests", "python3-zstandard", "iptables", "nftables", "kmod",
                   "procps", "iproute2", "ca-certificates"]

PLAY = """\
- hosts: target
  gather_facts: false
  tasks:
    - name: The facts of the host this stands for
      ansible.builtin.set_fact:
        cacheable: true
        ansible_os_family: {family}
        ansible_distribution: {distribution}
        ansible_pkg_mgr: {pkg_mgr}
        ansible_service_mgr: systemd
    - name: Per-family variables
      ansible.builtin.include_role:
        name: berth.engine.engine
        tasks_from: facts
    - name: RESOLVED
      ansible.builtin.debug:
        msg:
          python: "{{{{ __berth_python }}}}"
          site_packages: "{{{{ __berth_site_packages }}}}"
          pip_extras: "{{{{ __berth_pip_extras }}}}"
          packages: "{{{{ __berth_packages }}}}"
    - name: Packages
      ansible.builtin.include_role:
        name: berth.engine.engine
        tasks_from: packages
      when: run_packages | bool
"""


def run_role(tmp_path: Path, family: str, distribution: str, pkg_mgr: str,
             extra: dict[str, Any] | None = None, packages: bool = True):
    (tmp_path / "play.yml").write_text(PLAY.format(family=family, distribution=distribution,
                                                   pkg_mgr=pkg_mgr))
    (tmp_path / "hosts.ini").write_text(
        "target ansible_connection=local ansible_python_interpreter="
        f"{PLAYBOOK.parent / 'python'}\n")
    (tmp_path / "extra.json").write_text(json.dumps({"run_packages": packages,
                                                     **(extra or {})}))
    env = ansible_env(collections_dir(tmp_path / "collections"), tmp_path / "home")
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    # -vvv: results carry the module's invocation (the arguments dnf was given)
    return run_playbook(["--check", "-vvv", "-i", str(tmp_path / "hosts.ini"),
                         "-e", f"@{tmp_path / 'extra.json'}", str(tmp_path / "play.yml")],
                        env, tmp_path, timeout=180)


def task_result(out: str, task: str) -> tuple[str, dict[str, Any]]:
    """(status, result) that the task named TASK printed for the host."""
    m = re.search(rf"^TASK \[(?:berth\.engine\.engine : )?{re.escape(task)}\]", out, re.M)
    assert m, f"task {task!r} did not run:\n{out[-4000:]}"
    r = re.compile(r"^(ok|changed|skipping|fatal): \[target\](?:: FAILED!)? => ", re.M)
    hit = r.search(out, m.end())
    assert hit, out[m.start():m.start() + 3000]
    result, _ = json.JSONDecoder().raw_decode(out, hit.end())
    return hit.group(1), result


EL = {"python": "python3.11", "site_packages": False,
      "pip_extras": ["service", "net", "remote"], "packages": EL_PACKAGES}
FEDORA = {"python": "python3", "site_packages": True, "pip_extras": [],
          "packages": FEDORA_PACKAGES}


@pytest.mark.parametrize(("distribution", "pkg_mgr", "expected"), [
    ("Rocky", "dnf", EL), ("RedHat", "dnf", EL), ("Fedora", "dnf5", FEDORA)])
def test_redhat_family_resolves_its_variables_and_installs_with_dnf(
        tmp_path: Path, distribution: str, pkg_mgr: str, expected: dict[str, Any]) -> None:
    res = run_role(tmp_path, "RedHat", distribution, pkg_mgr)
    status, resolved = task_result(res.out, "RESOLVED")
    assert status == "ok"
    assert resolved["msg"] == expected
    status, apt = task_result(res.out, "Install the packages berth needs (apt)")
    assert status == "skipping", apt
    status, dnf = task_result(res.out, "Install the packages berth needs (dnf)")
    args = dnf["invocation"]["module_args"]
    assert args["name"] == expected["packages"] and args["state"] == "present", dnf
    # this machine has no dnf: the module got its arguments, then found no bindings
    # (dnf4's or dnf5's, as ansible_pkg_mgr says; on a RHEL host it resolves the names
    # against the repositories here)
    assert status == "fatal" and "dnf" in str(dnf.get("msg")), dnf


def test_redhat_family_variables_can_be_overridden(tmp_path: Path) -> None:
    res = run_role(tmp_path, "RedHat", "AlmaLinux", "dnf", packages=False, extra={
        "berth_engine_python": "python3.12", "berth_engine_pip_extras": [],
        "berth_engine_system_site_packages": True,
        "berth_engine_packages": ["python3.12", "python3.12-pip", "iptables-nft"]})
    assert res.returncode == 0, res.out[-4000:]
    _, resolved = task_result(res.out, "RESOLVED")
    assert resolved["msg"] == {"python": "python3.12", "site_packages": True,
                               "pip_extras": [],
                               "packages": ["python3.12", "python3.12-pip", "iptables-nft"]}


def test_ubuntu_uses_the_debian_variables(tmp_path: Path) -> None:
    # the apt path itself runs for real in tests/root/test_roles.py and the Molecule scenario
    res = run_role(tmp_path, "Debian", "Ubuntu", "apt", packages=False)
    assert res.returncode == 0, res.out[-4000:]
    _, resolved = task_result(res.out, "RESOLVED")
    assert resolved["msg"] == {"python": "python3", "site_packages": True, "pip_extras": [],
                               "packages": DEBIAN_PACKAGES}


def test_other_families_are_refused_with_one_clear_message(tmp_path: Path) -> None:
    res = run_role(tmp_path, "Alpine", "Alpine", "apk")
    assert res.returncode != 0
    status, result = task_result(res.out, "Check the platform is supported")
    assert status == "fatal"
    assert result["msg"] == ("berth.engine.engine supports the Debian and RedHat OS families, "
                             "not Alpine (Alpine)"), result
    assert "RESOLVED" not in res.out


REGISTRY_PLAY = """\
- hosts: target
  gather_facts: false
  tasks:
    - name: The facts of the host this stands for
      ansible.builtin.set_fact:
        cacheable: true
        ansible_os_family: RedHat
        ansible_distribution: {distribution}
        ansible_pkg_mgr: {pkg_mgr}
        ansible_service_mgr: sysvinit     # no systemd: nothing to reload or start
    - name: The registry role, every task in check mode, past dnf's absence here
      ansible.builtin.include_role:
        name: berth.engine.registry
        apply:
          ignore_errors: true
      vars:
        berth_registry_firewall: false
        berth_registry_hostname: registry.test
        berth_registry_address: ""
        berth_engine_prefix: {prefix}
        berth_engine_config_path: {prefix}/daemon.json
        berth_registry_config_dir: {prefix}/registry
        berth_registry_storage: {prefix}/storage
        berth_engine_bin_link: ""
"""


@pytest.mark.parametrize(("distribution", "pkg_mgr", "packages", "extras"), [
    ("Rocky", "dnf", [*EL_PACKAGES, "openssl"], ["service", "net", "remote", "registry"]),
    ("Fedora", "dnf5", [*FEDORA_PACKAGES, "python3-aiohttp", "python3-bcrypt",
                        "python3-pyyaml", "openssl"], None)])
def test_registry_role_gets_its_python_modules_on_the_redhat_family(
        tmp_path: Path, distribution: str, pkg_mgr: str, packages: list[str],
        extras: list[str] | None) -> None:
    # the registry needs aiohttp, bcrypt and PyYAML: EL 9's python3.11 has no packages of
    # them (the `registry` extra comes from the pip index), Fedora's python3 has
    prefix = tmp_path / "opt"      # absent: check mode creates nothing there either
    (tmp_path / "play.yml").write_text(REGISTRY_PLAY.format(
        distribution=distribution, pkg_mgr=pkg_mgr, prefix=prefix))
    (tmp_path / "hosts.ini").write_text(
        "target ansible_connection=local ansible_python_interpreter="
        f"{PLAYBOOK.parent / 'python'}\n")
    env = ansible_env(collections_dir(tmp_path / "collections"), tmp_path / "home")
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    res = run_playbook(["--check", "-vvv", "-i", str(tmp_path / "hosts.ini"),
                        str(tmp_path / "play.yml")], env, tmp_path, timeout=300)
    assert res.returncode == 0, res.out[-4000:]
    status, dnf = task_result(res.out, "Install the packages berth needs (dnf)")
    assert dnf["invocation"]["module_args"]["name"] == packages, dnf
    status, pip = task_result(res.out, "Install the extras' dependencies from the pip index")
    if extras is None:
        assert status == "skipping", pip
    else:
        # Ansible's list type splits the name at commas; the pip module joins the
        # bracketed extras back before calling pip
        name = ",".join(pip["invocation"]["module_args"]["name"])
        wheel = re.escape(f"{prefix}/wheels/") + r"berth_engine-[^/]+\.whl"
        assert re.fullmatch(wheel + re.escape(f"[{','.join(extras)}]"), name), pip
    assert not prefix.exists()
