"""``berth info``, ``version``, ``system df``, ``system prune``."""

from __future__ import annotations

import sys
from typing import Any

from sdk.cli.common import confirm, engine, print_json, render_format
from sdk.cli.flags import Flag, Spec, parse

INFO = Spec("info", "info [OPTIONS]",
            [Flag("format", "f", "str", help="Format output using a custom template")],
            max_args=0, summary="Display system-wide information")
VERSION = Spec("version", "version [OPTIONS]",
               [Flag("format", "f", "str", help="Format output using a custom template")],
               max_args=0, summary="Show the berth version information")


def cmd_info(argv: list[str]) -> int:
    opts, _ = parse(INFO, argv)
    info = engine().info()
    if opts["format"]:
        if opts["format"] == "json":
            print_json(info)
            return 0
        sys.stdout.write(render_format(opts["format"], [info], {}, ""))
        return 0
    lines = [
        "Server:",
        f" Containers: {info['Containers']}",
        f"  Running: {info['ContainersRunning']}",
        f"  Paused: {info['ContainersPaused']}",
        f"  Stopped: {info['ContainersStopped']}",
        f" Images: {info['Images']}",
        f" Server Version: {info['ServerVersion']}",
        f" Storage Driver: {info['Driver']}",
    ] + [f"  {k}: {v}" for k, v in info["DriverStatus"]] + [
        f" Logging Driver: {info['LoggingDriver']}",
        f" Cgroup Driver: {info['CgroupDriver']}",
        f" Cgroup Version: {info['CgroupVersion']} ({info['CgroupMode']})",
        " Security Options:",
    ] + [f"  {o.split(',')[0].replace('name=', '')}" for o in info["SecurityOptions"]] + [
        f" Kernel Version: {info['KernelVersion']}",
        f" Operating System: {info['OperatingSystem']}",
        f" OSType: {info['OSType']}",
        f" Architecture: {info['Architecture']}",
        f" CPUs: {info['NCPU']}",
        f" Total Memory: {info['MemTotal'] / 1024 ** 3:.2f}GiB",
        f" Name: {info['Name']}",
        f" ID: {info['ID']}",
        f" Berth Root Dir: {info['DockerRootDir']}",
        f" Config File: {info['ConfigFile']}",
        " Insecure Registries:",
    ] + [f"  {r}" for r in info["InsecureRegistries"]]
    if info["RegistryMirrors"]:
        lines += [" Registry Mirrors:"] + [f"  {m}" for m in info["RegistryMirrors"]]
    print("\n".join(lines))
    return 0


def cmd_version(argv: list[str]) -> int:
    opts, _ = parse(VERSION, argv)
    import platform

    from sdk.cli import common
    from sdk.engine import API_VERSION, MIN_API_VERSION
    from sdk.engine import VERSION as V

    arch = platform.machine()
    mode = "service (berth daemon)" if common.SERVED_BY_DAEMON else "embedded"
    engine = {"Version": V, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
              "Os": "linux", "Arch": arch, "KernelVersion": platform.release(),
              "Python": platform.python_version(), "Mode": mode}
    client = {"Version": V, "ApiVersion": API_VERSION, "Os": "linux", "Arch": arch,
              "Python": platform.python_version()}
    # docker's shape ({{.Client.Version}}, {{.Server.APIVersion}}) and, for scripts
    # written against earlier berth, the engine's fields at the top level too
    data = {**engine, "Client": client,
            "Server": {**engine, "APIVersion": API_VERSION,
                       "MinAPIVersion": MIN_API_VERSION}}
    if opts["format"]:
        sys.stdout.write(render_format(opts["format"], [data], {}, ""))
        return 0
    print(f"Client:\n Version:        {V}\n API version:    {API_VERSION}\n"
          f" Python version: {client['Python']}\n OS/Arch:        linux/{arch}\n\n"
          f"Server: berth engine\n Engine:\n  Version:        {V}\n"
          f"  API version:    {API_VERSION} (minimum version {MIN_API_VERSION})\n"
          f"  OS/Arch:        linux/{arch}\n  Kernel:         {engine['KernelVersion']}\n"
          f"  Mode:           {mode}")
    return 0


