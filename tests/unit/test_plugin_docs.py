"""docs/plugins/ is what docs/tools/plugin_docs.py makes from the plugins' own docs.

Regenerates into a temporary directory and compares with the committed pages, so a
changed DOCUMENTATION/EXAMPLES/RETURN without a regenerated page fails here.  Fix with
``.venv/bin/python docs/tools/plugin_docs.py``.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "docs" / "plugins"


def load_tool() -> ModuleType:
    path = REPO / "docs" / "tools" / "plugin_docs.py"
    spec = importlib.util.spec_from_file_location("berth_plugin_docs", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod      # dataclasses resolve their module while decorating
    spec.loader.exec_module(mod)
    return mod


tool = load_tool()


def test_committed_pages_are_current(tmp_path: Path) -> None:
    out = tmp_path / "plugins"
    proc = subprocess.run([sys.executable, str(REPO / "docs/tools/plugin_docs.py"), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    fresh = {p.name: p.read_text() for p in out.iterdir()}
    committed = {p.name: p.read_text() for p in COMMITTED.glob("*.md")}
    assert sorted(fresh) == sorted(committed), "pages added or removed: regenerate docs/plugins"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale pages {stale}: run .venv/bin/python docs/tools/plugin_docs.py"


def test_every_plugin_has_a_page_with_its_options_and_examples() -> None:
    index = (COMMITTED / "README.md").read_text()
    for kind in tool.KINDS:
        for path in (REPO / "plugins" / kind).glob("*.py"):
            page = (COMMITTED / f"{path.stem}.md").read_text()
            assert f"({path.stem}.md)" in index
            assert "## Options" in page
            if kind == "modules":
                assert "## Examples" in page and "## Return values" in page
                assert "## Attributes" in page
                # merged from the engine doc fragment
                assert "| `engine_root` | path |" in page


def test_markup_renders_readably() -> None:
    text = ("Use C(berth run), O(recreate=always), V(never), RV(container.Id), E(BERTH_ROOT), "
            "I(italic), B(bold), M(berth.engine.image), P(berth.engine.engine#role), "
            "M(ansible.builtin.raw), U(https://example.invalid/x), L(docs,https://example.invalid)")
    assert tool.markup(text) == (
        "Use `berth run`, `recreate=always`, `never`, `container.Id`, `BERTH_ROOT`, "
        "*italic*, **bold**, [berth.engine.image](image.md), "
        "[berth.engine.engine](../../roles/engine/README.md), `ansible.builtin.raw`, "
        "<https://example.invalid/x>, [docs](https://example.invalid)")
    assert tool.markup(["a | b", "c"], cell=True) == "a \\| b<br>c"


def write_plugin(root: Path, kind: str, name: str, source: str) -> None:
    d = root / "plugins" / kind
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.py").write_text(source)


@pytest.mark.parametrize(("source", "message"), [
    ("X = 1\n", "has no DOCUMENTATION string"),
    ("DOCUMENTATION = 'a: [b'\n", "DOCUMENTATION is not valid YAML"),
    ("DOCUMENTATION = f'module: x'\n", "DOCUMENTATION must be a string literal"),
    ("DOCUMENTATION = 'module: other'\n", "documented name 'other' is not the file's name"),
    ("DOCUMENTATION = '''\nmodule: bad\nextends_documentation_fragment: [berth.engine.nope]\n"
     "'''\n", "unknown doc_fragment"),
])
def test_bad_plugin_docs_fail_clearly_and_write_nothing(tmp_path: Path, source: str,
                                                       message: str) -> None:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "plugins" / "doc_fragments", root / "plugins" / "doc_fragments")
    write_plugin(root, "modules", "good", "DOCUMENTATION = 'module: good'\n")
    write_plugin(root, "modules", "bad", source)
    out = tmp_path / "out"
    with pytest.raises(tool.PluginDocError, match=message) as info:
        tool.generate(out, root)
    assert "bad.py" in str(info.value)
    assert not out.exists()


def test_a_generated_page_shows_suboptions_and_returns(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "plugins" / "doc_fragments", root / "plugins" / "doc_fragments")
    write_plugin(root, "modules", "demo", '''
DOCUMENTATION = r"""
module: demo
short_description: A demo
description: [Does C(things).]
options:
  items:
    description: Items.
    type: list
    elements: dict
    suboptions:
      size: {description: Size., type: int, default: 3, choices: [1, 3]}
  name: {description: Name., type: str, required: true, aliases: [n]}
"""
EXAMPLES = r"""
- berth.engine.demo: {name: x}
"""
RETURN = r"""
out:
  description: Result.
  returned: always
  type: dict
  contains:
    id: {description: The id., type: str, returned: always, sample: abc}
"""
''')
    tool.generate(tmp_path / "out", root)
    page = (tmp_path / "out" / "demo.md").read_text()
    assert "| `items[].size` | int |  | `3` | `1`, `3` | Size. |" in page
    assert "| `name` | str | yes |  |  | Name.<br>Aliases: `n`. |" in page
    assert "| `out.id` | str | always | The id.<br>Sample: `abc` |" in page
    assert "- berth.engine.demo: {name: x}" in page
    assert "Does `things`." in page
