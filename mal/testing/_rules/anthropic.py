"""Rules of Anthropic's Messages API (``POST /v1/messages``) checked by the
strict built-in server.

Sources, cited beside each rule:

* [SDK] ``anthropics/anthropic-sdk-python`` (generated from Anthropic's
  OpenAPI spec), ``src/anthropic/types/``: ``message_create_params.py`` and
  the block, tool, tool-choice, thinking and output-config param types; the
  ``beta/`` variants for the fields only a beta header unlocks.
* [SPEC] Anthropic's hosted OpenAPI spec as published in 2024
  (``laszukdawid/anthropic-openapi-spec``, ``hosted_spec.json``): value
  ranges and patterns the SDK types do not carry (``temperature`` 0-1,
  ``top_k`` >= 0, ``metadata.user_id`` <= 256 characters).
* [DOCS] platform.claude.com/docs/en/...: the page named beside the rule.
* [ERR] the error text the API returns, quoted verbatim in public issue
  threads (named beside the rule). The API validates bodies with pydantic,
  so type errors read "<path>: Input should be ...", with the tag of a
  union member in the path (``tools.0.custom.name``,
  ``messages.1.content.0.image.source.base64.media_type``).

Where no quoted wording exists, the comment says "our wording".
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import Request, Violation

__all__ = ["check"]


@dataclass(frozen=True)
class _Tag:
    """A union member's tag: part of the path in Anthropic's message
    (``tools.0.custom.name``), not of the field's own path."""

    name: str


Loc = tuple[str | int | _Tag, ...]


class _Reject(Exception):
    def __init__(self, violation: Violation) -> None:
        self.violation = violation


def _param(loc: Loc) -> str | None:
    out = ""
    for part in loc:
        if isinstance(part, _Tag):
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or None


def _fail(loc: Loc, text: str, *, param: Loc | None = None) -> _Reject:
    """A rejection in Anthropic's form, ``"<dotted path>: <text>"``."""
    where = ".".join(p.name if isinstance(p, _Tag) else str(p) for p in loc)
    return _Reject(
        Violation(f"{where}: {text}" if where else text, _param(loc if param is None else param))
    )


# Pydantic's messages, as the API returns them ([ERR]: "400: max_tokens: Field
# required" in immersive-translate/immersive-translate#3993; "Extra inputs are not permitted" in
# anthropics/claude-code#4378 and Wei-Shaw/claude-relay-service#667; "Input
# should be 'image/jpeg', ..." in anthropics/claude-code#8184; "String should
# match pattern" in cyanheads/atlas-mcp-server#14).
_REQUIRED = "Field required"
_EXTRA = "Extra inputs are not permitted"


def _literal(values: Iterable[str]) -> str:
    quoted = [f"'{v}'" for v in values]
    if len(quoted) == 1:
        return f"Input should be {quoted[0]}"
    return f"Input should be {', '.join(quoted[:-1])} or {quoted[-1]}"


def _is_int(value: Any) -> bool:
    # Pydantic's lax mode takes a float with no fractional part as an integer.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (
        isinstance(value, float) and math.isfinite(value) and value.is_integer()
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _object(value: Any, loc: Loc) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(loc, "Input should be a valid dictionary")
    return value


def _fields(
    value: Mapping[str, Any], loc: Loc, required: Iterable[str], allowed: Iterable[str]
) -> None:
    """Required fields present, no field the model does not know."""
    for name in required:
        if name not in value:
            raise _fail((*loc, name), _REQUIRED)
    known = set(required) | set(allowed)
    for name in value:
        if name not in known:
            raise _fail((*loc, name), _EXTRA)


def _string(value: Any, loc: Loc) -> str:
    if not isinstance(value, str):
        raise _fail(loc, "Input should be a valid string")
    return value


def _optional_string(value: Any, loc: Loc) -> None:
    if value is not None:
        _string(value, loc)


def _boolean(value: Any, loc: Loc) -> None:
    if not isinstance(value, bool):
        raise _fail(loc, "Input should be a valid boolean")


def _list(value: Any, loc: Loc) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(loc, "Input should be a valid list")
    return value


def _integer(value: Any, loc: Loc, *, ge: int | None = None) -> None:
    if not _is_int(value):
        if isinstance(value, float) and math.isfinite(value):
            raise _fail(loc, "Input should be a valid integer, got a number with a fractional part")
        raise _fail(loc, "Input should be a valid integer")
    if ge is not None and value < ge:
        raise _fail(loc, f"Input should be greater than or equal to {ge}")


def _number(value: Any, loc: Loc, *, ge: float | None = None, le: float | None = None) -> None:
    if not _is_number(value):
        raise _fail(loc, "Input should be a valid number")
    if ge is not None and value < ge:
        raise _fail(loc, f"Input should be greater than or equal to {_num(ge)}")
    if le is not None and value > le:
        raise _fail(loc, f"Input should be less than or equal to {_num(le)}")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _one_of(value: Any, loc: Loc, values: tuple[str, ...]) -> str:
    if value not in values:
        raise _fail(loc, _literal(values))
    return str(value)


def _tagged(value: Any, loc: Loc, tags: Iterable[str], *, open_tags: bool = False) -> str:
    """The ``type`` of a member of a union tagged on ``type``; pydantic's
    wording for a missing or unknown tag."""
    block = _object(value, loc)
    if "type" not in block:
        raise _fail(loc, "Unable to extract tag using discriminator 'type'")
    tag = block["type"]
    expected = tuple(tags)
    if not isinstance(tag, str) or (tag not in expected and not open_tags):
        listed = ", ".join(f"'{t}'" for t in expected)
        raise _fail(
            loc,
            f"Input tag '{tag}' found using 'type' does not match any of the expected tags: "
            f"{listed}",
        )
    return tag


# Headers ---------------------------------------------------------------------

#: [DOCS] api/versioning, "Version history": the versions the API takes in
#: ``anthropic-version``.
API_VERSIONS = ("2026-10-21", "2023-06-01", "2023-01-01")
#: [DOCS] api/versioning, "2026-10-21": "The temperature, top_p, and top_k
#: request parameters are removed"; the API answers "temperature: Extra
#: inputs are not permitted" (ttlequals0/MinusPod v2.101.10), even for 1.0.
REMOVED_IN_2026_10_21 = frozenset({"temperature", "top_p", "top_k"})


