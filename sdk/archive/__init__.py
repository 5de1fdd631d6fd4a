"""Image archives: ``berth save`` and ``berth load``.

``save`` writes what Docker 25+ writes: an OCI image layout (``oci-layout``,
``index.json``, ``blobs/sha256/...``) that is also a classic ``docker save`` archive
(``manifest.json`` and ``repositories`` pointing into ``blobs/``), layers uncompressed,
streamed, byte-for-byte deterministic.

``load`` reads ``docker save`` output (old ``<id>/layer.tar`` and new layouts),
skopeo's ``docker-archive:`` and OCI layouts/archives (``oci:``/``oci-archive:``), whole
archives compressed or not; every blob digest and DiffID is verified before anything is
recorded, and an image keeps its exact config bytes, so its ID survives the trip, and
the archive's image manifest when it has one (so ``push`` re-creates that digest).
``Parent`` links of ``docker save`` (commit/build parents) survive both ways when the
parent is in the same archive, as in Docker.  Rows are written through
``sdk.images.records``, shared with ``ImageService``.

Modules: ``media`` (media types), ``tarout`` (deterministic tar headers), ``save``,
``stage`` (spooling an input archive safely), ``formats`` (manifest.json / index.json
-> what to load), ``load`` (verify, unpack, record).
"""
