"""Rules of OpenAI's Chat Completions API (``POST /v1/chat/completions``).

The shapes come from openai/openai-openapi (``CreateChatCompletionRequest`` and
the components it names); the semantic rules and the wording of each answer
from captured 400 responses, each named beside its rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import Request, Violation
from .openai_common import (
    NAME_MAX,
    NAME_RE,
    Check,
    array_too_long,
    boolean,
    check_fields,
    choice,
    empty_array,
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

#: Every top-level field of openapi ``CreateChatCompletionRequest`` (with the
#: ``CreateModelResponseProperties`` it extends), checked in this order.
FIELDS: dict[str, Check] = {
    "model": string(),
    "messages": of_type("an array of objects", list),
    "functions": of_type("an array of function definitions", list),
    "tools": of_type("an array of objects", list),
    "parallel_tool_calls": boolean(),  # openapi ParallelToolCalls
    # No floor in the openapi file; the live API's is 1 ("Invalid
    # 'max_completion_tokens': integer below minimum value. Expected a value >= 1,
    # but got 0 instead.", recorded in a third-party conformance suite).
    "max_completion_tokens": integer(lo=1),
    "max_tokens": integer(),
    "n": integer(lo=1, hi=128),  # openapi: minimum 1, maximum 128
    "seed": integer(),
    "stop": of_type("one of a string or array of strings", (str, list)),  # StopConfiguration
    "stream": boolean(),
    "stream_options": of_type("an object", dict),  # ChatCompletionStreamOptions
    "store": boolean(),
    "metadata": metadata(),
    "temperature": number(0, 2),  # ModelResponseProperties.temperature: 0..2
    "top_p": number(0, 1),  # ModelResponseProperties.top_p: 0..1
    "frequency_penalty": number(-2, 2),  # -2..2
    "presence_penalty": number(-2, 2),  # -2..2
    "logprobs": boolean(),
    "top_logprobs": integer(lo=0, hi=20),  # 0..20
    "logit_bias": of_type("an object", dict),
    "user": string(),
    "safety_identifier": string(max_length=64),
    "prompt_cache_key": string(),
    "prompt_cache_retention": choice("in_memory", "24h"),
    "prompt_cache_options": of_type("an object", dict),
    "service_tier": choice("auto", "default", "flex", "scale", "priority", "fast"),
    "verbosity": choice("low", "medium", "high"),
    "reasoning_effort": choice("none", "minimal", "low", "medium", "high", "xhigh", "max"),
    "response_format": of_type("an object", dict),
    "tool_choice": of_type("one of one of 'none', 'auto', or 'required' or object", (str, dict)),
    "function_call": of_type("one of one of 'none' or 'auto' or object", (str, dict)),
    "modalities": of_type("an array of one of 'text' or 'audio'", list),
    "audio": of_type("an object", dict),
    "prediction": of_type("an object", dict),
    "web_search_options": of_type("an object", dict),
    "moderation": of_type("an object", dict),
}

#: openapi ``ChatCompletionRequestMessage``: the roles it discriminates on,
#: in the order the validator lists them ("Invalid value: 'bogus'. Supported
#: values are: 'system', 'assistant', 'user', 'function', 'tool', and
#: 'developer'.", recorded against the live API).
ROLES = ("system", "assistant", "user", "function", "tool", "developer")

#: Each role's fields (the ``ChatCompletionRequest*Message`` components).
MESSAGE_FIELDS = {
    "developer": {"role", "content", "name"},
    "system": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "refusal", "name", "audio", "tool_calls", "function_call"},
    "tool": {"role", "content", "tool_call_id"},
    "function": {"role", "content", "name"},
}

#: The content part types each role takes: user text, images, audio and files
#: (ChatCompletionRequestUserMessageContentPart); system, developer and tool
#: text only; assistant text and refusals.
PART_TYPES = {
    "user": ("text", "image_url", "input_audio", "file"),
    "developer": ("text",),
    "system": ("text",),
    "tool": ("text",),
    "assistant": ("text", "refusal"),
}

#: Each part's fields (ChatCompletionRequestMessageContentPart*).
PART_FIELDS = {
    "text": {"type", "text", "prompt_cache_breakpoint"},
    "image_url": {"type", "image_url", "prompt_cache_breakpoint"},
    "input_audio": {"type", "input_audio", "prompt_cache_breakpoint"},
    "file": {"type", "file", "prompt_cache_breakpoint"},
    "refusal": {"type", "refusal"},
}


def check(request: Request) -> Violation | None:
    body = request.body
    model = body.get("model")
    family = model_family(model if model is not None else _deployment(request))
    return (
        _required(request, body)
        or _unknown(body, family)
        or _max_tokens(body, family)
        or check_fields(body, FIELDS)
        or _messages(body["messages"])
        or _content_present(body["messages"])
        or _streaming(body)
        or _logprobs(body)
        or _tools(body)
        or _response_format(body)
        or _tool_turns(body["messages"])
        or _reasoning_model(body, family, model)
    )


def _deployment(request: Request) -> str | None:
    """The deployment of an Azure URL, which names the model when the body does not."""
    parts = request.path.split("/")
    if request.azure and len(parts) > 3 and parts[1:3] == ["openai", "deployments"]:
        return parts[3]
    return None


def _required(request: Request, body: Mapping[str, Any]) -> Violation | None:
    if body.get("model") is None and _deployment(request) is None:
        # "you must provide a model parameter", param and code null
        # (danielmiessler/Fabric#239, lss233/kirara-ai#800). An Azure deployment
        # URL names the model itself.
        return Violation("you must provide a model parameter")
    if "messages" not in body:
        # openapi CreateChatCompletionRequest.required; "Missing required parameter:
        # 'messages'." (SilasMarvin/lsp-ai#108).
        return missing("messages")
    if body["messages"] is None:
        return invalid_type("messages", "an array of objects", None)
    return None


def _unknown(body: Mapping[str, Any], family: str | None) -> Violation | None:
    unknown = [key for key in body if key not in FIELDS]
    if family == "plain" and body.get("reasoning_effort") is not None:
        # The earlier chat models do not know reasoning_effort: "Unrecognized request
        # argument supplied: reasoning_effort" with gpt-4o-mini (coroot/coroot#698;
        # davidmigloz/langchain_dart#712: accepted when null).
        unknown.append("reasoning_effort")
    if not unknown:
        return None
    if family in ("o1", "o3", "o4", "gpt-5"):
        # The reasoning models' validator names one key: "Unknown parameter:
        # 'reasoning'." code unknown_parameter (teabranch/open-responses-server#41,
        # o4-mini; 64bit/async-openai#386, o3-mini), with its spelling help.
        key = unknown[0]
        return unknown_parameter(key, suggestions(key, FIELDS, body))
    # The other models answer "Unrecognized request argument supplied: top_k", param
    # and code null (xlinx/sd-webui-decadetw-auto-prompt-llm#29), naming every
    # unknown key, sorted, when there are several: "Unrecognized request arguments
    # supplied: function_call, functions" (langchain-ai/langchain#8593).
    if len(unknown) == 1:
        return Violation(f"Unrecognized request argument supplied: {unknown[0]}")
    return Violation(f"Unrecognized request arguments supplied: {', '.join(sorted(unknown))}")


def _max_tokens(body: Mapping[str, Any], family: str | None) -> Violation | None:
    if family in ("o1", "o3", "o4", "gpt-5") and body.get("max_tokens") is not None:
        # openapi CreateChatCompletionRequest.max_tokens: "not compatible with
        # o-series models"; the answer, reported before the other faults of the same
        # body (envoyproxy/ai-gateway cassette chat-bad-request.yaml, gpt-5-nano).
        return Violation(
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "max_tokens",
            code="unsupported_parameter",
        )
    return None


# Messages -------------------------------------------------------------------------------


def _messages(messages: list[Any]) -> Violation | None:
    if not messages:
        # ChatCompletionRequest.messages minItems 1 (cassette chat-no-messages.yaml).
        return empty_array("messages")
    for i, message in enumerate(messages):
        found = _message(i, message)
        if found is not None:
            return found
    return None


def _message(i: int, message: Any) -> Violation | None:
    at = f"messages[{i}]"
    if not isinstance(message, dict):
        return invalid_type(at, "an object", message)
    if "role" not in message:
        # "Missing required parameter: 'messages[0].role'."
        # (Leon-Sander/Local-Multimodal-AI-Chat#43)
        return missing(f"{at}.role")
    role = message["role"]
    if role not in ROLES:
        return enum_value(f"{at}.role", role, ROLES)
    for key in message:
        if key not in MESSAGE_FIELDS[role]:
            # "Unknown parameter: 'messages[0].id'." code unknown_parameter (a captured
            # answer quoted in client code); nested fields are checked on every model.
            return unknown_parameter(f"{at}.{key}")
    name = message.get("name")
    if role == "function" and name is None:
        # ChatCompletionRequestFunctionMessage.required: role, content, name
        return missing(f"{at}.name")
    if name is not None:
        found = string()(f"{at}.name", name)
        if found is None and not NAME_RE.match(name):
            # "Invalid 'messages[3].name': string does not match pattern. Expected a
            # string that matches the pattern '^[a-zA-Z0-9_-]+$'." (captured with gpt-4)
            found = pattern_mismatch(f"{at}.name")
        if found is not None:
            return found
    content = message.get("content")
    if role == "developer" and "content" not in message:
        # ChatCompletionRequestDeveloperMessage.required: content (its own schema
        # answers "Missing required parameter: 'messages[1].content'.").
        return missing(f"{at}.content")
    if content is not None or role == "developer":
        found = _content(at, role, content)
        if found is not None:
            return found
    if role == "assistant" and message.get("tool_calls") is not None:
        found = _tool_calls(at, message["tool_calls"])
        if found is not None:
            return found
    if role == "tool":
        # ChatCompletionRequestToolMessage.required: tool_call_id
        if "tool_call_id" not in message:
            return missing(f"{at}.tool_call_id")
        found = string()(f"{at}.tool_call_id", message["tool_call_id"])
        if found is not None:
            return found
    return None


def _content(at: str, role: str, content: Any) -> Violation | None:
    param = f"{at}.content"
    if role == "function":
        return string()(param, content)
    if not isinstance(content, (str, list)):
        # "Invalid type for 'messages[1].content': expected one of a string or array
        # of objects, but got an object instead." (clusterzx/paperless-ai#748)
        return invalid_type(param, "one of a string or array of objects", content)
    if isinstance(content, str):
        return None
    if not content:
        return empty_array(param)  # the content arrays' minItems 1
    for j, part in enumerate(content):
        found = _part(f"{param}[{j}]", role, part)
        if found is not None:
            return found
    return None


def _part(at: str, role: str, part: Any) -> Violation | None:
    if not isinstance(part, dict):
        return invalid_type(at, "an object", part)
    if "type" not in part:
        # "Missing required parameter: 'messages[3].content[0].type'."
        # (langchain-ai/langgraphjs#506)
        return missing(f"{at}.type")
    kind = part["type"]
    allowed = PART_TYPES[role]
    if kind not in allowed:
        return enum_value(f"{at}.type", kind, allowed)
    for key in part:
        if key not in PART_FIELDS[kind]:
            # "Unknown parameter: 'messages[1].content[1].file.data'." code
            # unknown_parameter (gpt-4o; quoted in pydantic/pydantic-ai)
            return unknown_parameter(f"{at}.{key}")
    if kind in ("text", "refusal"):
        if kind not in part:
            return missing(f"{at}.{kind}")
        return string()(f"{at}.{kind}", part[kind])
    if kind == "image_url":
        return _image(at, part)
    if kind not in part:
        return missing(f"{at}.{kind}")
    return of_type("an object", dict)(f"{at}.{kind}", part[kind])


def _image(at: str, part: Mapping[str, Any]) -> Violation | None:
    """ChatCompletionRequestMessageContentPartImage: ``image_url`` is an object
    with a ``url`` and an optional ``detail`` (auto, low or high)."""
    if "image_url" not in part:
        return missing(f"{at}.image_url")
    image = part["image_url"]
    if not isinstance(image, dict):
        return invalid_type(f"{at}.image_url", "an object", image)
    for key in image:
        if key not in ("url", "detail"):
            return unknown_parameter(f"{at}.image_url.{key}")
    if "url" not in image:
        return missing(f"{at}.image_url.url")
    url = image["url"]
    if not isinstance(url, str):
        return invalid_type(f"{at}.image_url.url", "a string", url)
    problem = image_url_problem(url)
    if problem is not None:
        # "Invalid image URL: 'messages[0].content[1].image_url.url'. Expected a
        # base64-encoded data URL with an image MIME type (e.g.
        # 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got a value without the
        # 'data:' prefix." code invalid_value (Alibaba-NLP/OmniSearch#3)
        param = f"{at}.image_url.url"
        return Violation(
            f"Invalid image URL: '{param}'. Expected a base64-encoded data URL with an "
            "image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got "
            f"{problem}.",
            param,
            code="invalid_value",
        )
    detail = image.get("detail")
    if detail is not None:
        return choice("auto", "low", "high")(f"{at}.image_url.detail", detail)
    return None


def _tool_calls(at: str, calls: Any) -> Violation | None:
    """ChatCompletionMessageToolCalls: function calls with an id and the
    arguments as a JSON string."""
    param = f"{at}.tool_calls"
    if not isinstance(calls, list):
        return invalid_type(param, "an array of objects", calls)
    if not calls:
        # "Invalid 'messages[2].tool_calls': empty array. Expected an array with
        # minimum length 1, but got an empty array instead." (quoted in several
        # clients' history sanitizers)
        return empty_array(param)
    for j, call in enumerate(calls):
        where = f"{param}[{j}]"
        if not isinstance(call, dict):
            return invalid_type(where, "an object", call)
        for key in ("id", "type"):
            if key not in call:
                return missing(f"{where}.{key}")
        kind = call["type"]
        if kind not in ("function", "custom"):
            return enum_value(f"{where}.type", kind, ("function", "custom"))
        for key in call:
            if key not in ("id", "type", kind):
                # "Unknown parameter: 'messages[2].tool_calls[0].index'." (a captured
                # answer; the streamed delta's index is not part of the request)
                return unknown_parameter(f"{where}.{key}")
        if kind not in call:
            return missing(f"{where}.{kind}")
        function = call[kind]
        if not isinstance(function, dict):
            return invalid_type(f"{where}.{kind}", "an object", function)
        fields = ("name", "arguments") if kind == "function" else ("name", "input")
        for key in fields:
            if key not in function:
                return missing(f"{where}.{kind}.{key}")
            # The arguments go back as a JSON string (ChatCompletionMessageToolCall
            # .function.arguments: type string).
            found = string()(f"{where}.{kind}.{key}", function[key])
            if found is not None:
                return found
        for key in function:
            if key not in fields:
                return unknown_parameter(f"{where}.{kind}.{key}")
    return None


def _content_present(messages: list[Any]) -> Violation | None:
    """A message with no content: the check that runs after every other message
    check, whatever the index (recorded against the live API: a type fault in a
    later message is reported before a missing content in an earlier one)."""
    for i, message in enumerate(messages):
        role = message["role"]
        if message.get("content") is not None or role in ("developer", "function"):
            continue
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            continue  # ChatCompletionRequestAssistantMessage: content optional with calls
        # "Invalid value for 'content': expected a string, got null." param
        # 'messages.[2].content', code null: the answer to a null or absent content
        # (a capture in a workaround note pointing at microsoft/semantic-kernel#4556,
        # and gpt-5.6-luna evaluation logs; a refusal or audio does not stand in for it).
        return Violation(
            "Invalid value for 'content': expected a string, got null.", f"messages.[{i}].content"
        )
    return None


# Fields that depend on each other ------------------------------------------------------


def _streaming(body: Mapping[str, Any]) -> Violation | None:
    if body.get("stream_options") is not None and body.get("stream") is not True:
        # ChatCompletionStreamOptions: "Only set this when you set stream: true";
        # "The 'stream_options' parameter is only allowed when 'stream' is enabled."
        # param stream_options, code null (BerriAI/litellm#5803).
        return Violation(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    options = body.get("stream_options") or {}
    for key, value in options.items():
        if key not in ("include_usage", "include_obfuscation"):
            return unknown_parameter(f"stream_options.{key}")
        found = boolean()(f"stream_options.{key}", value)
        if found is not None:
            return found
    stop = body.get("stop")
    if isinstance(stop, list):
        # StopConfiguration: an array of 1 to 4 strings.
        if not stop:
            return empty_array("stop")
        if len(stop) > 4:
            return array_too_long("stop", 4, len(stop))
        for j, item in enumerate(stop):
            found = string()(f"stop[{j}]", item)
            if found is not None:
                return found
    return None


def _logprobs(body: Mapping[str, Any]) -> Violation | None:
    if body.get("top_logprobs") is not None and body.get("logprobs") is not True:
        # openapi top_logprobs: "logprobs must be set to true if this parameter is
        # used"; the answer: "The 'top_logprobs' parameter is only allowed when
        # 'logprobs' is enabled." code null.
        return Violation(
            "The 'top_logprobs' parameter is only allowed when 'logprobs' is enabled.",
            "top_logprobs",
        )
    return None


def _tools(body: Mapping[str, Any]) -> Violation | None:
    tools = body.get("tools")
    names: list[str] = []
    if tools is not None:
        if not tools:
            # "Invalid 'tools': empty array. Expected an array with minimum length 1,
            # but got an empty array instead." (a captured openai.BadRequestError)
            return empty_array("tools")
        for i, tool in enumerate(tools):
            found = _tool(i, tool, names)
            if found is not None:
                return found
    choice_ = body.get("tool_choice")
    if choice_ is not None and tools is None:
        # "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools'
        # are specified." param tool_choice, code null (a captured openai.BadRequestError)
        return Violation(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            "tool_choice",
        )
    if body.get("parallel_tool_calls") is not None and tools is None:
        # "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only
        # allowed when 'tools' are specified." (quoted by several clients that strip it)
        return Violation(
            "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed "
            "when 'tools' are specified.",
            "parallel_tool_calls",
        )
    if isinstance(choice_, str):
        # ChatCompletionToolChoiceOption: none, auto or required.
        return choice("none", "auto", "required")("tool_choice", choice_)
    if isinstance(choice_, dict):
        return _named_choice(choice_, names)
    return None


def _tool(i: int, tool: Any, names: list[str]) -> Violation | None:
    """ChatCompletionTool: ``{"type": "function", "function": FunctionObject}``."""
    at = f"tools[{i}]"
    if not isinstance(tool, dict):
        return invalid_type(at, "an object", tool)
    if "type" not in tool:
        return missing(f"{at}.type")
    kind = tool["type"]
    if kind not in ("function", "custom"):
        return enum_value(f"{at}.type", kind, ("function", "custom"))
    for key in tool:
        if key not in ("type", kind):
            return unknown_parameter(f"{at}.{key}")
    if kind not in tool:
        # "Missing required parameter: 'tools[0].function'."
        return missing(f"{at}.{kind}")
    function = tool[kind]
    if not isinstance(function, dict):
        return invalid_type(f"{at}.{kind}", "an object", function)
    if "name" not in function:
        return missing(f"{at}.{kind}.name")
    name = function["name"]
    found = _name(f"{at}.{kind}.name", name)
    if found is not None:
        return found
    names.append(name)
    if kind == "custom":
        return None
    for key in function:
        if key not in ("name", "description", "parameters", "strict"):
            return unknown_parameter(f"{at}.function.{key}")
    description = function.get("description")
    if description is not None:
        found = string()(f"{at}.function.description", description)
        if found is not None:
            return found
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        return invalid_type(f"{at}.function.parameters", "an object", parameters)
    strict = function.get("strict")
    if strict is not None:
        found = boolean()(f"{at}.function.strict", strict)
        if found is not None:
            return found
    if strict is True:
        problem = strict_schema_problem(parameters or {})
        if problem is not None:
            # "Invalid schema for function 'glob': In context=(), 'additionalProperties'
            # is required to be supplied and to be false." code
            # invalid_function_parameters (captured, quoted in client diagnoses)
            return Violation(
                f"Invalid schema for function '{name}': {problem}",
                f"{at}.function.parameters",
                code="invalid_function_parameters",
            )
    return None


def _name(param: str, name: Any) -> Violation | None:
    """A function or format name: FunctionObject.name "Must be a-z, A-Z, 0-9, or
    contain underscores and dashes, with a maximum length of 64"."""
    if not isinstance(name, str):
        return invalid_type(param, "a string", name)
    if not name:
        # "Invalid 'tools[0].function.name': empty string. Expected a string with
        # minimum length 1, but got an empty string instead." code empty_string
        return empty_string(param)
    if len(name) > NAME_MAX:
        return string_too_long(param, NAME_MAX, len(name))
    if not NAME_RE.match(name):
        # "Invalid 'tools[0].function.name': string does not match pattern. Expected a
        # string that matches the pattern '^[a-zA-Z0-9_-]+$'." code invalid_value
        return pattern_mismatch(param)
    return None