def _check_headers(request: Request) -> str:
    """Check the version header; return the version."""
    version = request.headers.get("anthropic-version")
    if version is None or not version.strip():
        # [DOCS] api/versioning: "When making API requests, you must send an
        # anthropic-version request header". [ERR] "anthropic-version: header
        # is required" (envoyproxy/ai-gateway#1909, PipedreamHQ/pipedream#9697).
        raise _Reject(Violation("anthropic-version: header is required", "anthropic-version"))
    if version.strip() not in API_VERSIONS:
        # [ERR] 'anthropic-version: "2023-06-01, 2023-06-01" is not a valid
        # version' (decolua/9router#2357).
        raise _Reject(
            Violation(f'anthropic-version: "{version}" is not a valid version', "anthropic-version")
        )
    return version.strip()


def _betas(request: Request) -> frozenset[str]:
    raw = request.headers.get("anthropic-beta", "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


# Top-level fields ------------------------------------------------------------

#: [SDK] message_create_params.py ``MessageCreateParamsBase`` and the two
#: stream variants: every field of the body. (``anthropic-beta`` and
#: ``anthropic-user-profile-id`` are headers, not body fields.)
TOP_LEVEL = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "cache_control",
        "container",
        "inference_geo",
        "metadata",
        "output_config",
        "service_tier",
        "stop_sequences",
        "stream",
        "system",
        "temperature",
        "thinking",
        "tool_choice",
        "tools",
        "top_k",
        "top_p",
    }
)
#: [SDK] beta/message_create_params.py: the fields a beta header unlocks
#: (``context_management: Extra inputs are not permitted`` without one:
#: Wei-Shaw/claude-relay-service#660).
BETA_TOP_LEVEL = frozenset(
    {
        "context_management",
        "diagnostics",
        "fallback_credit_token",
        "fallbacks",
        "mcp_servers",
        "output_format",
        "speed",
    }
)


def _check_top_level(body: Mapping[str, Any], beta: bool, version: str) -> None:
    # [SDK] ``max_tokens``, ``messages`` and ``model`` are Required.
    for name in ("model", "messages", "max_tokens"):
        if name not in body:
            raise _fail((name,), _REQUIRED)
    known = TOP_LEVEL | BETA_TOP_LEVEL if beta else TOP_LEVEL
    if version >= "2026-10-21":
        known = known - REMOVED_IN_2026_10_21
    for name in body:
        if name not in known:
            # [ERR] "response_format: Extra inputs are not permitted"
            # (amrit110/oli#7), "extra_body: ..." (Aider-AI/aider#3367).
            raise _fail((name,), _EXTRA)

    _string(body["model"], ("model",))
    # [SDK] ``max_tokens: Required[int]``: "Set to `0` to populate the prompt
    # cache without generating a response" (the older hosted spec had
    # ``minimum: 1``; the current reference takes 0).
    _integer(body["max_tokens"], ("max_tokens",), ge=0)
    _list(body["messages"], ("messages",))
    if "stream" in body:
        _boolean(body["stream"], ("stream",))
    if "temperature" in body:
        # [SDK] "Ranges from `0.0` to `1.0`"; [SPEC] minimum 0, maximum 1.
        _number(body["temperature"], ("temperature",), ge=0, le=1)
    if "top_p" in body:
        # [SPEC] ``top_p``: minimum 0, maximum 1.
        _number(body["top_p"], ("top_p",), ge=0, le=1)
    if "top_k" in body:
        # [SPEC] ``top_k``: integer, minimum 0.
        _integer(body["top_k"], ("top_k",), ge=0)
    if "stop_sequences" in body:
        # [SDK] ``stop_sequences: SequenceNotStr[str]``.
        for i, stop in enumerate(_list(body["stop_sequences"], ("stop_sequences",))):
            _string(stop, ("stop_sequences", i))
    if "metadata" in body:
        # [SDK] metadata_param.py: ``user_id: Optional[str]`` only; [SPEC]
        # ``additionalProperties: false``, ``user_id`` maxLength 256.
        metadata = _object(body["metadata"], ("metadata",))
        _fields(metadata, ("metadata",), (), ("user_id",))
        user_id = metadata.get("user_id")
        _optional_string(user_id, ("metadata", "user_id"))
        if isinstance(user_id, str) and len(user_id) > 256:
            raise _fail(("metadata", "user_id"), "String should have at most 256 characters")
    if "service_tier" in body:
        # [SDK] ``service_tier: Literal["auto", "standard_only"]``.
        _one_of(body["service_tier"], ("service_tier",), ("auto", "standard_only"))
    for name in ("container", "inference_geo"):
        if name in body:
            # [SDK] ``container: Optional[str]``, ``inference_geo: Optional[str]``.
            _optional_string(body[name], (name,))
    if body.get("cache_control") is not None:
        _check_cache_control(body["cache_control"], ("cache_control",))


def _check_cache_control(value: Any, loc: Loc) -> None:
    # [SDK] cache_control_ephemeral_param.py: ``type: Literal["ephemeral"]``,
    # ``ttl: Literal["5m", "1h"]``.
    control = _object(value, loc)
    tag = _tagged(control, loc, ("ephemeral",))
    _fields(control, (*loc, _Tag(tag)), ("type",), ("ttl",))
    if "ttl" in control:
        _one_of(control["ttl"], (*loc, _Tag(tag), "ttl"), ("5m", "1h"))


# System ----------------------------------------------------------------------


def _check_system(body: Mapping[str, Any]) -> None:
    if "system" not in body:
        return
    system = body["system"]
    # [SDK] ``system: Union[str, Iterable[TextBlockParam]]``.
    if isinstance(system, str):
        return
    if not isinstance(system, list):
        # Our wording (pydantic lists each member of the union).
        raise _fail(("system",), "Input should be a valid string or a list of text blocks")
    for i, block in enumerate(system):
        _check_text_block(block, ("system", i), tagged=False)
        if block["text"] == "":
            # [ERR] "text content blocks must be non-empty" (the messages
            # wording, anthropics/claude-code#59812), for the system's blocks.
            raise _fail(("system",), "text content blocks must be non-empty", param=("system", i))


