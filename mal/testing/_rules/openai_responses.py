"""Rules of OpenAI's Responses API (``POST /v1/responses``).

The shapes come from openai/openai-openapi (``CreateResponse``, ``InputParam``
and the input items, ``FunctionTool``, ``TextResponseFormatJsonSchema``,
``Reasoning``); the semantic rules and the wording of each answer from captured
400 responses, each named beside its rule. The Responses API has one validator
for every model, the strict one: an unknown field is "Unknown parameter".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import Request, Violation
from .openai_common import (
    NAME_MAX,
    NAME_RE,
    Check,
    boolean,
    check_fields,
    choice,
    empty_string,
    enum_value,
    image_url_problem,
    integer,
    invalid_type,
    metadata,
    missing,
    model_family,
    number,
    of_type,
    pattern_mismatch,
    strict_schema_problem,
    string,
    string_too_long,
    suggestions,
    unknown_parameter,
    unsupported_parameter,
)

__all__ = ["check"]

#: Every top-level field of openapi ``CreateResponse`` (with
#: ``CreateModelResponseProperties`` and ``ResponseProperties``), checked in this order.
FIELDS: dict[str, Check] = {
    "model": string(),
    "input": of_type("one of a string or array of input items", (str, list)),  # InputParam
    "previous_response_id": string(),
    "conversation": of_type("one of a string or object", (str, dict)),
    "prompt": of_type("an object", dict),
    "include": of_type("an array", list),
    "tools": of_type("an array of tools", list),  # ToolsArray
    "metadata": metadata(),
    "text": of_type("an object", dict),  # ResponseTextParam
    "temperature": number(0, 2),  # ModelResponseProperties.temperature: 0..2
    "top_p": number(0, 1),  # ModelResponseProperties.top_p: 0..1
    "parallel_tool_calls": boolean(),
    "stream": boolean(),
    "stream_options": of_type("an object", dict),  # ResponseStreamOptions
    "background": boolean(),
    # CreateResponse.max_output_tokens: minimum 16; "Invalid 'max_output_tokens':
    # integer below minimum value. Expected a value >= 16, but got 10 instead."
    # code integer_below_min_value (vectorize-io/hindsight#58)
    "max_output_tokens": integer(lo=16),
    "max_tool_calls": integer(lo=1),  # the live API's floor (a third-party recording)
    "reasoning": of_type("an object", dict),  # Reasoning
    "user": string(),
    "safety_identifier": string(max_length=64),
    "prompt_cache_options": of_type("an object", dict),
    "prompt_cache_key": string(),
    "prompt_cache_retention": choice("in_memory", "24h"),
    "truncation": choice("auto", "disabled"),
    "instructions": string(),
    "store": boolean(),
    "service_tier": choice("auto", "default", "flex", "scale", "priority", "fast", "ultrafast"),
    "top_logprobs": integer(lo=0, hi=20),
    "tool_choice": of_type("one of an object or 'none', 'auto', or 'required'", (str, dict)),
    "context_management": of_type("an array of objects", list),
    "moderation": of_type("an object", dict),
}

#: The item types ``input`` takes (openapi InputItem and Item), in the order
#: the validator lists them ("Invalid value: 'bogus_item'. Supported values
#: are: ...", recorded against the live API in a third-party conformance suite).
ITEM_TYPES = (
    "additional_tools",
    "agent_message",
    "apply_patch_call",
    "apply_patch_call_output",
    "code_interpreter_call",
    "compaction",
    "compaction_trigger",
    "computer_call",
    "computer_call_output",
    "custom_tool_call",
    "custom_tool_call_output",
    "file_search_call",
    "function_call",
    "function_call_output",
    "image_generation_call",
    "item_reference",
    "local_shell_call",
    "local_shell_call_output",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "mcp_list_tools",
    "message",
    "multi_agent_call",
    "multi_agent_call_output",
    "program",
    "program_output",
    "reasoning",
    "shell_call",
    "shell_call_output",
    "tool_search_call",
    "tool_search_output",
    "web_search_call",
)

#: EasyInputMessage.role, as the validator lists it.
ROLES = ("assistant", "system", "developer", "user")

#: What a message's content parts may be: input parts from the user, system and
#: developer (InputContent), output parts in an assistant turn being replayed
#: (OutputMessage's content). "Invalid value: 'input_text'. Supported values are:
#: 'output_text' and 'refusal'." param 'input[2].content[0]', code invalid_value
#: (a captured answer quoted by several clients that replayed assistant turns
#: as input_text); the other list recorded against the live API.
INPUT_PARTS = ("input_text", "input_image", "input_file", "scoped_content", "input_audio")
OUTPUT_PARTS = ("output_text", "refusal")
ALL_PARTS = (
    "input_text",
    "input_image",
    "input_audio",
    "output_text",
    "refusal",
    "input_file",
    "computer_screenshot",
    "summary_text",
    "encrypted_content",
)

#: EasyInputMessage / InputMessage / OutputMessage fields.
MESSAGE_FIELDS = {"type", "role", "content", "id", "status", "phase"}


def check(request: Request) -> Violation | None:
    body = request.body
    family = model_family(body.get("model"))
    return (
        _required(body)
        or _unknown(body)
        or check_fields(body, FIELDS)
        or _input(body)
        or _text(body)
        or _reasoning(body)
        or _tools(body)
        or _calls(body)
        or _reasoning_model(body, family)
    )


def _required(body: Mapping[str, Any]) -> Violation | None:
    if "model" not in body and "prompt" not in body:
        # "Missing required parameter: 'model'." param model, code
        # missing_required_parameter (recorded against the live API; Responses words
        # it unlike Chat Completions). A stored prompt may carry the model.
        return missing("model")
    return None


def _unknown(body: Mapping[str, Any]) -> Violation | None:
    for key in body:
        if key in FIELDS:
            continue
        if key == "messages":
            # The Chat Completions field gets its own answer: "Unsupported parameter:
            # 'messages'. In the Responses API, this parameter has moved to 'input'. ..."
            # param null, code unsupported_parameter (recorded against the live API).
            return Violation(
                "Unsupported parameter: 'messages'. In the Responses API, this parameter has "
                "moved to 'input'. Try again with the new parameter. See the API documentation "
                "for more information: https://platform.openai.com/docs/api-reference/"
                "responses/create.",
                code="unsupported_parameter",
            )
        # "Unknown parameter: 'input[3].status'." code unknown_parameter
        # (1jehuang/jcode#1028); at the top level with the validator's spelling help
        # ("Unknown parameter: 'stop'. Did you mean 'store'?").
        return unknown_parameter(key, suggestions(key, FIELDS, body))
    return None


# Input -----------------------------------------------------------------------------------


def _has_state(body: Mapping[str, Any]) -> bool:
    """Whether the request continues stored state that may hold the input and
    the calls it answers."""
    return any(
        body.get(key) is not None for key in ("previous_response_id", "conversation", "prompt")
    )


def _input(body: Mapping[str, Any]) -> Violation | None:
    items = body.get("input")
    if items is None:
        if not _has_state(body):
            # "Missing required parameter: 'input'." (recorded against the live API)
            return missing("input")
        return None
    if not items and not _has_state(body):
        # An empty input: "One of \"input\" or \"previous_response_id\" or 'prompt' or
        # 'conversation' must be provided." param null, code missing_required_parameter
        # (recorded against the live API).
        return Violation(
            "One of \"input\" or \"previous_response_id\" or 'prompt' or 'conversation' must "
            "be provided.",
            code="missing_required_parameter",
        )
    if isinstance(items, str):
        return None
    for i, item in enumerate(items):
        found = _item(f"input[{i}]", item)
        if found is not None:
            return found
    return None


def _item(at: str, item: Any) -> Violation | None:
    if not isinstance(item, dict):
        return invalid_type(at, "an input item", item)
    kind = item.get("type", "message")
    if kind not in ITEM_TYPES:
        return enum_value(at, kind if isinstance(kind, str) else "", ITEM_TYPES)
    if kind == "message":
        return _message(at, item)
    if kind == "function_call":
        # FunctionToolCall.required: type, call_id, name, arguments (a JSON string)
        for key in ("call_id", "name", "arguments"):
            if key not in item:
                return missing(f"{at}.{key}")
            found = string()(f"{at}.{key}", item[key])
            if found is not None:
                return found
        ident = item.get("id")
        if ident is not None and not (isinstance(ident, str) and ident.startswith("fc")):
            # The item id is the output item's, not the call's: "Invalid
            # 'input[N].id': 'call_...'. Expected an ID that begins with 'fc'."
            # (nodetool-ai/nodetool#4252); leaving the id out is fine.
            return Violation(
                f"Invalid '{at}.id': '{ident}'. Expected an ID that begins with 'fc'.",
                f"{at}.id",
                code="invalid_value",
            )
    if kind == "reasoning" and "status" in item:
        # A reasoning item sent back takes no status: "Unknown parameter:
        # 'input[3].status'." code unknown_parameter (1jehuang/jcode#1028, whose fix
        # drops the output-only field when replaying reasoning items).
        return unknown_parameter(f"{at}.status")
    if kind == "function_call_output":
        # FunctionCallOutputItemParam.required: type, output; call_id 1..64 characters
        if "call_id" not in item:
            return missing(f"{at}.call_id")
        found = string(max_length=64)(f"{at}.call_id", item["call_id"])
        if found is not None:
            return found
        if "output" not in item:
            return missing(f"{at}.output")
        output = item["output"]
        if not isinstance(output, (str, list)):
            return invalid_type(f"{at}.output", "one of a string or array of objects", output)
        if isinstance(output, list):
            for j, part in enumerate(output):
                found = _part(f"{at}.output[{j}]", part, INPUT_PARTS)
                if found is not None:
                    return found
    return None


def _message(at: str, item: Mapping[str, Any]) -> Violation | None:
    role = item.get("role")
    if role not in ROLES:
        # "Invalid value: 'bogus'. Supported values are: 'assistant', 'system',
        # 'developer', and 'user'." param input[0] (recorded against the live API)
        return enum_value(at, role if isinstance(role, str) else "", ROLES)
    for key in item:
        if key not in MESSAGE_FIELDS:
            # "Unknown parameter: 'input[1].metadata'." (microsoft/agent-framework#2203)
            return unknown_parameter(f"{at}.{key}")
    if "content" not in item:
        return missing(f"{at}.content")
    content = item["content"]
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return invalid_type(f"{at}.content", "one of a string or array of objects", content)
    allowed = OUTPUT_PARTS if role == "assistant" else INPUT_PARTS
    for j, part in enumerate(content):
        found = _part(f"{at}.content[{j}]", part, allowed)
        if found is not None:
            return found
    return None


def _part(at: str, part: Any, allowed: tuple[str, ...]) -> Violation | None:
    if not isinstance(part, dict):
        return invalid_type(at, "an object", part)
    if "type" not in part:
        return missing(f"{at}.type")
    kind = part["type"]
    if kind not in ALL_PARTS:
        # "Invalid value: 'text'. Supported values are: 'input_text', 'input_image',
        # 'output_text', 'refusal', 'input_file', 'computer_screenshot', and
        # 'summary_text'." (quoted in several clients' fixes), param ...type
        return enum_value(f"{at}.type", kind, ALL_PARTS)
    if kind not in allowed:
        # A part of the wrong side: param is the part itself (see OUTPUT_PARTS).
        return enum_value(at, kind, allowed)
    if kind in ("input_text", "output_text"):
        if "text" not in part:
            return missing(f"{at}.text")
        return string()(f"{at}.text", part["text"])
    if kind == "input_image":
        return _image(at, part)
    return None


def _image(at: str, part: Mapping[str, Any]) -> Violation | None:
    """InputImageContent: an ``image_url`` (or a ``file_id``) and a ``detail``
    of low, high, auto or original (openapi ImageDetail)."""
    url = part.get("image_url")
    if url is not None:
        found = string()(f"{at}.image_url", url)
        if found is not None:
            return found
        problem = image_url_problem(url)
        if problem is not None:
            # "Invalid 'input[101].content[1].image_url'. Expected a base64-encoded data
            # URL with an image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='),
            # but got empty base64-encoded bytes." code invalid_value (anomalyco/opencode#23983)
            param = f"{at}.image_url"
            return Violation(
                f"Invalid '{param}'. Expected a base64-encoded data URL with an image MIME "
                "type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got "
                f"{problem}.",
                param,
                code="invalid_value",
            )
    elif part.get("file_id") is None:
        return missing(f"{at}.image_url")
    detail = part.get("detail")
    if detail is not None:
        return choice("low", "high", "auto", "original")(f"{at}.detail", detail)
    return None


# Text, reasoning, tools -----------------------------------------------------------------------


def _text(body: Mapping[str, Any]) -> Violation | None:
    """ResponseTextParam: ``format`` (TextResponseFormatConfiguration) and ``verbosity``."""
    text = body.get("text")
    if text is None:
        return None
    for key in text:
        if key not in ("format", "verbosity"):
            return unknown_parameter(f"text.{key}")
    verbosity = text.get("verbosity")
    if verbosity is not None:
        found = choice("low", "medium", "high")("text.verbosity", verbosity)
        if found is not None:
            return found
    form = text.get("format")
    if form is None:
        return None
    if not isinstance(form, dict):
        return invalid_type("text.format", "an object", form)
    if "type" not in form:
        return missing("text.format.type")
    kind = form["type"]
    if kind not in ("text", "json_schema", "json_object"):
        return enum_value("text.format.type", kind, ("json_object", "text", "json_schema"))
    if kind == "json_object":
        if not _mentions_json(body.get("input")):
            # Only the input counts, not the instructions: "Response input messages
            # must contain the word 'json' in some form to use 'text.format' of type
            # 'json_object'." param text.format, code null (a captured answer quoted
            # in client code)
            return Violation(
                "Response input messages must contain the word 'json' in some form to use "
                "'text.format' of type 'json_object'.",
                "text.format",
            )
        return None
    if kind == "text":
        return None
    for key in form:
        if key not in ("type", "name", "description", "schema", "strict"):
            return unknown_parameter(f"text.format.{key}")
    # TextResponseFormatJsonSchema.required: type, schema, name
    for key in ("name", "schema"):
        if key not in form:
            return missing(f"text.format.{key}")
    name = form["name"]
    found = _name("text.format.name", name)
    if found is not None:
        return found
    schema = form["schema"]
    if not isinstance(schema, dict):
        return invalid_type("text.format.schema", "an object", schema)
    strict = form.get("strict")
    if strict is not None:
        found = boolean()("text.format.strict", strict)
        if found is not None:
            return found
    if strict is True:
        problem = strict_schema_problem(schema)
        if problem is not None:
            # "Invalid schema for response_format 'codex_output_schema': In context=(),
            # 'additionalProperties' is required to be supplied and to be false." param
            # text.format.schema, code invalid_json_schema (mavam/pi-web-providers#14)
            return Violation(
                f"Invalid schema for response_format '{name}': {problem}",
                "text.format.schema",
                code="invalid_json_schema",
            )
    return None


def _mentions_json(items: Any) -> bool:
    if isinstance(items, str):
        return "json" in items.lower()
    for item in items or ():
        if not isinstance(item, dict):
            continue
        content = item.get("content", item.get("output"))
        parts = content if isinstance(content, list) else [content]
        for part in parts:
            text = part.get("text") if isinstance(part, dict) else part
            if isinstance(text, str) and "json" in text.lower():
                return True
    return False


def _name(param: str, name: Any) -> Violation | None:
    """FunctionTool.name, TextResponseFormatJsonSchema.name: "Must be a-z, A-Z,
    0-9, or contain underscores and dashes, with a maximum length of 64"."""
    if not isinstance(name, str):
        return invalid_type(param, "a string", name)
    if not name:
        return empty_string(param)
    if len(name) > NAME_MAX:
        return string_too_long(param, NAME_MAX, len(name))
    if not NAME_RE.match(name):
        # "Invalid 'tools[0].name': string does not match pattern. Expected a string
        # that matches the pattern '^[a-zA-Z0-9_-]+$'." (a captured answer)
        return pattern_mismatch(param)
    return None


