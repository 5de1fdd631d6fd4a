#!/usr/bin/env python3
"""Build a reproducible wheel of berth-engine from the collection's own source tree.

Run on the controller by roles/engine (no setuptools, pip or network needed): the
package is pure Python, so the wheel is a zip of ``sdk/`` plus the dist-info files.
Every entry has a fixed timestamp and order, so the same source always gives a
byte-identical wheel and the role's copy task reports a change only when the source
changed.

    build_wheel.py SOURCE_ROOT OUTPUT_DIR      # prints the wheel's path
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import sys
import zipfile
from pathlib import Path

EPOCH = (1980, 1, 1, 0, 0, 0)


def _project(pyproject: Path) -> dict:
    text = pyproject.read_text()
    try:
        import tomllib
        return tomllib.loads(text)
    except ImportError:  # Python < 3.11 on the controller: the few keys needed
        def get(key: str) -> str:
            m = re.search(rf'^{key}\s*=\s*"([^"]*)"', text, re.M)
            return m.group(1) if m else ""
        scripts = dict(re.findall(r'^(\w[\w-]*)\s*=\s*"([\w.:]+)"\s*$',
                                  text.split("[project.scripts]", 1)[-1].split("\n[", 1)[0],
                                  re.M))
        return {"project": {"name": get("name"), "version": get("version"),
                            "requires-python": get("requires-python"),
                            "description": get("description"), "scripts": scripts}}


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build(source: Path, out: Path) -> Path:
    project = _project(source / "pyproject.toml")["project"]
    name, version = project["name"], project["version"]
    dist = name.replace("-", "_")
    files: list[tuple[str, bytes]] = []
    for path in sorted((source / "sdk").rglob("*")):
        rel = path.relative_to(source).as_posix()
        if path.is_file() and "__pycache__" not in rel and not rel.endswith((".pyc", ".pyo")):
            files.append((rel, path.read_bytes()))
    info = f"{dist}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if project.get("description"):
        meta.append(f"Summary: {project['description']}")
    if project.get("requires-python"):
        meta.append(f"Requires-Python: {project['requires-python']}")
    for extra, reqs in sorted(project.get("optional-dependencies", {}).items()):
        meta.append(f"Provides-Extra: {extra}")
        meta += [f'Requires-Dist: {r}; extra == "{extra}"' for r in reqs]
    files.append((f"{info}/METADATA", ("\n".join(meta) + "\n").encode()))
    files.append((f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: berth build_wheel\n"
                                   b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    scripts = project.get("scripts", {})
    if scripts:
        body = "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())
        files.append((f"{info}/entry_points.txt", body.encode()))
    files.append((f"{info}/top_level.txt", b"sdk\n"))
    record = [_record_line(n, d) for n, d in files] + [f"{info}/RECORD,,"]
    files.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{dist}-{version}-py3-none-any.whl"
    tmp = wheel.with_name(f".{wheel.name}.{os.getpid()}.tmp")  # parallel plays
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in files:
            zi = zipfile.ZipInfo(rel, EPOCH)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    tmp.replace(wheel)
    return wheel


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: build_wheel.py SOURCE_ROOT OUTPUT_DIR")
    print(build(Path(sys.argv[1]), Path(sys.argv[2])))