def _check_text_block(value: Any, loc: Loc, *, tagged: bool = True) -> None:
    # [SDK] text_block_param.py: ``text: Required[str]``,
    # ``type: Required[Literal["text"]]``, ``cache_control``, ``citations``.
    block = _object(value, loc)
    if not tagged:
        _tagged(block, loc, ("text",))
    inner = (*loc, _Tag("text")) if tagged else loc
    _fields(block, inner, ("type", "text"), ("cache_control", "citations"))
    _string(block["text"], (*inner, "text"))
    if block.get("cache_control") is not None:
        _check_cache_control(block["cache_control"], (*inner, "cache_control"))
    if block.get("citations") is not None:
        _list(block["citations"], (*inner, "citations"))


# Messages and their content blocks --------------------------------------------

#: [SDK] message_param.py: ``role: Literal["user", "assistant", "system"]``
#: (``system`` since the mid-conversation system messages of 2026-05).
ROLES = ("user", "assistant", "system")

#: [SDK] content_block_param.py ``ContentBlockParam``, and content_block.py
#: (response blocks, which message_param.py also takes back): every block
#: type a message may hold.
BLOCK_TYPES = (
    "text",
    "image",
    "document",
    "search_result",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "tool_result",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
    "container_upload",
    "mid_conv_system",
)
#: [SDK] tool_result_block_param.py ``Content``: what a tool result may hold.
TOOL_RESULT_BLOCK_TYPES = ("text", "image", "search_result", "document", "tool_reference")

#: [SDK] base64_image_source_param.py ``media_type``; [DOCS]
#: build-with-claude/vision: "JPEG, PNG, GIF, WebP".
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
#: [ERR] "image exceeds 5 MB maximum: 8259148 bytes > 5242880 bytes"
#: (anthropics/claude-code#19631): the limit holds for the base64 text as
#: sent, not for the decoded image (lobehub/lobehub#14711,
#: ai-ecoverse/slicc#117 measured it).
MAX_IMAGE_BASE64 = 5 * 1024 * 1024

#: [ERR] "tool_use ids ... toolu_..., bash-uOQIdN0O" and [SPEC]
#: ``RequestToolUseBlock.id``/``RequestToolResultBlock.tool_use_id`` pattern.
_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def _check_messages(messages: list[Any], beta: bool) -> None:
    if not messages:
        # [SDK] message_create_params.py: "You can specify a single
        # `user`-role message, or you can include multiple"; an empty list
        # has nothing to answer. Our wording.
        raise _fail(("messages",), "at least one message is required")
    for i, value in enumerate(messages):
        loc: Loc = ("messages", i)
        message = _object(value, loc)
        # [SPEC] ``InputMessage``: ``role`` and ``content`` required,
        # ``additionalProperties: false``.
        _fields(message, loc, ("role", "content"), ())
        _one_of(message["role"], (*loc, "role"), ROLES)
        content = message["content"]
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            # [SDK] message_param.py ``content: Union[str, Iterable[...]]``; our wording.
            raise _fail((*loc, "content"), "Input should be a valid string or a list of blocks")
        for j, block in enumerate(content):
            _check_block(block, (*loc, "content", j), beta)


def _check_block(value: Any, loc: Loc, beta: bool) -> None:
    # With a beta header the API takes more block types (the beta
    # ``BetaContentBlockParam``); they are let through unchecked.
    tag = _tagged(value, loc, BLOCK_TYPES, open_tags=beta)
    block: Mapping[str, Any] = value
    inner = (*loc, _Tag(tag))
    if tag == "text":
        _check_text_block(block, loc)
    elif tag == "image":
        _check_image(block, loc)
    elif tag == "tool_use":
        # [SDK] tool_use_block_param.py: ``id``, ``input: Dict``, ``name``
        # required; ``cache_control``, ``caller``.
        _fields(block, inner, ("type", "id", "name", "input"), ("cache_control", "caller"))
        _string(block["id"], (*inner, "id"))
        _string(block["name"], (*inner, "name"))
        _object(block["input"], (*inner, "input"))
        if not _ID.match(block["id"]):
            raise _fail((*inner, "id"), f"String should match pattern '{_ID.pattern}'")
    elif tag == "tool_result":
        _check_tool_result(block, loc, beta)
    elif tag == "thinking":
        # [SDK] thinking_block_param.py: ``signature`` and ``thinking`` required.
        _fields(block, inner, ("type", "thinking", "signature"), ())
        _string(block["thinking"], (*inner, "thinking"))
        _string(block["signature"], (*inner, "signature"))
    elif tag == "redacted_thinking":
        # [SDK] redacted_thinking_block_param.py: ``data`` required.
        _fields(block, inner, ("type", "data"), ())
        _string(block["data"], (*inner, "data"))
    elif tag == "document":
        # [SDK] document_block_param.py: ``source`` required.
        _fields(
            block, inner, ("type", "source"), ("cache_control", "citations", "context", "title")
        )
    if isinstance(block.get("cache_control"), Mapping):
        _check_cache_control(block["cache_control"], (*inner, "cache_control"))


def _check_image(block: Mapping[str, Any], loc: Loc) -> None:
    inner = (*loc, _Tag("image"))
    # [SDK] image_block_param.py: ``source: Union[Base64ImageSourceParam,
    # URLImageSourceParam]`` required, ``cache_control``.
    _fields(block, inner, ("type", "source"), ("cache_control",))
    source_loc = (*inner, "source")
    tag = _tagged(block["source"], source_loc, ("base64", "url"))
    source = block["source"]
    at = (*source_loc, _Tag(tag))
    if tag == "url":
        # [SDK] url_image_source_param.py: ``url: Required[str]``.
        _fields(source, at, ("type", "url"), ())
        _string(source["url"], (*at, "url"))
        return
    # [SDK] base64_image_source_param.py: ``data``, ``media_type`` required.
    _fields(source, at, ("type", "media_type", "data"), ())
    # [ERR] "messages.36.content.2.image.source.base64.media_type: Input should
    # be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
    # (anthropics/claude-code#8184).
    _one_of(source["media_type"], (*at, "media_type"), IMAGE_MEDIA_TYPES)
    data = _string(source["data"], (*at, "data"))
    if len(data) > MAX_IMAGE_BASE64:
        raise _fail(
            at,
            f"image exceeds 5 MB maximum: {len(data)} bytes > {MAX_IMAGE_BASE64} bytes",
            param=(*at, "data"),
        )


