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

__all__ = [
    "GenerateParams",
    "HTTPRequest",
    "Protocol",
    "ResponseDecoder",
    "PROTOCOLS",
    "get_protocol",
    "split_model",
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
