"""The Docker Engine API served over a unix socket by ``berth daemon``.

Everything here maps HTTP onto the same SDK the CLI uses; the service adds no
behaviour of its own beyond keeping the engine warm and brokering streams.
"""