def _check_tool_result(block: Mapping[str, Any], loc: Loc, beta: bool) -> None:
    inner = (*loc, _Tag("tool_result"))
    # [SDK] tool_result_block_param.py: ``tool_use_id`` required; ``content:
    # Union[str, Iterable[Content]]``, ``is_error: bool``, ``cache_control``.
    _fields(block, inner, ("type", "tool_use_id"), ("content", "is_error", "cache_control"))
    _string(block["tool_use_id"], (*inner, "tool_use_id"))
    if not _ID.match(block["tool_use_id"]):
        raise _fail((*inner, "tool_use_id"), f"String should match pattern '{_ID.pattern}'")
    if "is_error" in block:
        _boolean(block["is_error"], (*inner, "is_error"))
    content = block.get("content")
    if block.get("is_error") is True and content in (None, "", []):
        # [ERR] "messages.4.content.0.tool_result: content cannot be empty if
        # `is_error` is true" (jlevy/markform#153, bytedance/trae-agent#230).
        raise _fail(
            inner, "content cannot be empty if `is_error` is true", param=(*inner, "content")
        )
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _fail((*inner, "content"), "Input should be a valid string or a list of blocks")
    for k, part in enumerate(content):
        at: Loc = (*inner, "content", k)
        tag = _tagged(part, at, TOOL_RESULT_BLOCK_TYPES, open_tags=beta)
        if tag == "text":
            _check_text_block(part, at)
        elif tag == "image":
            _check_image(part, at)


# Tools and tool_choice -------------------------------------------------------

#: [SDK] tool_param.py: the fields of a custom tool.
TOOL_FIELDS = (
    "name",
    "input_schema",
    "type",
    "description",
    "cache_control",
    "strict",
    "eager_input_streaming",
    "defer_loading",
    "input_examples",
    "allowed_callers",
)
#: [SDK] tool_union_param.py: the ``type`` of each server tool (Anthropic
#: runs them; their fields are not checked here).
SERVER_TOOL_TYPES = (
    "bash_20250124",
    "code_execution_20250522",
    "code_execution_20250825",
    "code_execution_20260120",
    "code_execution_20260521",
    "memory_20250818",
    "text_editor_20250124",
    "text_editor_20250429",
    "text_editor_20250728",
    "web_search_20250305",
    "web_search_20260209",
    "web_search_20260318",
    "web_fetch_20250910",
    "web_fetch_20260209",
    "web_fetch_20260309",
    "web_fetch_20260318",
    "tool_search_tool_bm25_20251119",
    "tool_search_tool_bm25",
    "tool_search_tool_regex_20251119",
    "tool_search_tool_regex",
)
#: [ERR] "tools.0.custom.name: String should match pattern
#: '^[a-zA-Z0-9_-]{1,128}$'" (home-assistant/core#147760, 2025-06;
#: vybestack/llxprt-code#482) and "tools.18.custom.name: String should have at
#: most 128 characters" (anthropics/claude-code#96152, 2026-09). The limit was
#: 64 before (cyanheads/atlas-mcp-server#14, 2025-03).
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


def _custom_tools(body: Mapping[str, Any], beta: bool) -> list[tuple[int, Mapping[str, Any]]]:
    """Check ``tools``; return the custom tools with their index."""
    if "tools" not in body:
        return []
    tools = _list(body["tools"], ("tools",))
    custom: list[tuple[int, Mapping[str, Any]]] = []
    names: set[str] = set()
    for i, value in enumerate(tools):
        loc: Loc = ("tools", i)
        tool = _object(value, loc)
        kind = tool.get("type")
        if kind is not None and kind != "custom":
            # With a beta header more server tools exist (computer use, MCP...).
            if beta:
                continue
            _tagged(tool, loc, ("custom", *SERVER_TOOL_TYPES))
            continue
        at: Loc = (*loc, _Tag("custom"))
        _fields(tool, at, ("name", "input_schema"), TOOL_FIELDS)
        name = _string(tool["name"], (*at, "name"))
        if len(name) > 128:
            raise _fail((*at, "name"), "String should have at most 128 characters")
        if not TOOL_NAME.match(name):
            raise _fail((*at, "name"), f"String should match pattern '{TOOL_NAME.pattern}'")
        # [SDK] tool_param.py ``InputSchemaTyped``: ``type: Required[Literal["object"]]``.
        schema = _object(tool["input_schema"], (*at, "input_schema"))
        if "type" not in schema:
            raise _fail((*at, "input_schema", "type"), _REQUIRED)
        _one_of(schema["type"], (*at, "input_schema", "type"), ("object",))
        for flag in ("strict", "defer_loading"):
            if flag in tool:
                _boolean(tool[flag], (*at, flag))
        if tool.get("eager_input_streaming") is not None:
            _boolean(tool["eager_input_streaming"], (*at, "eager_input_streaming"))
        if "description" in tool:
            _string(tool["description"], (*at, "description"))
        if tool.get("cache_control") is not None:
            _check_cache_control(tool["cache_control"], (*at, "cache_control"))
        if name in names:
            # [DOCS] agents-and-tools/tool-use/define-tools: each tool has a
            # unique name; our wording.
            raise _fail(("tools",), f"Tool names must be unique. Duplicate name: {name}")
        names.add(name)
        custom.append((i, tool))
    return custom


def _check_tool_choice(body: Mapping[str, Any], tools: list[tuple[int, Mapping[str, Any]]]) -> None:
    if "tool_choice" not in body:
        return
    loc: Loc = ("tool_choice",)
    # [SDK] tool_choice_param.py: auto | any | tool | none, tagged on ``type``.
    tag = _tagged(body["tool_choice"], loc, ("auto", "any", "tool", "none"))
    choice: Mapping[str, Any] = body["tool_choice"]
    at = (*loc, _Tag(tag))
    if tag == "none":
        # [SDK] tool_choice_none_param.py: ``type`` only.
        _fields(choice, at, ("type",), ())
        return
    required = ("type", "name") if tag == "tool" else ("type",)
    # [SDK] tool_choice_{auto,any,tool}_param.py: ``disable_parallel_tool_use: bool``.
    _fields(choice, at, required, ("disable_parallel_tool_use",))
    if "disable_parallel_tool_use" in choice:
        _boolean(choice["disable_parallel_tool_use"], (*at, "disable_parallel_tool_use"))
    if tag == "tool":
        name = _string(choice["name"], (*at, "name"))
        given = [str(tool["name"]) for _, tool in tools]
        server = [
            t.get("name") for t in body.get("tools") or () if isinstance(t, Mapping)
        ]  # a server tool may be forced by its name too
        if name not in given and name not in server:
            # [SDK] tool_choice_tool_param.py: "The model will use the
            # specified tool with `tool_choice.name`": it must be one of
            # ``tools``. Our wording.
            raise _fail((*at, "name"), f"Tool '{name}' not found in tools")


