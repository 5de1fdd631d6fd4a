"""The examples in docs/getting-started.md and docs/sdk.md run, as root, on a real engine.

The convention, in the Markdown source: an HTML comment on the line right before a
fenced block marks it for this test (it is invisible when rendered).

- ``<!-- test: run -->`` before a ````console```` block: every line starting with ``$ `` is
  a command; the lines after it, up to the next command, are output it must print (in
  that order; other lines may come between).  ``...`` in an output line stands for any
  text and runs of spaces match any whitespace.  Every command must exit 0.  All such
  blocks of one file run top to bottom in one ``bash``, so ``cd``, ``export`` and ``$!``
  carry over as they would for a reader at one terminal.
- ``<!-- test: file NAME -->`` before any block: the block is written to NAME (relative
  to the shell's working directory at that point), e.g. a playbook a later command runs.
- ``<!-- test: run -->`` before a ````python```` block: all such blocks of one file run in
  one interpreter, top to bottom, sharing their globals; they check themselves with
  ``assert`` and must not raise.

Isolation: ``/tmp/berth-demo`` in any block is replaced by a private directory of this
test (so ``/tmp/berth-demo.sock``, ``/tmp/berth-demo-work`` ... move with it); the shell
starts in the checkout with ``.venv/bin`` first on PATH and no BERTH_*/DOCKER_HOST
variables.  Afterwards every container, volume and user network of that data root is
removed, the shell's process group is ended, and the directory is deleted.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
DOCS = ("getting-started.md", "sdk.md")
DEMO = "/tmp/berth-demo"
MARK = re.compile(r"^<!-- test: (run|file (\S+)) -->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")
EOF = "BERTH_DOC_EOF"


@dataclass
class Block:
    line: int                      # 1-based line of the opening fence
    lang: str
    body: list[str]
    file: str | None = None        # "test: file NAME"


@dataclass
class Command:
    line: int
    text: str
    expected: list[str] = field(default_factory=list)


def blocks(path: Path) -> list[Block]:
    """The marked fenced blocks of a Markdown file, in order."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        mark = MARK.match(lines[i])
        if mark is None:
            i += 1
            continue
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if fence is None:
            raise AssertionError(f"{path.name}:{i + 1}: a test mark must come right "
                                 "before a fenced block")
        end = i + 2
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError(f"{path.name}:{i + 2}: unterminated code block")
        found.append(Block(i + 2, fence.group(1), lines[i + 2:end], mark.group(2)))
        i = end + 1
    return found


def commands(block: Block) -> list[Command]:
    cmds: list[Command] = []
    for n, text in enumerate(block.body, start=block.line + 1):
        if text.startswith("$ "):
            cmds.append(Command(n, text[2:]))
        elif text.strip():
            if not cmds:
                raise AssertionError(f"line {n}: output before the first `$ ` command")
            cmds[-1].expected.append(text)
    return cmds


def shell_script(path: Path, demo: str) -> tuple[str, list[Command]]:
    """One bash script for the file's console and file blocks; markers around each
    command let the output be split per command."""
    out = ["exec 2>&1"]
    cmds: list[Command] = []
    for block in blocks(path):
        if block.file is not None:
            out += [f"cat > {block.file} <<'{EOF}'", *block.body, EOF]
        elif block.lang == "console":
            for cmd in commands(block):
                i = len(cmds)
                cmds.append(cmd)
                out += [f"printf '\\n@@doc-cmd {i}\\n'", cmd.text.replace(DEMO, demo),
                        f"rc=$?; printf '\\n@@doc-rc {i} %d\\n' $rc; "
                        f"[ $rc -eq 0 ] || exit 99"]
    return "\n".join(out) + "\n", cmds


def pattern(expected: str) -> re.Pattern[str]:
    pieces = [r"\s+".join(re.escape(w) for w in piece.split())
              for piece in expected.strip().split("...")]
    return re.compile(".*".join(pieces))


def check_output(where: str, cmd: Command, output: str) -> None:
    lines = output.splitlines()
    pos = 0
    for want in cmd.expected:
        rx = pattern(want)
        while pos < len(lines) and not rx.search(lines[pos]):
            pos += 1
        assert pos < len(lines), (f"{where}: `{cmd.text}` did not print {want!r} "
                                  f"(in order); it printed:\n{output}")
        pos += 1


@pytest.fixture
def playground() -> Iterator[str]:
    base = Path(tempfile.mkdtemp(prefix="berth-docs-", dir="/tmp"))
    demo = str(base / "berth-demo")
    try:
        yield demo
    finally:
        clean_engine(demo)
        shutil.rmtree(base, ignore_errors=True)


