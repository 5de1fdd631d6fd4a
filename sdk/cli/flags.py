"""A small flag parser with docker's (pflag's) rules, light enough for the start path.

- ``-it`` combines short booleans; ``-p8080:80`` / ``-p 8080:80`` / ``--publish=..``;
- repeated flags accumulate for list flags;
- ``interspersed=False`` stops at the first positional (``run IMAGE CMD --flags``);
- ``--`` ends flags.  Errors raise UsageError, printed with exit code 125.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class UsageError(Exception):
    exit_code = 125


@dataclass(frozen=True, slots=True)
class Flag:
    name: str                 # long name without dashes
    short: str = ""
    kind: str = "bool"        # bool | str | int | list | float
    default: Any = None
    help: str = ""
    metavar: str = ""

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


@dataclass
class Spec:
    command: str
    usage: str
    flags: list[Flag] = field(default_factory=list)
    interspersed: bool = True
    min_args: int = 0
    max_args: int | None = None
    summary: str = ""

    def help_text(self) -> str:
        lines = [f"Usage:  berth {self.usage}", ""]
        if self.summary:
            lines += [self.summary, ""]
        if self.flags:
            lines.append("Options:")
            for f in sorted(self.flags, key=lambda f: f.name):
                short = f"-{f.short}, " if f.short else "    "
                arg = "" if f.kind == "bool" else " " + (f.metavar or f.kind)
                lines.append(f"  {short}--{f.name}{arg:<16} {f.help}")
        return "\n".join(lines)


def parse(spec: Spec, argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    by_long = {f.name: f for f in spec.flags}
    by_short = {f.short: f for f in spec.flags if f.short}
    values: dict[str, Any] = {}
    for f in spec.flags:
        values[f.dest] = [] if f.kind == "list" else f.default
    positional: list[str] = []
    i = 0

    def convert(flag: Flag, raw: str, shown: str) -> Any:
        if flag.kind == "int":
            try:
                return int(raw)
            except ValueError:
                raise UsageError(f'invalid argument "{raw}" for "{shown}" flag: '
                                 "strconv.ParseInt: parsing "
                                 f'"{raw}": invalid syntax') from None
        if flag.kind == "float":
            try:
                return float(raw)
            except ValueError:
                raise UsageError(f'invalid argument "{raw}" for "{shown}" flag') from None
        return raw

    def assign(flag: Flag, raw: str, shown: str) -> None:
        value = convert(flag, raw, shown)
        if flag.kind == "list":
            values[flag.dest].append(value)
        else:
            values[flag.dest] = value

    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positional += argv[i + 1:]
            break
        if arg.startswith("--") and len(arg) > 2:
            name, eq, inline = arg[2:].partition("=")
            flag = by_long.get(name)
            if flag is None:
                if name == "help":
                    raise HelpRequested(spec)
                raise UsageError(f"unknown flag: --{name}\nSee 'berth {spec.command} --help'.")
            if flag.kind == "bool":
                if eq:
                    if inline.lower() not in ("true", "false", "1", "0"):
                        raise UsageError(f'invalid argument "{inline}" for "--{name}" flag: '
                                         "strconv.ParseBool: parsing "
                                         f'"{inline}": invalid syntax')
                    values[flag.dest] = inline.lower() in ("true", "1")
                else:
                    values[flag.dest] = True
            elif eq:
                assign(flag, inline, f"--{name}")
            else:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: --{name}\n"
                                     f"See 'berth {spec.command} --help'.")
                assign(flag, argv[i], f"--{name}")
        elif arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                ch = arg[j]
                flag = by_short.get(ch)
                if flag is None:
                    if ch == "h":
                        raise HelpRequested(spec)
                    raise UsageError(f"unknown shorthand flag: '{ch}' in {arg}\n"
                                     f"See 'berth {spec.command} --help'.")
                if flag.kind == "bool":
                    if arg[j + 1:j + 2] == "=":
                        values[flag.dest] = arg[j + 2:].lower() in ("true", "1")
                        break
                    values[flag.dest] = True
                    j += 1
                    continue
                rest = arg[j + 1:]
                if rest.startswith("="):
                    rest = rest[1:]
                if rest:
                    assign(flag, rest, f"-{ch}")
                else:
                    i += 1
                    if i >= len(argv):
                        raise UsageError(f"flag needs an argument: '{ch}' in -{ch}\n"
                                         f"See 'berth {spec.command} --help'.")
                    assign(flag, argv[i], f"-{ch}")
                break
        else:
            positional.append(arg)
            if not spec.interspersed:
                positional += argv[i + 1:]
                break
        i += 1
    if len(positional) < spec.min_args or (spec.max_args is not None and
                                           len(positional) > spec.max_args):
        need = (f"exactly {spec.min_args}" if spec.max_args == spec.min_args
                else f"at least {spec.min_args}")
        raise UsageError(f"\"berth {spec.command}\" requires {need} argument"
                         f"{'s' if spec.min_args != 1 else ''}.\n"
                         f"See 'berth {spec.command} --help'.\n\nUsage:  berth {spec.usage}")
    return values, positional


class HelpRequested(Exception):
    def __init__(self, spec: Spec) -> None:
        super().__init__(spec.command)
        self.spec = spec