# Thinking --------------------------------------------------------------------


def _thinking(body: Mapping[str, Any]) -> str | None:
    """Check ``thinking``; return its type."""
    if "thinking" not in body:
        return None
    loc: Loc = ("thinking",)
    # [SDK] thinking_config_param.py: enabled | disabled | adaptive.
    tag = _tagged(body["thinking"], loc, ("enabled", "disabled", "adaptive"))
    thinking: Mapping[str, Any] = body["thinking"]
    at = (*loc, _Tag(tag))
    if tag == "disabled":
        _fields(thinking, at, ("type",), ())
        return tag
    if tag == "adaptive":
        _fields(thinking, at, ("type",), ("display",))
    else:
        # [SDK] thinking_config_enabled_param.py: ``budget_tokens`` required,
        # "Must be ≥1024 and less than `max_tokens`". [ERR]
        # "thinking.enabled.budget_tokens: Input should be greater than or
        # equal to 1024" (themaximalist/llm.js#30).
        _fields(thinking, at, ("type", "budget_tokens"), ("display",))
        _integer(thinking["budget_tokens"], (*at, "budget_tokens"), ge=1024)
    if thinking.get("display") is not None:
        _one_of(thinking["display"], (*at, "display"), ("summarized", "omitted"))
    return tag


# Structured outputs ------------------------------------------------------------

#: [DOCS] build-with-claude/structured-outputs, "JSON Schema limitations":
#: "Numerical constraints (minimum, maximum, multipleOf, etc.)", "String
#: constraints (minLength, maxLength)" and "Complex array constraints beyond
#: minItems of 0 or 1" are not supported. [ERR] "output_format.schema: For
#: 'integer' type, property 'minimum' is not supported" (the beta field).
UNSUPPORTED_KEYWORDS = {
    "integer": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
    "string": ("minLength", "maxLength"),
    "array": ("maxItems", "uniqueItems", "contains", "minContains", "maxContains"),
}
#: [DOCS] structured-outputs, "Supported": the string formats, and the SDK's
#: own list of them ([SDK] lib/_parse/_transform.py ``SupportedStringFormats``).
STRING_FORMATS = frozenset(
    {
        "date-time",
        "time",
        "date",
        "duration",
        "email",
        "hostname",
        "uri",
        "ipv4",
        "ipv6",
        "uuid",
    }
)


def _check_output_schema(schema: Any, loc: Loc) -> None:
    """The JSON Schema limitations of structured outputs (and strict tools)."""
    defs: dict[str, Any] = {}
    if isinstance(schema, Mapping):
        for key in ("$defs", "definitions"):
            if isinstance(schema.get(key), Mapping):
                defs.update({f"#/{key}/{name}": d for name, d in schema[key].items()})
    _walk_schema(schema, loc, defs, ())
    for ref, definition in defs.items():
        _walk_schema(definition, loc, defs, (ref,))


def _walk_schema(node: Any, loc: Loc, defs: dict[str, Any], seen: tuple[str, ...]) -> None:
    if not isinstance(node, Mapping):
        return
    ref = node.get("$ref")
    if isinstance(ref, str):
        if not ref.startswith("#"):
            # [DOCS] structured-outputs: "External $ref (e.g., 'http://...')"
            # is not supported. Our wording.
            raise _fail(loc, f"External $ref '{ref}' is not supported")
        if ref in seen:
            # [DOCS] structured-outputs: "Recursive schemas" are not
            # supported. Our wording.
            raise _fail(loc, f"Recursive schema via $ref '{ref}' is not supported")
        if ref in defs:
            _walk_schema(defs[ref], loc, defs, (*seen, ref))
    kinds = node.get("type")
    types = [kinds] if isinstance(kinds, str) else list(kinds) if isinstance(kinds, list) else []
    if "properties" in node and "object" not in types:
        types.append("object")
    for kind in types:
        if kind == "object" and node.get("additionalProperties") is not False:
            # [DOCS] structured-outputs: "additionalProperties (must be set to
            # false for objects)". [ERR] "output_config.format.schema: For
            # 'object' type, 'additionalProperties' must be explicitly set to
            # false" (future-agi/future-agi#411).
            raise _fail(
                loc, "For 'object' type, 'additionalProperties' must be explicitly set to false"
            )
        for keyword in UNSUPPORTED_KEYWORDS.get(kind, ()):
            if keyword in node:
                raise _fail(loc, f"For '{kind}' type, property '{keyword}' is not supported")
        if kind == "array" and "minItems" in node and node["minItems"] not in (0, 1):
            # [DOCS] structured-outputs: "Array minItems (only values 0 and 1
            # supported)". Our wording.
            raise _fail(
                loc, "For 'array' type, 'minItems' values other than 0 or 1 are not supported"
            )
        if kind == "string" and "format" in node and node["format"] not in STRING_FORMATS:
            # Our wording.
            raise _fail(loc, f"For 'string' type, format '{node['format']}' is not supported")
    if "enum" in node and isinstance(node["enum"], list):
        for value in node["enum"]:
            if isinstance(value, (dict, list)):
                # [DOCS] structured-outputs: "enum (strings, numbers, bools,
                # or nulls only - no complex types)". Our wording.
                raise _fail(loc, "Complex types in 'enum' are not supported")
    if isinstance(node.get("properties"), Mapping):
        for child in node["properties"].values():
            _walk_schema(child, loc, defs, seen)
    for key in ("items", "additionalItems", "not"):
        _walk_schema(node.get(key), loc, defs, seen)
    for key in ("anyOf", "allOf", "oneOf", "prefixItems"):
        if isinstance(node.get(key), list):
            for child in node[key]:
                _walk_schema(child, loc, defs, seen)


def _check_output_config(body: Mapping[str, Any], beta: bool) -> bool:
    """Check ``output_config`` (and the beta ``output_format``); return
    whether a JSON schema output format is asked for."""
    asked = False
    if "output_config" in body:
        loc: Loc = ("output_config",)
        # [SDK] output_config_param.py: ``effort``, ``format``.
        config = _object(body["output_config"], loc)
        _fields(config, loc, (), ("effort", "format"))
        if config.get("effort") is not None:
            _one_of(config["effort"], (*loc, "effort"), ("low", "medium", "high", "xhigh", "max"))
        if config.get("format") is not None:
            _check_format(config["format"], (*loc, "format"))
            asked = True
    if beta and body.get("output_format") is not None:
        # [SDK] beta/message_create_params.py ``output_format`` ("Deprecated:
        # Use `output_config.format` instead").
        _check_format(body["output_format"], ("output_format",))
        asked = True
    return asked