def _named_choice(choice_: Mapping[str, Any], names: list[str]) -> Violation | None:
    """ChatCompletionNamedToolChoice: ``{"type": "function", "function": {"name"}}``
    naming one of the tools."""
    kind = choice_.get("type")
    if kind in ("allowed_tools", "custom"):
        return None
    if "function" not in choice_:
        return missing("tool_choice.function")
    function = choice_["function"]
    if not isinstance(function, dict):
        return invalid_type("tool_choice.function", "an object", function)
    if "name" not in function:
        return missing("tool_choice.function.name")
    name = function["name"]
    if name not in names:
        # The tools are functions underneath, and the answer says so: "Invalid value
        # for 'function_call': no function named 'never_declared' was specified in the
        # 'functions' parameter." param function_call, code null (recorded against the
        # live API in a third-party conformance suite; the same sentence that
        # MeetKai/functionary copies from OpenAI).
        return Violation(
            f"Invalid value for 'function_call': no function named '{name}' was specified "
            "in the 'functions' parameter.",
            "function_call",
        )
    return None


def _response_format(body: Mapping[str, Any]) -> Violation | None:
    """ResponseFormatText, ResponseFormatJsonSchema or ResponseFormatJsonObject."""
    form = body.get("response_format")
    if form is None:
        return None
    if "type" not in form:
        return missing("response_format.type")
    kind = form["type"]
    if kind not in ("text", "json_schema", "json_object"):
        # "Invalid value: 'bogus'. Supported values are: 'json_object', 'json_schema',
        # and 'text'." (the order the validator lists them in)
        return enum_value("response_format.type", kind, ("json_object", "json_schema", "text"))
    if kind == "json_object":
        if not _mentions_json(body["messages"]):
            # JSON mode needs the word: "'messages' must contain the word 'json' in
            # some form, to use 'response_format' of type 'json_object'." (quoted in
            # client docs and fixes alike)
            return Violation(
                "'messages' must contain the word 'json' in some form, to use "
                "'response_format' of type 'json_object'.",
                "messages",
            )
        return None
    if kind == "text":
        return None
    if "json_schema" not in form:
        return missing("response_format.json_schema")
    spec = form["json_schema"]
    if not isinstance(spec, dict):
        return invalid_type("response_format.json_schema", "an object", spec)
    for key in spec:
        if key not in ("name", "description", "schema", "strict"):
            return unknown_parameter(f"response_format.json_schema.{key}")
    if "name" not in spec:
        # ResponseFormatJsonSchema.json_schema.required: name
        return missing("response_format.json_schema.name")
    name = spec["name"]
    found = _name("response_format.json_schema.name", name)
    if found is not None:
        return found
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, dict):
        return invalid_type("response_format.json_schema.schema", "an object", schema)
    strict = spec.get("strict")
    if strict is not None:
        found = boolean()("response_format.json_schema.strict", strict)
        if found is not None:
            return found
    if strict is True:
        problem = strict_schema_problem(schema or {})
        if problem is not None:
            # "Invalid schema for response_format 'default': In context=(),
            # 'additionalProperties' is required to be supplied and to be false."
            # param response_format, code null (dottxt-ai/outlines#844, #1666)
            return Violation(
                f"Invalid schema for response_format '{name}': {problem}", "response_format"
            )
    return None


