"""Container commands: run, create, start, stop, kill, rm, logs, exec, ..."""

from __future__ import annotations

import os
import sys
from typing import Any

from sdk.cli.common import confirm, engine
from sdk.cli.flags import Flag, Spec, UsageError, parse
from sdk.cli.runflags import CREATE, RUN, to_kwargs


def _create(opts: dict[str, Any], args: list[str], *, detach: bool) -> tuple[Any, dict]:
    image, command = args[0], args[1:] or None
    kwargs = to_kwargs(opts)
    pull = opts.get("pull") or "missing"
    if pull not in ("always", "missing", "never"):
        raise UsageError(f'invalid pull option: "{pull}": must be one of "always", '
                         '"missing" or "never"')
    from sdk._internal import trace

    trace.mark("parse")
    eng = engine()
    eng.db.conn   # noqa: B018 - opened here, so the trace below shows the image lookup alone
    trace.mark("engine + database")
    from sdk.cli.remote import run_pull_hooks

    eng.image_store.ensure_local(image, pull, **run_pull_hooks(bool(opts.get("quiet")),
                                                               opts.get("platform")))
    trace.mark("engine + image")
    doc = eng.container_store.create(image, command, detach=detach, **kwargs)
    trace.mark("create record")
    if opts.get("cidfile"):
        _write_cidfile(opts["cidfile"], doc["Id"])
    return eng, doc


def _write_cidfile(path: str, cid: str) -> None:
    if os.path.exists(path):
        raise UsageError(f"container ID file found, make sure the other container isn't "
                         f"running or delete {path}")
    with open(path, "w") as f:
        f.write(cid)


def cmd_create(argv: list[str]) -> int:
    opts, args = parse(CREATE, argv)
    _, doc = _create(opts, args, detach=True)
    print(doc["Id"])
    return 0


def cmd_run(argv: list[str]) -> int:
    opts, args = parse(RUN, argv)
    detach = bool(opts.get("detach"))
    if detach and opts.get("rm") and opts.get("restart") not in (None, "", "no"):
        raise UsageError("Conflicting options: --restart and --rm")
    eng, doc = _create(opts, args, detach=detach)
    cid = doc["Id"]
    if detach:
        eng.tasks.start(cid)
        print(cid)
        return 0
    from sdk.tasks.supervisor import Terminal

    tty = bool(opts.get("tty"))
    interactive = bool(opts.get("interactive"))
    if tty and interactive and not os.isatty(0):
        raise UsageError("the input device is not a TTY")
    term = Terminal(stdout=1, stderr=2, stdin=0 if interactive else None,
                    proxy_signals=bool(opts.get("sig_proxy")) and not tty)
    saved = None
    if tty and interactive:
        import termios
        import tty as tty_mod

        saved = termios.tcgetattr(0)
        tty_mod.setraw(0)
    try:
        return eng.tasks.run_attached(cid, term)
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved)


START = Spec("start", "start [OPTIONS] CONTAINER [CONTAINER...]",
             [Flag("attach", "a", help="Attach STDOUT/STDERR and forward signals"),
              Flag("interactive", "i", help="Attach container's STDIN"),
              Flag("detach-keys", kind="str", help="Override the detach key sequence")],
             min_args=1, summary="Start one or more stopped containers")


def cmd_start(argv: list[str]) -> int:
    opts, args = parse(START, argv)
    eng = engine()
    if opts["attach"]:
        if len(args) > 1:
            raise UsageError("you cannot start and attach multiple containers at once")
        doc = eng.tasks.get(args[0])
        eng.tasks.start(doc["Id"])
        return _follow_until_exit(eng, doc["Id"])
    failed = 0
    for ref in args:
        try:
            eng.tasks.start(ref)
            print(ref)
        except Exception as exc:  # noqa: BLE001 - report each, docker-style
            from sdk.errors import SdkError

            if not isinstance(exc, SdkError):
                raise
            print(f"Error response from daemon: {exc}", file=sys.stderr)
            failed += 1
    if failed:
        print("Error: failed to start containers: " + ", ".join(args), file=sys.stderr)
        return 1
    return 0


def _follow_until_exit(eng: Any, cid: str, since: float | None = None) -> int:
    import time

    from sdk.tasks.logview import log_lines

    for stream, data in log_lines(eng, cid, since=since if since is not None else
                                  time.time() - 0.5, follow=True):
        fd = 1 if stream == "stdout" else 2
        os.write(fd, data)
    return int(eng.tasks.wait(cid)["StatusCode"])


