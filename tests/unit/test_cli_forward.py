"""The warm-path client encodes its request without the json module: the daemon must
decode exactly what was sent, whatever the argv holds."""

from __future__ import annotations

import json
import random

import pytest

from sdk.api.forward import _json_string, encode_request

TRICKY = ["plain", 'q"uote\\back', "\x00\x1f\x7f", "日本語", "😀x", "\udcff", "tab\tnl\n", "",
          "--format={{json .}}", "a\u2028b"]


@pytest.mark.parametrize("text", TRICKY)
def test_json_string_round_trips(text: str) -> None:
    assert json.loads(_json_string(text)) == text


def test_json_string_random_code_points() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(chr(rng.choice([rng.randrange(0, 0x80), rng.randrange(0x80, 0x110000)]))
                       for _ in range(rng.randrange(0, 12)))
        assert json.loads(_json_string(text)) == text


def test_request_is_length_prefixed_json() -> None:
    raw = encode_request(["run", "-e", "A=ü b", "busybox"], "/tmp/x y", {"HOME": "/root"})
    size = int.from_bytes(raw[:4], "big")
    assert size == len(raw) - 4
    assert json.loads(raw[4:]) == {"argv": ["run", "-e", "A=ü b", "busybox"],
                                   "cwd": "/tmp/x y", "env": {"HOME": "/root"}}
