from __future__ import annotations

import pytest

from sdk.cli.flags import Flag, HelpRequested, Spec, UsageError, parse
from sdk.cli.runflags import RUN, to_kwargs


def test_docker_style_flags() -> None:
    opts, args = parse(RUN, ["-dit", "--name=web", "-p8080:80", "-e", "A=1", "-eB=2",
                             "--rm", "busybox", "sh", "-c", "echo --rm -d"])
    assert opts["detach"] and opts["interactive"] and opts["tty"] and opts["rm"]
    assert opts["name"] == "web" and opts["publish"] == ["8080:80"]
    assert opts["env"] == ["A=1", "B=2"]
    assert args == ["busybox", "sh", "-c", "echo --rm -d"]


def test_unknown_and_missing_values() -> None:
    with pytest.raises(UsageError, match="unknown flag: --nope"):
        parse(RUN, ["--nope", "busybox"])
    with pytest.raises(UsageError, match="flag needs an argument"):
        parse(RUN, ["busybox", "--name"][::-1][:1])
    with pytest.raises(UsageError, match="requires at least 1 argument"):
        parse(RUN, ["-d"])
    with pytest.raises(UsageError, match="invalid argument"):
        parse(RUN, ["--cpu-shares", "x", "busybox"])
    with pytest.raises(HelpRequested):
        parse(RUN, ["--help"])


def test_bool_values_and_double_dash() -> None:
    spec = Spec("x", "x", [Flag("sig-proxy", default=True), Flag("all", "a")])
    opts, args = parse(spec, ["--sig-proxy=false", "--", "-a"])
    assert opts["sig_proxy"] is False and not opts["all"] and args == ["-a"]


def test_run_flags_to_kwargs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_HOST", "yes")
    opts, _ = parse(RUN, ["-e", "FROM_HOST", "-e", "UNSET_ONE", "-m", "64m", "--cpus", "1.5",
                          "--restart", "on-failure:3", "--health-cmd", "true",
                          "--health-interval", "2s", "-v", "d:/data:ro", "--read-only",
                          "--ulimit", "nofile=10:20", "--entrypoint", "", "busybox"])
    kw = to_kwargs(opts)
    assert kw["environment"] == ["FROM_HOST=yes"]
    assert kw["mem_limit"] == "64m" and kw["nano_cpus"] == 1_500_000_000
    assert kw["restart_policy"] == "on-failure:3"
    assert kw["healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000}
    assert kw["volumes"] == ["d:/data:ro"] and kw["read_only"] is True
    assert kw["entrypoint"] == [""]
