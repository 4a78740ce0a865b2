"""Read ``rules/*.yml`` into one validated ``Policies``, or into problems naming file and line.

Whatever a person can get wrong in a rules file becomes one ``Problem`` per error, printed as
``FILE:LINE: FIELD: MESSAGE``; loading never raises. Lines come from the YAML node tree, so
an error on ``services.api.max`` points at the line where ``max:`` is written.

Checks that need every file at once (names defined twice, undefined signals, two policies
for one Swarm service, schedules outside the policy's bounds) run here, not in the schema.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from autoscaler.rules.schema import Policies, RulesFile, ServicePolicy

SUFFIXES = (".yml", ".yaml")
MAX_NODES = 100_000
"""A rules file expanding to more YAML nodes than this (alias bombs) is refused."""

Loc = tuple[str | int, ...]

_NOUNS = {"signals": "signal", "services": "service policy", "pools": "pool"}


@dataclass(frozen=True)
class Problem:
    """One error in the rules; ``line`` is 1-based, 0 when it concerns the whole file."""

    file: str
    line: int
    field: str
    message: str

    def __post_init__(self) -> None:
        # One line per problem, whatever a library put into its message.
        object.__setattr__(self, "message", " ".join(self.message.splitlines()))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line > 0 else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


@dataclass(frozen=True)
class LoadResult:
    """The merged policies, or None with every problem found."""

    policies: Policies | None
    problems: list[Problem]
    files: list[str]


@dataclass(frozen=True)
class RuleSource:
    """The bytes of one rules file and the name problems show for it."""

    name: str
    data: bytes


@dataclass
class _Doc:
    name: str
    root: yaml.Node | None
    data: dict[Any, Any] | None
    """The raw top-level mapping; None when the file is not a readable YAML mapping."""
    rules: RulesFile | None


# ---------------------------------------------------------------- entry points


def load_rules(path: Path) -> LoadResult:
    """Load a rules file, or every ``*.yml``/``*.yaml`` of a folder (sorted, not recursive)."""
    return load_paths([path])


def load_paths(paths: Sequence[Path]) -> LoadResult:
    """Load the files of several paths as one rule set."""
    sources, problems = read_sources(paths)
    return load_sources(sources, problems)


def rule_files(path: Path) -> list[Path]:
    """The files a path stands for; dot files (editor locks, backups) are skipped."""
    if not path.is_dir():
        return [path]
    return sorted(
        p
        for p in path.iterdir()
        if p.suffix in SUFFIXES and not p.name.startswith(".") and _file_or_broken_link(p)
    )


def _file_or_broken_link(path: Path) -> bool:
    """A file, or a link that should lead to one: a dangling or looping link is kept so that
    reading it reports it, rather than its policies vanishing without a word."""
    return path.is_file() or (path.is_symlink() and not path.is_dir())


def read_sources(paths: Sequence[Path]) -> tuple[list[RuleSource], list[Problem]]:
    """Read every rules file once; a missing or unreadable path is a problem, not an error."""
    sources: list[RuleSource] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for path in paths:
        if not path.exists() and not path.is_symlink():
            problems.append(Problem(str(path), 0, "", "no such file or folder"))
            continue
        try:
            files = rule_files(path)
        except OSError as e:
            problems.append(Problem(str(path), 0, "", f"cannot list the folder: {e.strerror}"))
            continue
        if not files:  # an emptied folder would otherwise stop every policy and route
            kinds = ", ".join(f"*{s}" for s in sorted(SUFFIXES))
            problems.append(Problem(str(path), 0, "", f"no rules files ({kinds}) in the folder"))
        for file in files:
            try:
                real = file.resolve()
                if real not in seen:
                    seen.add(real)
                    sources.append(RuleSource(str(file), file.read_bytes()))
            except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop
                loop = "Too many levels of symbolic links"
                why = (e.strerror or str(e)) if isinstance(e, OSError) else loop
                if file.is_symlink():
                    why += f" (a symbolic link to {_link_target(file)})"
                problems.append(Problem(str(file), 0, "", f"cannot read the file: {why}"))
    return sources, problems


def _link_target(path: Path) -> str:
    try:
        return str(path.readlink())
    except OSError:
        return "?"


def load_sources(sources: Sequence[RuleSource], problems: Sequence[Problem] = ()) -> LoadResult:
    """Validate already-read files as one rule set; ``problems`` are those found reading them."""
    found = list(problems)
    docs: list[_Doc] = []
    for source in sources:
        try:
            doc, doc_problems = _parse(source)
        except Exception as e:  # never a traceback: the file is reported instead
            doc, doc_problems = _Doc(source.name, None, None, None), [_unexpected(source.name, e)]
        docs.append(doc)
        found += sorted(doc_problems, key=lambda p: p.line)
    try:
        found += _cross_checks(docs)
    except Exception as e:
        found.append(_unexpected(sources[0].name if sources else "rules", e))
    files = [s.name for s in sources]
    if found:
        names = dict.fromkeys([p.file for p in problems] + files)
        order = {name: i for i, name in enumerate(names)}
        found.sort(key=lambda p: (order.get(p.file, len(order)), p.line))
        return LoadResult(None, found, files)
    try:
        return LoadResult(_merge([d.rules for d in docs if d.rules is not None]), [], files)
    except Exception as e:
        return LoadResult(None, [_unexpected(files[0] if files else "rules", e)], files)


def _unexpected(name: str, e: Exception) -> Problem:
    return Problem(name, 1, "", f"could not be checked: {type(e).__name__}: {e}")


# ---------------------------------------------------------------- one file


def _parse(source: RuleSource) -> tuple[_Doc, list[Problem]]:
    name = source.name
    failed = _Doc(name, None, None, None)
    try:
        text = source.data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = source.data.count(b"\n", 0, e.start) + 1
        byte = source.data[e.start]
        return failed, [Problem(name, line, "", f"not UTF-8 text (byte 0x{byte:02x})")]
    try:
        root, data, problems = _compose(name, text)
    except yaml.YAMLError as e:
        return failed, [_yaml_problem(name, text, e)]
    except _TooBig as e:
        return failed, [Problem(name, 1, "", str(e))]
    except RecursionError:
        return failed, [Problem(name, 1, "", "the YAML is nested too deeply")]
    except (ValueError, TypeError) as e:  # a tagged scalar that does not convert (!!int x)
        return failed, [Problem(name, 1, "", f"YAML error: a value cannot be read: {e}")]
    if root is None:  # more often a file being written, or emptied by mistake, than meant
        message = "the file is empty: write {} to keep an empty rules file on purpose"
        return failed, [Problem(name, 1, "", message)]
    if not isinstance(data, dict):
        sections = ", ".join(f"{s}:" for s in RulesFile.model_fields)
        line = root.start_mark.line + 1
        message = f"the top level must be a mapping of sections ({sections}), got {_describe(data)}"
        return failed, [*problems, Problem(name, line, "", message)]
    data = {k: v for k, v in data.items() if not _ignored_section(k, v)}
    for key, hint in _ALERTMANAGER_ONLY.items():
        if key in data:
            del data[key]
            message = f"the Alertmanager section '{key}' is not supported: {hint}"
            problems.append(Problem(name, _locate(root, (key,)), key, message))
    try:
        # by alias only: `for`, never the Python name `for_`
        rules: RulesFile | None = RulesFile.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as e:
        rules = None
        problems += [_pydantic_problem(name, root, err) for err in e.errors()]
    return _Doc(name, root, data, rules), problems


_ALERTMANAGER_ONLY = {
    "global": "set smarthost, from, api_url_file ... on each receiver instead",
    "templates": "use the title/text/html/headers templates of the receivers instead",
    "mute_time_intervals": "rename the section to time_intervals",
}
"""Sections of an alertmanager.yml that rules/ does not read: named, never ignored."""


def _ignored_section(key: Any, value: Any) -> bool:
    """``x-`` sections hold YAML anchors to reuse; an emptied section (``services:`` with
    every entry commented out) means none."""
    if isinstance(key, str) and key.startswith("x-"):
        return True
    return value is None and key in RulesFile.model_fields


class _TooBig(Exception):
    pass


class _Loader(yaml.SafeLoader):
    """SafeLoader whose typed scalars that do not convert (``!!bool maybe``, a timestamp like
    ``2024-02-30``) are YAML errors at their line, not a bare Python error."""


def _located(tag: str) -> Any:
    construct = yaml.SafeLoader.yaml_constructors[tag]

    def checked(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
            short = tag.replace("tag:yaml.org,2002:", "!!")
            why = f": {e}" if isinstance(e, ValueError | OverflowError) else ""
            problem = f"{node.value!r} is not a valid {short}{why} (quote it if text is meant)"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None

    return checked


for _tag in ("bool", "int", "float", "timestamp"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _located(f"tag:yaml.org,2002:{_tag}"))


def _compose(name: str, text: str) -> tuple[yaml.Node | None, Any, list[Problem]]:
    """The node tree, the plain data and the duplicate keys (which plain data hides)."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None, []
        _check_size(root)
        # Before constructing: that flattens merge keys (<<) into the mappings in place.
        duplicates = _duplicate_keys(name, root)
        return root, loader.construct_document(root), duplicates
    finally:
        loader.dispose()


