"""``login``: check credentials against a registry's ``/v2/``, then store them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sdk.distribution.credentials import CredentialStore, normalize_server
from sdk.errors import InvalidArgument, PermissionDenied

if TYPE_CHECKING:
    from sdk.images.service import ImageService


def verify_login(svc: ImageService, server: str, username: str, password: str) -> str:
    """Raise PermissionDenied unless the registry accepts the credentials; returns host."""
    from sdk.distribution.transport import RegistryClient

    host = normalize_server(server)
    if not username:
        raise InvalidArgument("Username is required")
    if not password:
        raise InvalidArgument("Password is required")
    cfg = svc.registry_config
    client = RegistryClient(host, insecure=tuple(getattr(cfg, "insecure_registries", ())
                                                 or ()),
                            credentials=(username, password), push=True)
    try:
        client.connect()
        if client.auth.challenge is None:
            return host          # the registry asks for nothing: any credentials do
        resp = client.request("GET", "/v2/")
        resp.close()
        if resp.status_code != 200:
            raise PermissionDenied(f"login attempt to {client.endpoint.url}/v2/ failed with "
                                   f"status: {resp.status_code} "
                                   f"{resp.reason or 'Unauthorized'}")
        return host
    finally:
        client.close()


def login(svc: ImageService, server: str, username: str, password: str,
          store: CredentialStore | None = None) -> str:
    """Verify then store; returns where the credentials went."""
    host = verify_login(svc, server, username, password)
    return (store or CredentialStore()).store(host, username, password)
