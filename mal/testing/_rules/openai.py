"""Rules of the OpenAI APIs checked by the strict built-in server: Chat
Completions (kind "openai"), the Responses API ("responses") and Embeddings
("embeddings"), on OpenAI's URLs and on Azure OpenAI's.

Each API's rules live in their own module (``openai_chat``,
``openai_responses``, ``openai_embeddings``); what they share, the
validator's sentences and the structured-outputs subset, in ``openai_common``.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from . import Request, Violation, openai_chat, openai_embeddings, openai_responses

__all__ = ["check"]


def check(request: Request) -> Violation | None:
    found = _azure_version(request)
    if found is not None:
        return found
    if not isinstance(request.body, dict):
        return None  # a body that is not a JSON object is the server's own answer
    if request.kind == "openai":
        return openai_chat.check(request)
    if request.kind == "responses":
        return openai_responses.check(request)
    if request.kind == "embeddings":
        return openai_embeddings.check(request)
    return None


def _azure_version(request: Request) -> Violation | None:
    """Azure answers a deployment's URL without ``api-version`` in its query 404,
    ``{"error":{"code":"404","message": "Resource not found"}}``
    (MicrosoftDocs/azure-docs#114602; the body as logged in
    openai/openai-python#362); the v1 API (``/openai/v1/...``) takes none."""
    if not request.azure or not request.path.startswith("/openai/deployments/"):
        return None
    if "api-version" in parse_qs(request.query, keep_blank_values=True):
        return None
    gateway = {"error": {"code": "404", "message": "Resource not found"}}
    return Violation("Resource not found", status=404, code="404", body=gateway)
