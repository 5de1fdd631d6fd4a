"""TLS settings of berth daemon's TCP hosts: daemon.json keys, host parsing, refusals."""

from __future__ import annotations

import pytest

from sdk.api.server import Listen, TcpListen, parse_host
from sdk.api.tls import TlsOptions, TlsSource, parse_tcp_host, server_context
from sdk.config import DaemonConfig, validate_config_dict
from sdk.errors import ConfigError, InvalidArgument


@pytest.mark.parametrize("key,value,why", [
    ("tlscert", "cert.pem", '"tlscert" in /x/daemon.json must be an absolute path'),
    ("tlskey", 3, '"tlskey" in /x/daemon.json must be an absolute path'),
    ("tlscacert", "~/ca.pem", '"tlscacert" in /x/daemon.json must be an absolute path'),
    ("tlsverify", "yes", '"tlsverify" in /x/daemon.json must be true or false'),
    ("tls", 1, '"tls" in /x/daemon.json must be true or false'),
    ("hosts", ["tcp://host:99999"], "the port must be a number between 1 and 65535"),
])
def test_bad_tls_keys_name_the_key_and_file(key: str, value: object, why: str) -> None:
    with pytest.raises(ConfigError, match=why.replace("(", r"\(")):
        validate_config_dict({key: value}, "/x/daemon.json")


def test_tls_keys_load() -> None:
    cfg = validate_config_dict({"tlsverify": True, "tlscacert": "/e/ca.pem",
                                "tlscert": "/e/cert.pem", "tlskey": "/e/key.pem",
                                "hosts": ["tcp://0.0.0.0:2376"]}, "/x/daemon.json")
    assert (cfg.tlsverify, cfg.tlscacert, cfg.tlscert, cfg.tlskey) == \
        (True, "/e/ca.pem", "/e/cert.pem", "/e/key.pem")
    assert DaemonConfig().tls is False and DaemonConfig().tlscert == ""


@pytest.mark.parametrize("host,expected", [
    ("tcp://127.0.0.1:2377", ("127.0.0.1", 2377)),
    ("tcp://127.0.0.1", ("127.0.0.1", 2376)),
    ("tcp://", ("127.0.0.1", 2376)),
    ("tcp://:3000", ("127.0.0.1", 3000)),
    ("tcp://[::1]:4000", ("::1", 4000)),
    ("tcp://[::1]", ("::1", 2376)),
    ("tcp://example.com:1/", ("example.com", 1)),
])
def test_parse_tcp_host(host: str, expected: tuple[str, int]) -> None:
    assert parse_tcp_host(host) == expected


@pytest.mark.parametrize("host", ["tcp://h:0", "tcp://h:x", "tcp://h:2376/path",
                                  "tcp://[::1]x"])
def test_bad_tcp_hosts(host: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_tcp_host(host)


def test_parse_host_kinds() -> None:
    assert parse_host("unix:///run/b.sock") == Listen("/run/b.sock")
    assert parse_host("tcp://127.0.0.1:9") == TcpListen("127.0.0.1", 9)
    with pytest.raises(InvalidArgument, match="plain HTTP is never served"):
        parse_host("http://127.0.0.1:2375")
    with pytest.raises(InvalidArgument, match="expected unix"):
        parse_host("ssh://host")


def test_flags_win_over_daemon_json() -> None:
    cfg = validate_config_dict({"tlscert": "/cfg/cert.pem", "tlskey": "/cfg/key.pem",
                                "tlsverify": True}, "/x/daemon.json")
    opts = TlsOptions.merge({"tlscert": "/flag/cert.pem", "tlskey": "", "tlsverify": None,
                             "tls": None}, cfg)
    assert opts.cert == TlsSource("/flag/cert.pem", "--tlscert")
    assert opts.key == TlsSource("/cfg/key.pem", '"tlskey" in /x/daemon.json')
    assert opts.verify is True and opts.tls is None
    off = validate_config_dict({"tls": False}, "/x/daemon.json")
    assert TlsOptions.merge({}, off).tls is False


def test_refusals_before_reading_files() -> None:
    with pytest.raises(InvalidArgument, match="give --tlscert and --tlskey"):
        server_context("tcp://h:1", TlsOptions())
    with pytest.raises(InvalidArgument, match="TCP only with TLS"):
        server_context("tcp://h:1", TlsOptions(tls=False))
    with pytest.raises(InvalidArgument, match="needs a CA"):
        server_context("tcp://h:1", TlsOptions(verify=True, cert=TlsSource("/c", "--tlscert"),
                                               key=TlsSource("/k", "--tlskey")))
    with pytest.raises(InvalidArgument, match="cannot read --tlscert /nonexistent/c"):
        server_context("tcp://h:1", TlsOptions(cert=TlsSource("/nonexistent/c", "--tlscert"),
                                               key=TlsSource("/k", "--tlskey")))
