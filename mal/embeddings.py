"""Embeddings: requests and responses for OpenAI (and compatible servers),
Ollama and Gemini. This module does no I/O.

``embed_request`` builds one request for a batch of texts; ``EmbedProtocol``
wraps the provider's protocol so that the shared lifecycle (retries, clocks,
hooks, stats, logging) runs an embedding request like any other, with a
decoder that keeps the vectors. Anthropic has no embeddings API.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import msgspec

from .errors import ConfigError, DecodeError
from .framing import DEFAULT_MAX_EVENT_SIZE
from .protocols._base import (
    BodyDecoder,
    GenerateParams,
    HTTPRequest,
    Protocol,
    ResponseDecoder,
    join_url,
    with_query,
)
from .protocols.gemini import model_path
from .protocols.openai import azure_url
from .protocols.services import service
from .types import Chunk, Usage

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EmbedProtocol",
    "Embeddings",
    "check_texts",
    "default_batch_size",
    "embed_request",
    "join_embeddings",
]

#: Texts per request: OpenAI takes at most 2048 inputs in one.
DEFAULT_BATCH_SIZE = 512
#: Gemini's ``batchEmbedContents`` takes at most 100 requests (one text each): more
#: is answered 400 "* BatchEmbedContentsRequest.requests: at most 100 requests can
#: be in one batch" (langchain-ai/langchainjs#4491; the limit vercel/ai#16575 and
#: lancedb/lancedb#3618 batch by).
GEMINI_BATCH_SIZE = 100


def default_batch_size(provider: str) -> int:
    """The texts sent in one request when ``batch_size`` is not given."""
    return GEMINI_BATCH_SIZE if provider == "gemini" else DEFAULT_BATCH_SIZE


class Embeddings(msgspec.Struct, kw_only=True):
    """The vectors of some texts, in their order, with the usage reported.

    It is a sequence of the vectors too: ``len(e)``, ``e[0]``, ``for v in e``.
    """

    vectors: list[list[float]]
    model: str = ""
    provider: str = ""
    usage: Usage | None = None

    def __len__(self) -> int:
        return len(self.vectors)

    def __getitem__(self, index: int) -> list[float]:
        return self.vectors[index]

    def __iter__(self) -> Iterator[list[float]]:
        return iter(self.vectors)


def check_texts(texts: Any) -> list[str]:
    """The texts to embed: a string is one text; anything but strings is a
    ConfigError naming the first bad item."""
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, Sequence):
        raise ConfigError(f"texts must be a str or a list of str, not {type(texts).__name__}")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise ConfigError(f"texts[{i}] must be a str, not {type(text).__name__}")
    return out


def embed_request(
    provider: str,
    model: str,
    texts: list[str],
    *,
    dimensions: int | None = None,
    base_url: str,
    api_key: str | None,
    extra_body: Mapping[str, Any] | None = None,
    extra_headers: Mapping[str, str] | None = None,
    extra_query: Mapping[str, Any] | None = None,
    first: int = 0,
) -> HTTPRequest:
    """The request that embeds ``texts`` (one batch; ``first`` is the place of
    its first text among all the call's, for the errors that name one)."""
    named = service(provider)
    if (named is None and provider not in _PATHS) or (named and named.embed_dimensions is None):
        raise ConfigError(
            f"{provider} has no embeddings API; use an OpenAI-compatible, Ollama or Gemini model"
        )
    if provider == "gemini" and "" in texts:
        # An empty text is an empty part, answered 400 "EmbedContentRequest.content
        # contains an empty Part." (lingfengQAQ/webnovel-writer#49).
        raise ConfigError(
            f"texts[{first + texts.index('')}] is empty: Gemini's embeddings API refuses "
            "an empty string"
        )
    if provider != "ollama" and "" in texts:
        # openai/openai-openapi CreateEmbeddingRequest.input: "The input [...] cannot be
        # an empty string"; the API answers one anywhere in ``input`` 400, "'$.input' is
        # invalid. Please check the API reference: https://platform.openai.com/docs/
        # api-reference." (openai-php/client#171). Ollama's EmbedHandler (server/
        # routes.go) embeds each string of a list as it is, an empty one too (only a bare
        # "" that is no list is dropped, and mal always sends a list): left as it is.
        raise ConfigError(
            f"texts[{first + texts.index('')}] is empty: OpenAI's embeddings API refuses "
            "an empty string"
        )
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
    ):
        raise ConfigError(f"dimensions must be an integer >= 1, not {dimensions!r}")
    if provider == "gemini":
        return _gemini_request(
            model, texts, dimensions, base_url, api_key, extra_body, extra_headers
        )
    body: dict[str, Any] = {"model": model, "input": texts}
    if provider in ("openai", "azure"):
        body["encoding_format"] = "float"
    if dimensions is not None:
        # A service may name the field otherwise (Mistral: output_dimension).
        body[named.embed_dimensions if named and named.embed_dimensions else "dimensions"] = (
            dimensions
        )
    if extra_body:
        body.update(extra_body)
    headers = {"content-type": "application/json", "accept": "application/json"}
    if api_key and provider == "azure":
        headers["api-key"] = api_key
    elif api_key:
        headers["authorization"] = f"Bearer {api_key}"
    for name, value in (extra_headers or {}).items():
        headers[name.lower()] = value
    try:
        data = msgspec.json.encode(body)
    except (TypeError, msgspec.EncodeError) as exc:
        raise ConfigError(f"the request body cannot be encoded as JSON: {exc}") from None
    if provider == "azure":
        url = azure_url(base_url, model, "/embeddings")
    else:
        url = join_url(base_url, _PATHS.get(provider, "/embeddings"))
    if extra_query:
        url = with_query(url, extra_query)
    return HTTPRequest("POST", url, headers, data, False)


