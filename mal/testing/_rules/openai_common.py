"""What the OpenAI rules share: the validator's sentences, value checks,
the model families, image URLs and the structured-outputs subset.

OpenAI's request validator answers in a small set of sentence shapes, one per
kind of fault, each with its own ``code``; the helpers below build them so
that every rule words its answer the way the real API does. Where a sentence
is quoted below, the source that shows it is named beside it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import Violation

__all__ = [
    "Check",
    "Violation",
    "array_too_long",
    "boolean",
    "check_fields",
    "choice",
    "empty_array",
    "empty_string",
    "enum_value",
    "image_url_problem",
    "integer",
    "invalid_type",
    "is_integer",
    "is_number",
    "kind",
    "metadata",
    "missing",
    "model_family",
    "number",
    "of_type",
    "out_of_range",
    "pattern_mismatch",
    "quoted",
    "strict_schema_problem",
    "string",
    "string_too_long",
    "suggestions",
    "unknown_parameter",
    "unsupported_parameter",
]

#: Names of functions and of structured-output formats: "Must be a-z, A-Z,
#: 0-9, or contain underscores and dashes, with a maximum length of 64"
#: (openapi FunctionObject.name, ResponseFormatJsonSchema.json_schema.name).
NAME_PATTERN = "^[a-zA-Z0-9_-]+$"
NAME_RE = re.compile(r"\A[a-zA-Z0-9_-]+\Z")
NAME_MAX = 64


# The validator's sentences ------------------------------------------------------------


def kind(value: Any) -> str:
    """A JSON value's type in the validator's words ("but got a string
    instead", "but got a decimal number instead", "but got null instead")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def quoted(values: Iterable[str]) -> str:
    """``'a', 'b', and 'c'``: how the validator lists supported values."""
    items = [f"'{v}'" for v in values]
    if len(items) <= 1:
        return "".join(items)
    if len(items) == 2:
        return f"{items[0]} and {items[1]}"
    return f"{', '.join(items[:-1])}, and {items[-1]}"


def _number(value: float) -> str:
    """A bound as the validator prints it: 2, not 2.0."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


# Each sentence below is quoted from a captured 400 response. "Invalid type for
# 'messages[1].content': expected one of a string or array of objects, but got an
# object instead." code invalid_type (clusterzx/paperless-ai#748).
def invalid_type(param: str, expected: str, value: Any) -> Violation:
    return Violation(
        f"Invalid type for '{param}': expected {expected}, but got {kind(value)} instead.",
        param,
        code="invalid_type",
    )


# "Missing required parameter: 'messages'." (SilasMarvin/lsp-ai#108) and
# "Missing required parameter: 'messages[0].role'." (Leon-Sander/Local-Multimodal-AI-Chat#43),
# code missing_required_parameter.
def missing(param: str) -> Violation:
    return Violation(
        f"Missing required parameter: '{param}'.", param, code="missing_required_parameter"
    )


# "Invalid value: 'bogus'. Supported values are: 'system', 'assistant', 'user',
# 'function', 'tool', and 'developer'." code invalid_value (the role list is the
# one openai/openai-openapi ChatCompletionRequestMessage discriminates on).
def enum_value(param: str, value: Any, allowed: Iterable[str]) -> Violation:
    return Violation(
        f"Invalid value: '{value}'. Supported values are: {quoted(allowed)}.",
        param,
        code="invalid_value",
    )


# "Invalid 'temperature': decimal above maximum value. Expected a value <= 2,
# but got 200 instead." code decimal_above_max_value (a captured body quoted in
# several clients' error parsing); "Invalid
# 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got
# 10 instead." code integer_below_min_value (vectorize-io/hindsight#58).
def out_of_range(
    param: str, value: float, bound: float, *, above: bool, integer: bool
) -> Violation:
    noun = "integer" if integer else "decimal"
    side, word, sign = ("above", "maximum", "<=") if above else ("below", "minimum", ">=")
    return Violation(
        f"Invalid '{param}': {noun} {side} {word} value. Expected a value {sign} "
        f"{_number(bound)}, but got {value!r} instead.",
        param,
        code=f"{noun}_{side}_{'max' if above else 'min'}_value",
    )


# "Invalid 'messages': empty array. Expected an array with minimum length 1, but
# got an empty array instead." code empty_array (envoyproxy/ai-gateway cassette
# tests/internal/testopenai/cassettes/chat-no-messages.yaml).
def empty_array(param: str) -> Violation:
    return Violation(
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.",
        param,
        code="empty_array",
    )


# "Invalid 'tools': array too long. Expected an array with maximum length 128, but
# got an array with length 132 instead." (quoted in an AI gateway's troubleshooting docs);
# code array_above_max_length.
def array_too_long(param: str, limit: int, length: int) -> Violation:
    return Violation(
        f"Invalid '{param}': array too long. Expected an array with maximum length "
        f"{limit}, but got an array with length {length} instead.",
        param,
        code="array_above_max_length",
    )


# "Invalid 'tools[0].function.name': string does not match pattern. Expected a
# string that matches the pattern '^[a-zA-Z0-9_-]+$'." code invalid_value (a
# captured response quoted in several tool-name sanitizers; the same sentence for
# 'messages[3].name').
def pattern_mismatch(param: str, pattern: str = NAME_PATTERN) -> Violation:
    return Violation(
        f"Invalid '{param}': string does not match pattern. Expected a string that "
        f"matches the pattern '{pattern}'.",
        param,
        code="invalid_value",
    )


# The length sentences of the same validator, codes string_above_max_length and
# empty_string ("Invalid 'metadata.k': string too long. Expected a string with
# maximum length 512, but got a string with length 600 instead.").
def string_too_long(param: str, limit: int, length: int) -> Violation:
    return Violation(
        f"Invalid '{param}': string too long. Expected a string with maximum length "
        f"{limit}, but got a string with length {length} instead.",
        param,
        code="string_above_max_length",
    )


def empty_string(param: str) -> Violation:
    return Violation(
        f"Invalid '{param}': empty string. Expected a string with minimum length 1, "
        "but got an empty string instead.",
        param,
        code="empty_string",
    )


# "Unknown parameter: 'reasoning'." code unknown_parameter, param reasoning
# (teabranch/open-responses-server#41, POST /v1/chat/completions with o4-mini);
# "Unknown parameter: 'input[3].status'." (1jehuang/jcode#1028, Responses).
def unknown_parameter(param: str, hint: Iterable[str] = ()) -> Violation:
    near = list(hint)
    more = f" Did you mean {_or(near)}?" if near else ""
    return Violation(f"Unknown parameter: '{param}'.{more}", param, code="unknown_parameter")


def _or(names: list[str]) -> str:
    items = [f"'{n}'" for n in names]
    if len(items) <= 2:
        return " or ".join(items)
    return f"{', '.join(items[:-1])}, or {items[-1]}"


def suggestions(key: str, known: Iterable[str], sent: Iterable[str]) -> list[str]:
    """The known keys within two edits of an unknown one, nearest first, leaving
    out keys the body already has: "Unknown parameter: 'stor'. Did you mean 'stop'
    or 'store'?" (the spelling help of the strict validator, as recorded against
    the live API in a third-party conformance suite: distance 2 suggests, 3 does
    not, and a key already sent is never suggested)."""
    present = set(sent)
    near = [(d, k) for k in known if k not in present and (d := _distance(key, k)) <= 2]
    return [k for _, k in sorted(near)]


def _distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


# "Unsupported parameter: 'stop' is not supported with this model." code
# unsupported_parameter (huggingface/smolagents#1671, gpt-5-mini).
def unsupported_parameter(param: str, *, code: str | None = "unsupported_parameter") -> Violation:
    return Violation(
        f"Unsupported parameter: '{param}' is not supported with this model.", param, code=code
    )


# Value checks ---------------------------------------------------------------------------


def is_integer(value: Any) -> bool:
    """A JSON integer (``2.0`` counts, as JSON Schema counts it; a boolean does not)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Model families -------------------------------------------------------------------------

