"""The two ways a deletion is written down.

OCI layer tars use files: ``.wh.NAME`` deletes NAME from the layers below,
``DIR/.wh..wh..opq`` hides everything the layers below have in DIR.  Overlayfs uses a
0/0 character device named NAME and the xattr ``trusted.overlay.opaque=y`` on DIR.
"""

from __future__ import annotations

import os
import stat

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
#: xattrs that steer overlayfs itself: never taken from, nor written into, a layer tar
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
#: upper-dir xattrs meaning "content lives elsewhere": a plain tar of the upper is wrong
OVERLAY_INDIRECT_XATTRS = ("trusted.overlay.redirect", "trusted.overlay.metacopy")


def is_overlay_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str | int) -> bool:
    """Whether directory ``path`` (a path, or an fd not opened with O_PATH) is opaque."""
    try:
        value = os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) if isinstance(
            path, str) else os.getxattr(path, OPAQUE_XATTR)
    except OSError:
        return False
    return value == b"y"


def is_overlay_xattr(name: str) -> bool:
    return name.startswith(OVERLAY_XATTR_PREFIXES)