def _check_size(root: yaml.Node) -> None:
    """Refuse alias loops and documents whose aliases expand beyond MAX_NODES."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise _TooBig("an alias refers to the node that contains it")
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(v) for v in node.value)
        active.discard(key)
        if total > MAX_NODES:
            raise _TooBig(f"the file expands to more than {MAX_NODES} values (aliases)")
        sizes[key] = total
        return total

    size(root)


def _yaml_problem(name: str, text: str, e: yaml.YAMLError) -> Problem:
    if isinstance(e, yaml.reader.ReaderError):
        line = text.count("\n", 0, e.position) + 1
        return Problem(name, line, "", f"character #x{e.character:04x} is not allowed in YAML")
    if not isinstance(e, yaml.MarkedYAMLError):
        return Problem(name, 1, "", f"YAML error: {e}")
    mark = e.problem_mark or e.context_mark
    problem = (e.problem or e.context or "unreadable").replace("tag:yaml.org,2002:", "!!")
    if e.context and e.context_mark and ("stream end" in problem or "end of stream" in problem):
        # Reached the end of the file: where the unclosed thing opened says more.
        what = e.context.removeprefix("while parsing ").removeprefix("while scanning ")
        problem = f"{what} that starts here is not closed: {problem}"
        mark = e.context_mark
    elif "'\\t'" in problem:
        problem = "a tab character: indent with spaces only"
    elif "another document" in problem:
        problem = "a second YAML document ('---'): one document per file"
    elif e.context and e.problem:
        opened = e.context_mark
        if opened is not None and mark is not None and opened.line != mark.line:
            # the parser notices late: say where the unfinished thing began
            what = e.context.removeprefix("while parsing ").removeprefix("while scanning ")
            problem += f" ({what} that starts at line {opened.line + 1})"
        else:
            problem += f" ({e.context})"
    kind = "YAML error" if isinstance(e, yaml.constructor.ConstructorError) else "YAML syntax error"
    column = f" at column {mark.column + 1}" if mark else ""
    return Problem(name, mark.line + 1 if mark else 1, "", f"{kind}{column}: {problem}")


def _duplicate_keys(name: str, root: yaml.Node) -> list[Problem]:
    problems = []
    for mapping, loc in _mappings(root):
        first: dict[tuple[str, str], int] = {}
        for key, _ in mapping.value:
            # `<<` counts too: of two merge keys YAML would silently apply only the last
            if not isinstance(key, yaml.ScalarNode):
                continue
            line = key.start_mark.line + 1
            if (key.tag, key.value) in first:
                message = f"duplicate key '{key.value}' (first at line {first[key.tag, key.value]})"
                problems.append(Problem(name, line, _field((*loc, key.value)), message))
            else:
                first[key.tag, key.value] = line
    return problems


def _mappings(root: yaml.Node) -> Iterator[tuple[yaml.MappingNode, Loc]]:
    """Every mapping node once (aliases share nodes), with its key path."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:
        node, loc = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            yield node, loc
            for key, value in node.value:
                if key.tag == "tag:yaml.org,2002:merge":
                    stack.append((value, loc))
                else:
                    stack.append((value, (*loc, key.value if isinstance(key.value, str) else "?")))
        elif isinstance(node, yaml.SequenceNode):
            stack += [(v, (*loc, i)) for i, v in enumerate(node.value)]


