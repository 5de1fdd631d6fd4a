"""SELinux labels of a new container (``selinux-enabled: true`` in daemon.json).

As docker does with go-selinux: each container gets a process label
(``system_u:system_r:container_t:s0:cA,cB``) and a mount label (``container_file_t``) that
share fresh MCS categories no other container of this engine holds. ``--security-opt
label=...`` adjusts them: ``disable`` (no labels), ``user:``, ``role:``, ``type:``,
``level:`` for the process label and ``filetype:`` for the mount label. Privileged
containers run unlabelled (unconfined), as with docker.

The runtime applies them: the process label is written to /proc/thread-self/attr/exec
before execve, the mount label becomes the overlay rootfs's ``context=`` option.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from sdk.errors import InvalidArgument

LABEL_KEYS = ("user", "role", "type", "level", "filetype", "disable")


def label_options(security_opt: Sequence[str]) -> dict[str, str]:
    """``label=type:svirt_apache_t`` / ``label:disable`` -> {"type": "svirt_apache_t"}."""
    out: dict[str, str] = {}
    for opt in security_opt:
        key, _, value = opt.replace("=", ":", 1).partition(":")
        if key != "label":
            continue
        name, sep, arg = value.partition(":")
        if name not in LABEL_KEYS or (name == "disable") == bool(sep):
            raise InvalidArgument(f"invalid --security-opt {opt!r}: expected label=disable "
                                  "or label=user|role|type|level|filetype:VALUE")
        out[name] = arg
    return out


def _replace(context: str, **fields: str) -> str:
    user, role, kind, *level = context.split(":", 3)
    parts = {"user": user, "role": role, "type": kind, "level": level[0] if level else ""}
    parts.update({k: v for k, v in fields.items() if v})
    return ":".join(p for p in (parts["user"], parts["role"], parts["type"], parts["level"])
                    if p)


def container_labels(security_opt: Sequence[str], *, enabled: bool, privileged: bool,
                     in_use: Iterable[str],
                     fresh: Callable[[Iterable[str]], tuple[str, str]] | None = None,
                     ) -> tuple[str, str]:
    """(ProcessLabel, MountLabel) for a new container; ("", "") when SELinux is off."""
    opts = label_options(security_opt)          # bad options fail even without SELinux
    if not enabled or privileged or "disable" in opts:
        return "", ""
    if fresh is None:
        from sdk._internal.selinux import new_labels as fresh
    process, mount = fresh(in_use)
    level = opts.get("level", "")
    process = _replace(process, user=opts.get("user", ""), role=opts.get("role", ""),
                       type=opts.get("type", ""), level=level)
    mount = _replace(mount, type=opts.get("filetype", ""), level=level)
    return process, mount
