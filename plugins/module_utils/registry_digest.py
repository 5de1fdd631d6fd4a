# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What a pull would bring, asked of the registry without pulling (for check mode).

A ``HEAD`` of the tag's manifest gives its digest (``Docker-Content-Digest``).  When the
local image already records that digest for the repository (its RepoDigests), a pull
would change nothing.  Otherwise the manifest is fetched (the platform's manifest when the
tag is an index) and its config digest, the image ID a pull would produce, is compared
with the local image's ID: that is how the modules decide ``changed`` after a real pull.

Uses the SDK's own registry client, so daemon.json's insecure registries, mirrors,
``certs.d`` CAs and stored credentials apply as they do to a pull.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PullPrediction:
    """The registry's answer for one reference."""

    digest: str                 # the tag's manifest (or index) digest
    image_id: str | None        # the config digest a pull would record (None: not fetched)
    changes: bool               # whether a pull would give the name another image ID


def predict_pull(engine: Any, name: str, local_id: str | None) -> PullPrediction:
    """Ask the registry what pulling ``name`` would do to a local image ``local_id``.

    Raises the SDK's errors of a pull (ImageNotFound for a missing tag, Unreachable, ...),
    so check mode fails where the real run would.
    """
    from sdk._internal.reference import parse_docker_ref
    from sdk.distribution.pull import new_client
    from sdk.distribution.transport import RegistryError, Unreachable
    from sdk.errors import ImageNotFound

    ref = parse_docker_ref(name)
    svc = engine.image_store
    client = new_client(svc, ref.domain, pool=1)
    try:
        while True:
            try:
                return _predict(svc, client, ref, local_id)
            except (ImageNotFound, Unreachable, RegistryError):
                if not client.on_mirror or not client.next_endpoint():
                    raise
    finally:
        client.close()


def _predict(svc: Any, client: Any, ref: Any, local_id: str | None) -> PullPrediction:
    from sdk.distribution.auth import scope_for
    from sdk.distribution.manifest import ACCEPT
    from sdk.distribution.pull import Puller

    reference = ref.tag or ref.digest
    what = f"manifest for {ref.familiar_string}"
    resp = client.request("HEAD", f"/v2/{ref.path}/manifests/{reference}",
                          scopes=(scope_for(ref.path, "pull"),), headers={"Accept": ACCEPT})
    with resp:
        if resp.status_code != 200:
            raise client.fail(resp, repository=ref.path, what=what)
        digest = resp.headers.get("Docker-Content-Digest", "")
    if local_id is not None and digest.startswith("sha256:") and \
            (ref.name, digest) in svc.repo_digests(local_id):
        return PullPrediction(digest, local_id, False)
    # another digest (or none in the answer): the image ID a pull would record decides
    puller = Puller(svc, client, ref, platform=None, progress=lambda _e: None, downloads=1)
    manifest, top_digest = puller.resolve(reference, what)
    image_id = manifest.config.digest if manifest.config is not None else None
    return PullPrediction(top_digest, image_id, image_id is None or image_id != local_id)
