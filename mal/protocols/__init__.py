"""Provider protocols: options in, an HTTP request out; response bytes in, chunks out.

This package contains no networking code at all, and imports neither
``httpx`` nor ``anyio``: drive it with any I/O of your own::

    from mal.protocols import GenerateParams, get_protocol

    protocol = get_protocol("openai")
    request = protocol.build_request(
        GenerateParams(model="gpt-4o-mini", prompt="Hi"), api_key="sk-..."
    )
    # send request.method, request.url, request.headers and request.body,
    # then, when the status is 2xx:
    decoder = protocol.decoder(request.stream)
    for data in body_pieces:
        for chunk in decoder.feed(data):
            print(chunk.text, end="")
    decoder.flush()  # raises IncompleteStreamError if the end marker never came
    # on a 4xx/5xx status: raise protocol.status_error(status, headers, body)
"""

from __future__ import annotations

import difflib

from ..errors import ConfigError
from ._base import (
    GenerateParams,
    HTTPRequest,
    Protocol,
    ResponseDecoder,
    deep_merge,
    normalize_messages,
    parse_retry_after,
    prompt_length,
    status_error,
)
from .anthropic import AnthropicProtocol
from .gemini import GeminiProtocol
from .ollama import OllamaProtocol
from .openai import AzureOpenAIProtocol, OpenAIProtocol
from .responses import ResponsesProtocol
from .services import SERVICES, ServiceProtocol

__all__ = [
    "GenerateParams",
    "HTTPRequest",
    "Protocol",
    "ResponseDecoder",
    "PROTOCOLS",
    "get_protocol",
    "split_model",
    "unknown_prefix_hint",
    "deep_merge",
    "normalize_messages",
    "parse_retry_after",
    "prompt_length",
    "status_error",
]

#: The protocol of each provider name.
PROTOCOLS: dict[str, Protocol] = {
    "ollama": OllamaProtocol(),
    "openai": OpenAIProtocol(),
    "anthropic": AnthropicProtocol(),
    "azure": AzureOpenAIProtocol(),
    "openai-responses": ResponsesProtocol(),
    "gemini": GeminiProtocol(),
}

# The OpenAI-compatible services, one per entry of their table (.services).
PROTOCOLS.update({entry.name: ServiceProtocol(entry) for entry in SERVICES})


def get_protocol(provider: str) -> Protocol:
    """Return the protocol object of a provider, or raise ``ConfigError``."""
    try:
        return PROTOCOLS[provider]
    except KeyError:
        known = ", ".join(sorted(PROTOCOLS))
        raise ConfigError(f"unknown provider {provider!r}; known: {known}") from None


def split_model(model: str, default_provider: str = "ollama") -> tuple[str, str]:
    """Split ``"provider/name"`` into its provider and the provider's model name.

    A name with no known provider prefix goes to ``default_provider``, whole:
    ``"qwen2.5-coder:7b"`` and ``"library/qwen2.5-coder:7b"`` are Ollama names.
    """
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"model must be a non-empty 'provider/name' string, not {model!r}")
    provider, slash, name = model.partition("/")
    if slash and provider in PROTOCOLS:
        if not name:
            raise ConfigError(f"model {model!r} names the provider {provider!r} but no model")
        return provider, name
    return default_provider, model


def unknown_prefix_hint(model: str, name: str, provider: str) -> str | None:
    """What to add to a connection error of a call whose model, ``model``,
    went whole (``name`` is ``model``) to the default provider, ``provider``,
    though it starts like a provider's name: ``gemini/...`` before mal knows
    Gemini, ``opneai/gpt-4o``, ``openai:gpt-4o``. None for the rest.

    A ``/`` prefix always gets the hint (``library/qwen2.5`` too: the hint
    only comes when the call could not connect anyway). A ``:`` prefix gets
    it only when it is, or nearly is, a provider's name: ``qwen2.5-coder:7b``
    is an Ollama name and its tag.
    """
    if name != model:
        return None
    slash = model.find("/")
    colon = model.find(":")
    if slash > 0 and (colon < 0 or slash < colon):
        prefix, rest = model[:slash], model[slash + 1 :]
    elif colon > 0:
        prefix, rest = model[:colon], model[colon + 1 :]
    else:
        return None
    close = difflib.get_close_matches(prefix.lower(), list(PROTOCOLS), n=1, cutoff=0.75)
    if slash != len(prefix) and not close:
        return None  # a name and its tag
    known = ", ".join(sorted(PROTOCOLS))
    if prefix.lower() in PROTOCOLS:
        reason = "a provider's name ends with '/'"
    else:
        reason = f"{prefix!r} is not a known provider"
    hint = (
        f"the model {model!r} went to the default provider, {provider}, as {reason}; "
        f"known providers: {known}"
    )
    if close and rest:
        hint += f"; did you mean {close[0] + '/' + rest!r}?"
    return hint