def _reasoning(body: Mapping[str, Any]) -> Violation | None:
    """Reasoning: effort, summary (auto, concise, detailed), the deprecated
    generate_summary, mode and context."""
    reasoning = body.get("reasoning")
    if reasoning is None:
        return None
    table: dict[str, Check] = {
        "effort": choice("none", "minimal", "low", "medium", "high", "xhigh", "max"),
        "summary": choice("concise", "detailed", "auto"),
        "generate_summary": choice("concise", "detailed", "auto"),
        "context": choice("auto", "current_turn", "all_turns"),
        "mode": string(),
    }
    for key in reasoning:
        if key not in table:
            # "Unknown parameter: 'reasoning.bogus'." (recorded against the live API)
            return unknown_parameter(f"reasoning.{key}")
    for key, rule in table.items():
        value = reasoning.get(key)
        if value is not None:
            found = rule(f"reasoning.{key}", value)
            if found is not None:
                return found
    return None


def _tools(body: Mapping[str, Any]) -> Violation | None:
    tools = body.get("tools")
    names: list[str] = []
    for i, tool in enumerate(tools or ()):
        found = _tool(f"tools[{i}]", tool, names)
        if found is not None:
            return found
    choice_ = body.get("tool_choice")
    if isinstance(choice_, str):
        # ToolChoiceOptions: none, auto or required.
        return choice("none", "auto", "required")("tool_choice", choice_)
    if isinstance(choice_, dict) and choice_.get("type") == "function":
        # ToolChoiceFunction: {"type": "function", "name": ...}, flat like the tools
        if "name" not in choice_:
            return missing("tool_choice.name")
        if choice_["name"] not in names:
            # "Tool choice 'image_generation' not found in 'tools' parameter." param
            # tool_choice (a captured answer quoted in several clients)
            return Violation(
                f"Tool choice '{choice_['name']}' not found in 'tools' parameter.", "tool_choice"
            )
    return None