DF = Spec("system df", "system df [OPTIONS]",
          [Flag("verbose", "v", help="Show detailed information on space usage"),
           Flag("format", kind="str", help="Format output using a custom template")],
          max_args=0)
PRUNE = Spec("system prune", "system prune [OPTIONS]",
             [Flag("all", "a", help="Remove all unused images not just dangling ones"),
              Flag("force", "f", help="Do not prompt for confirmation"),
              Flag("volumes", help="Prune anonymous volumes")], max_args=0)


def disk_usage(eng: Any) -> list[dict[str, Any]]:
    from sdk._internal.units import human_size

    images = eng.image_store.summaries()
    docs = eng.tasks.all()
    used_images = {d["Image"] for d in docs}
    # image layers are shared: count each layer once
    layer_rows = eng.db.query("SELECT chain_id, size FROM layers")
    layers_total = sum(r["size"] for r in layer_rows)
    used_layers = {r["chain_id"] for r in eng.db.query(
        "SELECT DISTINCT il.chain_id FROM image_layers il JOIN containers c "
        "ON c.image_id = il.image_id")}
    reclaim_layers = sum(r["size"] for r in layer_rows if r["chain_id"] not in used_layers)
    c_sizes = {d["Id"]: eng.layer_store.container_size(d["Id"]) for d in docs}
    running = [d for d in docs if d["State"]["Status"] in ("running", "paused")]
    vols = eng.volume_store.list()
    v_sizes = {v["Name"]: eng.volume_store.size(v["Name"]) for v in vols}
    active_vols = {v for v in v_sizes if eng.volume_store.users(v)}

    def pct(part: int, whole: int) -> str:
        return f"{human_size(part)} ({part * 100 // whole if whole else 0}%)"

    return [
        {"Type": "Images", "TotalCount": str(len(images)),
         "Active": str(len([i for i in images if i["Id"] in used_images])),
         "Size": human_size(layers_total), "Reclaimable": pct(reclaim_layers, layers_total)},
        {"Type": "Containers", "TotalCount": str(len(docs)), "Active": str(len(running)),
         "Size": human_size(sum(c_sizes.values())),
         "Reclaimable": pct(sum(s for c, s in c_sizes.items()
                                if c not in {d["Id"] for d in running}),
                            sum(c_sizes.values()))},
        {"Type": "Local Volumes", "TotalCount": str(len(vols)),
         "Active": str(len(active_vols)), "Size": human_size(sum(v_sizes.values())),
         "Reclaimable": pct(sum(s for v, s in v_sizes.items() if v not in active_vols),
                            sum(v_sizes.values()))},
        {"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B",
         "Reclaimable": "0B"},
    ]


def cmd_system(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("Usage:  berth system COMMAND\n\nCommands:\n  df   info   prune")
        return 0
    sub, rest = argv[0], argv[1:]
    if sub == "info":
        return cmd_info(rest)
    if sub == "df":
        opts, _ = parse(DF, rest)
        rows = disk_usage(engine())
        sys.stdout.write(render_format(
            opts["format"] or "", rows,
            {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
             "Reclaimable": "RECLAIMABLE"},
            "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"))
        return 0
    if sub == "prune":
        opts, _ = parse(PRUNE, rest)
        if not opts["force"] and not confirm(
                "WARNING! This will remove:\n  - all stopped containers\n"
                "  - all dangling images" +
                ("\n  - anonymous volumes not used by a container" if opts["volumes"] else "")):
            return 0
        from sdk._internal.units import human_size

        eng = engine()
        repaired = eng.repair()
        space = 0
        result = eng.containers.prune()
        space += result["SpaceReclaimed"]
        for cid in result["ContainersDeleted"] or []:
            print(f"Deleted Container: {cid}")
        if opts["volumes"]:
            vres = eng.volumes.prune()
            space += vres["SpaceReclaimed"]
        ires = eng.images.prune({"dangling": ["false" if opts["all"] else "true"]})
        space += ires["SpaceReclaimed"]
        for line in repaired:
            print(f"Repaired: {line}")
        print(f"Total reclaimed space: {human_size(space)}")
        return 0
    print(f"berth: 'system {sub}' is not a berth command.", file=sys.stderr)
    return 125
