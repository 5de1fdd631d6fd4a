"""berth.engine module_utils: comparisons, the container option table, daemon_config keys.

The collection's Python is imported as Ansible does, through ``ansible_collections`` (a
temp dir with ansible_collections/berth/engine -> the repository root).
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> str:
    base = tmp_path_factory.mktemp("coll")
    (base / "ansible_collections" / "berth").mkdir(parents=True)
    (base / "ansible_collections" / "berth" / "engine").symlink_to(REPO)
    sys.path.insert(0, str(base))
    yield "ansible_collections.berth.engine.plugins"
    sys.path.remove(str(base))
    for name in [n for n in sys.modules if n.startswith("ansible_collections")]:
        del sys.modules[name]


def load(collection: str, name: str) -> ModuleType:
    return importlib.import_module(f"{collection}.module_utils.{name}")


# ---- compare -----------------------------------------------------------------------------

def test_equal_modes(collection: str) -> None:
    c = load(collection, "compare")
    assert c.equal(["a", "b"], ["a", "b"])
    assert not c.equal(["a", "b"], ["b", "a"])                      # ordered value
    assert c.equal(["a", "b"], ["b", "a", "a"], "set")
    assert not c.equal(["a"], ["a", "b"], "set", "strict")
    assert c.equal(["a"], ["a", "b"], "set", "allow_more_present")
    assert not c.equal(["a", "c"], ["a", "b"], "set", "allow_more_present")
    assert c.equal({"a": "1"}, {"a": "1", "b": "2"}, "dict", "allow_more_present")
    assert not c.equal({"a": "1"}, {"a": "1", "b": "2"}, "dict", "strict")
    assert not c.equal({"a": "1"}, {"a": "2", "b": "2"}, "dict", "allow_more_present")
    assert c.equal(1, 2, "value", "ignore")
    assert c.equal(None, [], "value") and c.equal("", None, "value")   # empty is empty
    assert c.equal([{"b": 1, "a": 2}], [{"a": 2, "b": 1}], "set")    # dict entries
    assert c.equal(("x",), ["x"])                                      # tuple vs JSON list


def test_unknown_mode_and_kind(collection: str) -> None:
    c = load(collection, "compare")
    with pytest.raises(c.ComparisonError, match="loose"):
        c.equal(1, 1, "value", "loose")
    with pytest.raises(ValueError, match="kind"):
        c.equal(1, 1, "list")


def test_resolve_modes_star_and_errors(collection: str) -> None:
    c = load(collection, "compare")
    defaults = {"env": "strict", "labels": "strict", "image": "strict"}
    assert c.resolve_modes(None, defaults) == defaults
    assert c.resolve_modes({"*": "ignore", "image": "strict"}, defaults) == {
        "env": "ignore", "labels": "ignore", "image": "strict"}
    assert c.resolve_modes({"labels": "allow_more_present"}, defaults)["labels"] == \
        "allow_more_present"
    with pytest.raises(c.ComparisonError, match="unknown option 'colour'"):
        c.resolve_modes({"colour": "strict"}, defaults)
    with pytest.raises(c.ComparisonError, match="'env' has mode 'loose'"):
        c.resolve_modes({"env": "loose"}, defaults)


def test_differences_are_named_per_key(collection: str) -> None:
    c = load(collection, "compare")
    diffs = c.differences("env", {"A": "1", "B": "2"}, {"A": "0", "C": "3"}, "dict", "strict")
    assert [(d.option, d.expected, d.actual) for d in diffs] == [
        ("env.A", "1", "0"), ("env.B", "2", None), ("env.C", None, "3")]
    more = c.differences("env", {"A": "1"}, {"A": "1", "C": "3"}, "dict", "allow_more_present")
    assert more == []
    assert c.explain(diffs[:1]) == 'env.A (expected "1", actual "0")'
    assert c.diff_result(diffs[:1]) == {"before": {"env.A": "0"}, "after": {"env.A": "1"}}
    sets = c.differences("caps", ["A"], ["A", "B"], "set", "strict")
    assert [(d.option, d.expected, d.actual) for d in sets] == [("caps", ["A"], ["A", "B"])]
    assert c.differences("memory", 64, 32, "value", "strict")[0].explain() == \
        "memory (expected 64, actual 32)"


# ---- container option table ---------------------------------------------------------------

def test_ports(collection: str) -> None:
    o = load(collection, "container_options")
    assert o.parse_port("8080:80") == ("80/tcp", 8080)
    assert o.parse_port("127.0.0.1:8080:80/udp") == ("80/udp", ("127.0.0.1", 8080))
    assert o.parse_port("80") == ("80/tcp", None)
    assert o.parse_port("127.0.0.1::80") == ("80/tcp", ("127.0.0.1",))
    assert o.parse_port("[::1]:8080:80") == ("80/tcp", ("::1", 8080))
    assert o.ports_kwarg(["8080:80", "8081:80"]) == {"80/tcp": [8080, 8081]}
    for bad in ("a:b:c:d", "80/icmp", "x:80", "8080:"):
        with pytest.raises(ValueError, match="invalid port"):
            o.parse_port(bad)


def test_env_helpers(collection: str, tmp_path: Path) -> None:
    o = load(collection, "container_options")
    assert o.string_map({"a": True, "b": 1, "c": None}) == {"a": "true", "b": "1", "c": ""}
    assert o.env_to_dict(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    f = tmp_path / "env"
    f.write_text("# comment\nA=1\n\nB\n")
    assert o.read_env_file(str(f)) == {"A": "1", "B": ""}
    f.write_text("BAD KEY=1\n")
    with pytest.raises(ValueError, match="line 1"):
        o.read_env_file(str(f))
    kwargs = o.sdk_kwargs({"env": {"B": 2}, "env_file": None, "restart_policy": None,
                           "restart_retries": 3})
    assert kwargs == {"environment": {"B": "2"},
                      "restart_policy": {"Name": "on-failure", "MaximumRetryCount": 3}}


def test_table_reads_engine_documents(collection: str) -> None:
    """Every option reads a value from Config/HostConfig as the engine builds them, and the
    same task against its own result shows no difference (no false positives)."""
    from sdk.containers.options import build_configs

    o = load(collection, "container_options")
    c = load(collection, "compare")
    params = {name: None for name in o.argument_spec()}
    params.update({
        "command": "sleep 1", "env": {"A": "1"}, "labels": {"x": "y"}, "user": "1:1",
        "working_dir": "/w", "hostname": "h.example", "volumes": ["v:/data", "/anon"],
        "mounts": [{"type": "tmpfs", "target": "/t", "tmpfs_size": "1m", "source": None,
                    "read_only": None, "propagation": None, "no_copy": None,
                    "tmpfs_mode": None}],
        "memory": "64m", "cpus": 0.5, "pids_limit": 10, "restart_policy": "always",
        "healthcheck": {"test": "true", "interval": "2s", "timeout": None,
                        "start_period": None, "start_interval": None, "retries": 2},
        "capabilities": ["net_admin"], "read_only": True, "tmpfs": ["/run:size=1m"],
        "ulimits": ["nofile=10:20"], "network_mode": "none", "stop_timeout": 3,
        "log_options": {"max-size": "1m"}, "sysctls": {"net.ipv4.ip_forward": 1},
        "etc_hosts": {"db": "10.0.0.2"}, "security_opts": ["no-new-privileges"],
    })
    image_config = {"Env": ["PATH=/bin", "IMG=1"], "Labels": {"img": "1"},
                    "Volumes": {"/imgvol": {}}, "WorkingDir": "/img", "Cmd": ["sh"]}
    kwargs = o.sdk_kwargs(params)
    config, host = build_configs("img", image_config, kwargs.pop("command"), kwargs)
    config, host = c.normalize(config), c.normalize(host)       # as stored (JSON)
    for option in o.OPTIONS:
        if not o.given(option, params):
            continue
        value = option.read(config, host)
        assert value not in (None, "", [], {}) or option.name == "log_driver", option.name
        assert c.differences(option.name, value, option.read(config, host), option.kind,
                             "strict") == []
    assert o.BY_NAME["env"].read(config, host) == {"PATH": "/bin", "IMG": "1", "A": "1"}
    assert o.BY_NAME["hostname"].read(config, host) == "h.example"
    assert o.BY_NAME["memory"].read(config, host) == 64 * 1024 * 1024
    assert o.BY_NAME["healthcheck"].read(config, host)["Interval"] == 2 * 10**9
    assert "anonymous:/imgvol" in o.BY_NAME["volumes"].read(config, host)


def test_argument_spec_matches_docs(collection: str) -> None:
    """The container module's DOCUMENTATION documents exactly its argument spec."""
    import yaml

    o = load(collection, "container_options")
    src = (REPO / "plugins" / "modules" / "container.py").read_text()
    doc = next(yaml.safe_load(n.value.value) for n in ast.parse(src).body
               if isinstance(n, ast.Assign) and n.targets[0].id == "DOCUMENTATION")
    documented = set(doc["options"])
    table = set(o.argument_spec())
    assert table <= documented, table - documented
    for name, spec in o.argument_spec().items():
        assert doc["options"][name]["type"] == spec["type"], name


# ---- daemon_config -------------------------------------------------------------------------

def test_daemon_config_keys_follow_the_engine_schema(collection: str) -> None:
    """Each daemon.json key of sdk.config.OPTIONS is one daemon_config option, documented."""
    import yaml

    from sdk.config import OPTIONS

    mod = importlib.import_module(f"{collection}.modules.daemon_config")
    kinds = {"string": "str", "bool": "bool", "int": "int", "list": "list",
             "object": "dict", "size": "raw"}
    assert {(k[1], k[2]) for k in mod.KEYS} == {(o.key, kinds[o.kind]) for o in OPTIONS}
    doc = yaml.safe_load(mod.DOCUMENTATION)
    for name, _key, kind, _elements in mod.KEYS:
        assert doc["options"][name]["type"] == kind, name
    # engine_root/engine_config come from the berth.engine.engine fragment
    assert set(doc["options"]) | {"engine_root", "engine_config"} == \
        set(mod._argument_spec())