def clean_engine(demo: str) -> None:
    """Remove what the examples may have left in the private data root."""
    if not os.path.isdir(demo):
        return
    from sdk import Engine

    eng = Engine(root=demo, config=demo + ".json")
    try:
        for doc in eng.tasks.all():
            try:
                eng.tasks.remove(doc["Id"], force=True, volumes=True)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass
        for net in eng.networks.list():
            if net.name not in ("bridge", "host", "none"):
                try:
                    net.remove()
                except Exception:  # noqa: BLE001
                    pass
        for vol in eng.volumes.list():
            try:
                vol.remove(force=True)
            except Exception:  # noqa: BLE001
                pass
        eng.repair()
    finally:
        eng.close()
    with open("/proc/self/mountinfo") as f:
        leaked = [line for line in f if demo in line]
    assert not leaked, f"mounts left under {demo}: {leaked}"


def environment(demo: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BERTH_", "DOCKER_", "ANSIBLE_"))}
    work = os.path.dirname(demo)
    env.update(PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
               DOCKER_CONFIG=f"{work}/docker-config", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_RETRY_FILES_ENABLED="0",
               ANSIBLE_NOCOLOR="1", ANSIBLE_HOME=f"{work}/ansible",
               ANSIBLE_LOCAL_TEMP=f"{work}/ansible/tmp")
    return env


def run_shell(doc: Path, demo: str) -> None:
    script, cmds = shell_script(doc, demo)
    if not cmds:
        return
    proc = subprocess.Popen(["bash", "-c", script], cwd=REPO, env=environment(demo),
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=120)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)     # a background job the doc left
        except ProcessLookupError:
            pass
        proc.wait()
    parts = re.split(r"\n?@@doc-cmd (\d+)\n", output)
    seen: dict[int, str] = {}
    for i in range(1, len(parts) - 1, 2):
        seen[int(parts[i])] = parts[i + 1]
    for i, cmd in enumerate(cmds):
        where = f"docs/{doc.name}:{cmd.line}"
        assert i in seen, f"{where}: `{cmd.text}` never ran; output:\n{output}"
        body, _, rc = seen[i].rpartition(f"@@doc-rc {i} ")
        assert rc.strip() == "0", f"{where}: `{cmd.text}` exited {rc.strip() or '?'}:\n{body}"
        check_output(where, cmd, body)


DRIVER = """
import sys, traceback
ns = {"__name__": "__main__"}
for where, src in BLOCKS:
    try:
        exec(compile(src, where, "exec"), ns)
    except BaseException:
        traceback.print_exc()
        print(f"@@doc-failed {where}")
        sys.exit(1)
"""


def run_python(doc: Path, demo: str) -> None:
    # padded with newlines so a traceback's line numbers are the doc's own
    code = [(f"docs/{doc.name}", "\n" * b.line + "\n".join(b.body).replace(DEMO, demo))
            for b in blocks(doc) if b.lang == "python" and b.file is None]
    if not code:
        return
    os.makedirs(demo + "-work", exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", f"BLOCKS = {code!r}\n{DRIVER}"],
                          cwd=demo + "-work", env=environment(demo), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", DOCS)
def test_doc_examples_run(name: str, playground: str) -> None:
    doc = REPO / "docs" / name
    assert blocks(doc), f"docs/{name} has no runnable examples"
    run_shell(doc, playground)
    run_python(doc, playground)


def test_marks_and_expectations_are_parsed(tmp_path: Path) -> None:
    """The convention itself: a wrong expectation fails, `...` is a wildcard."""
    doc = tmp_path / "x.md"
    doc.write_text("<!-- test: run -->\n```console\n$ echo a b  c\na ... c\n"
                   "$ echo /tmp/berth-demo\n```\n<!-- test: file f.txt -->\n```\nhi\n```\n")
    script, cmds = shell_script(doc, "/X")
    assert [c.text for c in cmds] == ["echo a b  c", "echo /tmp/berth-demo"]
    assert "echo /X\n" in script and "cat > f.txt <<'BERTH_DOC_EOF'\nhi\n" in script
    check_output("x", cmds[0], "a b c\n")
    with pytest.raises(AssertionError, match="did not print"):
        check_output("x", cmds[0], "a b\n")
    (tmp_path / "bad.md").write_text("<!-- test: run -->\n\n```console\n```\n")
    with pytest.raises(AssertionError, match="right before a fenced block"):
        blocks(tmp_path / "bad.md")