# ---------------------------------------------------------------- locations and messages


def _locate(root: yaml.Node | None, loc: Loc) -> int:
    """The line of the deepest node along ``loc`` that the file has (a key's own line)."""
    if root is None:
        return 1
    node, line = root, root.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            # The last match wins, as in the constructed dict (merged keys come first).
            for key, value in reversed(node.value):
                if isinstance(key, yaml.ScalarNode) and _spells(key, part):
                    child, line = value, key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _spells(key: yaml.ScalarNode, part: str | int) -> bool:
    """Whether a mapping key written in the file is ``part`` of a validation error's path;
    YAML reads on, off, yes and no as booleans, which the path shows as 1 and 0."""
    text = str(key.value)
    if key.tag.endswith(":bool") and isinstance(part, int):
        return (text.lower() in _TRUE_WORDS) == bool(part)
    return text == str(part)


_TRUE_WORDS = frozenset({"true", "yes", "on", "y"})
BOOLS = ("true", "false")


def _field(loc: Loc) -> str:
    out = ""
    for i, part in enumerate(loc):
        if part == "[key]":
            continue
        is_name = i + 1 < len(loc) and loc[i + 1] == "[key]"
        index = isinstance(part, int) and not is_name
        out += f"[{part}]" if index else ("." if out else "") + str(part)
    return out


