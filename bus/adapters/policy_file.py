"""Policy and policy-case YAML files: read, validate, and point at the line that is wrong.

Operators edit these files by hand under pressure, so every problem names the file,
the path inside it (`rules[2].deliver_to[0]`) and the YAML line. The YAML is composed
once into nodes (for line numbers) and constructed from those same nodes (for data).
Two YAML 1.1 traps are closed: duplicate keys are errors (PyYAML silently keeps the
last `rules:`), and only true/false are booleans (`NO` is Norway, not False).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bus.adapters.schema_files import default_empact_codes
from bus.core.models import BaseAlert, parse_alert
from bus.core.policy import Policy, PolicyCase, located_errors, parse_policy
from bus.errors import AlertValidationError, Loc, PolicyFileError, PolicyValidationError, format_loc

__all__ = [
    "LoadedCase",
    "load_cases",
    "load_policy",
    "policy_digest",
    "policy_from_text",
]

MAX_FILE_BYTES = 4 * 1024 * 1024


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: country code NO and words like 'on' stay strings."""


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def policy_digest(data: bytes) -> str:
    """Short content hash: decisions cite it, so an audit record pins the exact file."""
    return "sha256:" + hashlib.sha256(data).hexdigest()[:12]


# -- YAML with positions --------------------------------------------------------------------


@dataclass(frozen=True)
class _Doc:
    source: str
    data: Any
    root: yaml.Node | None


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise PolicyFileError(str(path), [f"file is larger than {MAX_FILE_BYTES} bytes"])
        return path.read_bytes()
    except OSError as exc:
        raise PolicyFileError(str(path), [f"cannot read: {exc.strerror or exc}"]) from exc


def _parse_yaml(raw: bytes, source: str) -> _Doc:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyFileError(source, [f"not UTF-8 text: {exc}"]) from exc
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        problems = _duplicate_keys(root) if root is not None else []
        if problems:
            raise PolicyFileError(source, problems)
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise PolicyFileError(source, [f"invalid YAML: {where}{what}"]) from None
    except yaml.YAMLError as exc:
        raise PolicyFileError(source, [f"invalid YAML: {exc}"]) from None
    finally:
        loader.dispose()
    return _Doc(source, data, root)


def _duplicate_keys(node: yaml.Node) -> list[str]:
    problems: list[str] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in n.value:
                if isinstance(key, yaml.ScalarNode):
                    line = key.start_mark.line + 1
                    if key.value in seen:
                        problems.append(
                            f"line {line}: duplicate key {key.value!r} (first at line "
                            f"{seen[key.value]}); YAML would silently keep only the last one"
                        )
                    seen.setdefault(key.value, line)
                stack.append(value)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    return sorted(problems, key=lambda p: int(p.split(":")[0].split()[1]))


def _line(root: yaml.Node | None, loc: Loc) -> int | None:
    """The 1-based line of `loc` in the document (or of its deepest existing ancestor)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _located(doc: _Doc, errors: Sequence[tuple[Loc, str]], prefix: Loc = ()) -> list[str]:
    out = []
    for loc, message in errors:
        full = (*prefix, *loc)
        line = _line(doc.root, full)
        where = f" (line {line})" if line is not None else ""
        out.append(f"{format_loc(full)}{where}: {message}")
    return out


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _loc_from_path(path: str) -> Loc:
    """`header.handling_codes[0]` (AlertValidationError's form) -> a loc tuple."""
    if path == "alert":
        return ()
    return tuple(
        int(index) if index else name for name, index in _PATH_PART.findall(path)
    )


# -- policies -------------------------------------------------------------------------------


def policy_from_text(
    text: str | bytes, *, source: str = "<policy>", check_empact: bool = True
) -> Policy:
    """Validate policy YAML held in memory (the digest covers exactly these bytes)."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    doc = _parse_yaml(raw, source)
    try:
        return parse_policy(
            doc.data,
            digest=policy_digest(raw),
            empact_codes=default_empact_codes() if check_empact else None,
        )
    except PolicyValidationError as exc:
        raise PolicyFileError(source, _located(doc, exc.located)) from None


def load_policy(path: Path, *, check_empact: bool = True) -> Policy:
    """Read and validate a policy file; `Policy.revision` is `<version>+sha256:<12 hex>`.

    EMPACT selectors are checked against the code list (`schema_files.default_empact_codes()`) unless
    `check_empact` is False.
    """
    return policy_from_text(_read(path), source=str(path), check_empact=check_empact)


# -- cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedCase:
    case: PolicyCase
    alert: BaseAlert
    line: int | None


def load_cases(path: Path, *, policy: Policy | None = None) -> list[LoadedCase]:
    """Read a case file (`cases: [{name, alert, expect, expect_reasons?}]`), all or nothing.

    With `policy`, partners named in `expect` / `expect_reasons` must exist in it: a
    typo there would otherwise pass silently as "not delivered".
    """
    source = str(path)
    doc = _parse_yaml(_read(path), source)
    data = doc.data
    if not isinstance(data, dict) or "cases" not in data:
        raise PolicyFileError(source, ["expected a mapping with a 'cases' list"])
    extra = sorted(str(k) for k in data if k not in ("cases", "description"))
    if extra:
        unknown = [((k,), "unknown field (expected cases, description)") for k in extra]
        raise PolicyFileError(source, _located(doc, unknown))
    items = data["cases"]
    prefix: Loc = ("cases",)
    if not isinstance(items, list) or not items:
        raise PolicyFileError(source, _located(doc, [((), "expected a non-empty list")], prefix))

    from pydantic import ValidationError

    known = {p.id for p in policy.partners} if policy is not None else None
    loaded: list[LoadedCase] = []
    problems: list[str] = []
    names: dict[str, int] = {}
    for i, item in enumerate(items):
        here: Loc = (*prefix, i)
        try:
            case = PolicyCase.model_validate(item)
        except ValidationError as exc:
            problems += _located(doc, located_errors(exc), here)
            continue
        if case.name in names:
            first = f"duplicate case name (first at cases[{names[case.name]}])"
            problems += _located(doc, [(("name",), first)], here)
        names.setdefault(case.name, i)
        if known is not None:
            for j, pid in enumerate(case.expect):
                if pid not in known:
                    problems += _located(
                        doc, [(("expect", j), f"{pid!r} is not a partner of the policy")], here
                    )
            for pid in case.expect_reasons:
                if pid not in known:
                    problems += _located(
                        doc, [(("expect_reasons", pid), f"{pid!r} is not a partner of the policy")],
                        here,
                    )
        try:
            alert = parse_alert(case.alert, empact_codes=default_empact_codes())
        except AlertValidationError as exc:
            problems += _located(
                doc, [(_loc_from_path(p), m) for p, m in exc.errors], (*here, "alert")
            )
            continue
        loaded.append(LoadedCase(case, alert, _line(doc.root, here)))
    if problems:
        raise PolicyFileError(source, problems)
    return loaded
