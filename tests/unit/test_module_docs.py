"""Each berth.engine module's documentation agrees with what the module accepts.

An offline stand-in for ``ansible-test sanity --test validate-modules`` (whose own pip
bootstrap cannot run here): the argument spec is captured from the module's ``main()`` as
validate-modules does (AnsibleModule.__init__ raises with its arguments), DOCUMENTATION is
merged with its doc fragments by Ansible's own ``add_fragments``, and then every option
must be documented with the same type, elements, default, choices, required and aliases,
suboptions included. EXAMPLES must only use documented options, and every attribute must
state its support.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit import test_module_utils

collection = test_module_utils.collection    # the shared fixture (a temp ansible_collections)

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py")
                 if not p.name.startswith("_"))
SUPPORT = {"full", "partial", "none", "N/A"}
ATTRIBUTES = {"check_mode", "diff_mode", "idempotent", "action_group"}


class FragmentLoader:
    """Ansible's fragment_loader for berth.engine.NAME, from plugins/doc_fragments."""

    def get(self, name: str) -> Any:
        parts = name.split(".")
        path = REPO / "plugins" / "doc_fragments" / f"{parts[-1]}.py"
        if parts[:2] != ["berth", "engine"] or len(parts) != 3 or not path.exists():
            return None
        spec = importlib.util.spec_from_file_location(f"_berth_fragment_{parts[-1]}", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        cls = mod.ModuleDocFragment
        cls.ansible_name = name
        return cls


class Captured(Exception):
    pass


def argument_spec(collection: str, name: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    from ansible.module_utils import basic

    def capture(self: Any, argument_spec: dict | None = None, **kwargs: Any) -> None:
        raise Captured(argument_spec or {}, kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "__init__", capture)
    module = importlib.import_module(f"{collection}.modules.{name}")
    with pytest.raises(Captured) as exc:
        module.main()
    return exc.value.args[0]


def documentation(collection: str, name: str) -> tuple[dict, Any]:
    from ansible.utils.plugin_docs import add_fragments

    module = importlib.import_module(f"{collection}.modules.{name}")
    doc = yaml.safe_load(module.DOCUMENTATION)
    add_fragments(doc, f"{name}.py", FragmentLoader(), is_module=True)
    return doc, module


def same_default(doc_value: Any, spec_value: Any, kind: str) -> bool:
    if kind == "float" and doc_value is not None and spec_value is not None:
        return float(doc_value) == float(spec_value)
    return bool(doc_value == spec_value)


def compare_options(where: str, spec: dict, doc: dict) -> list[str]:
    """Every disagreement between an argument spec and its documented options."""
    problems = []
    for name in sorted(set(spec) - set(doc)):
        problems.append(f"{where}{name}: in the argument spec, not documented")
    for name in sorted(set(doc) - set(spec)):
        problems.append(f"{where}{name}: documented, not in the argument spec")
    for name in sorted(set(spec) & set(doc)):
        s, d = spec[name], doc[name] or {}
        kind = s.get("type", "str")
        if not d.get("description"):
            problems.append(f"{where}{name}: no description")
        checks = (("type", kind, d.get("type", "str")),
                  ("elements", s.get("elements"), d.get("elements")),
                  ("required", bool(s.get("required")), bool(d.get("required"))),
                  ("aliases", sorted(s.get("aliases") or []), sorted(d.get("aliases") or [])),
                  ("choices", s.get("choices"), d.get("choices")))
        for key, want, got in checks:
            if want != got:
                problems.append(f"{where}{name}: {key} is {want!r} in the spec, "
                                f"{got!r} in the docs")
        if not same_default(d.get("default"), s.get("default"), kind):
            problems.append(f"{where}{name}: default is {s.get('default')!r} in the spec, "
                            f"{d.get('default')!r} in the docs")
        if s.get("options") or d.get("suboptions"):
            problems += compare_options(f"{where}{name}.", s.get("options") or {},
                                        d.get("suboptions") or {})
    return problems


@pytest.mark.parametrize("name", MODULES)
def test_documentation_matches_argument_spec(name: str, collection: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    doc, _ = documentation(collection, name)
    spec = argument_spec(collection, name, monkeypatch)
    assert compare_options("", spec, doc.get("options") or {}) == []


@pytest.mark.parametrize("name", MODULES)
def test_attributes_state_their_support(name: str, collection: str) -> None:
    doc, _ = documentation(collection, name)
    assert doc["module"] == name and doc.get("short_description")
    attributes = doc.get("attributes") or {}
    assert set(attributes) >= ATTRIBUTES, sorted(attributes)
    for key, value in attributes.items():
        assert value.get("description"), f"{key}: no description"
        assert value.get("support") in SUPPORT, f"{key}: support {value.get('support')!r}"
    assert attributes["action_group"]["membership"] == ["berth.engine.engine"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_use_documented_options(name: str, collection: str) -> None:
    doc, module = documentation(collection, name)
    options = doc.get("options") or {}
    accepted = set(options) | {a for o in options.values() for a in o.get("aliases") or []}
    tasks = yaml.safe_load(module.EXAMPLES)
    used = [t[f"berth.engine.{name}"] for t in tasks if f"berth.engine.{name}" in t]
    assert used, "no example uses the module by its FQCN"
    for args in used:
        assert set(args or {}) <= accepted, sorted(set(args) - accepted)
    returns = yaml.safe_load(module.RETURN) or {}
    for key, value in returns.items():
        assert value.get("description") and value.get("returned") and value.get("type"), key


def test_the_checker_sees_disagreements() -> None:
    """The comparison itself: each kind of mismatch is reported."""
    spec = {"a": {"type": "int", "default": 1}, "b": {"type": "list", "elements": "str"},
            "c": {"type": "str", "choices": ["x", "y"]}, "only_spec": {},
            "d": {"type": "dict", "options": {"e": {"type": "bool", "required": True}}}}
    doc = {"a": {"description": "A", "type": "int", "default": 2},
           "b": {"description": "B", "type": "list", "elements": "int"},
           "c": {"description": "C", "choices": ["x"]}, "only_doc": {"description": "x"},
           "d": {"description": "D", "type": "dict", "suboptions": {
               "e": {"description": "E", "type": "bool"}}}}
    problems = compare_options("", spec, doc)
    assert problems == [
        "only_spec: in the argument spec, not documented",
        "only_doc: documented, not in the argument spec",
        "a: default is 1 in the spec, 2 in the docs",
        "b: elements is 'str' in the spec, 'int' in the docs",
        "c: choices is ['x', 'y'] in the spec, ['x'] in the docs",
        "d.e: required is True in the spec, False in the docs",
    ]