def _mentions_json(messages: list[Any]) -> bool:
    for message in messages:
        content = message.get("content")
        parts = content if isinstance(content, list) else [content]
        for part in parts:
            text = part.get("text") if isinstance(part, dict) else part
            if isinstance(text, str) and "json" in text.lower():
                return True
    return False


# Tool turns ---------------------------------------------------------------------------------


def _tool_turns(messages: list[Any]) -> Violation | None:
    """Every tool call of an assistant turn is answered by the tool messages that
    follow it, and every tool message answers a call of that turn.

    The answers, param ``messages.[i].role`` and code null: "An assistant message
    with 'tool_calls' must be followed by tool messages responding to each
    'tool_call_id'. The following tool_call_ids did not have response messages:
    call_RTlWVuE5MqEb3WZJgTIl7Rsb" (router-for-me/CLIProxyAPI#2798, param
    'messages.[6].role'; RamiAwar/dataline#172), naming the message that came
    instead of an answer, or with param 'messages' when the list ended first (the
    langchain docs' captured example and an exa notebook show that form); and
    "Invalid parameter: messages with role 'tool' must be a response to a
    preceeding message with 'tool_calls'." (sic, run-llama/llama_index#10493,
    param 'messages.[0].role'; openai/openai-go#43)."""
    open_ids: list[str] = []  # the calls of the current turn not yet answered
    turn_ids: set[str] = set()
    in_turn = False
    for i, message in enumerate(messages):
        role = message["role"]
        if role == "tool":
            if not in_turn or message.get("tool_call_id") not in turn_ids:
                return Violation(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{i}].role",
                )
            if message["tool_call_id"] in open_ids:
                open_ids.remove(message["tool_call_id"])
            continue
        if open_ids:
            return _unanswered(open_ids, f"messages.[{i}].role")
        calls = message.get("tool_calls") if role == "assistant" else None
        in_turn = bool(calls)
        turn_ids = {call.get("id") for call in calls or ()}
        open_ids = [call.get("id") for call in calls or ()]
    if open_ids:
        return _unanswered(open_ids, "messages")
    return None