# The reasoning models, by name: OpenAI's o-series and the gpt-5 family (its
# ``-chat`` variants are the non-reasoning ChatGPT models). The names are the
# openapi ModelIdsShared enum's: o1, o1-mini, o1-preview, o3, o3-mini, o4-mini,
# gpt-5, gpt-5-mini, gpt-5-nano, gpt-5.1 ... gpt-5.6-luna, with their dated forms.
_REASONING = re.compile(r"\A(?:o[134](?:-|\Z)|gpt-5(?:\.\d+)?(?:-|\Z))")
_CHAT_VARIANT = re.compile(r"-chat(?:-|\Z)")
# The earlier chat models, which do not take reasoning_effort at all
# ("Unrecognized request argument supplied: reasoning_effort" with gpt-4o-mini:
# coroot/coroot#698, davidmigloz/langchain_dart#712).
_PLAIN = re.compile(r"\A(?:gpt-4o|gpt-4\.1|gpt-4|gpt-3\.5|chatgpt-4o)(?:-|\Z)")


def model_family(model: Any) -> str | None:
    """``"o1"``, ``"o3"``, ``"o4"``, ``"gpt-5"`` (a reasoning model), ``"plain"``
    (an earlier chat model) or None (a name this table does not know: a local
    model, a fine-tune, a mock's)."""
    if not isinstance(model, str):
        return None
    name = model.lower()
    if _REASONING.match(name) and not _CHAT_VARIANT.search(name):
        return "gpt-5" if name.startswith("gpt-5") else name[:2]
    if _PLAIN.match(name):
        return "plain"
    return None


