"""berth's registry server (OCI distribution-spec 1.1 + Docker Registry v2).

Importing this package is cheap; aiohttp, bcrypt and PyYAML load when a server starts
or a config file is read.
"""

from sdk.registry.config import RegistryConfig, load_config
from sdk.registry.server import RegistryServer

__all__ = ["RegistryConfig", "RegistryServer", "load_config"]
