"""berth as a client of registries: pull, push, login, search (Registry HTTP API v2 / OCI).

Only the commands that talk to a registry import this package's network modules, so
``requests`` never loads at CLI start-up.  Modules, one job each:

* ``manifest``    media types, manifest/index parsing and validation, platform choice
* ``auth``        WWW-Authenticate parsing, Basic and Bearer with a token cache
* ``credentials`` a docker ``config.json``-compatible store (+ docker-credential-*)
* ``transport``   endpoints (mirrors, insecure registries, CAs), requests, errors
* ``pull`` / ``push`` / ``search``  the operations
"""