# Images -----------------------------------------------------------------------------------

_DATA_URL = re.compile(r"\Adata:([^;,]*)((?:;[^;,]*)*),(.*)\Z", re.DOTALL)


def image_url_problem(url: str) -> str | None:
    """What is wrong with an image URL, in the words that end OpenAI's sentence
    "Expected a base64-encoded data URL with an image MIME type (e.g.
    'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got ...", or None.

    An http(s) URL is fetched by OpenAI and passes here; anything else must be a
    base64 ``data:`` URL of an image type. The endings are quoted from captured
    responses: "a value without the 'data:' prefix" (Alibaba-NLP/OmniSearch#3),
    "a value without the ';base64' separator", "empty base64-encoded bytes"
    (anomalyco/opencode#23983), "unsupported MIME type 'application/pdf'", "an
    invalid base64-encoded value"."""
    lowered = url[:8].lower()
    if lowered.startswith(("http://", "https://")):
        return None
    match = _DATA_URL.match(url)
    if match is None:
        return "a value without the 'data:' prefix"
    media_type, params, payload = match.groups()
    if ";base64" not in params.lower():
        return "a value without the ';base64' separator"
    if not media_type.lower().startswith("image/"):
        return f"unsupported MIME type '{media_type}'"
    if not payload:
        return "empty base64-encoded bytes"
    try:
        base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return "an invalid base64-encoded value"
    return None


# Structured outputs -----------------------------------------------------------------------

#: The keywords strict mode takes: the structure (type, properties, required,
#: additionalProperties, items, anyOf, enum, const, $ref, $defs, definitions),
#: the annotations (title, description) and the constraints the Structured
#: Outputs guide lists under "Supported properties": pattern and format for
#: strings; multipleOf, maximum, exclusiveMaximum, minimum, exclusiveMinimum for
#: numbers; minItems and maxItems for arrays (platform.openai.com/docs/guides/
#: structured-outputs#supported-schemas, quoted in prism-php/prism#533). Any other
#: keyword is refused: "'minLength' is not permitted." (coder/mux#1220),
#: "'uniqueItems' is not permitted.", "'allOf' is not permitted.", "'oneOf' is not
#: permitted.", "'default' is not permitted." (captured responses quoted in
#: client code; see the tests).
STRICT_KEYWORDS = frozenset(
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
#: The string formats strict mode takes, the guide's list (the same section); another
#: is refused: "In context=('properties', 'url'), 'uri' is not a valid format."
#: (cyanheads/git-mcp-server#47, RooCodeInc/Roo-Code#10198).
STRICT_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)


def strict_schema_problem(schema: Any) -> str | None:
    """Why a schema cannot be used with ``strict: true``, in OpenAI's words
    (the part after "Invalid schema for response_format 'NAME': "), or None.

    The root must be an object ("schema must be a JSON Schema of 'type:
    \"object\"', got 'type: \"None\"'.": a captured ``invalid_function_parameters``
    answer); every object sets ``additionalProperties: false`` ("In context=(),
    'additionalProperties' is required to be supplied and to be false.":
    dottxt-ai/outlines#844) and lists every property in ``required`` ("In
    context=(), 'required' is required to be supplied and to be an array including
    every key in properties. Missing 'location'."); a ``$ref`` stands alone ("In
    context=('properties', 'events', 'items'), $ref cannot have keywords
    {'description'}."); only :data:`STRICT_KEYWORDS` appear, and a ``format`` is one
    of :data:`STRICT_FORMATS` ("'uri' is not a valid format."). The context is the
    path to the node as a Python tuple, as the server prints it (e.g.
    "In context=('properties', 'etymology'), ...": moeru-ai/xsai#202)."""
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        got = schema.get("type") if isinstance(schema, Mapping) else None
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{got}\"'."
    return _strict_node(schema, ())


