"""SELinux labels for new containers (the kernel side needs an SELinux host; these pin the
engine's choices: fresh categories, docker's label= options, privileged unlabelled)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from sdk.containers.labels import container_labels, label_options
from sdk.errors import InvalidArgument


def fresh(in_use: Iterable[str]) -> tuple[str, str]:
    taken = set(in_use)
    for n in range(1, 100):
        level = f"s0:c{n},c{n + 1}"
        if f"system_u:system_r:container_t:{level}" not in taken:
            return (f"system_u:system_r:container_t:{level}",
                    f"system_u:object_r:container_file_t:{level}")
    raise AssertionError("no level left")


def test_off_means_no_labels() -> None:
    assert container_labels([], enabled=False, privileged=False, in_use=[],
                            fresh=fresh) == ("", "")


def test_labels_share_fresh_categories() -> None:
    first = container_labels([], enabled=True, privileged=False, in_use=[], fresh=fresh)
    second = container_labels([], enabled=True, privileged=False, in_use=[first[0]],
                              fresh=fresh)
    assert first == ("system_u:system_r:container_t:s0:c1,c2",
                     "system_u:object_r:container_file_t:s0:c1,c2")
    assert second[0].endswith("s0:c2,c3") and second[1].endswith("s0:c2,c3")


def test_privileged_and_disable_are_unlabelled() -> None:
    assert container_labels([], enabled=True, privileged=True, in_use=[],
                            fresh=fresh) == ("", "")
    assert container_labels(["label=disable"], enabled=True, privileged=False, in_use=[],
                            fresh=fresh) == ("", "")


def test_label_options_adjust_the_labels() -> None:
    process, mount = container_labels(
        ["label=type:svirt_apache_t", "label=level:s0:c100,c200", "label=user:user_u",
         "label=filetype:container_ro_file_t"],
        enabled=True, privileged=False, in_use=[], fresh=fresh)
    assert process == "user_u:system_r:svirt_apache_t:s0:c100,c200"
    assert mount == "system_u:object_r:container_ro_file_t:s0:c100,c200"


@pytest.mark.parametrize("opt", ["label=bogus:x", "label=disable:yes", "label=type",
                                 "label:nope"])
def test_bad_label_options_are_refused_even_without_selinux(opt: str) -> None:
    with pytest.raises(InvalidArgument, match="label="):
        container_labels([opt], enabled=False, privileged=False, in_use=[], fresh=fresh)


def test_label_options_parse_both_separators() -> None:
    assert label_options(["label:disable", "seccomp=unconfined", "label=type:t"]) == \
        {"disable": "", "type": "t"}
