"""The shell commands the pages show run as they are copied.

Operators paste these blocks into a terminal on the manager: every ```sh block parses
(``bash -n``) and passes shellcheck; every ``docker`` command line, in a block or in the
text, uses subcommands and flags the installed docker CLI lists in its ``--help``; every
``aws`` command names an operation (or waiter) and parameters that the AWS API models of
botocore define, with shorthand keys and enum values of those parameters' shapes; and a
``watch`` keeps the quoting of the command it repeats. The ``autoscaler`` command lines
are checked by tests/test_docs_consistency.py.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name
from botocore.model import Shape, StructureShape

from tests.realparts import missing_real_part

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# `<elastic ip>`, `<manager private ip>`, `<node>`: values the reader fills in.
PLACEHOLDER = re.compile(r"<[A-Za-z][\w .-]*>")


@dataclass(frozen=True)
class Block:
    where: str  # page:line of the fence
    text: str

    def __str__(self) -> str:
        return self.where


def shell_blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"^```(?:sh|bash)\n(.*?)^```", text, re.S | re.M):
            line = text.count("\n", 0, m.start()) + 1
            found.append(Block(f"{page.relative_to(ROOT)}:{line}", m.group(1)))
    return found


BLOCKS = shell_blocks()


def filled_in(text: str) -> str:
    return PLACEHOLDER.sub("PLACEHOLDER", text)


def test_the_pages_have_shell_blocks() -> None:
    assert len(BLOCKS) >= 20  # the finder still finds them


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_every_shell_block_parses(block: Block) -> None:
    out = subprocess.run(
        ["bash", "-n"], input=filled_in(block.text), capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, f"{block}: {out.stderr}"


# Checks that do not fit commands typed one by one into a terminal:
#   SC1090, SC1091: a sourced file (~/shiny.env, lab/lab.env) is the reader's own;
#   SC2155: `export X=$(...)` as in every shell tutorial; a failure shows on the terminal;
#   SC2164: `cd DIR` without `|| exit`: the reader sees a failed cd.
SHELLCHECK_EXCLUDED = "SC1090,SC1091,SC2155,SC2164"


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_every_shell_block_passes_shellcheck(block: Block) -> None:
    if shutil.which("shellcheck") is None:
        missing_real_part("shellcheck is not installed (apt-get install shellcheck)")
    out = subprocess.run(
        [
            "shellcheck",
            "--shell=bash",
            "--severity=warning",
            f"--exclude={SHELLCHECK_EXCLUDED}",
            "-",
        ],
        input=filled_in(block.text),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"{block}:\n{out.stdout}"


# ---------------------------------------------------------------- command lines


def substitutions(text: str) -> tuple[str, list[str]]:
    """The text with each `$(...)` replaced by a word, and the commands inside them."""
    out, inner, i = [], [], 0
    quote = ""
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == "$" and quote == '"' and text.startswith("$(", i):
                end = closing(text, i + 2)
                inner.append(text[i + 2 : end])
                out.append("SUBST")
                i = end + 1
                continue
            out.append(c)
        elif c in "'\"":
            quote = c
            out.append(c)
        elif text.startswith("$(", i):
            end = closing(text, i + 2)
            inner.append(text[i + 2 : end])
            out.append("SUBST")
            i = end + 1
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out), inner


def closing(text: str, start: int) -> int:
    """Index of the `)` that closes a `$(` whose inside starts at ``start``."""
    depth, quote = 1, ""
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
    raise AssertionError(f"no closing parenthesis: {text[start:]!r}")


SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")", ";;", "\n"}


def simple_commands(line: str) -> Iterator[list[str]]:
    """The words of each simple command of one command line (pipes, lists, `$(...)`)."""
    text, inner = substitutions(filled_in(line))
    for sub in inner:
        yield from simple_commands(sub)
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words: list[str] = []
    skip_next = False
    for token in lexer:
        if skip_next:
            skip_next = False
        elif token in SEPARATORS:
            if words:
                yield words
            words = []
        elif set(token) <= set("<>&"):  # a redirection (>, 2>, >&, <<): drop it and its target
            if words and words[-1].isdigit():
                words.pop()
            skip_next = True
        else:
            words.append(token)
    if words:
        yield words


@dataclass(frozen=True)
class Command:
    where: str
    words: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.words)}"


def command_lines() -> Iterator[tuple[str, str]]:
    """(page, line) of every line of a shell block, continuation lines joined, and of
    every code span of the text."""
    for block in BLOCKS:
        joined = block.text.replace("\\\n", " ")
        for line in joined.splitlines():
            yield block.where, line
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
        for span in re.findall(r"`([^`]+)`", prose):
            yield page.name, " ".join(span.split())


# Words that run the command after them (with their own options first).
RUNNERS = {"sudo": set(), "xargs": {"-r"}, "exec": set(), "time": set()}


def commands(program: str) -> list[Command]:
    """Every simple command that runs ``program``, also behind sudo, xargs and watch."""
    found = []

    def visit(where: str, words: list[str]) -> None:
        while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):  # X=1 cmd
            words = words[1:]
        while words and words[0] in RUNNERS:
            options = RUNNERS[words[0]]
            words = words[1:]
            while words and words[0] in options:
                words = words[1:]
        if words and words[0] == "watch" and len(words) == 2:
            for inner in simple_commands(words[1]):
                visit(where, inner)
        elif words and words[0] == program:
            found.append(Command(where, tuple(words)))

    for where, line in command_lines():
        if re.search(rf"(?:^|[\s(|;&'\"]){re.escape(program)}\s", line):
            for words in simple_commands(line):
                visit(where, words)
    return found


# ---------------------------------------------------------------- watch


def watch_commands() -> list[Command]:
    found = []
    for where, line in command_lines():
        for words in simple_commands(line):
            if words and words[0] == "watch":
                found.append(Command(where, tuple(words)))
    return found


def test_watch_commands_are_found() -> None:
    assert watch_commands()  # deploy.md, step 9


@pytest.mark.parametrize("cmd", watch_commands(), ids=str)
def test_watch_keeps_the_quoting_of_its_command(cmd: Command) -> None:
    # watch joins its arguments with spaces and gives the result to `sh -c` (procps
    # watch(1)): a quoted argument with a space in it, such as a --format template, comes
    # apart. Quote the whole command as one argument, or use `watch -x`.
    args = [w for w in cmd.words[1:] if not re.fullmatch(r"-n|-d|\d+(\.\d+)?", w)]
    if "-x" in args or "--exec" in args or len(args) == 1:
        return
    assert not [w for w in args if re.search(r"\s", w)], f"{cmd}: watch splits these again"


# ---------------------------------------------------------------- docker


@dataclass(frozen=True)
class Help:
    subcommands: frozenset[str]
    flags: dict[str, bool]  # "--name" and "-n" -> whether it takes a value


@functools.cache
def docker_help(path: tuple[str, ...]) -> Help:
    # No daemon to ask: the CLI then hides no command or flag that a particular engine
    # (its OS, API version, swarm role) would not take, so the help lists all of them.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "DOCKER_CONFIG": "/nonexistent/docker-config",
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",
    }
    out = subprocess.run(
        ["docker", *path, "--help"], capture_output=True, text=True, timeout=30, env=env
    )
    text = out.stdout + out.stderr
    subcommands, flags = set(), {}
    section = ""
    for line in text.splitlines():
        if re.match(r"^\S.*:\s*$", line):
            section = line
            continue
        if section.endswith("Commands:"):
            m = re.match(r"^  (\w[\w-]*)\*?\s{2,}\S", line)
            if m:
                subcommands.add(m.group(1))
        m = re.match(r"^\s+(?:(-\w), )?(--[\w-]+)(?: (\S+))?(?:\s{2,}|$)", line)
        if m:
            takes_value = m.group(3) is not None
            flags[m.group(2)] = takes_value
            if m.group(1):
                flags[m.group(1)] = takes_value
    flags["--help"] = False
    return Help(frozenset(subcommands), flags)


# The container's own command follows the image: docker stops reading its flags there.
STOPS_AT_FIRST_ARGUMENT = {("run",), ("exec",), ("create",), ("container", "run")}


def unknown_docker_flags(words: tuple[str, ...]) -> list[str]:
    path: tuple[str, ...] = ()
    rest = list(words[1:])
    while rest and rest[0] in docker_help(path).subcommands:
        path += (rest.pop(0),)
    assert path, f"no docker subcommand in {shlex.join(words)}"
    flags = docker_help(path).flags
    unknown = []
    while rest:
        word = rest.pop(0)
        if word == "-" or not word.startswith("-"):
            if path in STOPS_AT_FIRST_ARGUMENT:
                break
            continue
        name, has_value = word.split("=", 1)[0], "=" in word
        if name.startswith("--"):
            if name not in flags:
                unknown.append(name)
            elif flags[name] and not has_value and rest:
                rest.pop(0)
            continue
        for i, letter in enumerate(name[1:]):  # -q, -aG: letters, the last may take a value
            short = f"-{letter}"
            if short not in flags:
                unknown.append(short)
            elif flags[short] and i == len(name) - 2 and not has_value and rest:
                rest.pop(0)
    return unknown


DOCKER = commands("docker")


def test_docker_commands_are_found() -> None:
    shown = {c.words[:3] for c in DOCKER}
    assert ("docker", "service", "update") in shown
    assert len([w for c in DOCKER for w in c.words if w.startswith("--")]) >= 30


@pytest.mark.parametrize("cmd", DOCKER, ids=str)
def test_every_docker_command_takes_the_flags_it_shows(cmd: Command) -> None:
    if shutil.which("docker") is None:
        missing_real_part("docker CLI not installed (apt-get install docker.io)")
    assert unknown_docker_flags(cmd.words) == [], str(cmd)


# ---------------------------------------------------------------- aws


# Options of the AWS CLI itself and of its customizations of the commands shown
# (awscli/customizations/secgroupsimplify.py for authorize-security-group-ingress).
AWS_GLOBAL = {"--query", "--output", "--region", "--profile", "--endpoint-url", "--no-cli-pager"}
AWS_CUSTOM = {
    ("ec2", "authorize-security-group-ingress"): {
        "--protocol",
        "--port",
        "--cidr",
        "--source-group",
        "--group-owner",
    },
    ("ecr", "get-login-password"): set(),  # a command of the CLI, not an API operation
}


@functools.cache
def aws_session() -> botocore.session.Session:
    return botocore.session.get_session()


def input_shape(service: str, words: list[str]) -> tuple[StructureShape | None, str]:
    """The input shape of `aws SERVICE OP` or `aws SERVICE wait WAITER`, and the
    command's name; None for a command of the CLI itself."""
    model = aws_session().get_service_model(service)
    by_cli = {xform_name(name, "-"): name for name in model.operation_names}
    if words[0] == "wait":
        waiters = aws_session().get_waiter_model(service)
        by_waiter = {xform_name(n, "-"): n for n in waiters.waiter_names}
        assert words[1] in by_waiter, f"aws {service} wait: no waiter {words[1]}"
        op = waiters.get_waiter(by_waiter[words[1]]).operation
        return model.operation_model(op).input_shape, f"wait {words[1]}"
    if words[0] not in by_cli and (service, words[0]) in AWS_CUSTOM:
        return None, words[0]
    assert words[0] in by_cli, f"aws {service}: no operation {words[0]}"
    return model.operation_model(by_cli[words[0]]).input_shape, words[0]