def _strict_node(node: Any, context: tuple[str, ...]) -> str | None:
    if not isinstance(node, Mapping):
        return None  # ``items: false``, a boolean schema: nothing to walk
    for key in node:
        if key not in STRICT_KEYWORDS:
            return f"In context={context!r}, '{key}' is not permitted."
    form = node.get("format")
    if form is not None and not (isinstance(form, str) and form in STRICT_FORMATS):
        return f"In context={context!r}, '{form}' is not a valid format."
    if "$ref" in node and len(node) > 1:
        others = ", ".join(repr(k) for k in sorted(k for k in node if k != "$ref"))
        return f"In context={context!r}, $ref cannot have keywords {{{others}}}."
    kinds = node.get("type")
    is_object = kinds == "object" or (isinstance(kinds, list) and "object" in kinds)
    properties = node.get("properties")
    if is_object or isinstance(properties, Mapping):
        if node.get("additionalProperties") is not False:
            return (
                f"In context={context!r}, 'additionalProperties' is required to be "
                "supplied and to be false."
            )
        required = node.get("required")
        listed = set(required) if isinstance(required, list) else set()
        for name in properties or {}:
            if name not in listed:
                return (
                    f"In context={context!r}, 'required' is required to be supplied and "
                    f"to be an array including every key in properties. Missing '{name}'."
                )
    for name, child in (properties or {}).items() if isinstance(properties, Mapping) else ():
        found = _strict_node(child, (*context, "properties", str(name)))
        if found:
            return found
    if "items" in node:
        found = _strict_node(node["items"], (*context, "items"))
        if found:
            return found
    options = node.get("anyOf")
    if isinstance(options, list):
        for i, option in enumerate(options):
            found = _strict_node(option, (*context, "anyOf", str(i)))
            if found:
                return found
    for section in ("$defs", "definitions"):
        defs = node.get(section)
        if isinstance(defs, Mapping):
            for name, child in defs.items():
                found = _strict_node(child, (*context, section, str(name)))
                if found:
                    return found
    return None


# Field checks, table-driven -----------------------------------------------------------

#: A field's check: its path and value in, the first fault out.
Check = Callable[[str, Any], "Violation | None"]


def number(lo: float | None = None, hi: float | None = None) -> Check:
    """A decimal within bounds ("expected a decimal": the type word the
    validator uses for temperature and top_p)."""

    def check(param: str, value: Any) -> Violation | None:
        if not is_number(value):
            return invalid_type(param, "a decimal", value)
        if lo is not None and value < lo:
            return out_of_range(param, value, lo, above=False, integer=False)
        if hi is not None and value > hi:
            return out_of_range(param, value, hi, above=True, integer=False)
        return None

    return check


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    def check(param: str, value: Any) -> Violation | None:
        if not is_integer(value):
            return invalid_type(param, "an integer", value)
        if lo is not None and value < lo:
            return out_of_range(param, value, lo, above=False, integer=True)
        if hi is not None and value > hi:
            return out_of_range(param, value, hi, above=True, integer=True)
        return None

    return check


def boolean() -> Check:
    def check(param: str, value: Any) -> Violation | None:
        return None if isinstance(value, bool) else invalid_type(param, "a boolean", value)

    return check


def string(max_length: int | None = None) -> Check:
    def check(param: str, value: Any) -> Violation | None:
        if not isinstance(value, str):
            return invalid_type(param, "a string", value)
        if max_length is not None and len(value) > max_length:
            return string_too_long(param, max_length, len(value))
        return None

    return check


def choice(*values: str) -> Check:
    """One of an enum's strings: a wrong type is "expected one of 'auto' or
    'disabled'", a wrong string "Invalid value: 'x'. Supported values are: ..."."""

    def check(param: str, value: Any) -> Violation | None:
        if not isinstance(value, str):
            return invalid_type(param, f"one of {_or(list(values))}", value)
        if value not in values:
            return enum_value(param, value, values)
        return None

    return check


def of_type(expected: str, kind_: type | tuple[type, ...]) -> Check:
    """Only the JSON type (an object, an array of objects...); what is inside is
    checked by the rule that owns the field."""

    def check(param: str, value: Any) -> Violation | None:
        return None if isinstance(value, kind_) else invalid_type(param, expected, value)

    return check


def metadata() -> Check:
    """Up to 16 string pairs, keys up to 64 characters, values up to 512
    (openapi Metadata; "Invalid 'metadata': too many properties. Expected an object
    with at most 16 properties, but got an object with 17 properties instead.")."""

    def check(param: str, value: Any) -> Violation | None:
        if not isinstance(value, dict):
            return invalid_type(param, "a metadata object", value)
        if len(value) > 16:
            return Violation(
                f"Invalid '{param}': too many properties. Expected an object with at most 16 "
                f"properties, but got an object with {len(value)} properties instead.",
                param,
                code="object_above_max_properties",
            )
        for key, item in value.items():
            if not isinstance(item, str):
                return invalid_type(f"{param}.{key}", "a string", item)
            if len(item) > 512:
                return string_too_long(f"{param}.{key}", 512, len(item))
        return None

    return check


def check_fields(body: Mapping[str, Any], table: Mapping[str, Check]) -> Violation | None:
    """The first fault among the fields a table knows, in the table's order; a
    null value is an absent one (the fields are nullable in the openapi file)."""
    for key, check in table.items():
        value = body.get(key)
        if value is not None:
            found = check(key, value)
            if found is not None:
                return found
    return None
