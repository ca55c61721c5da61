"""Structured output: a type (or a JSON schema) in, the schema each provider
is sent and a reused decoder for what comes back. This module does no I/O.

``OutputSchema.of(City)`` builds, once per type:

* ``json_schema``: the schema every provider is sent, always an object at the
  top (OpenAI and Anthropic require one): a type whose schema is not an object
  (``list[City]``) is wrapped as ``{"items": ...}``, and :meth:`decode`
  unwraps it;
* ``strict_schema``: the same schema in the subset OpenAI's strict mode
  takes (:func:`strict_form`: ``additionalProperties: false`` on every object,
  every property required, optional properties nullable, the keywords it
  refuses left out and named in the description), or None when it cannot be
  strict: a mapping with free keys (``dict[str, X]``, ``additionalProperties``
  or ``patternProperties``), a tuple of mixed types, ``allOf`` or ``not``
  have no strict form, so such a schema is sent non-strict;
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

from ._jsonschema import first_error, resolve_ref
from .errors import ConfigError, OutputValidationError

__all__ = [
    "NoSchemaForm",
    "OutputSchema",
    "anthropic_form",
    "openai_strict_form",
    "partial_json",
    "strict_form",
]

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
            without = drop_nulls(value)
            if first_error(self.json_schema, without) is not None:
                raise OutputValidationError(_message(error), raw_text=text)
            value = without
        return value[_ITEMS] if self._wrapped else value

    def _without_nulls(self, body: str) -> Any:
        if self.type is None:
            return None
        try:
            value = msgspec.json.decode(body)
            return msgspec.convert(drop_nulls(value), self.type)
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
    (``pip install 'mal-llm[partial]'``); None before anything parseable came."""
    try:
        import jiter
    except ImportError:
        raise ConfigError("partial() needs jiter: pip install 'mal-llm[partial]'") from None
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


def drop_nulls(value: Any) -> Any:
    """``value`` without the nulls of its objects, at every depth: what strict
    mode sends for an optional field it made nullable."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def _message(exc: Exception | str) -> str:
    return f"the output does not match the schema: {exc}"


# The providers' subsets of JSON Schema -----------------------------------------------------
#
# OpenAI's strict mode and Anthropic's structured outputs each take a subset of JSON Schema.
# One walker (_fit) makes a schema fit either one: a keyword the subset refuses is left out
# and named in the node's description instead (the model still reads it, and the output is
# still checked against the whole schema when it is decoded), every object is closed, and a
# shape the subset cannot say at all (free keys, a tuple of mixed types...) means the schema
# has no form there. What differs is in a _Subset: which keywords it keeps, which it
# leaves out, which it cannot say, and what more it asks of an object.


class NoSchemaForm(Exception):
    """A schema has no form in a provider's subset; the message says why."""


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

#: What a subset does with a keyword: send it, leave it out and name it in the
#: description, or leave it out unsaid.
_KEEP, _DROP, _QUIET = "keep", "drop", "quiet"


