"""The field-mapping DSL: YAML files that say how a source record becomes a target payload.

A file names its mapping and lists, per TARGET field, either the source ``fields`` to read
(combined by ``mode``) or a ``transformer`` that receives the whole record, with optional
``pre_adapter``/``post_adapter`` steps, a ``default``, ``required`` and ``no_clobber``.
The reference for users is include/mappings/README.md.

Files are checked completely when they load: every mistake in a file (unknown adapter,
args that do not fit, a duplicate key, a typo in a key, ...) is reported in one
:class:`MappingFileError`, each as ``file:line: message``. Adapter names are resolved
against an :class:`~crm_sync.sync.adapters.AdapterRegistry` at that moment, so an
integration imports the module that registers its adapters before it loads its mappings.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from crm_sync.exceptions import MappingError, RecordRejected, SyncError
from crm_sync.sync.adapters import ADAPTERS, AdapterError, AdapterRegistry, is_blank

__all__ = [
    "FieldMapping",
    "FieldRule",
    "MappingFileError",
    "Problem",
    "Step",
    "changed_fields",
    "load_mapping",
    "load_mappings",
]

_TOP_KEYS = ("mapping", "description", "source", "target", "key", "fields")
_RULE_KEYS = (
    "fields",
    "transformer",
    "mode",
    "pre_adapter",
    "post_adapter",
    "default",
    "required",
    "no_clobber",
)
_REF_KEYS = ("name", "args")
_MODES = ("join", "choose")
_MAPPING_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


# -- problems --------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Problem:
    """One mistake in a mapping file."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class MappingFileError(MappingError):
    """One or more mapping files are invalid; ``problems`` lists every mistake found."""

    def __init__(self, problems: Sequence[Problem], *, path: str) -> None:
        ordered = tuple(sorted(problems))
        if len(ordered) == 1:
            only = ordered[0]
            super().__init__(only.message, path=only.path, line=only.line)
        else:
            listing = "\n".join(str(p) for p in ordered)
            super().__init__(f"{len(ordered)} problems:\n{listing}", path=path)
        self.problems = ordered


# -- YAML with line numbers and duplicate-key detection ----------------------------------------


