"""Structured output: a type (or a JSON schema) in, the schema each provider
is sent and a reused decoder for what comes back. This module does no I/O.

``OutputSchema.of(City)`` builds, once per type:

* ``json_schema``: the schema every provider is sent, always an object at the
  top (OpenAI and Anthropic require one): a type whose schema is not an object
  (``list[City]``) is wrapped as ``{"items": ...}``, and :meth:`decode`
  unwraps it;
* ``strict_schema``: the same schema made fit for OpenAI's strict mode
  (``additionalProperties: false`` on every object, every property required,
  optional properties nullable), or None when it cannot be strict: a mapping
  with free keys (``dict[str, X]``, ``additionalProperties`` or
  ``patternProperties``) has no strict form, so it is sent non-strict;
* ``anthropic_schema``: the schema in the subset Anthropic's structured
  outputs take (:func:`anthropic_form`), or None when it has no form there
  (it is then asked through a forced tool, which takes any schema);
* a ``msgspec.json.Decoder`` of the type, reused for every output.

What a provider is not sent still holds: an output is always checked against
the whole schema, by msgspec from the type, or (a JSON schema dict) by
:mod:`mal._jsonschema`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import msgspec

from ._jsonschema import first_error
from .errors import ConfigError, OutputValidationError

__all__ = ["OutputSchema", "anthropic_form", "partial_json", "strict_form"]

_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_FENCE = re.compile(r"\A```(?:json|JSON)?[ \t]*\n(.*)\n```\Z", re.S)
#: The key a non-object output is wrapped under.
_ITEMS = "items"


class OutputSchema:
    """The output schema of a structured call; see the module docstring."""

    __slots__ = (
        "_decoder",
        "_wrapped",
        "anthropic_schema",
        "json_schema",
        "name",
        "strict",
        "strict_schema",
        "type",
    )

    _cache: ClassVar[dict[Any, OutputSchema]] = {}

    def __init__(self, schema: Any) -> None:
        if isinstance(schema, dict):
            self.type: Any = None
            raw = copy.deepcopy(schema)
            title = raw.get("title")
            name = title if isinstance(title, str) and title else "output"
            decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder()
        elif isinstance(schema, type) or getattr(schema, "__origin__", None) is not None:
            self.type = schema
            try:
                raw = msgspec.json.schema(schema)
                decoder = msgspec.json.Decoder(schema)
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"schema {schema!r} cannot be used as an output schema: {exc}"
                ) from None
            name = _type_name(schema)
        else:
            raise ConfigError(
                "schema must be a msgspec.Struct, dataclass or TypedDict type, a list[...] of "
                f"one, or a JSON schema dict, not {type(schema).__name__}"
            )
        defs = raw.pop("$defs", None)
        # Providers want an object at the top, not a reference to one.
        raw = copy.deepcopy(_resolve(raw, defs or {}))
        self._wrapped = raw.get("type") != "object"
        if self._wrapped:
            raw = {
                "type": "object",
                "properties": {_ITEMS: raw},
                "required": [_ITEMS],
                "additionalProperties": False,
            }
        if defs:
            raw["$defs"] = defs
        self.json_schema: dict[str, Any] = raw
        self.name: str = (_NAME_CHARS.sub("_", name) or "output")[:64]
        self.strict_schema: dict[str, Any] | None = strict_form(raw)
        self.strict: bool = self.strict_schema is not None
        self.anthropic_schema: dict[str, Any] | None = anthropic_form(raw)
        self._decoder = decoder

    @classmethod
    def of(cls, schema: Any) -> OutputSchema:
        """The output schema of ``schema``, built once per type."""
        if isinstance(schema, OutputSchema):
            return schema
        if isinstance(schema, dict):
            return cls(schema)
        try:
            found = cls._cache.get(schema)
        except TypeError:  # an unhashable type argument
            return cls(schema)
        if found is None:
            found = cls._cache[schema] = cls(schema)
        return found

    def decode(self, text: str) -> Any:
        """Decode and validate an output; :class:`mal.OutputValidationError`
        (with ``raw_text``) names what does not match."""
        body = text.strip()
        fenced = _FENCE.match(body)
        if fenced:
            body = fenced.group(1).strip()
        if not body:
            raise OutputValidationError("the output is empty, not JSON", raw_text=text)
        if self.type is None:
            return self._decode_checked(body, text)
        if not self._wrapped:
            try:
                return self._decoder.decode(body)
            except msgspec.ValidationError as exc:
                # A nullable optional field (strict mode) may come back null.
                value = self._without_nulls(body)
                if value is not None:
                    return value
                raise OutputValidationError(_message(exc), raw_text=text) from None
            except msgspec.DecodeError as exc:
                raise OutputValidationError(_message(exc), raw_text=text) from None
        try:
            outer = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise OutputValidationError(_message(exc), raw_text=text) from None
        if not isinstance(outer, dict) or _ITEMS not in outer:
            raise OutputValidationError(
                f"the output must be an object with an {_ITEMS!r} key", raw_text=text
            )
        try:
            return msgspec.convert(outer[_ITEMS], self.type)
        except msgspec.ValidationError as exc:
            message = _message(exc).replace("`$", f"`$.{_ITEMS}")
            raise OutputValidationError(message, raw_text=text) from None

    def _decode_checked(self, body: str, text: str) -> Any:
        """The output of a JSON schema dict, checked against the whole schema
        (what no type checks: the providers may have been sent less of it)."""
        try:
            value = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise OutputValidationError(_message(exc), raw_text=text) from None
        if self._wrapped and (not isinstance(value, dict) or _ITEMS not in value):
            raise OutputValidationError(
                f"the output must be an object with an {_ITEMS!r} key", raw_text=text
            )
        error = first_error(self.json_schema, value)
        if error is not None:
            # A nullable optional field (strict mode) may come back null.
            without = _drop_nulls(value)
            if first_error(self.json_schema, without) is not None:
                raise OutputValidationError(_message(error), raw_text=text)
            value = without
        return value[_ITEMS] if self._wrapped else value

    def _without_nulls(self, body: str) -> Any:
        if self.type is None:
            return None
        try:
            value = msgspec.json.decode(body)
            return msgspec.convert(_drop_nulls(value), self.type)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None

    def reask_message(self, error: OutputValidationError) -> str:
        """The user turn of a re-ask: what was wrong, and what to send instead."""
        return (
            f"Your answer did not match the required JSON schema: {error.message}. "
            "Answer again with only the JSON object, matching the schema."
        )

    def __repr__(self) -> str:
        return f"OutputSchema({self.name}, strict={self.strict})"


def partial_json(text: str) -> Any:
    """What has arrived of a JSON output, decoded by ``jiter``'s partial mode
    (``pip install 'mal[partial]'``); None before anything parseable came."""
    try:
        import jiter
    except ImportError:
        raise ConfigError("partial() needs jiter: pip install 'mal[partial]'") from None
    body = text.strip()
    if body.startswith("```"):
        body = body.partition("\n")[2]
    if not body:
        return None
    try:
        return jiter.from_json(body.encode(), partial_mode="trailing-strings")
    except ValueError:
        return None


def _type_name(schema: Any) -> str:
    args = getattr(schema, "__args__", None)
    if args:
        origin = getattr(schema, "__origin__", None)
        inner = "".join(_type_name(arg) for arg in args)
        return f"{inner}{getattr(origin, '__name__', 'Output').capitalize()}"
    return getattr(schema, "__name__", "output")


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        found = defs.get(ref.rsplit("/", 1)[1])
        if isinstance(found, dict):
            return found
    return node


def strict_form(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """OpenAI's strict form of a schema (``additionalProperties: false`` on
    every object, every property required, optional ones nullable), or None
    when it has none (free keys)."""
    out = copy.deepcopy(dict(schema))
    return out if _make_strict(out) else None


def _make_strict(node: Any) -> bool:
    if isinstance(node, list):
        return all(_make_strict(item) for item in node)
    if not isinstance(node, dict):
        return True
    if "patternProperties" in node:
        return False
    if node.get("type") == "object" or "properties" in node:
        extra = node.get("additionalProperties")
        if extra not in (None, False):
            return False  # free keys: no strict form
        properties = node.get("properties", {})
        required = set(node.get("required", ()))
        node["additionalProperties"] = False
        for key, value in list(properties.items()):
            if key not in required:
                value.pop("default", None)
                if not _allows_null(value):
                    properties[key] = {"anyOf": [value, {"type": "null"}]}
        node["required"] = list(properties)
    return all(_make_strict(value) for key, value in node.items() if key != "enum")


def _allows_null(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(isinstance(o, dict) and _allows_null(o) for o in node.get("anyOf", ()))


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _message(exc: Exception | str) -> str:
    return f"the output does not match the schema: {exc}"


# Anthropic's subset ----------------------------------------------------------------------
#
# platform.claude.com/docs/en/build-with-claude/structured-outputs, "JSON Schema
# limitations" (shared by JSON outputs and strict tool use). Supported: the basic types;
# enum of strings, numbers, bools or nulls; const; anyOf and allOf (not allOf with $ref);
# local $ref, $defs, definitions; default; required; additionalProperties, which must be
# false for objects; the string formats listed below; array minItems of 0 or 1; simple
# regex patterns. Not supported, each a 400: recursive schemas, complex types within
# enums, external $ref, numerical constraints ("minimum, maximum, multipleOf, etc."),
# string constraints (minLength, maxLength), array constraints beyond minItems of 0 or 1,
# additionalProperties other than false.

#: The keywords left out of the schema sent (they stay enforced when the output is
#: decoded). minProperties/maxProperties are not among the supported features either,
#: and anthropics/anthropic-sdk-python's transform_schema (src/anthropic/lib/_parse/
#: _transform.py) keeps neither.
ANTHROPIC_DROPPED = frozenset(
    {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "maxItems",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "minProperties",
        "maxProperties",
    }
)
#: The string formats Anthropic takes; another ``format`` is left out.
ANTHROPIC_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)

#: Keywords whose value is a schema, a list of schemas, a map of names to schemas.
_SUBSCHEMA = frozenset(
    {
        "items",
        "additionalProperties",
        "not",
        "contains",
        "if",
        "then",
        "else",
        "propertyNames",
        "additionalItems",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
_SUBSCHEMA_LISTS = frozenset({"anyOf", "allOf", "oneOf", "prefixItems", "items"})
_SUBSCHEMA_MAPS = frozenset(
    {"properties", "$defs", "definitions", "patternProperties", "dependentSchemas"}
)


class _NoForm(Exception):
    pass


def anthropic_form(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """The schema in the subset Anthropic's structured outputs take:
    ``additionalProperties: false`` on every object, ``oneOf`` as ``anyOf``
    (as Anthropic's SDK sends it), and the keywords it does not take
    (:data:`ANTHROPIC_DROPPED`, ``minItems`` above 1, another ``format``) left
    out, named in the ``description`` instead so that the model still sees
    them. None when the schema has no form there: free keys (a mapping, an
    object without properties), recursion, ``allOf`` with ``$ref``, an enum of
    objects or arrays, an external ``$ref``."""
    try:
        out = _anthropic_node(dict(schema))
    except _NoForm:
        return None
    if _recursive(out):
        return None
    return cast(dict[str, Any], out)


def _anthropic_node(node: Any) -> Any:
    if isinstance(node, list):
        return [_anthropic_node(item) for item in node]
    if not isinstance(node, dict):
        return node  # true/false schemas
    out: dict[str, Any] = {}
    dropped: dict[str, Any] = {}
    for key, value in node.items():
        if key in ANTHROPIC_DROPPED or (
            (key == "minItems" and value not in (0, 1))
            or (key == "format" and value not in ANTHROPIC_FORMATS)
        ):
            dropped[key] = value
        elif key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _anthropic_node(sub) for name, sub in value.items()}
        elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
            if key == "allOf" and any(isinstance(s, dict) and "$ref" in s for s in value):
                raise _NoForm
            name = "anyOf" if key == "oneOf" and "anyOf" not in node else key
            out[name] = [_anthropic_node(sub) for sub in value]
        elif key in _SUBSCHEMA:
            out[key] = _anthropic_node(value)
        elif _unsupported(key, value):
            raise _NoForm
        else:
            out[key] = copy.deepcopy(value)  # data: enum, const, default, examples...
    kind = node.get("type")
    if (
        kind == "object"
        or (isinstance(kind, list) and "object" in kind)
        or not {"properties", "additionalProperties", "patternProperties"}.isdisjoint(node)
    ):
        if (
            node.get("additionalProperties") not in (None, False)
            or "patternProperties" in node
            or ("properties" not in node and node.get("additionalProperties") is not False)
        ):
            raise _NoForm  # free keys
        out["additionalProperties"] = False
    if dropped:
        note = "; ".join(f"{key}: {msgspec.json.encode(v).decode()}" for key, v in dropped.items())
        description = out.get("description")
        out["description"] = f"{description} ({note})" if description else f"({note})"
    return out


def _unsupported(key: str, value: Any) -> bool:
    """An enum of objects or arrays ("complex types within enums"), an
    external ``$ref``: what Anthropic's structured outputs reject."""
    if key == "enum" and isinstance(value, list):
        return any(isinstance(item, (dict, list)) for item in value)
    return key == "$ref" and not (isinstance(value, str) and value.startswith("#"))


def _recursive(schema: dict[str, Any]) -> bool:
    """Whether a schema refers to itself (a ``$ref`` cycle through its definitions)."""
    defs: dict[str, Any] = {}
    for section in ("$defs", "definitions"):
        found = schema.get(section)
        if isinstance(found, dict):
            defs.update({f"#/{section}/{name}": node for name, node in found.items()})
    top = {key: value for key, value in schema.items() if key not in ("$defs", "definitions")}
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(ref: str, node: Any) -> bool:
        if state.get(ref) == 1:
            return True
        if state.get(ref) == 2:
            return False
        state[ref] = 1
        for target in _refs(node):
            if target == "#" or (target in defs and visit(target, defs[target])):
                return True
        state[ref] = 2
        return False

    return visit("#", top)


def _refs(node: Any) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            out.append(ref)
        for key, value in node.items():
            if key not in ("enum", "const", "default", "examples"):
                out.extend(_refs(value))
    elif isinstance(node, list):
        for value in node:
            out.extend(_refs(value))
    return out