class _Subset:
    """What one provider's subset of JSON Schema takes."""

    #: Every property required, the optional ones nullable (OpenAI's strict mode).
    all_required: ClassVar[bool] = False

    def verdict(self, key: str, value: Any, node: dict[str, Any]) -> str:
        """``_KEEP``, ``_DROP`` or ``_QUIET`` for a keyword of ``node``; raises
        NoSchemaForm for one the subset cannot say."""
        raise NotImplementedError

    def prepare(
        self, node: dict[str, Any], root: Mapping[str, Any], inlined: tuple[str, ...]
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The node as the subset can take it, before its keywords are walked,
        and the references inlined on the way to it."""
        return node, inlined


def _fit(node: Any, subset: _Subset, root: Mapping[str, Any], inlined: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_fit(item, subset, root, inlined) for item in node]
    if not isinstance(node, dict):
        return node  # true/false schemas
    node, inlined = subset.prepare(node, root, inlined)
    out: dict[str, Any] = {}
    dropped: dict[str, Any] = {}
    for key, value in node.items():
        verdict = subset.verdict(key, value, node)
        if verdict == _QUIET:
            continue
        if verdict == _DROP:
            dropped[key] = value
        elif key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _fit(sub, subset, root, inlined) for name, sub in value.items()}
        elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
            # oneOf is sent as anyOf, as both providers' SDKs send it: the same
            # branches, and the output is still checked against oneOf on decode.
            name = "anyOf" if key == "oneOf" and "anyOf" not in node else key
            out[name] = [_fit(sub, subset, root, inlined) for sub in value]
        elif key in _SUBSCHEMA:
            out[key] = _fit(value, subset, root, inlined)
        else:
            out[key] = copy.deepcopy(value)  # data: enum, const, default, examples...
    if _is_object(node):
        _close(node, out, subset.all_required)
    if dropped:
        note = "; ".join(f"{key}: {msgspec.json.encode(v).decode()}" for key, v in dropped.items())
        description = out.get("description")
        out["description"] = f"{description} ({note})" if description else f"({note})"
    return out


def _is_object(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return (
        kind == "object"
        or (isinstance(kind, list) and "object" in kind)
        or not {"properties", "additionalProperties", "patternProperties"}.isdisjoint(node)
    )


def _close(node: dict[str, Any], out: dict[str, Any], all_required: bool) -> None:
    """``additionalProperties: false`` on an object (both subsets ask for it),
    and with ``all_required`` every property required, the optional ones
    nullable. An object with free keys has no form in either subset."""
    if (
        node.get("additionalProperties") not in (None, False)
        or "patternProperties" in node
        or ("properties" not in node and node.get("additionalProperties") is not False)
    ):
        raise NoSchemaForm(
            "free keys (additionalProperties, patternProperties or an object without properties)"
        )
    out["additionalProperties"] = False
    if all_required:
        properties = out.get("properties")
        if not isinstance(properties, dict):
            properties = {}
        listed = node.get("required")
        required = {k for k in listed if isinstance(k, str)} if isinstance(listed, list) else ()
        for key, value in list(properties.items()):
            if key not in required and not _allows_null(value):
                properties[key] = {"anyOf": [value, {"type": "null"}]}
        out["required"] = list(properties)


def _allows_null(node: Any) -> bool:
    if not isinstance(node, dict):
        return node is True
    kind = node.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_allows_null(o) for o in node.get("anyOf", ()))


# OpenAI's strict mode ------------------------------------------------------------------------
#
# platform.openai.com/docs/guides/structured-outputs#supported-schemas: strict mode takes
# the structure (type, properties, required, additionalProperties, items, anyOf, enum,
# const, $ref, $defs, definitions), the annotations (title, description) and the
# constraints listed under "Supported properties": pattern and format for strings;
# multipleOf, maximum, exclusiveMaximum, minimum, exclusiveMinimum for numbers; minItems
# and maxItems for arrays. Another keyword is a 400 ("In context=('properties', 'city'),
# 'minLength' is not permitted.": coder/mux#1220), and so is a string format not in the
# guide's list ("In context=('properties', 'url'), 'uri' is not a valid format.":
# cyanheads/git-mcp-server#47, RooCodeInc/Roo-Code#10198), a $ref with keywords beside it
# ("$ref cannot have keywords {'description'}."), an object that is not closed or leaves a
# property out of required, and a root that is not an object; "Recursive schemas are
# supported" (the same guide), through $defs or "#". The strict server's rule (mal.testing.
# _rules.openai_common.strict_schema_problem) holds the same lists from the same source, and
# a test keeps the two in step: the rule stands for the API, not for this code.

#: The keywords strict mode takes.
OPENAI_STRICT_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "anyOf",
        "enum",
        "const",
        "$ref",
        "$defs",
        "definitions",
        "title",
        "description",
        "pattern",
        "format",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "minItems",
        "maxItems",
    }
)
#: The string formats strict mode takes; another ``format`` is left out.
OPENAI_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
#: Keywords left out unsaid: they tell the model nothing.
_UNSAID = frozenset({"$schema", "$id", "$comment"})


def _unsaid(key: str, value: Any) -> bool:
    # A null default says nothing a nullable property does not (openai-python's
    # to_strict_json_schema drops it too).
    return key in _UNSAID or (key == "default" and value is None)


class _OpenAIStrict(_Subset):
    all_required = True

    def verdict(self, key: str, value: Any, node: dict[str, Any]) -> str:
        if key == "format":
            return _KEEP if isinstance(value, str) and value in OPENAI_FORMATS else _DROP
        if key in OPENAI_STRICT_KEYWORDS:
            if key == "items" and isinstance(value, list):
                raise NoSchemaForm("a tuple ('items' as a list)")
            return _KEEP
        if key == "oneOf" and "anyOf" not in node:
            return _KEEP  # sent as anyOf
        if key in _SUBSCHEMA or key in _SUBSCHEMA_LISTS or key in _SUBSCHEMA_MAPS:
            # What shapes the value, not a bound on it: without it the schema
            # would say something else.
            raise NoSchemaForm(f"{key!r}, which strict mode does not take")
        return _QUIET if _unsaid(key, value) else _DROP

    def prepare(
        self, node: dict[str, Any], root: Mapping[str, Any], inlined: tuple[str, ...]
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        ref = node.get("$ref")
        if ref is not None and any(not _unsaid(k, v) for k, v in node.items() if k != "$ref"):
            # A $ref stands alone in strict mode: one with keywords beside it
            # (a field's description) is replaced by what it refers to, those
            # keywords winning, as openai-python's to_strict_json_schema does.
            target = resolve_ref(root, ref) if isinstance(ref, str) else None
            if not isinstance(target, dict) or ref in inlined:
                raise NoSchemaForm(
                    f"a $ref with keywords beside it that cannot be inlined ({ref!r})"
                )
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return self.prepare(merged, root, (*inlined, ref))
        if "prefixItems" in node:
            return _tuple_as_array(node), inlined
        return node, inlined


def _tuple_as_array(node: dict[str, Any]) -> dict[str, Any]:
    """A tuple whose items are all of one type (``tuple[float, float]``) as an
    array of that type of the same length, which strict mode can say; another
    tuple has no strict form (``prefixItems`` is not in its subset)."""
    prefix = node["prefixItems"]
    rest = node.get("items", True)
    if (
        not isinstance(prefix, list)
        or not prefix
        or any(item != prefix[0] for item in prefix)
        or not (rest is False or rest == prefix[0])
    ):
        raise NoSchemaForm("a tuple of mixed types (prefixItems)")
    out = {key: value for key, value in node.items() if key != "prefixItems"}
    out["items"] = prefix[0]
    if rest is False:
        longest = node.get("maxItems")
        if isinstance(longest, int) and not isinstance(longest, bool):
            out["maxItems"] = min(len(prefix), longest)
        else:
            out["maxItems"] = len(prefix)
    return out


_OPENAI_STRICT = _OpenAIStrict()


def openai_strict_form(schema: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's strict form of a schema: ``additionalProperties: false`` on
    every object, every property required (the optional ones nullable), a
    ``$ref`` with keywords beside it inlined, a tuple of one type as an array,
    and the keywords strict mode does not take (another ``format`` among them)
    left out, named in the ``description`` instead. NoSchemaForm when it has
    none: free keys, ``allOf``, ``not``, ``if``, a tuple of mixed types..."""
    return cast(dict[str, Any], _fit(dict(schema), _OPENAI_STRICT, schema, ()))


def strict_form(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """:func:`openai_strict_form`, or None when the schema has no strict form."""
    try:
        return openai_strict_form(schema)
    except NoSchemaForm:
        return None


# Anthropic's subset ------------------------------------------------------------------------
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


class _Anthropic(_Subset):
    def verdict(self, key: str, value: Any, node: dict[str, Any]) -> str:
        if key in ANTHROPIC_DROPPED or (
            (key == "minItems" and value not in (0, 1))
            or (key == "format" and not (isinstance(value, str) and value in ANTHROPIC_FORMATS))
        ):
            return _DROP
        if key == "allOf" and isinstance(value, list):
            if any(isinstance(s, dict) and "$ref" in s for s in value):
                raise NoSchemaForm("allOf with $ref")
        elif key == "enum" and isinstance(value, list):
            if any(isinstance(item, (dict, list)) for item in value):
                raise NoSchemaForm("complex types within an enum")
        elif key == "$ref" and not (isinstance(value, str) and value.startswith("#")):
            raise NoSchemaForm("an external $ref")
        return _KEEP


_ANTHROPIC = _Anthropic()


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
        out = _fit(dict(schema), _ANTHROPIC, schema, ())
    except NoSchemaForm:
        return None
    if _recursive(out):
        return None
    return cast(dict[str, Any], out)


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
