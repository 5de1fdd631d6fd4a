"""Restart policies: docker's parsing and errors, restart decisions, backoff."""

from __future__ import annotations

import pytest

from sdk.errors import InvalidArgument
from sdk.tasks.restart import (
    Backoff,
    PolicyName,
    RestartPolicy,
    check_auto_remove,
    should_restart,
)


@pytest.mark.parametrize("text, name, count", [
    ("", "no", 0), (None, "no", 0), ("no", "no", 0), ("always", "always", 0),
    ("unless-stopped", "unless-stopped", 0), ("on-failure", "on-failure", 0),
    ("on-failure:3", "on-failure", 3), ("on-failure:0", "on-failure", 0),
    ("always:0", "always", 0),
])
def test_parse(text: str | None, name: str, count: int) -> None:
    policy = RestartPolicy.parse(text)
    assert (policy.name, policy.maximum_retry_count) == (name, count)
    assert policy.to_docker() == {"Name": name, "MaximumRetryCount": count}


@pytest.mark.parametrize("text, message", [
    ("on-failure:1:2", "invalid restart policy format"),
    (":3", "invalid restart policy format: no policy provided before colon"),
    ("on-failure:", "maximum retry count cannot be empty"),
    ("on-failure:x", "invalid restart policy format: maximum retry count must be an integer"),
    ("on-failure:1_0", "maximum retry count must be an integer"),
    ("on-failure:-1", "maximum retry count cannot be negative"),
    ("always:3", "maximum retry count cannot be used with restart policy 'always'"),
    ("unless-stopped:1", "maximum retry count cannot be used with restart policy "
                         "'unless-stopped'"),
    ("no:1", "maximum retry count cannot be used with restart policy 'no'"),
    ("sometimes", "invalid restart policy 'sometimes'"),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        RestartPolicy.parse(text)
    assert message in str(info.value)


def test_from_docker_and_str() -> None:
    assert RestartPolicy.from_docker(None) == RestartPolicy()
    assert RestartPolicy.from_docker({"Name": "", "MaximumRetryCount": 0}).name == "no"
    policy = RestartPolicy.from_docker({"Name": "on-failure", "MaximumRetryCount": 2})
    assert str(policy) == "on-failure:2" and policy.name is PolicyName.ON_FAILURE
    assert str(RestartPolicy.parse("always")) == "always"
    with pytest.raises(InvalidArgument, match="cannot be used with restart policy 'always'"):
        RestartPolicy.from_docker({"Name": "always", "MaximumRetryCount": 1})


def test_auto_remove_conflict() -> None:
    check_auto_remove(RestartPolicy(), True)
    check_auto_remove(RestartPolicy.parse("always"), False)
    with pytest.raises(InvalidArgument, match="Conflicting options: --restart and --rm"):
        check_auto_remove(RestartPolicy.parse("on-failure"), True)


@pytest.mark.parametrize("policy, exit_code, count, by_user, manually, expected", [
    ("no", 1, 0, False, False, False),
    ("always", 0, 0, False, False, True),
    ("always", 1, 100, False, False, True),
    ("always", 0, 0, False, True, True),        # the flag only matters to unless-stopped
    ("always", 137, 0, True, True, False),      # docker stop/kill cancels any restart
    ("unless-stopped", 0, 0, False, False, True),
    ("unless-stopped", 0, 0, False, True, False),
    ("unless-stopped", 1, 0, True, True, False),
    ("on-failure", 0, 0, False, False, False),
    ("on-failure", 1, 0, False, False, True),
    ("on-failure", 1, 1000, False, False, True),   # no maximum
    ("on-failure:3", 1, 2, False, False, True),
    ("on-failure:3", 1, 3, False, False, False),   # 3 restarts done
    ("on-failure:3", 0, 0, False, False, False),
    ("on-failure", 143, 0, True, True, False),
])
def test_should_restart(policy: str, exit_code: int, count: int, by_user: bool,
                        manually: bool, expected: bool) -> None:
    assert should_restart(RestartPolicy.parse(policy), exit_code, count, by_user,
                          has_been_manually_stopped=manually) is expected


def test_backoff_sequence() -> None:
    backoff = Backoff()
    delays = [backoff.next_delay(1.0) for _ in range(12)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2,
                                    60.0, 60.0])


def test_backoff_resets_after_a_10s_run() -> None:
    backoff = Backoff()
    for _ in range(5):
        backoff.next_delay(0.5)
    assert backoff.next_delay(9.99) == pytest.approx(3.2)
    assert backoff.next_delay(10.0) == pytest.approx(0.1)
    assert backoff.next_delay(0.1) == pytest.approx(0.2)
    backoff.reset()
    assert backoff.next_delay(0.1) == pytest.approx(0.1)