def _check_format(value: Any, loc: Loc) -> None:
    # [SDK] json_output_format_param.py: ``schema: Required[Dict]``,
    # ``type: Required[Literal["json_schema"]]``.
    fmt = _object(value, loc)
    _fields(fmt, loc, ("type", "schema"), ())
    _one_of(fmt["type"], (*loc, "type"), ("json_schema",))
    _object(fmt["schema"], (*loc, "schema"))
    _check_output_schema(fmt["schema"], (*loc, "schema"))


# Rules across fields -----------------------------------------------------------

#: [DOCS] build-with-claude/mid-conversation-system-messages: "This feature
#: is available on Claude Opus 4.8 only."
_SYSTEM_ROLE_MODELS = ("claude-opus-4-8",)


def _blocks(content: Any) -> list[Mapping[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, Mapping)]


def _check_system_messages(body: Mapping[str, Any]) -> None:
    messages: list[Mapping[str, Any]] = body["messages"]
    model = str(body["model"])
    for i, message in enumerate(messages):
        if message["role"] != "system":
            continue
        if not model.startswith(_SYSTEM_ROLE_MODELS):
            # [DOCS] mid-conversation-system-messages (Bedrock's copy of the
            # page): "Requests that include role: "system" in messages[] on
            # unsupported models return a 400 invalid_request_error". [ERR]
            # the wording: sgl-project/sglang#367, ianarawjo/ChainForge#271.
            raise _fail(
                ("messages",),
                'Unexpected role "system". The Messages API accepts a top-level `system` '
                'parameter, not "system" as an input message role.',
                param=("messages", i, "role"),
            )
        # [DOCS] mid-conversation-system-messages, "Placement rules" and
        # "Content rules": not first; right after a user message or an
        # assistant message that ends in a server tool use; last or followed
        # by an assistant turn; never next to another system message; text
        # only. The wording is ours.
        loc: Loc = ("messages", i)
        before = messages[i - 1] if i > 0 else None
        after = messages[i + 1] if i + 1 < len(messages) else None
        if before is None:
            raise _fail(loc, "a system message cannot be the first message; use `system`")
        if before["role"] == "system" or (after is not None and after["role"] == "system"):
            raise _fail(loc, "system messages cannot be adjacent to another system message")
        if before["role"] == "assistant":
            last = _blocks(before["content"])
            if not last or last[-1].get("type") != "server_tool_use":
                raise _fail(
                    loc,
                    "a system message must follow a user message or an assistant message "
                    "that ends in a server tool use",
                )
        if after is not None and after["role"] != "assistant":
            raise _fail(loc, "a system message must be the last message or precede an assistant")
        for j, block in enumerate(_blocks(message["content"])):
            if block.get("type") != "text":
                raise _fail((*loc, "content", j), "system messages support text blocks only")


def _check_content_text(body: Mapping[str, Any]) -> None:
    messages: list[Mapping[str, Any]] = body["messages"]
    last = len(messages) - 1
    for i, message in enumerate(messages):
        content = message["content"]
        final_assistant = i == last and message["role"] == "assistant"
        if content in ("", []) and not final_assistant:
            # [ERR] "messages.1: all messages must have non-empty content
            # except for the optional final assistant message"
            # (tidyverse/ellmer#709, anthropics/claude-code#6774).
            raise _fail(
                ("messages", i),
                "all messages must have non-empty content except for the optional final "
                "assistant message",
            )
        if isinstance(content, str):
            if content and not content.strip() and not final_assistant:
                raise _fail(
                    ("messages",),
                    "text content blocks must contain non-whitespace text",
                    param=("messages", i, "content"),
                )
            continue
        for j, block in enumerate(content):
            if block.get("type") != "text":
                continue
            text = block["text"]
            if text == "":
                # [ERR] "messages: text content blocks must be non-empty"
                # (anthropics/claude-code#59812); [SPEC] RequestTextBlock
                # ``text`` minLength 1.
                raise _fail(
                    ("messages",),
                    "text content blocks must be non-empty",
                    param=("messages", i, "content", j, "text"),
                )
            if not text.strip() and not final_assistant:
                # [ERR] "messages: text content blocks must contain
                # non-whitespace text" (anthropics/claude-code#23440,
                # home-assistant/core#175637).
                raise _fail(
                    ("messages",),
                    "text content blocks must contain non-whitespace text",
                    param=("messages", i, "content", j, "text"),
                )
    final = messages[last]
    if final["role"] == "assistant":
        blocks = _blocks(final["content"])
        if blocks and blocks[-1].get("type") == "text":
            text = str(blocks[-1].get("text", ""))
            if text and text != text.rstrip():
                # [ERR] "messages: final assistant content cannot end with
                # trailing whitespace" (tailcallhq/forgecode#1872,
                # anomalyco/opencode#1295).
                raise _fail(
                    ("messages",),
                    "final assistant content cannot end with trailing whitespace",
                    param=("messages", last, "content"),
                )


def _check_version_2026(body: Mapping[str, Any]) -> None:
    """[DOCS] api/versioning, "2026-10-21": "A request that places a document
    block directly in an assistant message returns a 400 error" and "Sending a
    text block with a non-empty citations array in a user message, directly or
    inside a search_result block, returns a 400 error". Our wording."""
    for i, message in enumerate(body["messages"]):
        if isinstance(message["content"], str):
            continue
        for j, block in enumerate(message["content"]):
            kind = block.get("type")
            if message["role"] == "assistant" and kind == "document":
                raise _fail(
                    ("messages", i, "content", j),
                    "document blocks are not allowed in assistant messages",
                )
            if message["role"] != "user":
                continue
            texts = [block] if kind == "text" else []
            if kind == "search_result" and isinstance(block.get("content"), list):
                texts = [t for t in block["content"] if isinstance(t, Mapping)]
            if any(t.get("citations") for t in texts):
                raise _fail(
                    ("messages", i, "content", j),
                    "text blocks in user messages cannot have citations",
                )