def _tool(at: str, tool: Any, names: list[str]) -> Violation | None:
    """FunctionTool, flat: ``{"type": "function", "name", "description",
    "parameters", "strict"}``; the built-in tools are taken as they are."""
    if not isinstance(tool, dict):
        return invalid_type(at, "an object", tool)
    if "type" not in tool:
        return missing(f"{at}.type")
    if tool["type"] != "function":
        return None
    if "name" not in tool:
        # The Chat Completions shape ({"type": "function", "function": {...}}) is
        # answered the same way: "Missing required parameter: 'tools[0].name'."
        # (recorded against the live API)
        return missing(f"{at}.name")
    name = tool["name"]
    found = _name(f"{at}.name", name)
    if found is not None:
        return found
    names.append(name)
    for key in tool:
        if key not in (
            "type",
            "name",
            "description",
            "parameters",
            "strict",
            "output_schema",
            "defer_loading",
            "allowed_callers",
        ):
            return unknown_parameter(f"{at}.{key}")
    parameters = tool.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        return invalid_type(f"{at}.parameters", "an object", parameters)
    strict = tool.get("strict")
    if strict is not None:
        found = boolean()(f"{at}.strict", strict)
        if found is not None:
            return found
    if strict is True:
        problem = strict_schema_problem(parameters or {})
        if problem is not None:
            # "Invalid schema for function 'glob': In context=(), 'additionalProperties'
            # is required to be supplied and to be false." param tools[0].parameters, code
            # invalid_function_parameters (captured answers quoted in client code)
            return Violation(
                f"Invalid schema for function '{name}': {problem}",
                f"{at}.parameters",
                code="invalid_function_parameters",
            )
    return None


