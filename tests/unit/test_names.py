"""Container names and IDs as the docker daemon makes and checks them."""

from __future__ import annotations

import pytest

from sdk._internal import names
from sdk._internal.names import (
    ADJECTIVES,
    SURNAMES,
    generate_name,
    is_hex_id,
    new_id,
    random_name,
    short_id,
    validate_name,
)
from sdk.errors import InvalidArgument


def test_word_lists() -> None:
    assert len(ADJECTIVES) >= 100 and len(SURNAMES) >= 200
    assert len(set(ADJECTIVES)) == len(ADJECTIVES) and len(set(SURNAMES)) == len(SURNAMES)
    for word in ADJECTIVES + SURNAMES:
        assert word.isascii() and word.isalpha() and word.islower(), word
    assert "boring" in ADJECTIVES and "wozniak" in SURNAMES


def test_generated_names_look_like_docker() -> None:
    for _ in range(500):
        name = generate_name(lambda n: False)
        adjective, _, surname = name.partition("_")
        assert adjective in ADJECTIVES and surname in SURNAMES
        validate_name(name)


def test_never_boring_wozniak(monkeypatch: pytest.MonkeyPatch) -> None:
    picks = iter([ADJECTIVES.index("boring"), SURNAMES.index("wozniak"), 0, 0])
    monkeypatch.setattr(names, "_randbelow", lambda n: next(picks))
    assert random_name() == f"{ADJECTIVES[0]}_{SURNAMES[0]}"


def test_retries_append_a_digit_then_fall_back_to_short_id() -> None:
    seen: list[str] = []

    def taken(name: str) -> bool:
        seen.append(name)
        return len(seen) < 3

    name = generate_name(taken)
    assert name == seen[-1] and len(seen) == 3
    assert not seen[0][-1].isdigit() and seen[1][-1].isdigit() and seen[2][-1].isdigit()
    assert generate_name(lambda n: True, "f" * 64) == "f" * 12
    assert len(generate_name(lambda n: True)) == 12


@pytest.mark.parametrize("name", ["ab", "/ab", "a.b", "a_b-c", "0x", "Web_1", "a" * 200])
def test_valid_names(name: str) -> None:
    validate_name(name)


@pytest.mark.parametrize("name", ["a", "/a", "", "/", "a b", "_ab", ".ab", "-ab", "ab/c",
                                  "ab\n", "héllo", "//ab"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_name(name)
    assert str(exc.value) == (f"Invalid container name ({name}), only "
                              "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")


def test_ids() -> None:
    ids = {new_id() for _ in range(200)}
    assert len(ids) == 200
    for full in ids:
        assert is_hex_id(full) and not full[:12].isdigit()
    assert short_id("sha256:" + "a" * 64) == "a" * 12
    assert short_id("abc") == "abc"
    assert short_id("0123456789abcdef") == "0123456789ab"
    assert not is_hex_id("A" * 64) and not is_hex_id("a" * 63)