_PATHS = {
    "openai": "/embeddings",
    "azure": "/embeddings",
    "ollama": "/api/embed",
    "gemini": ":batchEmbedContents",
}


def _gemini_request(
    model: str,
    texts: list[str],
    dimensions: int | None,
    base_url: str,
    api_key: str | None,
    extra_body: Mapping[str, Any] | None,
    extra_headers: Mapping[str, str] | None,
) -> HTTPRequest:
    """``POST {base}/v1beta/models/{model}:batchEmbedContents``: one
    ``EmbedContentRequest`` per text, each naming the model again
    (https://ai.google.dev/api/embeddings, "Method: models.batchEmbedContents":
    "The model in each of these requests must match the model specified
    BatchEmbedContentsRequest.model"). python-genai sends every Gemini API
    ``embed_content`` call, one text too, this way (models.py ``embed_content``,
    ``_EmbedContentParametersPrivate_to_mldev``); so does mal. ``extra_body`` goes
    into each request (``taskType``, ``title``)."""
    name = model_path(model)
    requests = []
    for text in texts:
        # EmbedContentRequest: model, content (a Content of text parts), taskType,
        # title, outputDimensionality (python-genai ``_EmbedContentConfig_to_mldev``
        # maps output_dimensionality to ``requests[].outputDimensionality``).
        item: dict[str, Any] = {"model": name, "content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            item["outputDimensionality"] = dimensions
        if extra_body:
            item.update(extra_body)
        requests.append(item)
    headers = {"content-type": "application/json", "accept": "application/json"}
    if api_key:
        headers["x-goog-api-key"] = api_key
    for key, value in (extra_headers or {}).items():
        headers[key.lower()] = value
    try:
        data = msgspec.json.encode({"requests": requests})
    except (TypeError, msgspec.EncodeError) as exc:
        raise ConfigError(f"the request body cannot be encoded as JSON: {exc}") from None
    url = join_url(base_url, f"/v1beta/{name}{_PATHS['gemini']}")
    return HTTPRequest("POST", url, headers, data, False)


# The response bodies ------------------------------------------------------------------


class _OpenAIItem(msgspec.Struct, gc=False):
    embedding: list[float]
    index: int = 0


class _OpenAIUsage(msgspec.Struct, gc=False):
    prompt_tokens: int | None = None


class _OpenAIBody(msgspec.Struct, gc=False):
    data: list[_OpenAIItem] | None = None
    model: str = ""
    usage: _OpenAIUsage | None = None
    error: Any = None


class _OllamaBody(msgspec.Struct, gc=False):
    embeddings: list[list[float]] | None = None
    model: str = ""
    prompt_eval_count: int | None = None
    error: Any = None


class _GeminiEmbedding(msgspec.Struct, gc=False):
    values: list[float] = []


class _GeminiBody(msgspec.Struct, gc=False):
    # BatchEmbedContentsResponse: ``embeddings``, "in the same order as provided in
    # the batch request", each a ContentEmbedding ``{"values": [...]}``; no usage
    # (https://ai.google.dev/api/embeddings#response-body_1; python-genai
    # ``_EmbedContentResponse_from_mldev`` reads ``embeddings`` alone, ``metadata``
    # being Vertex AI's).
    embeddings: list[_GeminiEmbedding] | None = None
    error: Any = None


class _EmbedDecoder(BodyDecoder):
    """A non-streamed embeddings body: its vectors go to ``result``."""

    expected: int = 0
    result: Embeddings | None = None

    def _check(self, vectors: list[list[float]], body: bytes) -> None:
        if len(vectors) != self.expected:
            raise DecodeError(
                f"the {self.provider} embeddings response has {len(vectors)} vectors for "
                f"{self.expected} texts: {body[:200]!r}"
            )


class _OpenAIEmbedDecoder(_EmbedDecoder):
    provider = "openai"
    body_decoder: ClassVar[msgspec.json.Decoder[Any]] = msgspec.json.Decoder(_OpenAIBody)

    def _body_chunk(self, decoded: _OpenAIBody, body: bytes) -> Chunk:
        if decoded.error is not None or decoded.data is None:
            raise self._decode_error(ValueError("no 'data'"), body)
        items = sorted(decoded.data, key=lambda item: item.index)
        vectors = [item.embedding for item in items]
        self._check(vectors, body)
        tokens = decoded.usage.prompt_tokens if decoded.usage is not None else None
        usage = self._report_usage(tokens, None) if tokens is not None else None
        self.result = Embeddings(vectors=vectors, model=decoded.model, usage=usage)
        return Chunk(usage=usage)


class _OllamaEmbedDecoder(_EmbedDecoder):
    provider = "ollama"
    body_decoder: ClassVar[msgspec.json.Decoder[Any]] = msgspec.json.Decoder(_OllamaBody)

    def _body_chunk(self, decoded: _OllamaBody, body: bytes) -> Chunk:
        if decoded.error is not None or decoded.embeddings is None:
            raise self._decode_error(ValueError("no 'embeddings'"), body)
        self._check(decoded.embeddings, body)
        tokens = decoded.prompt_eval_count
        usage = self._report_usage(tokens, None) if tokens is not None else None
        self.result = Embeddings(vectors=decoded.embeddings, model=decoded.model, usage=usage)
        return Chunk(usage=usage)


class _GeminiEmbedDecoder(_EmbedDecoder):
    provider = "gemini"
    body_decoder: ClassVar[msgspec.json.Decoder[Any]] = msgspec.json.Decoder(_GeminiBody)

    def _body_chunk(self, decoded: _GeminiBody, body: bytes) -> Chunk:
        if decoded.error is not None or decoded.embeddings is None:
            raise self._decode_error(ValueError("no 'embeddings'"), body)
        vectors = [embedding.values for embedding in decoded.embeddings]
        self._check(vectors, body)
        self.result = Embeddings(vectors=vectors)
        return Chunk()


_DECODERS: dict[str, type[_EmbedDecoder]] = {
    "ollama": _OllamaEmbedDecoder,
    "gemini": _GeminiEmbedDecoder,
}


class EmbedProtocol(Protocol):
    """A provider's protocol for one embeddings request of ``expected``
    texts: the provider's own error mapping, and a decoder of the vectors."""

    def __init__(self, base: Protocol, expected: int) -> None:
        self._base = base
        self._expected = expected
        self.name = base.name  # type: ignore[misc]
        self.default_base_url = base.default_base_url  # type: ignore[misc]

    def build_request(
        self, params: GenerateParams, *, base_url: str | None = None, api_key: str | None = None
    ) -> HTTPRequest:
        raise AssertionError("an embeddings call's request is built when it is prepared")

    def decoder(self, stream: bool, *, max_size: int = DEFAULT_MAX_EVENT_SIZE) -> ResponseDecoder:
        cls = _DECODERS.get(self._base.name, _OpenAIEmbedDecoder)
        decoder = cls(max_size)
        decoder.expected = self._expected
        return decoder

    def body_kind(self, content_type: str, stream: bool) -> bool | None:
        kind = self._base.body_kind(content_type, False)
        return None if kind is None else False  # always one JSON body

    def status_error(self, status: int, headers: Mapping[str, str], body: bytes) -> Any:
        return self._base.status_error(status, headers, body)


def join_embeddings(parts: list[Embeddings], provider: str, model: str) -> Embeddings:
    """The embeddings of every batch, in order, with their usage added up."""
    if len(parts) == 1:
        part = parts[0]
        part.provider = provider
        part.model = part.model or model
        return part
    vectors = [vector for part in parts for vector in part.vectors]
    tokens = [part.usage.input_tokens for part in parts if part.usage is not None]
    usage = None
    if tokens and all(t is not None for t in tokens):
        usage = Usage(sum(t for t in tokens if t is not None), None)
    served = next((part.model for part in parts if part.model), model)
    return Embeddings(vectors=vectors, model=served, provider=provider, usage=usage)