def single_boolean(shape: Shape) -> bool:
    """A structure of one boolean `Value`: the CLI takes it as --flag / --no-flag
    (awscli/customizations/toplevelbool.py)."""
    members = getattr(shape, "members", {})
    return list(members) == ["Value"] and members["Value"].type_name == "boolean"


def shorthand_problems(shape: Shape, value: str) -> list[str]:
    """Keys of a shorthand value (`A=1,B={C=2}`) that its shape does not have, and enum
    values it does not allow. JSON values are left to the CLI."""
    if value.lstrip().startswith(("{", "[")) or "=" not in value:
        return []
    names: dict[str, Shape] = {}
    stack = [shape]
    while stack:
        s = stack.pop()
        if s.type_name == "structure":
            for name, member in s.members.items():
                if name not in names:
                    names[name] = member
                    stack.append(member)
        elif s.type_name == "list":
            stack.append(s.member)
    problems = []
    for key, val in re.findall(r"([A-Za-z]\w*)=([^,{}\[\]]*)", value):
        if key not in names:
            problems.append(f"{key}: not a key of {shape.name}")
        elif (enum := getattr(names[key], "enum", None)) and val and val not in enum:
            problems.append(f"{key}={val}: not one of {enum}")
    return problems


def aws_problems(words: tuple[str, ...]) -> list[str]:
    service, rest = words[1], list(words[2:])
    shape, name = input_shape(service, rest)
    rest = rest[2:] if rest[0] == "wait" else rest[1:]
    members = {}
    if shape is not None:
        for member, member_shape in shape.members.items():
            members[f"--{xform_name(member, '-')}"] = member_shape
            if member_shape.type_name == "boolean" or single_boolean(member_shape):
                members[f"--no-{xform_name(member, '-')}"] = member_shape
    known = set(members) | AWS_GLOBAL | AWS_CUSTOM.get((service, name), set())
    problems = []
    for i, word in enumerate(rest):
        if not word.startswith("--"):
            continue
        flag = word.split("=", 1)[0]
        if flag not in known:
            problems.append(f"{flag}: not an option of aws {service} {name}")
        elif flag in members and i + 1 < len(rest) and not rest[i + 1].startswith("--"):
            problems += shorthand_problems(members[flag], rest[i + 1])
    return problems


