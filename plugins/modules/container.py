#!/usr/bin/python
# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: container
short_description: Manage berth containers
version_added: 0.1.0
description:
  - Creates, re-creates, starts, stops, restarts and removes containers of the berth engine.
  - An existing container is compared with the task option by option; the expected values
    are what the engine itself would build from the task and the image, so defaults that
    come from the image (env, labels, volumes, working dir, user...) never count as
    differences. Only options the task sets are compared.
  - When a container is re-created, RV(msg), RV(differences) and the diff name every
    differing option with its expected and actual value.
  - The image is compared by ID, so a re-tagged or newly imported image re-creates the
    container.
author:
  - berth developers
extends_documentation_fragment:
  - berth.engine.engine
  - berth.engine.attributes
  - berth.engine.attributes.actiongroup_engine
attributes:
  check_mode:
    support: full
    details:
      - A pull (O(pull=always), or a missing image) is predicted by asking the registry
        which image the tag names (a C(HEAD) of the manifest, the manifest when its
        digest is not the local image's); nothing is downloaded.
  diff_mode:
    support: full
  idempotent:
    support: partial
    details:
      - Not idempotent with O(state=restarted), O(recreate=true), O(restart=true), or
        O(detach=false) (the command runs again).
options:
  name:
    description: Name of the container.
    type: str
    required: true
  image:
    description:
      - Image reference or ID. Needed to create the container; when omitted for an
        existing container, its image is not compared.
    type: str
  state:
    description:
      - V(absent) removes the container.
      - V(present) makes it exist with this configuration; a re-created container is
        started again when the old one was running.
      - V(created) makes it exist; a new or re-created container is not started.
      - V(started) makes it exist and run.
      - V(stopped) makes it exist and not run.
      - V(restarted) makes it exist and restarts it (starts it when stopped).
      - V(healthy) is V(started), then waits up to O(healthy_wait_timeout) seconds for its
        health check to pass.
    type: str
    choices: [absent, present, created, started, stopped, restarted, healthy]
    default: started
  pull:
    description:
      - V(missing) pulls the image when it is not local, V(always) pulls it on every run,
        V(never) uses only local images.
      - Pulling needs a berth version whose SDK can pull; without it the task says so.
    type: str
    choices: [missing, always, never]
    default: missing
  comparisons:
    description:
      - How each option is compared with the existing container, by option name, with
        V(strict), V(ignore) or V(allow_more_present) (for set and dict options, the
        container may have more entries). C(*) sets the mode of every option not named.
      - Every option defaults to V(strict); C(image) can be named too.
    type: dict
  recreate:
    description: Re-create the container even when nothing differs.
    type: bool
    default: false
  restart:
    description: Restart a running container even when nothing differs.
    type: bool
    default: false
  force_kill:
    description: Kill the container instead of stopping it gracefully.
    type: bool
    default: false
  keep_volumes:
    description: Keep the anonymous volumes of a removed container.
    type: bool
    default: true
  detach:
    description:
      - V(false) runs the container in the foreground, waits for it to exit and returns
        RV(status) (and the output with O(output_logs)); a non-zero exit fails the task.
    type: bool
    default: true
  output_logs:
    description: With O(detach=false), return the container's output in C(container.Output).
    type: bool
    default: false
  healthy_wait_timeout:
    description: Seconds O(state=healthy) waits for the health check to pass.
    type: float
    default: 300
  command:
    description: Command (a string split like a shell would, or a list), replacing the image's C(CMD).
    type: raw
  entrypoint:
    description: Entrypoint (a string or a list), replacing the image's C(ENTRYPOINT).
    type: raw
  env:
    description:
      - Environment variables, merged over the image's. Values become strings (V(true) becomes C("true")).
    type: dict
  env_file:
    description: A file of C(KEY=VALUE) lines, read on the managed host; O(env) wins over it.
    type: path
  labels:
    description: Labels, merged over the image's.
    type: dict
  user:
    description: User (and group), as C(name), C(uid) or C(uid:gid).
    type: str
  working_dir:
    description: Working directory.
    type: str
  hostname:
    description: Host name; a dotted name also sets the domain name.
    type: str
  volumes:
    description:
      - Volumes as C(name:/path[:opts]), C(/host/dir:/path[:opts]) or C(/path) (anonymous),
        with options like C(ro), C(rw), C(nocopy) and propagation modes.
    type: list
    elements: str
  mounts:
    description: Mounts, as C(berth run --mount) takes them.
    type: list
    elements: dict
    suboptions:
      type:
        description: Mount type.
        type: str
        choices: [bind, volume, tmpfs]
        default: volume
      source:
        description: Volume name or host path (empty for an anonymous volume or tmpfs).
        type: str
      target:
        description: Path in the container.
        type: str
        required: true
      read_only:
        description: Mount read-only.
        type: bool
      propagation:
        description: Bind propagation.
        type: str
        choices: [shared, slave, private, rshared, rslave, rprivate]
      no_copy:
        description: Do not copy image content into a new volume.
        type: bool
      tmpfs_size:
        description: Size of a tmpfs mount, like C(64m).
        type: str
      tmpfs_mode:
        description: Octal mode of a tmpfs mount, like C(1777).
        type: str
  memory:
    description: Memory limit, like C(64m) or C(1g).
    type: str
  memory_swap:
    description: Memory plus swap limit (C(-1) is unlimited).
    type: str
  memory_reservation:
    description: Memory soft limit.
    type: str
  cpus:
    description: Number of CPUs, like C(0.5).
    type: float
  cpu_shares:
    description: CPU shares (relative weight).
    type: int
  cpuset_cpus:
    description: CPUs the container may use, like C(0-1).
    type: str
  pids_limit:
    description: Maximum number of processes (C(-1) is unlimited).
    type: int
  restart_policy:
    description: Restart policy.
    type: str
    choices: ['no', always, on-failure, unless-stopped]
  restart_retries:
    description: Maximum restarts with O(restart_policy=on-failure).
    type: int
  healthcheck:
    description: Health check, replacing the image's C(HEALTHCHECK) values it names.
    type: dict
    suboptions:
      test:
        description:
          - Command, as a string (run by the container's shell), a list like
            C([CMD, /bin/check]) or C([CMD-SHELL, "check || exit 1"]), or C(NONE) to disable
            the image's check.
        type: raw
      interval:
        description: Time between checks, like C(30s) or C(1m30s).
        type: str
      timeout:
        description: Time a check may take.
        type: str
      start_period:
        description: Start-up time during which failures do not count.
        type: str
      start_interval:
        description: Time between checks during the start period.
        type: str
      retries:
        description: Consecutive failures before the container is unhealthy.
        type: int
  capabilities:
    description: Capabilities to add, like C(NET_ADMIN) (C(ALL) for all).
    type: list
    elements: str
  cap_drop:
    description: Capabilities to drop.
    type: list
    elements: str
  privileged:
    description: Run privileged.
    type: bool
  read_only:
    description: Mount the root filesystem read-only.
    type: bool
  tmpfs:
    description: tmpfs mounts as C(/path[:options]).
    type: list
    elements: str
  ulimits:
    description: Resource limits as C(name=soft[:hard]), like C(nofile=1024:2048).
    type: list
    elements: str
  network_mode:
    description: Network mode, like C(none), C(host), C(bridge) or C(container:NAME).
    type: str
  published_ports:
    description:
      - Published ports as C([ip:][host_port:]container_port[/proto]).
      - Needs a berth version with bridge networking.
    type: list
    elements: str
    aliases: [ports]
  stop_signal:
    description: Signal that stops the container, like C(SIGTERM).
    type: str
  stop_timeout:
    description: Seconds to wait after the stop signal before killing (also used by this task when it stops the container).
    type: int
  log_driver:
    description: Log driver (C(json-file), C(local) or C(none)).
    type: str
  log_options:
    description: Log driver options, like C(max-size) and C(max-file).
    type: dict
  sysctls:
    description: Namespaced kernel parameters.
    type: dict
  dns_servers:
    description: DNS servers.
    type: list
    elements: str
  etc_hosts:
    description: Extra C(/etc/hosts) entries, host name to address.
    type: dict
  devices:
    description: Host devices, as C(/dev/host[:/dev/container[:rwm]]).
    type: list
    elements: str
  shm_size:
    description: Size of C(/dev/shm), like C(64m).
    type: str
  security_opts:
    description: Security options, like C(no-new-privileges).
    type: list
    elements: str
  groups:
    description: Additional groups of the container's process.
    type: list
    elements: str
  oom_score_adj:
    description: OOM score adjustment (-1000 to 1000).
    type: int
  cgroup_parent:
    description: Parent cgroup.
    type: str
  tty:
    description: Allocate a terminal.
    type: bool
  interactive:
    description: Keep standard input open.
    type: bool
  auto_remove:
    description: Remove the container when it exits.
    type: bool
notes:
  - When only resource limits (O(memory), O(memory_swap), O(memory_reservation), O(cpus),
    O(cpu_shares), O(cpuset_cpus), O(pids_limit)) or the restart policy differ, the
    container is updated in place, as C(docker update) does, and keeps running; any other
    difference re-creates it.
  - Networks other than O(network_mode) are not managed yet.
"""

EXAMPLES = r"""
- name: A web server with a named volume and limits
  berth.engine.container:
    name: web
    image: busybox:latest
    command: httpd -f -p 8080 -h /www
    volumes:
      - www:/www:ro
    memory: 64m
    pids_limit: 100
    restart_policy: unless-stopped
    labels:
      app: web

- name: Wait until it is healthy
  berth.engine.container:
    name: api
    image: myapi:1.2
    healthcheck:
      test: wget -q -O- http://127.0.0.1:8080/health
      interval: 5s
      retries: 3
    state: healthy
    healthy_wait_timeout: 60

- name: Ignore label drift, compare everything else strictly
  berth.engine.container:
    name: web
    image: busybox:latest
    labels:
      app: web
    comparisons:
      labels: allow_more_present

- name: Run a one-shot command and keep its output
  berth.engine.container:
    name: migrate
    image: myapi:1.2
    command: [/app/migrate, --yes]
    detach: false
    output_logs: true
  register: migrate

- name: Remove it, with its anonymous volumes
  berth.engine.container:
    name: migrate
    state: absent
    keep_volumes: false
"""

RETURN = r"""
container:
  description:
    - The container's inspect document after the task (before it, in check mode); empty
      when it is absent.
    - With O(detach=false) and O(output_logs=true), C(Output) holds its output.
  returned: always
  type: dict
  sample: {"Id": "3f1c...", "Name": "/web", "State": {"Status": "running"},
           "Config": {"Image": "busybox:latest"}, "HostConfig": {"Memory": 67108864}}
status:
  description: Exit code of a container run with O(detach=false).
  returned: when O(detach=false)
  type: int
  sample: 0
msg:
  description: What the task did; when it re-created the container, every differing
    option with its expected and actual value.
  returned: always
  type: str
  sample: 're-created container web: memory (expected 67108864, actual 33554432)'
differences:
  description: Options whose actual value differs from the task, each with expected and actual.
  returned: always
  type: list
  elements: dict
  sample: [{"option": "env.MODE", "expected": "prod", "actual": "dev"}]
actions:
  description: What the task did (would do, in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ["remove container web", "create container web", "start container web"]
"""

import time

from ansible_collections.berth.engine.plugins.module_utils.common import EngineModule
from ansible_collections.berth.engine.plugins.module_utils.compare import (
    ComparisonError,
    Difference,
    diff_result,
    differences,
    explain,
    resolve_modes,
)
from ansible_collections.berth.engine.plugins.module_utils.container_options import (
    OPTIONS,
    argument_spec,
    default_modes,
    given,
    sdk_kwargs,
)

RUNNING = ("running", "restarting", "paused")


class ContainerManager:
    def __init__(self, m):
        self.m = m
        self.p = m.params
        self.name = self.p["name"]
        self.engine = m.engine
        self.result = {"changed": False, "container": {}, "differences": []}
        self._image = None      # the image object read once per run (local_image)

    # ---- lookups ----------------------------------------------------------------------
    def find(self):
        from sdk.errors import NotFound

        try:
            return self.engine.containers.get(self.name)
        except NotFound:
            return None

    def local_image(self, ref):
        from sdk.errors import NotFound

        try:
            self._image = self.engine.images.get(ref)
        except NotFound:
            return None
        return self._image

    def local_image_id(self, ref):
        image = self.local_image(ref)
        return image.id if image is not None else None

    def image(self, existing):
        """(reference, local ID or None when check mode would pull it)."""
        from sdk.errors import InvalidArgument

        ref = self.p["image"]
        if ref is None:
            if existing is None:
                raise InvalidArgument(f"image is required to create container {self.name}")
            return existing.attrs["Config"].get("Image") or existing.attrs["Image"], \
                existing.attrs["Image"]
        image = self.local_image(ref)
        image_id = image.id if image is not None else None
        pull = self.p["pull"]
        if pull == "never" and image_id is None:
            raise InvalidArgument(f"image {ref} is not on the engine and pull=never")
        if pull == "always" or image_id is None:
            new_id = self.pull(ref, image_id)
            if new_id != image_id:
                image_id, self._image = new_id, None
        return ref, image_id

    def pull(self, ref, image_id):
        from sdk.errors import SdkError

        images = self.engine.images
        method = getattr(images, "pull", None)
        if method is None:
            raise SdkError(
                f"image {ref} is not on the engine and this berth version cannot pull "
                "(its SDK has no images.pull): import or load the image first"
                if image_id is None else
                "pull=always needs a berth version whose SDK can pull (no images.pull)")
        if self.m.check_mode:
            # the registry says which image a pull would bring (nothing is downloaded)
            from ansible_collections.berth.engine.plugins.module_utils.registry_digest import (
                predict_pull,
            )

            prediction = predict_pull(self.engine, ref, image_id)
            if not prediction.changes:
                return image_id
            self.m.actions.append(f"pull image {ref}")
            return prediction.image_id
        repository, tag = _split_tag(ref)
        pulled = method(repository, tag=tag)
        new_id = getattr(pulled, "id", None) or self.local_image_id(ref)
        if new_id != image_id:      # the same image again is no change (idempotent)
            self.m.actions.append(f"pull image {ref}")
        return new_id

    # ---- comparison ---------------------------------------------------------------------
    def expected(self, ref, image_id, kwargs):
        """(Config, HostConfig) the engine would build, or None when the image is not
        local (check mode predicting a pull): then only the image ID is compared."""
        from sdk.containers.options import build_configs

        image = self._image
        if image is None or image.id != image_id:
            image = self.local_image(image_id)
            if image is None:
                return None
        image_config = image.attrs.get("Config") or {}
        rest = {k: v for k, v in kwargs.items() if k != "command"}
        return build_configs(ref, image_config, kwargs.get("command"), rest)

    def compare(self, existing, image_ref, image_id, expected, modes):
        diffs = []
        attrs = existing.attrs
        if self.p["image"] is not None and modes["image"] != "ignore" and \
                image_id != attrs["Image"]:
            diffs.append(Difference(
                "image", f"{image_ref} ({image_id or 'to be pulled'})",
                f"{attrs['Config'].get('Image')} ({attrs['Image']})"))
        if expected is None:
            return diffs
        exp_config, exp_host = expected
        config, host = attrs.get("Config") or {}, attrs.get("HostConfig") or {}
        for option in OPTIONS:
            if not given(option, self.p) or modes[option.name] == "ignore":
                continue
            diffs += differences(option.name, option.read(exp_config, exp_host),
                                 option.read(config, host), option.kind, modes[option.name])
        return diffs

    # ---- actions ------------------------------------------------------------------------
    def stop(self, container, what="stop"):
        if self.p["force_kill"]:
            self.m.act(f"kill container {self.name}", lambda: _kill_wait(container))
        else:
            self.m.act(f"{what} container {self.name}",
                       lambda: container.stop(timeout=self.p["stop_timeout"]))

    def remove(self, container):
        running = container.status in RUNNING
        if running:
            self.stop(container)
        self.m.act(f"remove container {self.name}",
                   lambda: container.remove(v=not self.p["keep_volumes"], force=True))

    def create(self, image_ref, kwargs):
        command = kwargs.pop("command", None)
        kwargs = dict(kwargs, name=self.name, detach=self.p["detach"], pull="never")
        return self.m.act(f"create container {self.name}",
                          lambda: self.engine.containers.create(image_ref, command, **kwargs))

    def start(self, container):
        self.m.act(f"start container {self.name}",
                   (lambda: container.start()) if container is not None else None)

    # ---- states -------------------------------------------------------------------------
    def absent(self, existing):
        if existing is None:
            self.result["msg"] = f"container {self.name} is absent"
            return self.result
        self.remove(existing)
        self.result.update(changed=True, msg=f"removed container {self.name}")
        if self.m.module._diff:
            self.result["diff"] = {"before": {"name": self.name,
                                              "state": existing.status}, "after": {}}
        return self.result

    def present(self):
        from sdk.errors import InvalidArgument

        p = self.p
        try:
            modes = resolve_modes(p["comparisons"], dict(default_modes(), image="strict"))
        except ComparisonError as exc:
            raise InvalidArgument(str(exc))
        existing = self.find()
        if p["state"] == "absent":
            return self.absent(existing)
        image_ref, image_id = self.image(existing)
        kwargs = sdk_kwargs(p)
        if "stop_timeout" in kwargs and kwargs["stop_timeout"] is None:
            kwargs.pop("stop_timeout")
        # validate every option (and learn the expected config) before changing anything
        expected = self.expected(image_ref, image_id, kwargs) if image_id else None
        if expected is None and image_id and not self.m.check_mode:
            from sdk.errors import ImageNotFound

            raise ImageNotFound(f"image {image_ref} ({image_id}) is not on the engine")
        state = p["state"]
        container = existing
        was_running = existing is not None and existing.status in RUNNING
        created = False
        msgs = []
        if existing is not None:
            diffs = self.compare(existing, image_ref, image_id, expected, modes)
            self.result["differences"] = [
                {"option": d.option, "expected": d.expected, "actual": d.actual}
                for d in diffs]
            if diffs and not p["recreate"] and expected is not None and \
                    all(d.option in IN_PLACE for d in diffs):
                # limits and the restart policy change in place (docker update): the
                # container keeps running, with the same ID and the same processes
                host = expected[1]
                changes = {IN_PLACE[d.option]: host.get(IN_PLACE[d.option]) for d in diffs}
                if "PidsLimit" in changes and not changes["PidsLimit"]:
                    changes["PidsLimit"] = -1          # back to unlimited
                self.m.act(f"update container {self.name}",
                           lambda: self.engine.tasks.update(existing.id, changes))
                msgs.append(f"updated container {self.name} in place: {explain(diffs)}")
                if self.m.module._diff:
                    self.result["diff"] = diff_result(diffs)
            elif diffs or p["recreate"]:
                why = explain(diffs) if diffs else "recreate=true"
                self.remove(existing)
                container = self.create(image_ref, kwargs)
                created = True
                msgs.append(f"re-created container {self.name}: {why}")
                if self.m.module._diff:
                    self.result["diff"] = diff_result(diffs)
        else:
            container = self.create(image_ref, kwargs)
            created = True
            msgs.append(f"created container {self.name}")
            if self.m.module._diff:
                self.result["diff"] = {"before": {}, "after": {"name": self.name,
                                                               "image": image_ref}}
        running = was_running and not created
        if state == "present" and created and was_running:
            self.start(container)
            running = True
        elif state in ("started", "healthy", "restarted"):
            if not running:
                self.start(container)
                msgs.append(f"started container {self.name}")
            elif state == "restarted" or p["restart"]:
                self.m.act(f"restart container {self.name}",
                           lambda: container.restart(timeout=p["stop_timeout"]))
                msgs.append(f"restarted container {self.name}")
        elif state == "stopped" and running:
            self.stop(container)
            msgs.append(f"stopped container {self.name}")
        if self.m.actions:
            self.result["changed"] = True
        self.result["msg"] = "; ".join(msgs) or f"container {self.name} is up to date"
        if container is not None and not self.m.check_mode and self.m.actions:
            container.reload()
        if container is not None:
            self.result["container"] = container.attrs
        if not self.m.check_mode and container is not None:
            if state == "healthy":
                self.wait_healthy(container)
            if not p["detach"] and state in ("started", "restarted", "healthy") and \
                    "start container " + self.name in self.m.actions:
                self.wait_exit(container)
        return self.result

    def wait_healthy(self, container):
        from sdk.errors import SdkError

        deadline = time.monotonic() + self.p["healthy_wait_timeout"]
        while True:
            container.reload()
            health = (container.attrs["State"].get("Health") or {}).get("Status")
            if health is None:
                raise SdkError(f"container {self.name} has no health check: state=healthy "
                               "needs one (healthcheck option or the image's HEALTHCHECK)")
            if health == "healthy":
                self.result["container"] = container.attrs
                return
            if container.status not in RUNNING:
                raise SdkError(f"container {self.name} stopped while waiting for it to be "
                               f"healthy (exit code {container.attrs['State']['ExitCode']})")
            if time.monotonic() > deadline:
                raise SdkError(f"container {self.name} is still {health} after "
                               f"{self.p['healthy_wait_timeout']:g}s")
            time.sleep(0.2)

    def wait_exit(self, container):
        status = container.wait().get("StatusCode")
        self.result["status"] = status
        output = ""
        if self.p["output_logs"]:
            output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        try:
            container.reload()
            self.result["container"] = container.attrs
        except Exception:   # noqa: BLE001 - auto_remove containers are gone
            pass
        if self.p["output_logs"]:
            self.result["container"]["Output"] = output
        if status != 0:
            self.m.fail(f"container {self.name} exited with status {status}" +
                        (f": {output.strip()[-2000:]}" if output.strip() else ""),
                        status=status, container=self.result["container"], changed=True)


# options the engine changes on a live container (docker update) -> HostConfig key
IN_PLACE = {"memory": "Memory", "memory_swap": "MemorySwap",
            "memory_reservation": "MemoryReservation", "cpus": "NanoCpus",
            "cpu_shares": "CpuShares", "cpuset_cpus": "CpusetCpus", "pids_limit": "PidsLimit",
            "restart_policy": "RestartPolicy"}


def _kill_wait(container):
    container.kill()
    container.wait(timeout=10)
    container.reload()


def _split_tag(ref):
    name, sep, tag = ref.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return ref, None


def main():
    spec = argument_spec()
    spec.update({
        "name": {"type": "str", "required": True},
        "image": {"type": "str"},
        "state": {"type": "str", "default": "started",
                  "choices": ["absent", "present", "created", "started", "stopped",
                              "restarted", "healthy"]},
        "pull": {"type": "str", "default": "missing", "choices": ["missing", "always", "never"]},
        "comparisons": {"type": "dict"},
        "recreate": {"type": "bool", "default": False},
        "restart": {"type": "bool", "default": False},
        "force_kill": {"type": "bool", "default": False},
        "keep_volumes": {"type": "bool", "default": True},
        "detach": {"type": "bool", "default": True},
        "output_logs": {"type": "bool", "default": False},
        "healthy_wait_timeout": {"type": "float", "default": 300},
    })
    m = EngineModule(spec, supports_check_mode=True)
    m.run(lambda: ContainerManager(m).present())


if __name__ == "__main__":
    main()
