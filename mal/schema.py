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
* a ``msgspec.json.Decoder`` of the type, reused for every output.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from .errors import ConfigError, OutputValidationError

__all__ = ["OutputSchema", "partial_json", "strict_form"]

_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_FENCE = re.compile(r"\A```(?:json|JSON)?[ \t]*\n(.*)\n```\Z", re.S)
#: The key a non-object output is wrapped under.
_ITEMS = "items"


class OutputSchema:
    """The output schema of a structured call; see the module docstring."""

    __slots__ = ("_decoder", "_wrapped", "json_schema", "name", "strict", "strict_schema", "type")

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
            return msgspec.convert(outer[_ITEMS], self.type) if self.type else outer[_ITEMS]
        except msgspec.ValidationError as exc:
            message = _message(exc).replace("`$", f"`$.{_ITEMS}")
            raise OutputValidationError(message, raw_text=text) from None

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


def _message(exc: Exception) -> str:
    return f"the output does not match the schema: {exc}"