def _unanswered(ids: list[str], param: str) -> Violation:
    return Violation(
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(ids),
        param,
    )


# Reasoning models -----------------------------------------------------------------------------


def _reasoning_model(body: Mapping[str, Any], family: str | None, model: Any) -> Violation | None:
    """What the o-series and gpt-5 models refuse (the reasoning guide's
    limitations, and the answers quoted beside each rule)."""
    if family not in ("o1", "o3", "o4", "gpt-5"):
        return None
    # gpt-5.1 and later sample again when reasoning is off (vercel/ai#10932:
    # "Logprobs, temperature and top-p are controllable parameters on gpt-5.1 when
    # reasoning effort is set to 'none'").
    sampling = (
        family == "gpt-5"
        and isinstance(model, str)
        and model.startswith("gpt-5.")
        and body.get("reasoning_effort") == "none"
    )
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None and value != 1 and not sampling:
            # "Unsupported value: 'temperature' does not support 0.2 with this model.
            # Only the default (1) value is supported." code unsupported_value
            # (OpenHands/OpenHands#4131 o1-mini, griptape-ai/griptape#1915 o4-mini,
            # QwenLM/qwen-code#921 gpt-5-mini); the same sentence for top_p.
            return Violation(
                f"Unsupported value: '{key}' does not support {value!r} with this model. "
                "Only the default (1) value is supported.",
                key,
                code="unsupported_value",
            )
    if family in ("o3", "o4", "gpt-5") and body.get("stop") is not None:
        # openapi stop: "Not supported with latest reasoning models o3 and o4-mini";
        # gpt-5 alike (huggingface/smolagents#1671, langgenius/dify#18971).
        return unsupported_parameter("stop")
    for key in ("presence_penalty", "frequency_penalty"):
        if body.get(key) not in (None, 0) and not sampling:
            # "Unsupported parameter: 'presence_penalty' is not supported with this
            # model." (recorded against the live API; the reasoning guide lists the
            # penalties among the unsupported parameters)
            return unsupported_parameter(key)
    if body.get("logprobs") is True and not sampling:
        # "Unsupported parameter: 'logprobs' is not supported with this model."
        # code unsupported_parameter (captured against gpt-5 family deployments)
        return unsupported_parameter("logprobs")
    if body.get("logit_bias"):
        return unsupported_parameter("logit_bias")
    if family in ("o1", "o3", "o4") and body.get("parallel_tool_calls") is not None:
        # "Unsupported parameter: 'parallel_tool_calls' is not supported with this
        # model." (langchain-ai/langchain#29416 o1, microsoft/semantic-kernel#10365
        # o3-mini, evalstate/fast-agent#279 o4-mini)
        return unsupported_parameter("parallel_tool_calls")
    if isinstance(model, str) and model.startswith(("o1-mini", "o1-preview")):
        for i, message in enumerate(body["messages"]):
            if message["role"] == "system":
                # "Unsupported value: 'messages[0].role' does not support 'system' with
                # this model." code unsupported_value: o1-mini and o1-preview only (a
                # sweep of every chat model in microsoft/agent-framework#1077)
                param = f"messages[{i}].role"
                return Violation(
                    f"Unsupported value: '{param}' does not support 'system' with this model.",
                    param,
                    code="unsupported_value",
                )
    return None