class _LineDict(dict):
    """A YAML mapping that remembers its line and the line of each key."""

    line: int = 1
    key_lines: dict[Any, int]

    def key_line(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class _LineList(list):
    """A YAML sequence that remembers its line and the line of each item."""

    line: int = 1
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records line numbers and reports duplicate keys instead of dropping them."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, str]] = []


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> Iterator[_LineDict]:
    data = _LineDict()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    yield data
    # Checked before construct_mapping flattens merge keys ('<<'), which may override legitimately.
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            first = data.key_lines.get(key)
        except TypeError:
            continue  # an unhashable key: construct_mapping reports it with its line
        if first is not None:
            loader.duplicates.append((line, f"duplicate key {key!r} (first defined at line {first})"))
        else:
            data.key_lines[key] = line
    data.update(loader.construct_mapping(node))


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> Iterator[_LineList]:
    data = _LineList()
    data.line = node.start_mark.line + 1
    data.item_lines = [item.start_mark.line + 1 for item in node.value]
    yield data
    data.extend(loader.construct_sequence(node))


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def _read_yaml(text: str) -> tuple[Any, list[tuple[int, str]]]:
    """Parse one YAML document; return it and the (line, message) problems found."""
    loader = _LineLoader(text)
    try:
        return loader.get_single_data(), list(loader.duplicates)
    except yaml.MarkedYAMLError as exc:
        # Only the problem and context: str(exc) quotes the offending line, which may hold data.
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        context = f" ({exc.context})" if exc.context else ""
        return None, [(line, f"invalid YAML: {exc.problem}{context}")]
    except yaml.YAMLError as exc:
        return None, [(1, f"invalid YAML: {type(exc).__name__}")]
    finally:
        loader.dispose()


# -- the compiled mapping --------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One adapter, ready to call, with the name the file used for it."""

    name: str
    func: Callable[[Any], Any]


@dataclass(frozen=True)
class FieldRule:
    """How one target field is computed from a source record."""

    target: str
    sources: tuple[str, ...] = ()
    mode: str | None = None
    transformer: Step | None = None
    pre: tuple[Step, ...] = ()
    post: tuple[Step, ...] = ()
    default: Any = None
    required: bool = False
    no_clobber: bool = False
    reads: tuple[str, ...] = ()
    line: int = 0

    def evaluate(self, record: Mapping[str, Any], key: str | None) -> Any:
        """Return this field's value for ``record``.

        Raises:
            RecordRejected: an adapter refused a value, or a required field came out empty.
        """
        if self.transformer is not None:
            result = self._call(self.transformer, record, key, "transformer")
        else:
            values = []
            for source in self.sources:
                value = _get_path(record, source)
                for step in self.pre:
                    value = self._call(step, value, key, "pre_adapter", source)
                values.append(value)
            result = _combine(self.mode, values)
        for step in self.post:
            result = self._call(step, result, key, "post_adapter")
        if is_blank(result) and self.default is not None:
            # A list or mapping default is copied so that one payload's edits never reach the next.
            result = copy.deepcopy(self.default) if isinstance(self.default, list | dict) else self.default
        if self.required and is_blank(result):
            raise RecordRejected(
                key,
                "REQUIRED_FIELD_MISSING",
                f"required target field {self.target!r} is empty and has no default",
                field=self.target,
            )
        return result

    def _call(self, step: Step, value: Any, key: str | None, role: str, source: str | None = None) -> Any:
        """Run one adapter, turning its refusal into a rejection that never quotes the value."""
        try:
            return step.func(value)
        except AdapterError as exc:
            code, detail = exc.code, exc.message
        except SyncError:
            raise
        except Exception as exc:  # noqa: BLE001
            # Any other failure is about this record's data: quarantine the record, keep the
            # batch going. Only the type is kept; the text may quote the value (int('x')).
            code, detail = "ADAPTER_ERROR", f"failed with {type(exc).__name__}"
        where = f" on source field {source!r}" if source else ""
        # Raised outside the except blocks so no traceback chains to an exception quoting the value.
        raise RecordRejected(
            key,
            code,
            f"{role} {step.name!r}{where} for target field {self.target!r}: {detail}",
            field=self.target,
        )


@dataclass(frozen=True)
class FieldMapping:
    """A loaded, validated mapping: a list of rules, one per target field."""

    name: str
    rules: tuple[FieldRule, ...]
    key: str | None = None
    source: str | None = None
    target: str | None = None
    description: str | None = None
    path: str | None = field(default=None, compare=False)

    @property
    def target_fields(self) -> tuple[str, ...]:
        """Target fields, in file order."""
        return tuple(rule.target for rule in self.rules)

    @property
    def no_clobber_fields(self) -> frozenset[str]:
        """Target fields whose non-empty current value the push step must never overwrite."""
        return frozenset(rule.target for rule in self.rules if rule.no_clobber)

    @property
    def required_fields(self) -> frozenset[str]:
        """Target fields that reject the record when they come out empty."""
        return frozenset(rule.target for rule in self.rules if rule.required)

    @property
    def source_fields(self) -> frozenset[str]:
        """Top-level source fields read (by fields, transformers and the key), for SELECT lists."""
        paths = [path for rule in self.rules for path in rule.reads]
        if self.key is not None:
            paths.append(self.key)
        return frozenset(path.split(".", 1)[0] for path in paths)

    def rule(self, target: str) -> FieldRule:
        """Return the rule for one target field; KeyError if the mapping has none."""
        for rule in self.rules:
            if rule.target == target:
                return rule
        raise KeyError(target)

    def apply(self, record: Mapping[str, Any], *, key: str | None = None) -> dict[str, Any]:
        """Return the target payload for one source record, every target field included.

        Args:
            record: the source record; dotted paths read nested mappings.
            key: names the record in rejections; defaults to the record's ``key`` field.

        Raises:
            RecordRejected: an adapter refused a value or a required field came out empty.
        """
        if key is None and self.key is not None:
            raw = _get_path(record, self.key)
            key = None if is_blank(raw) else str(raw)
        return {rule.target: rule.evaluate(record, key) for rule in self.rules}


def _get_path(record: Mapping[str, Any], path: str) -> Any:
    """Read a dotted path ('org_id.name') from nested mappings; None when any step is missing."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _combine(mode: str | None, values: list[Any]) -> Any:
    """Combine the (pre-adapted) source values of one field."""
    if mode is None:
        return values[0]
    present = [v for v in values if not is_blank(v)]
    if mode == "choose":
        return present[0] if present else None
    return " ".join(v.strip() if isinstance(v, str) else str(v) for v in present) or None


# -- loading and validation ------------------------------------------------------------------


class _Checker:
    """Turns one parsed file into a FieldMapping, collecting every problem on the way."""

    def __init__(self, path: str, registry: AdapterRegistry) -> None:
        self.path = path
        self.registry = registry
        self.problems: list[Problem] = []

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))

    def unknown_keys(self, node: _LineDict, allowed: Sequence[str], what: str) -> set[str]:
        """Report keys not in ``allowed``; return the keys suggested as their fixes."""
        suggested: set[str] = set()
        for key in node:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                suggested.update(close)
                hint = (
                    f" (did you mean {close[0]!r}?)" if close else f"; expected one of {', '.join(allowed)}"
                )
                self.problem(node.key_line(key), f"unknown key {key!r} in {what}{hint}")
        return suggested

    def text(self, node: _LineDict, key: str, what: str) -> str | None:
        value = node.get(key)
        if value is not None and not isinstance(value, str):
            self.problem(node.key_line(key), f"{what} must be text")
            return None
        return value

    def mapping(self, doc: Any) -> FieldMapping | None:
        if doc is None:
            self.problem(1, "the file is empty; expected 'mapping' and 'fields'")
            return None
        if not isinstance(doc, _LineDict):
            self.problem(
                getattr(doc, "line", 1), "a mapping file must be a YAML mapping with 'mapping' and 'fields'"
            )
            return None
        # A required key missing because it is misspelt is one mistake, reported once.
        misspelt = self.unknown_keys(doc, _TOP_KEYS, "the mapping file")
        name = doc.get("mapping")
        if "mapping" not in doc:
            if "mapping" not in misspelt:
                self.problem(doc.line, "the mapping name is missing: add 'mapping: <name>'")
        elif not isinstance(name, str) or not _MAPPING_NAME.match(name):
            self.problem(
                doc.key_line("mapping"), "'mapping' must be a name of letters, digits, '_', '.' or '-'"
            )
        key = self.text(doc, "key", "'key'")
        if key is not None and not _valid_path(key):
            self.problem(doc.key_line("key"), f"'key' {key!r} is not a field name or dotted path")
            key = None
        rules = self.rules(doc) if "fields" in doc or "fields" not in misspelt else ()
        if self.problems:
            return None
        return FieldMapping(
            name=name,
            rules=rules,
            key=key,
            source=self.text(doc, "source", "'source'"),
            target=self.text(doc, "target", "'target'"),
            description=self.text(doc, "description", "'description'"),
            path=self.path,
        )

    def rules(self, doc: _LineDict) -> tuple[FieldRule, ...]:
        fields = doc.get("fields")
        if "fields" not in doc:
            self.problem(doc.line, "'fields' is missing: list the target fields to fill")
            return ()
        if not isinstance(fields, _LineDict) or not fields:
            self.problem(
                doc.key_line("fields"), "'fields' must be a non-empty mapping of target field -> rule"
            )
            return ()
        rules = []
        for target, spec in fields.items():
            line = fields.key_line(target)
            if not isinstance(target, str) or not target.strip():
                self.problem(
                    line, f"target field {target!r} must be text (quote it: YAML reads yes/no/on/null)"
                )
                continue
            if not isinstance(spec, _LineDict):
                self.problem(line, f"target field {target!r}: expected a rule with 'fields' or 'transformer'")
                continue
            rule = self.rule(target, spec, line)
            if rule is not None:
                rules.append(rule)
        return tuple(rules)

    def rule(self, target: str, spec: _LineDict, line: int) -> FieldRule | None:
        before = len(self.problems)
        what = f"target field {target!r}"
        misspelt = self.unknown_keys(spec, _RULE_KEYS, what)
        has_fields, has_transformer = "fields" in spec, "transformer" in spec
        if has_fields and has_transformer:
            self.problem(line, f"{what}: give either 'fields' or 'transformer', not both")
        elif not has_fields and not has_transformer and not misspelt & {"fields", "transformer"}:
            self.problem(line, f"{what}: needs 'fields' (source fields to read) or 'transformer'")
        sources = self.sources(spec, what) if has_fields else ()
        mode = spec.get("mode")
        if "mode" in spec:
            if has_transformer and not has_fields:
                self.problem(
                    spec.key_line("mode"), f"{what}: 'mode' combines 'fields'; a transformer has none"
                )
            elif mode not in _MODES:
                close = difflib.get_close_matches(str(mode), _MODES, n=1, cutoff=0.5)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.problem(
                    spec.key_line("mode"), f"{what}: unknown mode {mode!r}; use join or choose{hint}"
                )
        elif len(sources) > 1:
            self.problem(
                spec.key_line("fields"),
                f"{what}: {len(sources)} source fields but no 'mode': say join or choose",
            )
        transformer = None
        if has_transformer:
            transformer = self.transformer(spec, what)
            if "pre_adapter" in spec:
                self.problem(
                    spec.key_line("pre_adapter"),
                    f"{what}: 'pre_adapter' applies to 'fields', not to a transformer",
                )
        pre = self.steps(spec, "pre_adapter", what)
        post = self.steps(spec, "post_adapter", what)
        flags = {flag: self.flag(spec, flag, what) for flag in ("required", "no_clobber")}
        if len(self.problems) > before:
            return None
        reads = sources if transformer is None else self.registry.get(transformer.name).reads
        return FieldRule(
            target=target,
            sources=sources,
            mode=mode,
            transformer=transformer,
            pre=pre,
            post=post,
            default=spec.get("default"),
            required=flags["required"],
            no_clobber=flags["no_clobber"],
            reads=reads,
            line=line,
        )

    def sources(self, spec: _LineDict, what: str) -> tuple[str, ...]:
        value, line = spec["fields"], spec.key_line("fields")
        if not isinstance(value, _LineList):
            self.problem(line, f"{what}: 'fields' must be a list of source field names, e.g. [first_name]")
            return ()
        if not value:
            self.problem(line, f"{what}: 'fields' is empty")
            return ()
        seen: set[str] = set()
        for item, item_line in zip(value, value.item_lines, strict=True):
            if not isinstance(item, str) or not _valid_path(item):
                self.problem(item_line, f"{what}: {item!r} is not a source field name or dotted path")
            elif item in seen:
                self.problem(item_line, f"{what}: source field {item!r} is listed twice")
            else:
                seen.add(item)
        return tuple(value)

    def flag(self, spec: _LineDict, name: str, what: str) -> bool:
        value = spec.get(name, False)
        if not isinstance(value, bool):
            self.problem(spec.key_line(name), f"{what}: {name!r} must be true or false")
            return False
        return value

    def transformer(self, spec: _LineDict, what: str) -> Step | None:
        ref, line = spec["transformer"], spec.key_line("transformer")
        if isinstance(ref, _LineList):
            self.problem(line, f"{what}: 'transformer' takes one adapter; add the rest as post_adapter")
            return None
        return self.step(ref, line, "transformer", what)

    def steps(self, spec: _LineDict, role: str, what: str) -> tuple[Step, ...]:
        if role not in spec:
            return ()
        ref, line = spec[role], spec.key_line(role)
        if not isinstance(ref, _LineList):
            step = self.step(ref, line, role, what)
            return (step,) if step else ()
        if not ref:
            self.problem(line, f"{what}: {role!r} is an empty list")
        steps = [
            self.step(item, item_line, role, what)
            for item, item_line in zip(ref, ref.item_lines, strict=True)
        ]
        return tuple(s for s in steps if s is not None)

    def step(self, ref: Any, line: int, role: str, what: str) -> Step | None:
        """Resolve one adapter reference: 'name' or {name: ..., args: {...}}."""
        args: Any = {}
        if isinstance(ref, _LineDict):
            self.unknown_keys(ref, _REF_KEYS, f"{what} {role}")
            args = ref.get("args") or {}
            name = ref.get("name")
            if not isinstance(name, str):
                self.problem(ref.line, f"{what}: {role} needs a 'name'")
                return None
            if not isinstance(args, _LineDict):
                self.problem(ref.key_line("args"), f"{what}: {role} {name!r}: 'args' must be a mapping")
                return None
        elif isinstance(ref, str):
            name = ref
        else:
            self.problem(line, f"{what}: {role} must be an adapter name or {{name: ..., args: {{...}}}}")
            return None
        if name not in self.registry:
            close = self.registry.suggest(name)
            hint = (
                f" (did you mean {' or '.join(repr(c) for c in close)}?)"
                if close
                else "; is the module that registers it imported before loading?"
            )
            self.problem(line, f"{what}: unknown adapter {name!r} in {role}{hint}")
            return None
        adapter = self.registry.get(name)
        if role == "transformer" and adapter.applies_to == "value":
            self.problem(
                line, f"{what}: adapter {name!r} takes one value, not a record; use it as post_adapter"
            )
            return None
        if role != "transformer" and adapter.applies_to == "record":
            self.problem(line, f"{what}: adapter {name!r} takes the whole record; use it as 'transformer'")
            return None
        problems = adapter.arg_problems(args)
        for arg, message in problems:
            arg_line = args.key_line(arg) if isinstance(args, _LineDict) and arg is not None else line
            self.problem(arg_line, f"{what}: {message}")
        if problems:
            return None
        try:
            func = adapter.build(args)
        except (TypeError, ValueError) as exc:
            self.problem(getattr(args, "line", line), f"{what}: adapter {name!r}: {exc}")
            return None
        return Step(name, func)


def _valid_path(path: str) -> bool:
    """A field name or dotted path: no empty part, no surrounding whitespace."""
    return path == path.strip() and all(part.strip() for part in path.split("."))


def _check_file(path: Path, registry: AdapterRegistry) -> tuple[FieldMapping | None, list[Problem], int]:
    """Read and validate one file.

    Returns:
        The mapping (None if invalid), its problems, and the line of its ``mapping:`` key.
    """
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(where, 1, f"cannot read the file: {type(exc).__name__}")], 1
    doc, yaml_problems = _read_yaml(text)
    checker = _Checker(where, registry)
    for line, message in yaml_problems:
        checker.problem(line, message)
    if doc is None and yaml_problems:
        return None, checker.problems, 1
    mapping = checker.mapping(doc)
    name_line = doc.key_line("mapping") if isinstance(doc, _LineDict) else 1
    return (None if checker.problems else mapping), checker.problems, name_line


def load_mapping(path: str | Path, *, registry: AdapterRegistry | None = None) -> FieldMapping:
    """Load and validate one mapping file.

    Args:
        path: the YAML file.
        registry: adapters the file may name; the default registry when omitted.

    Raises:
        MappingFileError: every problem in the file, each as ``file:line: message``.
    """
    mapping, problems, _ = _check_file(Path(path), ADAPTERS if registry is None else registry)
    if problems or mapping is None:
        raise MappingFileError(problems, path=str(path))
    return mapping


def load_mappings(
    directory: str | Path, *, registry: AdapterRegistry | None = None
) -> dict[str, FieldMapping]:
    """Load every ``*.yaml``/``*.yml`` file in a directory, keyed by mapping name.

    Raises:
        MappingFileError: every problem in every file, including a mapping name used twice.
        MappingError: the directory does not exist.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise MappingError("not a directory of mapping files", path=str(folder))
    registry = ADAPTERS if registry is None else registry
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    mappings: dict[str, FieldMapping] = {}
    first_seen: dict[str, str] = {}
    problems: list[Problem] = []
    for file in files:
        mapping, file_problems, name_line = _check_file(file, registry)
        problems.extend(file_problems)
        if mapping is None:
            continue
        if mapping.name in first_seen:
            message = f"mapping name {mapping.name!r} is already used by {first_seen[mapping.name]}"
            problems.append(Problem(str(file), name_line, message))
            continue
        first_seen[mapping.name] = f"{file}:{name_line}"
        mappings[mapping.name] = mapping
    if problems:
        raise MappingFileError(problems, path=str(folder))
    return mappings


# -- field-level diff ------------------------------------------------------------------------


def changed_fields(
    mapped: Mapping[str, Any], current_target: Mapping[str, Any], *, no_clobber: Collection[str] = ()
) -> dict[str, Any]:
    """Return the fields an update must send: new, non-empty values that differ from the target's.

    An empty new value never blanks a field, and a ``no_clobber`` field is left alone
    whenever its current value is non-empty. Values that differ only in form
    (``5`` and ``"5"``, ``True`` and ``"true"``, a date and its ISO text) count as equal,
    because APIs hand numbers, booleans and dates back as text.
    """
    changes = {}
    for name, new in mapped.items():
        if is_blank(new):
            continue
        current = current_target.get(name)
        if name in no_clobber and not is_blank(current):
            continue
        if not _same(new, current):
            changes[name] = new
    return changes


def _same(new: Any, current: Any) -> bool:
    """Equal, or the same scalar written differently."""
    if new == current:
        return True
    if current is None or isinstance(new, Mapping | list) or isinstance(current, Mapping | list):
        return False
    return _canonical(new) == _canonical(current)


def _moment(value: datetime) -> str:
    """An instant as UTC ISO text (naive values as they are)."""
    return value.astimezone(UTC).isoformat() if value.tzinfo is not None else value.isoformat()


def _canonical(value: Any) -> Any:
    """A comparable form of a scalar: booleans and numbers by value, dates and text as text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value)).normalize()
    if isinstance(value, datetime):
        return _moment(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()
        if len(text) >= 16 and text[:4].isdigit() and text[10:11] in ("T", " "):
            # APIs write one instant as ...Z, +00:00 or another offset.
            try:
                return _moment(datetime.fromisoformat(text))
            except ValueError:
                pass
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        try:
            number = Decimal(text)
        except InvalidOperation:
            return text
        # Only numbers written plainly compare by value: '007' and '7' are different codes.
        return number.normalize() if number.is_finite() and str(number) == text else text
    return value