def _tool_use_ids(message: Mapping[str, Any]) -> list[str]:
    if message["role"] != "assistant" or isinstance(message["content"], str):
        return []
    return [str(b["id"]) for b in message["content"] if b.get("type") == "tool_use" and "id" in b]


def _check_tool_results(body: Mapping[str, Any]) -> None:
    messages: list[Mapping[str, Any]] = body["messages"]
    for i, message in enumerate(messages):
        ids = _tool_use_ids(message)
        if ids and i + 1 < len(messages):
            # [DOCS] agents-and-tools/tool-use/handle-tool-calls: "Tool result
            # blocks must immediately follow their corresponding tool use
            # blocks in the message history" and "In the user message
            # containing tool results, the tool_result blocks must come FIRST
            # in the content array". Only the leading tool_result blocks of
            # the next message count ([ERR] the older wording "Did not find 1
            # `tool_result` block(s) at the beginning of this message",
            # apify/tester-mcp-client#12).
            after = messages[i + 1]
            leading: set[str] = set()
            if after["role"] == "user" and isinstance(after["content"], list):
                for block in after["content"]:
                    if block.get("type") != "tool_result":
                        break
                    leading.add(str(block.get("tool_use_id")))
            missing = [id for id in ids if id not in leading]
            if missing:
                # [ERR] "messages.6: `tool_use` ids were found without
                # `tool_result` blocks immediately after: toolu_01.... Each
                # `tool_use` block must have a corresponding `tool_result`
                # block in the next message." (anthropics/claude-code#5060,
                # #5989 for several ids).
                raise _fail(
                    ("messages", i),
                    "`tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(missing)}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message.",
                )
        if message["role"] != "user" or isinstance(message["content"], str):
            continue
        answered = set(_tool_use_ids(messages[i - 1])) if i > 0 else set()
        for j, block in enumerate(message["content"]):
            if block.get("type") == "tool_result" and block["tool_use_id"] not in answered:
                # [ERR] "messages.48.content.1: unexpected `tool_use_id` found
                # in `tool_result` blocks: toolu_019E.... Each `tool_result`
                # block must have a corresponding `tool_use` block in the
                # previous message." (anthropics/claude-code#13460, #18947
                # for messages.0).
                raise _fail(
                    ("messages", i, "content", j),
                    "unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message.",
                )


def _check_thinking_rules(
    body: Mapping[str, Any], thinking: str | None, betas: frozenset[str]
) -> None:
    if thinking == "enabled":
        budget = body["thinking"]["budget_tokens"]
        # [DOCS] build-with-claude/extended-thinking: "budget_tokens must be
        # set to a value less than max_tokens. However, when using interleaved
        # thinking with tools, you can exceed this limit" (the
        # ``interleaved-thinking-2025-05-14`` beta). [ERR] "`max_tokens` must be
        # greater than `thinking.budget_tokens`. Please consult our
        # documentation at ..." (anthropics/claude-code#8756).
        interleaved = any(b.startswith("interleaved-thinking") for b in betas)
        if budget >= body["max_tokens"] and not interleaved:
            raise _Reject(
                Violation(
                    "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult "
                    "our documentation at https://docs.claude.com/en/docs/build-with-claude/"
                    "extended-thinking#max-tokens-and-context-window-size",
                    "max_tokens",
                )
            )
    if thinking not in ("enabled", "adaptive"):
        return
    # [DOCS] extended-thinking, "Feature compatibility": "Thinking isn't
    # compatible with temperature or top_k modifications as well as forced
    # tool use", and "you can set top_p to values between 1 and 0.95".
    docs = (
        "Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/"
        "extended-thinking#important-considerations-when-using-extended-thinking"
    )
    if "temperature" in body and body["temperature"] != 1:
        # [ERR] "`temperature` may only be set to 1 when thinking is enabled.
        # Please consult our documentation at ..." (MartialBE/one-hub#529).
        raise _Reject(
            Violation(
                f"`temperature` may only be set to 1 when thinking is enabled. {docs}",
                "temperature",
            )
        )
    if "top_k" in body:
        # [ERR] "`top_k` must be unset when thinking is enabled. Please consult
        # our documentation at ..." (quarkiverse/quarkus-langchain4j#1812).
        raise _Reject(Violation(f"`top_k` must be unset when thinking is enabled. {docs}", "top_k"))
    if "top_p" in body and body["top_p"] < 0.95:
        # Our wording, after the two above.
        raise _Reject(
            Violation(
                "`top_p` must be greater than or equal to 0.95 or unset when thinking is "
                f"enabled. {docs}",
                "top_p",
            )
        )
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") in ("any", "tool"):
        # [DOCS] extended-thinking, "Extended thinking with tool use": "Tool
        # use with thinking only supports tool_choice: {"type": "auto"} (the
        # default) or tool_choice: {"type": "none"}". [ERR] "Thinking may not
        # be enabled when tool_choice forces tool use." (quoted in
        # run-llama/llama_index#19641).
        text = "Thinking may not be enabled when tool_choice forces tool use."
        raise _Reject(Violation(text, "tool_choice"))
    if thinking == "enabled":
        _check_thinking_first(body)


def _check_thinking_first(body: Mapping[str, Any]) -> None:
    """With thinking on, the assistant turn in progress (the one that called
    the tools whose results end the request) starts with its thinking.

    [ERR] "messages.1.content.0.type: Expected `thinking` or
    `redacted_thinking`, but found `tool_use`. When `thinking` is enabled, a
    final `assistant` message must start with a thinking block (preceeding the
    lastmost set of `tool_use` and `tool_result` blocks). We recommend you
    include thinking blocks from previous turns. To avoid this requirement,
    disable `thinking`. Please consult our documentation at ..."
    (anomalyco/opencode#3077, deepset-ai/haystack-core-integrations#2146).
    [DOCS] extended-thinking, "Preserving thinking blocks": "you must pass
    thinking blocks back to the API for the last assistant message"; an
    assistant turn spans its tool calls and their results, so the turn's first
    assistant message carries the thinking (later steps of the same turn have
    none without interleaved thinking). Adaptive thinking may skip thinking,
    so the rule is for ``enabled`` only.
    """
    messages: list[Mapping[str, Any]] = body["messages"]
    # The turn in progress starts after the last user message that is not a
    # message of tool results.
    start = 0
    for i, message in enumerate(messages):
        if message["role"] != "user":
            continue
        blocks = _blocks(message["content"])
        if not blocks or blocks[0].get("type") != "tool_result":
            start = i + 1
    turn = [(i, m) for i, m in enumerate(messages[start:], start) if m["role"] == "assistant"]
    if not turn or not any(_tool_use_ids(m) for _, m in turn):
        return
    index, first = turn[0]
    blocks = _blocks(first["content"])
    found = str(blocks[0].get("type")) if blocks else "text"
    if found not in ("thinking", "redacted_thinking"):
        raise _fail(
            ("messages", index, "content", 0, "type"),
            f"Expected `thinking` or `redacted_thinking`, but found `{found}`. When `thinking` is "
            "enabled, a final `assistant` message must start with a thinking block (preceeding "
            "the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
            "thinking blocks from previous turns. To avoid this requirement, disable `thinking`. "
            "Please consult our documentation at "
            "https://docs.claude.com/en/docs/build-with-claude/extended-thinking",
        )


