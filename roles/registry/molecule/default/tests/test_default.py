"""Verify roles/registry inside a berth instance (testinfra through berth_testinfra):
the server answers the distribution API over TLS and refuses requests without the
htpasswd user's credentials."""

import base64

import pytest

URL = "https://127.0.0.1:5000/v2/"
# prints "STATUS WWW-Authenticate" of a GET with optional basic credentials, trusting the
# role's self-signed certificate (so the certificate is proven to serve this endpoint)
PROBE = """
import ssl, sys, urllib.error, urllib.request
ctx = ssl.create_default_context(cafile="/etc/berth/registry/certs/registry.crt")
req = urllib.request.Request(sys.argv[1])
if len(sys.argv) > 2:
    req.add_header("Authorization", "Basic " + sys.argv[2])
try:
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        print(r.status, r.headers.get("Docker-Distribution-Api-Version", ""))
except urllib.error.HTTPError as e:
    print(e.code, e.headers.get("WWW-Authenticate", ""))
"""


def probe(host, *args):
    cmd = "python3 -c %s" + " %s" * len(args)
    return host.check_output(cmd, PROBE, *args).split(" ", 1)


def basic(user, password):
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_tls_certificate(host):
    cert = host.file("/etc/berth/registry/certs/registry.crt")
    assert cert.exists and cert.user == "root"
    key = host.file("/etc/berth/registry/certs/registry.key")
    assert key.mode == 0o600
    san = host.check_output("openssl x509 -noout -ext subjectAltName -in %s", cert.path)
    assert "DNS:registry.test" in san and "IP Address:127.0.0.1" in san


def test_config_and_users(host):
    config = host.file("/etc/berth/registry/config.yml").content_string
    assert "/etc/berth/registry/htpasswd" in config and "registry.crt" in config
    line = host.file("/etc/berth/registry/htpasswd").content_string.strip()
    assert line.startswith("alice:$2")      # bcrypt


def test_server_runs(host):
    # no systemd in the instance: a background process with a pid file
    pid = host.file("/run/berth-registry.pid").content_string.strip()
    cmdline = host.file(f"/proc/{pid}/cmdline").content_string.split("\0")
    assert cmdline[-4:-1] == ["serve", "-c", "/etc/berth/registry/config.yml"], cmdline


def test_v2_requires_auth(host):
    status, challenge = probe(host, URL)
    assert status == "401"
    assert 'Basic realm="berth-registry"' in challenge


@pytest.mark.parametrize("password, status", [("wrong", "401"), ("s3cret", "200")])
def test_v2_with_credentials(host, password, status):
    got, rest = probe(host, URL, basic("alice", password))
    assert got == status
    if status == "200":
        assert rest.strip() == "registry/2.0"