# Calls and their outputs --------------------------------------------------------------------


def _calls(body: Mapping[str, Any]) -> Violation | None:
    """Every function_call_output answers a function_call given before it, and
    every function_call given is answered, unless stored state (a previous
    response, a conversation) may hold the other half.

    "No tool call found for function call output with call_id
    call_uelfkqtHfJDC4Btqeoozq82e." param input, code null
    (continuedev/continue#10092, microsoft/vscode#320060); "No tool output found
    for function call call_XXX." param input, code null (tjardoo/openai-client#124)."""
    items = body.get("input")
    if not isinstance(items, list) or _has_state(body):
        return None
    called: list[str] = []
    answered: set[str] = set()
    for item in items:
        kind = item.get("type")
        if kind == "function_call":
            called.append(item["call_id"])
        elif kind == "function_call_output":
            call_id = item["call_id"]
            if call_id not in called:
                return Violation(
                    f"No tool call found for function call output with call_id {call_id}.",
                    "input",
                )
            answered.add(call_id)
    for call_id in called:
        if call_id not in answered:
            return Violation(f"No tool output found for function call {call_id}.", "input")
    return None


# Reasoning models ---------------------------------------------------------------------------------


def _reasoning_model(body: Mapping[str, Any], family: str | None) -> Violation | None:
    """The o-series and gpt-5 models take no sampling settings here:
    "Unsupported parameter: 'temperature' is not supported with this model."
    param temperature, code null (OpenHands/software-agent-sdk#1837, gpt-5.2;
    ThinkInAIXYZ/deepchat#655, o3 through the Responses API)."""
    if family not in ("o1", "o3", "o4", "gpt-5"):
        return None
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None and value != 1:
            return unsupported_parameter(key, code=None)
    return None