def _check_strict_tools(tools: list[tuple[int, Mapping[str, Any]]]) -> None:
    for i, tool in tools:
        if tool.get("strict") is True:
            # [DOCS] agents-and-tools/tool-use/strict-tool-use: strict tools
            # use structured outputs, with the same JSON Schema limitations.
            _check_output_schema(tool["input_schema"], ("tools", i, _Tag("custom"), "input_schema"))


def _count_cache_controls(body: Mapping[str, Any]) -> None:
    count = 1 if body.get("cache_control") is not None else 0

    def marked(blocks: Any) -> int:
        if not isinstance(blocks, list):
            return 0
        return sum(1 for b in blocks if isinstance(b, Mapping) and b.get("cache_control"))

    count += marked(body.get("tools"))
    count += marked(body.get("system"))
    for message in body["messages"]:
        count += marked(message["content"])
    if count > 4:
        # [DOCS] build-with-claude/prompt-caching: "You can define up to 4
        # cache breakpoints". [ERR] "A maximum of 4 blocks with cache_control
        # may be provided. Found 5." (tghamm/Anthropic.SDK#50).
        raise _Reject(
            Violation(f"A maximum of 4 blocks with cache_control may be provided. Found {count}.")
        )


# Rules of some models -----------------------------------------------------------

_MODEL = re.compile(r"^claude-(opus|sonnet|haiku|fable|mythos)-(\d+)(?:-(\d{1,2}))?(?=$|[-@:])")


def _version(model: str) -> tuple[str, tuple[int, int]] | None:
    """The family and version of a Claude model id (``claude-opus-4-1-20250805``
    is ("opus", (4, 1)); ``claude-sonnet-4-20250514`` is ("sonnet", (4, 0)));
    None for ids of another form (``claude-3-5-haiku-latest``, a test's "m")."""
    match = _MODEL.match(model)
    if match is None:
        return None
    return match.group(1), (int(match.group(2)), int(match.group(3) or 0))


def _since(model: str, **versions: tuple[int, int]) -> bool:
    """Whether ``model`` is of a family in ``versions`` at that version or
    later; the families that came after (fable, mythos) always are."""
    found = _version(model)
    if found is None:
        return False
    family, version = found
    if family in ("fable", "mythos"):
        return True
    return family in versions and version >= versions[family]


def _check_model_rules(body: Mapping[str, Any]) -> None:
    model = str(body["model"])
    if (
        "temperature" in body
        and "top_p" in body
        and _since(model, opus=(4, 1), sonnet=(4, 5), haiku=(4, 5))
    ):
        # [DOCS] about-claude/models/migrating-to-claude-4 (Sonnet 4.5): "Use
        # only temperature or top_p, not both"; Opus 4.1 the same
        # (open-webui/functions#9). [ERR] "`temperature` and `top_p` cannot
        # both be specified for this model. Please use only one."
        # (Vali-98/ChatterUI#564, langfuse/langfuse#9882).
        raise _Reject(
            Violation(
                "`temperature` and `top_p` cannot both be specified for this model. Please use "
                "only one.",
                "top_p",
            )
        )
    thinking = body.get("thinking")
    if (
        isinstance(thinking, Mapping)
        and thinking.get("type") == "enabled"
        and _since(model, opus=(4, 7), sonnet=(5, 0))
    ):
        # [DOCS] about-claude/models/migration-guide, "Migrating to Claude Opus
        # 4.7": adaptive thinking only (Bedrock's adaptive-thinking page:
        # "Manual extended thinking ... not supported on these models and will
        # return a 400 error"). [ERR] SigmaNight/basiliskLLM#1185.
        raise _fail(
            (),
            '"thinking.type.enabled" is not supported for this model. Use '
            '"thinking.type.adaptive" and "output_config.effort" to control thinking behavior.',
            param=("thinking", "type"),
        )
    messages = body["messages"]
    if messages[-1]["role"] == "assistant" and _since(model, opus=(4, 6), sonnet=(4, 6)):
        # [DOCS] about-claude/models/migration-guide (Claude 4.6): "Prefilling
        # assistant messages returns a 400 error on Claude 4.6 models". [ERR]
        # "This model does not support assistant message prefill. The
        # conversation must end with a user message." (anomalyco/opencode#13768).
        raise _Reject(
            Violation(
                "This model does not support assistant message prefill. The conversation must "
                "end with a user message.",
                f"messages[{len(messages) - 1}]",
            )
        )


def check(request: Request) -> Violation | None:
    """The first rule of the Messages API the request breaks, or None."""
    try:
        version = _check_headers(request)
        body = request.body
        if not isinstance(body, Mapping):
            return Violation("Input should be a valid dictionary")
        betas = _betas(request)
        beta = bool(betas)
        # The body's shape, field by field (pydantic's validation) ...
        _check_top_level(body, beta, version)
        _check_system(body)
        _check_messages(body["messages"], beta)
        tools = _custom_tools(body, beta)
        _check_tool_choice(body, tools)
        thinking = _thinking(body)
        _check_output_config(body, beta)
        _check_strict_tools(tools)
        # ... then the rules across fields and messages.
        _check_system_messages(body)
        _check_content_text(body)
        _check_tool_results(body)
        if version >= "2026-10-21":
            _check_version_2026(body)
        _check_thinking_rules(body, thinking, betas)
        _count_cache_controls(body)
        _check_model_rules(body)
    except _Reject as reject:
        return reject.violation
    return None