def _each(argv: list[str], spec: Spec, action: Any) -> int:
    opts, args = parse(spec, argv)
    eng = engine()
    failed = False
    from sdk.errors import SdkError

    for ref in args:
        try:
            out = action(eng, ref, opts)
            print(out if out is not None else ref)
        except SdkError as exc:
            print(f"Error response from daemon: {exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


STOP = Spec("stop", "stop [OPTIONS] CONTAINER [CONTAINER...]",
            [Flag("time", "t", "int", help="Seconds to wait before killing the container"),
             Flag("timeout", kind="int", help="Alias of --time"),
             Flag("signal", "s", "str", help="Signal to send to the container")],
            min_args=1, summary="Stop one or more running containers")


def cmd_stop(argv: list[str]) -> int:
    return _each(argv, STOP, lambda e, r, o: e.tasks.stop(
        r, o["time"] if o["time"] is not None else o["timeout"], o["signal"]))


RESTART = Spec("restart", "restart [OPTIONS] CONTAINER [CONTAINER...]",
               [Flag("time", "t", "int", help="Seconds to wait before killing the container")],
               min_args=1, summary="Restart one or more containers")


def cmd_restart(argv: list[str]) -> int:
    return _each(argv, RESTART, lambda e, r, o: e.tasks.restart(r, o["time"]))


KILL = Spec("kill", "kill [OPTIONS] CONTAINER [CONTAINER...]",
            [Flag("signal", "s", "str", default="KILL", help="Signal to send")],
            min_args=1, summary="Kill one or more running containers")


def cmd_kill(argv: list[str]) -> int:
    return _each(argv, KILL, lambda e, r, o: e.tasks.kill(r, o["signal"]))


PAUSE = Spec("pause", "pause CONTAINER [CONTAINER...]", [], min_args=1)
UNPAUSE = Spec("unpause", "unpause CONTAINER [CONTAINER...]", [], min_args=1)


def cmd_pause(argv: list[str]) -> int:
    return _each(argv, PAUSE, lambda e, r, o: e.tasks.pause(r))


def cmd_unpause(argv: list[str]) -> int:
    return _each(argv, UNPAUSE, lambda e, r, o: e.tasks.unpause(r))


RM = Spec("rm", "rm [OPTIONS] CONTAINER [CONTAINER...]",
          [Flag("force", "f", help="Force the removal of a running container (uses SIGKILL)"),
           Flag("volumes", "v", help="Remove anonymous volumes associated with the container"),
           Flag("link", "l", help="Remove the specified link")],
          min_args=1, summary="Remove one or more containers")


def cmd_rm(argv: list[str]) -> int:
    opts, args = parse(RM, argv)
    eng = engine()
    from sdk.errors import ContainerNotFound, SdkError

    failed = False
    for ref in args:
        try:
            eng.tasks.remove(ref, force=opts["force"], volumes=opts["volumes"])
            print(ref)
        except ContainerNotFound as exc:
            if opts["force"]:
                continue
            print(f"Error response from daemon: {exc}", file=sys.stderr)
            failed = True
        except SdkError as exc:
            print(f"Error response from daemon: {exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def cmd_container_prune(argv: list[str]) -> int:
    spec = Spec("container prune", "container prune [OPTIONS]",
                [Flag("force", "f", help="Do not prompt for confirmation"),
                 Flag("filter", kind="list", help="Provide filter values")], max_args=0)
    opts, _ = parse(spec, argv)
    if not opts["force"] and not confirm("WARNING! This will remove all stopped containers."):
        return 0
    from sdk._internal.filters import parse_filters

    result = engine().containers.prune(parse_filters(opts["filter"], {"label", "until"}))
    from sdk._internal.units import human_size

    if result["ContainersDeleted"]:
        print("Deleted Containers:")
        for cid in result["ContainersDeleted"]:
            print(cid)
        print()
    print(f"Total reclaimed space: {human_size(result['SpaceReclaimed'])}")
    return 0


WAIT = Spec("wait", "wait CONTAINER [CONTAINER...]", [], min_args=1,
            summary="Block until one or more containers stop, then print their exit codes")


def cmd_wait(argv: list[str]) -> int:
    return _each(argv, WAIT, lambda e, r, o: e.tasks.wait(r)["StatusCode"])


RENAME = Spec("rename", "rename CONTAINER NEW_NAME", [], min_args=2, max_args=2)


def cmd_rename(argv: list[str]) -> int:
    _, args = parse(RENAME, argv)
    engine().container_store.rename(args[0], args[1])
    return 0


LOGS = Spec("logs", "logs [OPTIONS] CONTAINER",
            [Flag("follow", "f", help="Follow log output"),
             Flag("since", kind="str", help="Show logs since timestamp or relative (42m)"),
             Flag("until", kind="str", help="Show logs before a timestamp or relative"),
             Flag("tail", "n", "str", default="all", help="Number of lines from the end"),
             Flag("timestamps", "t", help="Show timestamps"),
             Flag("details", help="Show extra details provided to logs")],
            min_args=1, max_args=1, summary="Fetch the logs of a container")


def cmd_logs(argv: list[str]) -> int:
    opts, args = parse(LOGS, argv)
    from sdk.tasks.logview import log_lines

    eng = engine()
    for stream, data in log_lines(eng, args[0], timestamps=opts["timestamps"],
                                  tail=opts["tail"], since=opts["since"],
                                  until=opts["until"], follow=opts["follow"]):
        os.write(1 if stream == "stdout" else 2, data)
    return 0


EXEC = Spec("exec", "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
            [Flag("detach", "d", help="Detached mode: run command in the background"),
             Flag("env", "e", "list", help="Set environment variables"),
             Flag("env-file", kind="list", help="Read in a file of environment variables"),
             Flag("interactive", "i", help="Keep STDIN open even if not attached"),
             Flag("tty", "t", help="Allocate a pseudo-TTY"),
             Flag("user", "u", "str", help="Username or UID"),
             Flag("workdir", "w", "str", help="Working directory inside the container"),
             Flag("privileged", help="Give extended privileges to the command"),
             Flag("detach-keys", kind="str", help="Override the detach key sequence")],
            interspersed=False, min_args=2, summary="Execute a command in a running container")


def cmd_exec(argv: list[str]) -> int:
    from sdk.cli.runflags import _expand_env, _read_env_files

    opts, args = parse(EXEC, argv)
    eng = engine()
    env = _read_env_files(opts["env_file"]) + _expand_env(opts["env"])
    common = {"user": opts["user"], "env": env, "workdir": opts["workdir"],
              "privileged": opts["privileged"]}
    if opts["detach"]:
        return eng.tasks.exec(args[0], args[1:], detach=True, stdout=None, stderr=None,
                              **common)
    if opts["tty"]:
        if opts["interactive"] and not os.isatty(0):
            raise UsageError("the input device is not a TTY")
        return eng.tasks.exec_tty(args[0], args[1:], interactive=opts["interactive"],
                                  **common)
    return eng.tasks.exec(args[0], args[1:], stdin=0 if opts["interactive"] else None,
                          **common)


ATTACH = Spec("attach", "attach [OPTIONS] CONTAINER",
              [Flag("no-stdin", help="Do not attach STDIN"),
               Flag("sig-proxy", default=True, help="Proxy all received signals"),
               Flag("detach-keys", kind="str", help="Override the detach key sequence")],
              min_args=1, max_args=1,
              summary="Attach local standard input, output, and error streams to a "
                      "running container")


def cmd_attach(argv: list[str]) -> int:
    opts, args = parse(ATTACH, argv)
    eng = engine()
    doc = eng.tasks.get(args[0])
    eng.tasks.running_pid(doc)
    from sdk.tasks.attach import attach

    return attach(eng, doc["Id"], stdin=not opts["no_stdin"],
                  detach_keys=opts["detach_keys"])


TOP = Spec("top", "top CONTAINER [ps OPTIONS]", [], interspersed=False, min_args=1)


def cmd_top(argv: list[str]) -> int:
    _, args = parse(TOP, argv)
    from sdk.cli.table import render_table

    result = engine().tasks.top(args[0], " ".join(args[1:]) or "-ef")
    sys.stdout.write(render_table(result["Titles"], result["Processes"], minwidth=20))
    return 0


STATS = Spec("stats", "stats [OPTIONS] [CONTAINER...]",
             [Flag("all", "a", help="Show all containers (default shows just running)"),
              Flag("no-stream", help="Disable streaming stats and only pull the first result"),
              Flag("no-trunc", help="Do not truncate output"),
              Flag("format", kind="str", help="Format output using a custom template")])


def cmd_stats(argv: list[str]) -> int:
    opts, args = parse(STATS, argv)
    from sdk.cli.stats import show_stats

    return show_stats(engine(), args, all_containers=opts["all"],
                      stream=not opts["no_stream"], fmt=opts["format"] or "",
                      no_trunc=opts["no_trunc"])


DIFF = Spec("diff", "diff CONTAINER", [], min_args=1, max_args=1,
            summary="Inspect changes to files or directories on a container's filesystem")


def cmd_diff(argv: list[str]) -> int:
    _, args = parse(DIFF, argv)
    from sdk.tasks.fsops import container_changes

    for change in container_changes(engine(), args[0]):
        print(f"{change.kind} {change.path}")
    return 0


EXPORT = Spec("export", "export [OPTIONS] CONTAINER",
              [Flag("output", "o", "str", help="Write to a file, instead of STDOUT")],
              min_args=1, max_args=1,
              summary="Export a container's filesystem as a tar archive")


def cmd_export(argv: list[str]) -> int:
    opts, args = parse(EXPORT, argv)
    from sdk.tasks.fsops import export_container

    eng = engine()
    if opts["output"]:
        tmp = opts["output"] + ".berth-tmp"
        try:
            with open(tmp, "wb") as f:
                export_container(eng, args[0], f)
            os.replace(tmp, opts["output"])
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return 0
    if os.isatty(1):
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or "
                         "redirect")
    with os.fdopen(os.dup(1), "wb") as out:
        export_container(eng, args[0], out)
    return 0