_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
    "tuple_type": "a list ('- ' items)",
    "list_type": "a list ('- ' items)",
}


def _pydantic_problem(name: str, root: yaml.Node, err: ErrorDetails) -> Problem:
    loc = tuple(err["loc"])
    return Problem(name, _locate(root, loc), _field(loc), _message(err, loc))


def _message(err: ErrorDetails, loc: Loc) -> str:
    kind = err["type"]
    got = _describe(err.get("input"))
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind == "missing":
        return f"missing required key '{loc[-1]}'"
    if kind in ("value_error", "assertion_error"):
        return str((err.get("ctx") or {}).get("error", err["msg"]))
    if kind == "invalid_key" or (loc and loc[-1] == "[key]"):
        if got in BOOLS:
            return f"a name must be text, got {got} (YAML reads on, off, yes, no so): quote it"
        return f"a name must be text, got {got}"
    if kind in _EXPECTED:
        hint = " (quote it)" if kind == "string_type" and _is_scalar(err.get("input")) else ""
        return f"expected {_EXPECTED[kind]}, got {got}{hint}"
    return f"{err['msg'].replace('Input should be', 'must be')}, got {got}"


def _unknown_key(loc: Loc) -> str:
    name = str(loc[-1])
    model = _model_at(loc[:-1])
    expected = [f.alias or n for n, f in model.model_fields.items()] if model else []
    what = "section" if len(loc) == 1 else "key"
    message = f"unknown {what} '{name}'"
    close = difflib.get_close_matches(name, expected, n=1)
    if close:
        message += f": did you mean '{close[0]}'?"
    return message + (f" (expected one of: {', '.join(expected)})" if expected else "")


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The schema model that describes the mapping at ``loc`` of a rules file."""
    tp: Any = RulesFile
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = tp.model_fields.get(str(part))
            if info is None:
                return None
            tp = info.annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) in (tuple, list):
            tp = get_args(tp)[0]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` -> ``X``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _is_scalar(value: Any) -> bool:
    return isinstance(value, int | float | date)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    return type(value).__name__


# ---------------------------------------------------------------- the whole set


def _cross_checks(docs: list[_Doc]) -> list[Problem]:
    problems = _defined_twice(docs)
    # A file that did not parse may define any signal: only a complete set can say "unknown".
    if all(d.data is not None for d in docs):
        problems += _undefined_signals(docs)
    problems += _same_swarm_service(docs)
    problems += _pools_share_apps(docs)
    problems += _schedule_bounds(docs)
    problems += _alerting(docs)
    problems += _ending_sessions_told(docs)
    return problems


def _alerting(docs: list[_Doc]) -> list[Problem]:
    """Receivers and time intervals that routes name must exist; built-in names are taken."""
    from autoscaler.alerts.builtin import BUILTIN_NAMES
    from autoscaler.alerts.config import routing_problems

    problems = []
    owner: dict[str, _Doc] = {}
    merged: dict[str, RulesFile] = {}
    for doc in docs:
        if doc.rules is None:
            continue
        for section in ("route", "receivers", "time_intervals"):
            if section in doc.rules.model_fields_set:
                owner[section], merged[section] = doc, doc.rules
        for name in doc.rules.alerts:
            if name in BUILTIN_NAMES:
                message = f"'{name}' is a built-in alert: choose another name"
                problems.append(_at(doc, ("alerts", name), message))
    if any(d.rules is None for d in docs):
        return problems  # a file that did not validate may define the missing names
    route_doc = owner.get("route")
    route = merged["route"].route if "route" in merged else None
    receivers = merged["receivers"].receivers if "receivers" in merged else ()
    intervals = merged["time_intervals"].time_intervals if "time_intervals" in merged else ()
    for loc, message in routing_problems(None, route, receivers, intervals):
        at = owner.get(str(loc[0])) or route_doc
        if at is not None:
            problems.append(_at(at, loc, message))
    return problems


def _ending_sessions_told(docs: list[_Doc]) -> list[Problem]:
    """A pool that allows ending sessions ends them only after a receiver took the alert
    that says so: without a route to a receiver that sends something, it never would."""
    from autoscaler.alerts.builtin import ENDING_SESSIONS_NAME
    from autoscaler.alerts.routing import Route, receivers_for

    if any(d.rules is None for d in docs):
        return []
    config = next((d.rules.route for d in docs if d.rules and d.rules.route), None)
    route = Route.build(config) if config is not None else None
    sends = {
        r.name
        for d in docs
        if d.rules
        for r in d.rules.receivers
        if r.slack_configs or r.email_configs or r.webhook_configs or r.alertmanager_configs
    }
    problems = []
    for doc in docs:
        assert doc.rules is not None
        for name, pool in doc.rules.pools.items():
            if not pool.enabled or not pool.scale_in.allow_ending_sessions:
                continue
            # the node is not known here: any value, as a route on node=~".+" sees it
            labels = {
                "alertname": ENDING_SESSIONS_NAME,
                "severity": "warning",
                "pool": name,
                "node": "any",
            }
            names = receivers_for(route, labels) if route is not None else []
            if any(n in sends for n in names):
                continue
            why = f"it goes to {', '.join(names)}, which sends nothing" if names else "no route"
            message = (
                f"no receiver would get the {ENDING_SESSIONS_NAME} alert ({why}), so no "
                "session would ever be ended: route it to a receiver with slack_configs, "
                "email_configs, webhook_configs or alertmanager_configs"
            )
            problems.append(_at(doc, ("pools", name, "scale_in", "allow_ending_sessions"), message))
    return problems


def _keyed_sections() -> list[str]:
    """Sections that map names to definitions (as opposed to one settings mapping)."""
    return [
        name
        for name, info in RulesFile.model_fields.items()
        if get_origin(_unwrap(info.annotation)) is dict
    ]


def _defined_twice(docs: list[_Doc]) -> list[Problem]:
    problems = []
    keyed = _keyed_sections()
    for section in RulesFile.model_fields:
        first: dict[Any, str] = {}
        for doc in docs:
            entries = (doc.data or {}).get(section)
            if section in keyed and isinstance(entries, dict):
                names: list[Any] = list(entries)
                noun = _NOUNS.get(section, section.rstrip("s"))
            elif section not in keyed and entries is not None:
                names = [None]
                noun = "section"
            else:
                continue
            for entry in names:
                loc: Loc = (section,) if entry is None else (section, str(entry))
                where = f"{doc.name}:{_locate(doc.root, loc)}"
                if entry in first:
                    label = section if entry is None else str(entry)
                    message = f"{noun} '{label}' is defined twice: also at {first[entry]}"
                    problems.append(Problem(doc.name, _locate(doc.root, loc), _field(loc), message))
                else:
                    first[entry] = where
    return problems


def _undefined_signals(docs: list[_Doc]) -> list[Problem]:
    defined = sorted(
        {str(n) for d in docs if isinstance(s := (d.data or {}).get("signals"), dict) for n in s}
    )  # a name defined in two files is listed once (that is a problem of its own)
    problems = []
    for doc in docs:
        for loc, name in _signal_refs(doc.data or {}):
            if loc[0] == "signals" or name in defined:
                continue
            message = f"unknown signal '{name}'"
            close = difflib.get_close_matches(name, defined, n=1)
            if close:
                message += f": did you mean '{close[0]}'?"
            listed = ", ".join(defined[:12]) + (", ..." if len(defined) > 12 else "")
            message += f" (defined: {listed})" if defined else " (no signals are defined)"
            problems.append(Problem(doc.name, _locate(doc.root, loc), _field(loc), message))
    return problems


_FREE_TEXT_MAPS = frozenset({"labels", "annotations", "headers"})


def _signal_refs(data: Any, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    """Every ``signal: NAME`` in a file, with its path; free text maps (an alert's labels,
    an email's headers) may use any key, ``signal`` too."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "signal" and isinstance(value, str):
                yield (*loc, key), value
            elif key not in _FREE_TEXT_MAPS:
                yield from _signal_refs(value, (*loc, str(key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _signal_refs(value, (*loc, i))


def _policies(doc: _Doc) -> Iterator[tuple[str, ServicePolicy]]:
    """The service policies of a file that are valid on their own (the rest is reported)."""
    if doc.rules is not None:
        yield from doc.rules.services.items()
        return
    services = (doc.data or {}).get("services")
    if isinstance(services, dict):
        for name, raw in services.items():
            try:
                yield str(name), ServicePolicy.model_validate(raw)
            except ValidationError:
                continue


def _same_swarm_service(docs: list[_Doc]) -> list[Problem]:
    problems = []
    first: dict[str, str] = {}
    names: set[str] = set()
    for doc in docs:
        for name, policy in _policies(doc):
            if not policy.enabled or name in names:
                continue  # a policy name defined twice is reported once, as such
            names.add(name)
            service = policy.service or name
            loc: Loc = ("services", name, "service") if policy.service else ("services", name)
            where = f"{doc.name}:{_locate(doc.root, loc)}"
            if service in first:
                message = f"Swarm service '{service}' already has a policy: {first[service]}"
                problems.append(Problem(doc.name, _locate(doc.root, loc), _field(loc), message))
            else:
                first[service] = f"'{name}' at {where}"
    return problems


def _pools_share_apps(docs: list[_Doc]) -> list[Problem]:
    """Two pools that count the same waiting sessions both launch for them: one app listed
    twice, or two pools without ``apps`` (each takes every app no other lists). Disabled
    and retired (``max: 0``) pools launch for none."""
    problems = []
    owner: dict[str, str] = {}
    catch_all: str | None = None
    for doc in docs:
        if doc.rules is None:
            continue
        for name, pool in doc.rules.pools.items():
            if not pool.launches:
                continue
            where = f"pool '{name}' at {doc.name}:{_locate(doc.root, ('pools', name))}"
            if not pool.apps:
                if catch_all is not None:
                    message = (
                        f"a second pool without 'apps' (also {catch_all}): both would launch "
                        "for the same waiting sessions; list the apps of one of them"
                    )
                    problems.append(_at(doc, ("pools", name), message))
                else:
                    catch_all = where
                continue
            for i, app in enumerate(pool.apps):
                if app in owner:
                    message = f"app '{app}' is also listed by {owner[app]}: list it in one pool"
                    problems.append(_at(doc, ("pools", name, "apps", i), message))
                else:
                    owner[app] = where
    return problems


def _schedule_bounds(docs: list[_Doc]) -> list[Problem]:
    """A window that sets only min (or only max) must fit the policy's other bound."""
    problems = []
    for doc in docs:
        for name, policy in _policies(doc):
            for i, s in enumerate(policy.schedules):
                loc: Loc = ("services", name, "schedules", i)
                if s.max is None and s.min is not None and s.min > policy.max:
                    message = (
                        f"schedule min ({s.min}) is above the policy's max ({policy.max}): "
                        "raise the policy's max or give the schedule a max too"
                    )
                    problems.append(_at(doc, (*loc, "min"), message))
                if s.min is None and s.max is not None and s.max < policy.min:
                    message = (
                        f"schedule max ({s.max}) is below the policy's min ({policy.min}): "
                        "lower the policy's min or give the schedule a min too"
                    )
                    problems.append(_at(doc, (*loc, "max"), message))
    return problems


def _at(doc: _Doc, loc: Loc, message: str) -> Problem:
    return Problem(doc.name, _locate(doc.root, loc), _field(loc), message)


def _merge(files: list[RulesFile]) -> Policies:
    merged: dict[str, Any] = {}
    for section in Policies.model_fields:
        if section not in RulesFile.model_fields:
            continue
        for rules in files:
            if section not in rules.model_fields_set:
                continue
            value = getattr(rules, section)
            if isinstance(value, dict):
                merged.setdefault(section, {}).update(value)
            else:
                merged[section] = value
    return Policies(**merged)
