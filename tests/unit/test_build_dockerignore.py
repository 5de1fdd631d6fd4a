""".dockerignore matching with Docker's rules, and the step-cache keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sdk.build.cache import StepCache, step_key
from sdk.build.dockerignore import Matcher, parse_patterns


def m(*patterns: str) -> Matcher:
    return Matcher(parse_patterns("\n".join(patterns)))


@pytest.mark.parametrize(("patterns", "path", "ignored"), [
    (["*.log"], "a.log", True),
    (["*.log"], "dir/a.log", False),           # * does not cross /
    (["**/*.log"], "dir/sub/a.log", True),
    (["**/*.log"], "a.log", True),              # ** matches no directory too
    (["dir"], "dir/sub/file", True),            # a directory match covers its content
    (["/dir/"], "dir/x", True),                 # cleaned: leading and trailing / dropped
    (["dir/*/x"], "dir/a/x", True),
    (["dir/*/x"], "dir/a/b/x", False),
    (["dir/**/x"], "dir/a/b/x", True),
    (["a?c"], "abc", True),
    (["a?c"], "a/c", False),
    (["[a-c]x"], "bx", True),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "other.md", True),
    (["*.md", "!README.md", "README*"], "README.md", True),   # last match wins
    (["**", "!keep/**"], "keep/a/b", False),
    (["**", "!keep/**"], "other", True),
    (["# comment", "x"], "# comment", False),
    (["./x/../y"], "y", True),
    (["a\\*b"], "a*b", True),
    (["a\\*b"], "axb", False),
])
def test_dockerignore(patterns: list[str], path: str, ignored: bool) -> None:
    assert m(*patterns).matches(path) is ignored


def test_empty_matcher_is_false() -> None:
    assert not m()
    assert not m("# only a comment", "   ")


def test_step_key_depends_on_everything() -> None:
    base = step_key("sha256:a", {"Env": ["A=1"]}, "RUN x")
    assert base == step_key("sha256:a", {"Env": ["A=1"]}, "RUN x")
    assert base != step_key("sha256:b", {"Env": ["A=1"]}, "RUN x")
    assert base != step_key("sha256:a", {"Env": ["A=2"]}, "RUN x")
    assert base != step_key("sha256:a", {"Env": ["A=1"]}, "|1 V=1 RUN x")


def test_step_cache_persists_and_file_hashes_are_memoised(tmp_path: Path) -> None:
    cache = StepCache(tmp_path)
    assert cache.get("k") is None
    cache.put("k", "sha256:abc")
    assert StepCache(tmp_path).get("k") == "sha256:abc"
    f = tmp_path / "file"
    f.write_bytes(b"hello")
    h1 = cache.file_hash(str(f), os.stat(f))
    cache.flush()
    again = StepCache(tmp_path)
    assert again.file_hash(str(f), os.stat(f)) == h1
    f.write_bytes(b"other")
    assert again.file_hash(str(f), os.stat(f)) != h1
