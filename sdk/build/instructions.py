"""Instructions that only change the image config (no layer): ENV, LABEL, ARG, CMD,
ENTRYPOINT, SHELL, USER, STOPSIGNAL, VOLUME, EXPOSE, ONBUILD, HEALTHCHECK, MAINTAINER.

Each records a history entry the way Docker's classic builder does
(``/bin/sh -c #(nop)  CMD ["sh"]``, ``empty_layer``), through ``StepBase._metadata``.
"""

from __future__ import annotations

import json
from typing import Any

from sdk.build import gofmt
from sdk.build.parser import DockerfileError, Instruction, name_values
from sdk.build.shellwords import process_word, process_words
from sdk.build.state import _NOT_ONBUILD, Stage
from sdk.build.steps import StepBase
from sdk.errors import SdkError


class MetadataSteps(StepBase):
    """Mixed into ``Builder``: the config-only instructions."""

    def _i_maintainer(self, stage: Stage, inst: Instruction) -> None:
        def change() -> None:
            stage.maintainer = inst.rest
        self._metadata(stage, f"MAINTAINER {inst.rest}", change)

    def _i_env(self, stage: Stage, inst: Instruction) -> None:
        pairs = name_values(inst)
        env_list = list(stage.config.get("Env") or [])
        parts = []
        env = self._env(stage)      # docker: one ENV line sees the values from before it
        for key, raw in pairs:
            value = process_word(raw or "", env, inst.escape)
            key = process_word(key, env, inst.escape)
            parts.append(f"{key}={value}")
            for i, item in enumerate(env_list):
                if item.partition("=")[0] == key:
                    env_list[i] = f"{key}={value}"
                    break
            else:
                env_list.append(f"{key}={value}")
            stage.config["Env"] = env_list

        self._metadata(stage, "ENV " + " ".join(parts), lambda: None)

    def _i_label(self, stage: Stage, inst: Instruction) -> None:
        labels = dict(stage.config.get("Labels") or {})
        parts = []
        env = self._env(stage)
        for key, raw in name_values(inst):
            k = process_word(key, env, inst.escape)
            v = process_word(raw or "", env, inst.escape)
            if not k:
                raise DockerfileError(inst.line, "LABEL names can not be blank")
            labels[k] = v
            parts.append(f"{k}={v}")
        self._metadata(stage, "LABEL " + " ".join(parts),
                       lambda: stage.config.__setitem__("Labels", labels))

    def _i_arg(self, stage: Stage, inst: Instruction) -> None:
        parts = []
        for key, raw in name_values(inst, allow_bare=True):
            default = None if raw is None else process_word(raw, self._env(stage),
                                                            inst.escape)
            if key in self.opts.buildargs:
                value: str | None = self.opts.buildargs[key]
                self.used_args.add(key)
            elif default is not None:
                value = default
            else:
                value = self.meta_args.get(key)
            stage.args[key] = value
            parts.append(key if default is None else f"{key}={default}")
        self._metadata(stage, "ARG " + " ".join(parts), lambda: None)

    def _i_cmd(self, stage: Stage, inst: Instruction) -> None:
        cmd = self._exec_or_shell(stage, inst)

        def change() -> None:
            stage.config["Cmd"] = cmd
            stage.cmd_set = True
        self._metadata(stage, f"CMD {gofmt.quote_list(cmd)}", change)

    def _i_entrypoint(self, stage: Stage, inst: Instruction) -> None:
        entry = self._exec_or_shell(stage, inst) if inst.rest else []

        def change() -> None:
            stage.config["Entrypoint"] = entry or None
            if not stage.cmd_set:
                stage.config["Cmd"] = None
        self._metadata(stage, f"ENTRYPOINT {gofmt.quote_list(entry)}", change)

    def _i_shell(self, stage: Stage, inst: Instruction) -> None:
        if inst.json_args is None or not inst.json_args:
            raise DockerfileError(inst.line, "SHELL requires the arguments to be in JSON "
                                  "form")
        shell = list(inst.json_args)
        self._metadata(stage, f"SHELL {gofmt.plain_list(shell)}",
                       lambda: stage.config.__setitem__("Shell", shell))

    def _i_user(self, stage: Stage, inst: Instruction) -> None:
        user = process_word(inst.rest, self._env(stage), inst.escape)
        if not user:
            raise DockerfileError(inst.line, "USER requires exactly one argument")
        self._metadata(stage, f"USER {user}", lambda: stage.config.__setitem__("User", user))

    def _i_stopsignal(self, stage: Stage, inst: Instruction) -> None:
        from sdk._internal.signals import parse_signal

        sig = process_word(inst.rest, self._env(stage), inst.escape)
        parse_signal(sig)
        self._metadata(stage, f"STOPSIGNAL {sig}",
                       lambda: stage.config.__setitem__("StopSignal", sig))

    def _i_volume(self, stage: Stage, inst: Instruction) -> None:
        paths = self._words(stage, inst)
        if not paths:
            raise DockerfileError(inst.line, "VOLUME requires at least one argument")
        vols = dict(stage.config.get("Volumes") or {})
        for p in paths:
            if not p.strip():
                raise DockerfileError(inst.line, "VOLUME specified can not be an empty "
                                      "string")
            vols[p] = {}
        self._metadata(stage, f"VOLUME {gofmt.plain_list(paths)}",
                       lambda: stage.config.__setitem__("Volumes", vols))

    def _i_expose(self, stage: Stage, inst: Instruction) -> None:
        ports = process_words(inst.rest, self._env(stage), inst.escape)
        if not ports:
            raise DockerfileError(inst.line, "EXPOSE requires at least one argument")
        exposed = dict(stage.config.get("ExposedPorts") or {})
        for port in ports:
            number, _, proto = port.partition("/")
            proto = (proto or "tcp").lower()
            lo, _, hi = number.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()) or proto not in (
                    "tcp", "udp", "sctp"):
                raise DockerfileError(inst.line, f"invalid containerPort: {port}")
            first, last = int(lo), int(hi or lo)
            if not 0 < first <= last < 65536:
                raise DockerfileError(inst.line, f"invalid port range: {number}")
            for p in range(first, last + 1):
                exposed[f"{p}/{proto}"] = {}
        self._metadata(stage, "EXPOSE " + " ".join(ports),
                       lambda: stage.config.__setitem__("ExposedPorts", exposed))

    def _i_onbuild(self, stage: Stage, inst: Instruction) -> None:
        expr = inst.rest.strip()
        word = expr.split(None, 1)[0].upper() if expr else ""
        if not word:
            raise DockerfileError(inst.line, "ONBUILD requires at least one argument")
        if word in _NOT_ONBUILD:
            raise DockerfileError(inst.line, f"{word} isn't allowed as an ONBUILD trigger")
        from sdk.build.parser import INSTRUCTIONS

        if word not in INSTRUCTIONS:
            raise DockerfileError(inst.line, f"unknown instruction: {word}")
        triggers = list(stage.config.get("OnBuild") or []) + [expr]
        self._metadata(stage, f"ONBUILD {expr}",
                       lambda: stage.config.__setitem__("OnBuild", triggers))

    def _i_healthcheck(self, stage: Stage, inst: Instruction) -> None:
        from sdk._internal.units import parse_duration_ns

        word, _, rest = inst.rest.partition(" ")
        kind = word.upper()
        hc: dict[str, Any]
        if kind == "NONE":
            if rest.strip() or inst.flags:
                raise DockerfileError(inst.line, "HEALTHCHECK NONE takes no arguments")
            hc = {"Test": ["NONE"]}
        elif kind == "CMD":
            rest = rest.strip()
            if not rest:
                raise DockerfileError(inst.line, "Missing command after HEALTHCHECK CMD")
            try:
                value = json.loads(rest) if rest.startswith("[") else None
            except json.JSONDecodeError:
                value = None
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                hc = {"Test": ["CMD", *value]}
            else:
                hc = {"Test": ["CMD-SHELL", rest]}
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                              ("start-period", "StartPeriod"),
                              ("start-interval", "StartInterval")):
                if flag in inst.flags:
                    try:
                        ns = parse_duration_ns(inst.flags[flag])
                    except (SdkError, ValueError):
                        raise DockerfileError(inst.line, f"invalid --{flag} duration: "
                                              f"{inst.flags[flag]!r}") from None
                    if ns and ns < 1_000_000:
                        raise DockerfileError(inst.line, f"--{flag} cannot be less than 1ms")
                    if ns:
                        hc[key] = ns
            if "retries" in inst.flags:
                try:
                    retries = int(inst.flags["retries"])
                except ValueError:
                    raise DockerfileError(inst.line, "--retries must be an integer") from None
                if retries < 0:
                    raise DockerfileError(inst.line, "--retries cannot be negative")
                if retries:
                    hc["Retries"] = retries
        else:
            raise DockerfileError(inst.line, f"Unknown type {word!r} in HEALTHCHECK "
                                  "(try CMD)")
        self._metadata(stage, f"HEALTHCHECK {gofmt.healthcheck(hc)}",
                       lambda: stage.config.__setitem__("Healthcheck", hc))
