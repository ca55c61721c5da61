"""OpenAI-compatible services by name: ``groq/...``, ``openrouter/...`` and the others.

Each speaks OpenAI's chat completions wire (:mod:`mal.protocols.openai`);
what sets one apart is its base URL, the environment variable of its key,
and where it departs from OpenAI's API in a way that changes mal's requests:
the field that carries ``max_tokens=`` and whether it has an embeddings API
(and what that API calls ``dimensions``). Reasoning text needs no entry:
the chat completions decoder reads both ``reasoning_content`` (DeepSeek)
and ``reasoning`` (OpenRouter).

Each entry's sources are beside it. This module contains no networking code at all.
"""

from __future__ import annotations

import msgspec

from .openai import OpenAIProtocol

__all__ = ["SERVICES", "Service", "ServiceProtocol", "service"]


class Service(msgspec.Struct, frozen=True, kw_only=True):
    """One OpenAI-compatible service."""

    #: The provider name, the prefix of its models (``groq/llama-3.3-70b-versatile``).
    name: str
    #: The documented base URL of its OpenAI-compatible API.
    base_url: str
    #: The documented environment variable of its API key.
    api_key_env: str
    #: The request field of ``max_tokens=``: ``max_tokens`` or ``max_completion_tokens``.
    max_tokens_field: str = "max_tokens"
    #: The field of ``embed(dimensions=)``, or None when the service has no
    #: embeddings API (``embed`` is then a ConfigError).
    embed_dimensions: str | None = None


#: The services, one entry each. A new one is a new entry here, nothing else.
SERVICES: tuple[Service, ...] = (
    # https://console.groq.com/docs/openai ("Configuring OpenAI to Use Groq API":
    # base_url https://api.groq.com/openai/v1, api_key os.environ.get("GROQ_API_KEY")).
    # max_completion_tokens: groq/groq-python, resources/chat/completions.py, create()
    # (``max_completion_tokens`` added beside ``max_tokens``, which its docstring
    # marks deprecated in its favour). No embeddings endpoint (the compatibility
    # page names chat completions, responses, audio transcriptions and translations).
    Service(
        name="groq",
        base_url="https://api.groq.com/openai/v1",
        api_key_env="GROQ_API_KEY",
        max_tokens_field="max_completion_tokens",
    ),
    # https://openrouter.ai/docs/api-reference/overview ("Request Schema":
    # POST /api/v1/chat/completions, "max_tokens?: number"; quick start:
    # baseURL https://openrouter.ai/api/v1, apiKey OPENROUTER_API_KEY). It takes
    # max_tokens for every model it routes to, OpenAI's reasoning models too.
    # Thinking comes in the ``reasoning`` field of each message and delta
    # (https://openrouter.ai/docs/use-cases/reasoning-tokens).
    Service(
        name="openrouter",
        base_url="https://openrouter.ai/api/v1",
        api_key_env="OPENROUTER_API_KEY",
    ),
    # https://api-docs.deepseek.com/ ("Your First API Call": base_url
    # https://api.deepseek.com, the curl example's "Authorization: Bearer
    # ${DEEPSEEK_API_KEY}"; "you may also use https://api.deepseek.com/v1 [...]
    # the v1 here has nothing to do with the model's version"). max_tokens
    # (https://api-docs.deepseek.com/api/create-chat-completion). Thinking comes in
    # ``reasoning_content`` (the same page, the response's message). No embeddings API.
    Service(
        name="deepseek",
        base_url="https://api.deepseek.com",
        api_key_env="DEEPSEEK_API_KEY",
    ),
    # https://docs.together.ai/docs/inference/openai-compatibility ("Drop-in client
    # setup": api_key os.environ.get("TOGETHER_API_KEY"), base_url
    # https://api.together.ai/v1; compatible "across chat, completions, vision, [...]
    # and embeddings"). max_tokens.
    Service(
        name="together",
        base_url="https://api.together.ai/v1",
        api_key_env="TOGETHER_API_KEY",
        embed_dimensions="dimensions",
    ),
    # https://docs.fireworks.ai/tools-sdks/openai-compatibility (base_url
    # https://api.fireworks.ai/inference/v1, "<YOUR_FIREWORKS_API_KEY>"); the
    # variable is FIREWORKS_API_KEY, which Fireworks' own SDK reads
    # and every integration reads. max_tokens. Embeddings: OpenAI's ``/embeddings``
    # at the same base URL, with ``dimensions`` (Fireworks' embeddings guide,
    # https://docs.fireworks.ai/guides/querying-embeddings-models; LlamaIndex's
    # FireworksEmbedding is OpenAI's client pointed there).
    Service(
        name="fireworks",
        base_url="https://api.fireworks.ai/inference/v1",
        api_key_env="FIREWORKS_API_KEY",
        embed_dimensions="dimensions",
    ),
    # https://docs.mistral.ai/api/ (server https://api.mistral.ai, paths
    # /v1/chat/completions and /v1/embeddings; the SDK examples read
    # os.getenv("MISTRAL_API_KEY")). max_tokens. Embeddings name the size
    # ``output_dimension``, not ``dimensions``
    # (https://docs.mistral.ai/api/endpoint/embeddings, request body).
    Service(
        name="mistral",
        base_url="https://api.mistral.ai/v1",
        api_key_env="MISTRAL_API_KEY",
        embed_dimensions="output_dimension",
    ),
    # https://docs.x.ai/api/integrations ("OpenAI SDK": base_url https://api.x.ai/v1,
    # XAI_API_KEY = os.getenv("XAI_API_KEY")); the chat completions API takes
    # max_tokens (https://docs.x.ai/developers/model-capabilities/text/comparison,
    # "Parameter Mapping": max_tokens -> the Responses API's max_output_tokens).
    # No embeddings endpoint on the chat completions API.
    Service(
        name="xai",
        base_url="https://api.x.ai/v1",
        api_key_env="XAI_API_KEY",
    ),
    # https://inference-docs.cerebras.ai/resources/openai (base_url
    # https://api.cerebras.ai/v1, api_key os.environ.get("CEREBRAS_API_KEY")).
    # max_completion_tokens (https://inference-docs.cerebras.ai/api-reference/
    # chat-completions, request body). No embeddings API.
    Service(
        name="cerebras",
        base_url="https://api.cerebras.ai/v1",
        api_key_env="CEREBRAS_API_KEY",
        max_tokens_field="max_completion_tokens",
    ),
)

_BY_NAME = {entry.name: entry for entry in SERVICES}


def service(name: str) -> Service | None:
    """The service of a provider name, or None when it is not one of them."""
    return _BY_NAME.get(name)


class ServiceProtocol(OpenAIProtocol):
    """OpenAI's chat completions at a named service's URL, with its key variable
    and its own token-limit field. No base URL variable: the services document
    none, and ``MALConfig.base_urls`` or a call's ``base_url`` replaces it."""

    def __init__(self, entry: Service) -> None:
        self.service = entry
        # The registry's per-instance values of what OpenAIProtocol sets per class.
        self.name = entry.name  # type: ignore[misc]
        self.default_base_url = entry.base_url  # type: ignore[misc]
        self.api_key_env = entry.api_key_env  # type: ignore[misc]
        self.base_url_env = None  # type: ignore[misc,assignment]

    def _max_tokens_field(self, base_url: str | None, model: str) -> str:
        """The service's own field, whatever the model: each documents one
        for all the models it serves."""
        return self.service.max_tokens_field

    def __repr__(self) -> str:
        return f"ServiceProtocol({self.name!r})"
