"""Rules of Google's Gemini API checked by the strict built-in server:
``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``
(kind "gemini"), ``:embedContent`` ("gemini_embed") and ``:batchEmbedContents``
("gemini_embeds"; https://ai.google.dev/api/embeddings).

Sources: the REST reference, https://ai.google.dev/api/generate-content
(``GenerateContentRequest``, ``GenerationConfig``), https://ai.google.dev/api/caching
(``Content``, ``Part``, ``Tool``, ``FunctionDeclaration``, ``ToolConfig``), and
python-genai ``types.py`` for the enums. The body is a protobuf message read
from JSON: a field of no known name is an error, ``Invalid JSON payload
received. Unknown name "x" at 'path': Cannot find field.``, the path in the
proto's snake_case names (the wording of the API's own answers quoted in
google-gemini/gemini-cli#13972 and zed-industries/zed#44875); both the JSON
names (lowerCamelCase) and the proto names are accepted, as the proto3 JSON
mapping reads both (https://protobuf.dev/programming-guides/json/, "JSON
options"). Every failure is HTTP 400 ``INVALID_ARGUMENT``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from . import Request, Violation

_INVALID = "INVALID_ARGUMENT"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _violation(message: str, param: str | None = None) -> Violation:
    return Violation(message, param, 400, _INVALID)


def _unknown(body: Mapping[str, Any], known: frozenset[str], at: str) -> Violation | None:
    for name in body:
        if _snake(name) not in known:
            where = f" at '{at}'" if at else ""
            return _violation(
                f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.',
                f"{at}.{name}" if at else name,
            )
    return None


def _get(body: Mapping[str, Any], snake: str) -> Any:
    """A field by either of its names."""
    if snake in body:
        return body[snake]
    parts = snake.split("_")
    return body.get(parts[0] + "".join(p.title() for p in parts[1:]))


def _invalid_value(at: str, kind: str, value: Any) -> Violation:
    # The API's wording for a value of the wrong JSON type, e.g. "Invalid value at
    # 'generation_config.temperature' (TYPE_FLOAT), "hot"".
    shown = f'"{value}"' if isinstance(value, str) else repr(value)
    return _violation(f"Invalid value at '{at}' ({kind}), {shown}", at)


# GenerateContentRequest (https://ai.google.dev/api/generate-content#request-body).
_REQUEST = frozenset(
    {
        "contents",
        "tools",
        "tool_config",
        "safety_settings",
        "system_instruction",
        "generation_config",
        "cached_content",
        "model",
    }
)
# Content (https://ai.google.dev/api/caching#Content): parts and role.
_CONTENT = frozenset({"parts", "role"})
# Part (https://ai.google.dev/api/caching#Part): one data field, and its metadata.
_PART_DATA = frozenset(
    {
        "text",
        "inline_data",
        "function_call",
        "function_response",
        "file_data",
        "executable_code",
        "code_execution_result",
    }
)
_PART = _PART_DATA | {"thought", "thought_signature", "video_metadata", "part_metadata"}
# GenerationConfig (https://ai.google.dev/api/generate-content#generationconfig).
_GENERATION_CONFIG = frozenset(
    {
        "stop_sequences",
        "response_mime_type",
        "response_schema",
        "response_json_schema",
        "response_modalities",
        "candidate_count",
        "max_output_tokens",
        "temperature",
        "top_p",
        "top_k",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "response_logprobs",
        "logprobs",
        "enable_enhanced_civic_answers",
        "speech_config",
        "thinking_config",
        "image_config",
        "media_resolution",
    }
)
# ThinkingConfig (https://ai.google.dev/api/generate-content#ThinkingConfig).
_THINKING_CONFIG = frozenset({"include_thoughts", "thinking_budget", "thinking_level"})
# Tool (https://ai.google.dev/api/caching#Tool).
_TOOL = frozenset(
    {
        "function_declarations",
        "google_search_retrieval",
        "code_execution",
        "google_search",
        "url_context",
        "computer_use",
        "file_search",
        "google_maps",
    }
)
# FunctionDeclaration (https://ai.google.dev/api/caching#FunctionDeclaration).
_DECLARATION = frozenset(
    {
        "name",
        "description",
        "behavior",
        "parameters",
        "parameters_json_schema",
        "response",
        "response_json_schema",
    }
)
# FunctionCallingConfig.Mode (python-genai types.py FunctionCallingConfigMode).
_MODES = frozenset({"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"})
# The response MIME types GenerationConfig.responseMimeType lists.
_MIME_TYPES = frozenset({"text/plain", "application/json", "text/x.enum"})


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_parts(parts: Any, at: str, prefix: str = "GenerateContentRequest") -> Violation | None:
    if not isinstance(parts, list) or not parts:
        # Content.parts: "Ordered Parts that constitute a single message"; an empty
        # list is refused ("contents.parts must not be empty").
        return _violation(f"* {prefix}.{at}: contents.parts must not be empty.\n", at)
    for j, part in enumerate(parts):
        where = f"{at}[{j}]"
        if not isinstance(part, dict):
            return _invalid_value(
                where, "type.googleapis.com/google.ai.generativelanguage.v1beta.Part", part
            )
        found = _unknown(part, _PART, where)
        if found is not None:
            return found
        data = [name for name in part if _snake(name) in _PART_DATA]
        # Part: "data" is a union, exactly one of its fields.
        if len(data) != 1:
            return _violation(
                f"* {prefix}.{where}.data: required oneof field 'data' must "
                "have one initialized field\n",
                where,
            )
        text = _get(part, "text")
        if "text" in part and not isinstance(text, str):
            return _invalid_value(f"{where}.text", "TYPE_STRING", text)
        blob = _get(part, "inline_data")
        if blob is not None and (
            not isinstance(blob, dict) or not _get(blob, "mime_type") or not _get(blob, "data")
        ):
            # Blob: mimeType and data (base64) are both required.
            return _violation(
                f"* {prefix}.{where}.inline_data: mime_type and data are required\n",
                where,
            )
        call = _get(part, "function_call")
        if call is not None and (not isinstance(call, dict) or not _get(call, "name")):
            # FunctionCall.name: "Required".
            return _violation(
                f"* {prefix}.{where}.function_call.name: name is not specified\n",
                where,
            )
        response = _get(part, "function_response")
        if response is not None:
            # FunctionResponse: name and response (an object) are required.
            if not isinstance(response, dict) or not _get(response, "name"):
                return _violation(
                    f"* {prefix}.{where}.function_response.name: name is not specified\n",
                    where,
                )
            if not isinstance(response.get("response"), dict):
                return _invalid_value(
                    f"{where}.function_response.response",
                    "type.googleapis.com/google.protobuf.Struct",
                    response.get("response"),
                )
    return None


def _check_contents(body: Mapping[str, Any]) -> Violation | None:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        # GenerateContentRequest.contents: "Required".
        return _violation(
            "* GenerateContentRequest.contents: contents is not specified\n", "contents"
        )
    for i, content in enumerate(contents):
        at = f"contents[{i}]"
        if not isinstance(content, dict):
            return _invalid_value(
                at, "type.googleapis.com/google.ai.generativelanguage.v1beta.Content", content
            )
        found = _unknown(content, _CONTENT, at)
        if found is not None:
            return found
        role = content.get("role")
        # Content.role: "Must be either 'user' or 'model'."
        if role is not None and role not in ("user", "model"):
            return _violation("Please use a valid role: user, model.", f"{at}.role")
        found = _check_parts(content.get("parts"), f"{at}.parts")
        if found is not None:
            return found
    system = _get(body, "system_instruction")
    if system is not None:
        if not isinstance(system, dict):
            return _invalid_value("system_instruction", "Content", system)
        found = _unknown(system, _CONTENT, "system_instruction")
        if found is not None:
            return found
        return _check_parts(system.get("parts"), "system_instruction.parts")
    return None


def _check_generation_config(body: Mapping[str, Any]) -> Violation | None:
    config = _get(body, "generation_config")
    if config is None:
        return None
    at = "generation_config"
    if not isinstance(config, dict):
        return _invalid_value(at, "GenerationConfig", config)
    found = _unknown(config, _GENERATION_CONFIG, at)
    if found is not None:
        return found
    for name, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = _get(config, name)
        if value is None:
            continue
        if not _number(value):
            return _invalid_value(f"{at}.{name}", "TYPE_FLOAT", value)
        # temperature: "Values can range from [0.0, 2.0]"; topP a probability.
        if not low <= value <= high:
            return _violation(
                f"* GenerateContentRequest.{at}.{name}: must be in [{low}, {high}]\n",
                f"{at}.{name}",
            )
    for name in ("max_output_tokens", "top_k", "seed", "candidate_count"):
        value = _get(config, name)
        if value is not None and not _integer(value):
            return _invalid_value(f"{at}.{name}", "TYPE_INT32", value)
    tokens = _get(config, "max_output_tokens")
    if tokens is not None and tokens < 1:
        return _violation(
            f"* GenerateContentRequest.{at}.max_output_tokens: must be positive\n",
            f"{at}.max_output_tokens",
        )
    stop = _get(config, "stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            return _invalid_value(f"{at}.stop_sequences", "TYPE_STRING", stop)
        # stopSequences: "up to 5 character sequences".
        if len(stop) > 5:
            return _violation(
                f"* GenerateContentRequest.{at}.stop_sequences: at most 5 stop sequences\n",
                f"{at}.stop_sequences",
            )
    mime = _get(config, "response_mime_type")
    if mime is not None and mime not in _MIME_TYPES:
        return _violation(
            f"* GenerateContentRequest.{at}.response_mime_type: allowed mimetypes are "
            "`text/plain`, `application/json`, `text/x.enum`.\n",
            f"{at}.response_mime_type",
        )
    json_schema = _get(config, "response_json_schema")
    if json_schema is not None:
        if not isinstance(json_schema, dict):
            return _invalid_value(
                f"{at}.response_json_schema", "google.protobuf.Value", json_schema
            )
        # responseJsonSchema: "If set, responseSchema must be omitted, but
        # responseMimeType is required."
        if _get(config, "response_schema") is not None or mime != "application/json":
            return _violation(
                f"* GenerateContentRequest.{at}.response_json_schema: response_mime_type "
                "must be application/json and response_schema must be omitted\n",
                f"{at}.response_json_schema",
            )
    thinking = _get(config, "thinking_config")
    if thinking is not None:
        if not isinstance(thinking, dict):
            return _invalid_value(f"{at}.thinking_config", "ThinkingConfig", thinking)
        return _unknown(thinking, _THINKING_CONFIG, f"{at}.thinking_config")
    return None


def _check_tools(body: Mapping[str, Any]) -> Violation | None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return _invalid_value("tools", "Tool", tools)
        for i, tool in enumerate(tools):
            at = f"tools[{i}]"
            if not isinstance(tool, dict):
                return _invalid_value(at, "Tool", tool)
            found = _unknown(tool, _TOOL, at)
            if found is not None:
                return found
            for j, declaration in enumerate(_get(tool, "function_declarations") or ()):
                where = f"{at}.function_declarations[{j}]"
                if not isinstance(declaration, dict):
                    return _invalid_value(where, "FunctionDeclaration", declaration)
                found = _unknown(declaration, _DECLARATION, where)
                if found is not None:
                    return found
                name = declaration.get("name")
                # FunctionDeclaration.name: "Required. ... a-z, A-Z, 0-9, or contain
                # underscores, colons, dots, and dashes, with a maximum length of 64."
                if not isinstance(name, str) or not re.fullmatch(
                    r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}", name
                ):
                    return _violation(
                        f"* GenerateContentRequest.{where}.name: Invalid function name. Must "
                        "start with a letter or an underscore. Must be alphameric (a-z, A-Z, "
                        "0-9), underscores (_), dots (.), colons (:), or dashes (-), with a "
                        "maximum length of 64.\n",
                        f"{where}.name",
                    )
                if (
                    _get(declaration, "parameters") is not None
                    and _get(declaration, "parameters_json_schema") is not None
                ):
                    # parametersJsonSchema: "mutually exclusive with parameters".
                    return _violation(
                        f"* GenerateContentRequest.{where}: parameters and "
                        "parameters_json_schema are mutually exclusive\n",
                        where,
                    )
    config = _get(body, "tool_config")
    if config is not None:
        if not isinstance(config, dict):
            return _invalid_value("tool_config", "ToolConfig", config)
        found = _unknown(
            config, frozenset({"function_calling_config", "retrieval_config"}), "tool_config"
        )
        if found is not None:
            return found
        calling = _get(config, "function_calling_config")
        if isinstance(calling, dict):
            at = "tool_config.function_calling_config"
            found = _unknown(calling, frozenset({"mode", "allowed_function_names"}), at)
            if found is not None:
                return found
            mode = calling.get("mode")
            if mode is not None and mode not in _MODES:
                return _invalid_value(
                    f"{at}.mode",
                    "type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode",
                    mode,
                )
    return None


# EmbedContentRequest (https://ai.google.dev/api/embeddings#EmbedContentRequest).
_EMBED_REQUEST = frozenset({"model", "content", "task_type", "title", "output_dimensionality"})
# BatchEmbedContentsRequest: ``requests`` alone (the model is in the path).
_BATCH_REQUEST = frozenset({"requests"})
# TaskType (https://ai.google.dev/api/embeddings#tasktype).
_TASK_TYPES = frozenset(
    {
        "TASK_TYPE_UNSPECIFIED",
        "RETRIEVAL_QUERY",
        "RETRIEVAL_DOCUMENT",
        "SEMANTIC_SIMILARITY",
        "CLASSIFICATION",
        "CLUSTERING",
        "QUESTION_ANSWERING",
        "FACT_VERIFICATION",
        "CODE_RETRIEVAL_QUERY",
    }
)
# "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch"
# (the API's answer quoted in langchain-ai/langchainjs#4491).
_MAX_BATCH = 100


def _path_model(path: str) -> str:
    """The ``models/{model}`` of ``/v1beta/models/{model}:method``."""
    return path.removeprefix("/v1beta/").rpartition(":")[0]


def _check_embed_request(item: Any, at: str, prefix: str, model: str) -> Violation | None:
    """One EmbedContentRequest (``at`` its place in the batch, "" alone)."""
    where = f"{at}." if at else ""
    if not isinstance(item, dict):
        return _invalid_value(
            at, "type.googleapis.com/google.ai.generativelanguage.v1beta.EmbedContentRequest", item
        )
    found = _unknown(item, _EMBED_REQUEST, at)
    if found is not None:
        return found
    named = item.get("model")
    if at and named != model:
        # requests[].model: "Required. [...] The model in each of these requests must
        # match the model specified BatchEmbedContentsRequest.model."
        return _violation(
            f"* {prefix}.{where}model: the model of each request must be {model}, not {named!r}\n",
            f"{where}model",
        )
    content = item.get("content")
    if not isinstance(content, dict):
        # EmbedContentRequest.content: "Required. The content to embed."
        return _violation(
            f"* {prefix}.{where}content: content is not specified\n", f"{where}content"
        )
    found = _unknown(content, _CONTENT, f"{where}content")
    if found is not None:
        return found
    found = _check_parts(content.get("parts"), f"{where}content.parts", prefix)
    if found is not None:
        return found
    if any(isinstance(p, dict) and p.get("text") == "" for p in content["parts"]):
        # An empty text is an empty part: "EmbedContentRequest.content contains an
        # empty Part." (lingfengQAQ/webnovel-writer#49).
        return _violation("EmbedContentRequest.content contains an empty Part.", f"{where}content")
    task = _get(item, "task_type")
    if task is not None and task not in _TASK_TYPES:
        return _invalid_value(
            f"{where}task_type",
            "type.googleapis.com/google.ai.generativelanguage.v1beta.TaskType",
            task,
        )
    title = item.get("title")
    if title is not None and not isinstance(title, str):
        return _invalid_value(f"{where}title", "TYPE_STRING", title)
    dims = _get(item, "output_dimensionality")
    if dims is not None and not _integer(dims):
        # outputDimensionality: integer (int32).
        return _invalid_value(f"{where}output_dimensionality", "TYPE_INT32", dims)
    return None


def _check_embeddings(request: Request) -> Violation | None:
    body = request.body
    model = _path_model(request.path)
    if request.kind == "gemini_embed":
        return _check_embed_request(body, "", "EmbedContentRequest", model)
    prefix = "BatchEmbedContentsRequest"
    found = _unknown(body, _BATCH_REQUEST, "")
    if found is not None:
        return found
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        # requests[]: "Required. Embed requests for the batch."
        return _violation(f"* {prefix}.requests: requests is not specified\n", "requests")
    if len(requests) > _MAX_BATCH:
        return _violation(
            f"* {prefix}.requests: at most {_MAX_BATCH} requests can be in one batch\n", "requests"
        )
    for i, item in enumerate(requests):
        found = _check_embed_request(item, f"requests[{i}]", prefix, model)
        if found is not None:
            return found
    return None


def check(request: Request) -> Violation | None:
    if request.kind in ("gemini_embed", "gemini_embeds"):
        return _check_embeddings(request)
    body = request.body
    return (
        _unknown(body, _REQUEST, "")
        or _check_contents(body)
        or _check_generation_config(body)
        or _check_tools(body)
    )
