"""Checks a decoded output against a JSON schema given as a dict: the first
place where it does not match, or None. This module does no I/O.

A ``schema=`` given as a type is checked by msgspec, from the type; a JSON
schema dict has no type, so its output is checked here, against the schema
the caller gave (providers may be sent a smaller one: Anthropic's structured
outputs leave numeric, length and count bounds out, and those bounds must
still hold). The keywords of JSON Schema 2020-12 that describe a JSON value
are checked: ``type``, ``enum``, ``const``, the numeric, string, array and
object keywords, ``anyOf``/``oneOf``/``allOf``/``not``, ``if``/``then``/``else``
and local ``$ref``. ``format`` is an annotation (as the specification has it
by default) and is not checked; a ``pattern`` Python's ``re`` cannot compile
is not checked either.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

__all__ = ["first_error", "resolve_ref"]

#: How deep ``$ref``s may lead before the check gives up on a branch (a
#: schema that refers to itself without going down the value).
_MAX_DEPTH = 200

_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    # JSON Schema: "1.0" is an integer (a number with a zero fractional part).
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def first_error(schema: Any, value: Any) -> str | None:
    """Where ``value`` first breaks ``schema``, as ``"<what> - at `$.path`"``
    (msgspec's form), or None when it matches."""
    return _Checker(schema).check(schema, value, "$", 0)


class _Checker:
    __slots__ = ("_patterns", "_root")

    def __init__(self, root: Any) -> None:
        self._root = root
        self._patterns: dict[str, re.Pattern[str] | None] = {}

    def check(self, node: Any, value: Any, path: str, depth: int) -> str | None:
        if node is True or depth > _MAX_DEPTH:
            return None
        if node is False:
            return f"No value is allowed here - at `{path}`"
        if not isinstance(node, dict) or not node:
            return None
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = self._resolve(ref)
            if target is not None:
                error = self.check(target, value, path, depth + 1)
                if error is not None:
                    return error
        return (
            self._type(node, value, path)
            or self._values(node, value, path)
            or self._number(node, value, path)
            or self._string(node, value, path)
            or self._array(node, value, path, depth)
            or self._object(node, value, path, depth)
            or self._applicators(node, value, path, depth)
        )

    def _type(self, node: dict[str, Any], value: Any, path: str) -> str | None:
        kind = node.get("type")
        if kind is None:
            return None
        kinds = kind if isinstance(kind, list) else [kind]
        if any(_TYPES.get(k, _anything)(value) for k in kinds if isinstance(k, str)):
            return None
        return f"Expected `{' | '.join(map(str, kinds))}`, got `{_kind(value)}` - at `{path}`"

    def _values(self, node: dict[str, Any], value: Any, path: str) -> str | None:
        enum = node.get("enum")
        if isinstance(enum, list) and not any(_equal(value, item) for item in enum):
            return f"Expected one of {_short(enum)}, got {_short(value)} - at `{path}`"
        if "const" in node and not _equal(value, node["const"]):
            return f"Expected {_short(node['const'])}, got {_short(value)} - at `{path}`"
        return None

    def _number(self, node: dict[str, Any], value: Any, path: str) -> str | None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        low, high = _bound(node, "minimum"), _bound(node, "maximum")
        low_x, high_x = _bound(node, "exclusiveMinimum"), _bound(node, "exclusiveMaximum")
        # Draft 4 wrote the exclusive bounds as booleans beside minimum/maximum.
        if node.get("exclusiveMinimum") is True:
            low, low_x = None, low
        if node.get("exclusiveMaximum") is True:
            high, high_x = None, high
        if low is not None and value < low:
            return f"Expected a number >= {low}, got {value} - at `{path}`"
        if high is not None and value > high:
            return f"Expected a number <= {high}, got {value} - at `{path}`"
        if low_x is not None and value <= low_x:
            return f"Expected a number > {low_x}, got {value} - at `{path}`"
        if high_x is not None and value >= high_x:
            return f"Expected a number < {high_x}, got {value} - at `{path}`"
        step = _bound(node, "multipleOf")
        if step is not None and step > 0 and not _multiple(value, step):
            return f"Expected a multiple of {step}, got {value} - at `{path}`"
        return None

    def _string(self, node: dict[str, Any], value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            return None
        shortest, longest = node.get("minLength"), node.get("maxLength")
        # Lengths count code points (Unicode characters), as len() does.
        if isinstance(shortest, int) and len(value) < shortest:
            return f"Expected a string of length >= {shortest} - at `{path}`"
        if isinstance(longest, int) and len(value) > longest:
            return f"Expected a string of length <= {longest} - at `{path}`"
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            compiled = self._pattern(pattern)
            if compiled is not None and compiled.search(value) is None:
                return f"Expected a string matching {pattern!r} - at `{path}`"
        return None

    def _array(self, node: dict[str, Any], value: Any, path: str, depth: int) -> str | None:
        if not isinstance(value, list):
            return None
        fewest, most = node.get("minItems"), node.get("maxItems")
        if isinstance(fewest, int) and len(value) < fewest:
            return f"Expected an array of length >= {fewest} - at `{path}`"
        if isinstance(most, int) and len(value) > most:
            return f"Expected an array of length <= {most} - at `{path}`"
        if node.get("uniqueItems") is True:
            seen: list[Any] = []
            for i, item in enumerate(value):
                if any(_equal(item, other) for other in seen):
                    return f"Expected unique items, got a repeat - at `{path}[{i}]`"
                seen.append(item)
        prefix = node.get("prefixItems")
        start = 0
        if isinstance(prefix, list):
            for i, (schema, item) in enumerate(zip(prefix, value, strict=False)):
                error = self.check(schema, item, f"{path}[{i}]", depth + 1)
                if error is not None:
                    return error
            start = len(prefix)
        items = node.get("items")
        if isinstance(items, list):  # draft 4 to 2019-09: a schema per position
            for i, (schema, item) in enumerate(zip(items, value, strict=False)):
                error = self.check(schema, item, f"{path}[{i}]", depth + 1)
                if error is not None:
                    return error
        elif items is not None:
            for i in range(start, len(value)):
                error = self.check(items, value[i], f"{path}[{i}]", depth + 1)
                if error is not None:
                    return error
        contains = node.get("contains")
        if contains is not None:
            found = sum(self.check(contains, item, path, depth + 1) is None for item in value)
            least = node.get("minContains", 1)
            if isinstance(least, int) and found < least:
                return f"Expected at least {least} matching item(s) - at `{path}`"
            limit = node.get("maxContains")
            if isinstance(limit, int) and found > limit:
                return f"Expected at most {limit} matching item(s) - at `{path}`"
        return None

    def _object(self, node: dict[str, Any], value: Any, path: str, depth: int) -> str | None:
        if not isinstance(value, dict):
            return None
        for name in node.get("required", ()):
            if isinstance(name, str) and name not in value:
                return f"Object missing required field `{name}` - at `{path}`"
        fewest, most = node.get("minProperties"), node.get("maxProperties")
        if isinstance(fewest, int) and len(value) < fewest:
            return f"Expected an object with >= {fewest} fields - at `{path}`"
        if isinstance(most, int) and len(value) > most:
            return f"Expected an object with <= {most} fields - at `{path}`"
        properties = node.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        patterns = node.get("patternProperties")
        patterns = patterns if isinstance(patterns, dict) else {}
        extra = node.get("additionalProperties")
        names = node.get("propertyNames")
        for key, item in value.items():
            where = f"{path}.{key}"
            if names is not None:
                error = self.check(names, key, where, depth + 1)
                if error is not None:
                    return error
            known = key in properties
            if known:
                error = self.check(properties[key], item, where, depth + 1)
                if error is not None:
                    return error
            for pattern, schema in patterns.items():
                compiled = self._pattern(pattern)
                if compiled is not None and compiled.search(key) is not None:
                    known = True
                    error = self.check(schema, item, where, depth + 1)
                    if error is not None:
                        return error
            if not known and extra is not None:
                if extra is False:
                    return f"Object contains unknown field `{key}` - at `{path}`"
                error = self.check(extra, item, where, depth + 1)
                if error is not None:
                    return error
        return None

    def _applicators(self, node: dict[str, Any], value: Any, path: str, depth: int) -> str | None:
        for schema in _list(node.get("allOf")):
            error = self.check(schema, value, path, depth + 1)
            if error is not None:
                return error
        any_of = _list(node.get("anyOf"))
        if any_of and all(self.check(s, value, path, depth + 1) is not None for s in any_of):
            return f"Expected a value matching one of the `anyOf` schemas - at `{path}`"
        one_of = _list(node.get("oneOf"))
        if one_of:
            matches = sum(self.check(s, value, path, depth + 1) is None for s in one_of)
            if matches != 1:
                return (
                    f"Expected a value matching exactly one of the `oneOf` schemas, "
                    f"matched {matches} - at `{path}`"
                )
        if "not" in node and self.check(node["not"], value, path, depth + 1) is None:
            return f"Expected a value not matching the `not` schema - at `{path}`"
        if "if" in node:
            branch = "then" if self.check(node["if"], value, path, depth + 1) is None else "else"
            if branch in node:
                return self.check(node[branch], value, path, depth + 1)
        return None

    def _resolve(self, ref: str) -> Any:
        return resolve_ref(self._root, ref)

    def _pattern(self, pattern: str) -> re.Pattern[str] | None:
        if pattern not in self._patterns:
            try:
                self._patterns[pattern] = re.compile(pattern)
            except re.error:
                self._patterns[pattern] = None
        return self._patterns[pattern]


def resolve_ref(root: Any, ref: str) -> Any:
    """The target of a local reference (``#``, ``#/$defs/Name``, any JSON
    pointer into the root schema); None for another document's."""
    if not ref.startswith("#"):
        return None
    node = root
    for part in ref[1:].split("/")[1:]:
        key = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node


def _anything(value: Any) -> bool:
    return True


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _bound(node: dict[str, Any], key: str) -> float | None:
    """A numeric keyword's value; None when absent or not a number."""
    value = node.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


def _multiple(value: float, step: float) -> bool:
    if isinstance(value, int) and isinstance(step, int):
        return value % step == 0
    quotient = value / step
    return math.isclose(quotient, round(quotient), rel_tol=1e-9, abs_tol=1e-9)


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0``, but ``true`` is no number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "array"
    return "object"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