AWS = [c for c in commands("aws") if len(c.words) >= 3]


def test_aws_commands_are_found() -> None:
    shown = {c.words[:3] for c in AWS}
    assert ("aws", "ec2", "run-instances") in shown
    assert ("aws", "ec2", "wait") in shown


@pytest.mark.parametrize("cmd", AWS, ids=str)
def test_every_aws_command_names_an_operation_and_its_parameters(cmd: Command) -> None:
    assert aws_problems(cmd.words) == [], str(cmd)


def test_the_aws_check_finds_a_wrong_shorthand_key_and_enum_value() -> None:
    # the check itself: a misspelt key and a value the enum lacks are both reported
    words = (
        *("aws", "ec2", "run-instances", "--image-id", "ami-1"),
        *("--metadata-options", "HttpTokens=require,HopLimit=1", "--instance-typ", "t3.large"),
    )
    problems = aws_problems(words)
    assert any(p.startswith("HttpTokens=require") for p in problems)
    assert any(p.startswith("HopLimit") for p in problems)
    assert any(p.startswith("--instance-typ:") for p in problems)


def test_the_docker_check_finds_an_unknown_flag() -> None:
    if shutil.which("docker") is None:
        missing_real_part("docker CLI not installed (apt-get install docker.io)")
    words = ("docker", "service", "update", "--secret-remove", "x", "--detach", "shiny_api")
    assert unknown_docker_flags(words) == ["--secret-remove"]
    # the image's own flags are not docker's
    assert unknown_docker_flags(("docker", "run", "--rm", "alpine/socat", "-c", "x")) == []
