"""OpenTelemetry spans and metrics for mal calls, following the GenAI semantic
conventions. Needs ``pip install 'mal-llm[otel]'``; nothing here is imported unless
you import this module::

    import mal
    from mal.otel import otel_hooks

    client = mal.Client(hooks=otel_hooks())

One span per call (``chat {model}``, kind CLIENT) from its first request to its
end, retries and fallbacks included, with ``gen_ai.*`` attributes; the
histograms ``gen_ai.client.operation.duration`` (seconds) and
``gen_ai.client.token.usage`` (tokens, by ``gen_ai.token.type``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import __version__
from .hooks import CallStats, Hooks, RequestInfo

__all__ = ["otel_hooks"]

_SCOPE = "mal"


def otel_hooks(
    hooks: Hooks | None = None,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> Hooks:
    """Hooks that record each call as a span and in two histograms.

    ``hooks``: your own hooks, still called (``on_request`` and
    ``on_complete`` after the telemetry's, the others unchanged).
    """
    hooks = hooks or Hooks()
    tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)
    meter = metrics.get_meter(_SCOPE, __version__, meter_provider=meter_provider)
    duration = meter.create_histogram(
        "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration"
    )
    tokens = meter.create_histogram(
        "gen_ai.client.token.usage", unit="{token}", description="Measures number of tokens used"
    )
    spans: dict[int, Any] = {}
    user_request = hooks.on_request
    user_complete = hooks.on_complete

    def on_request(info: RequestInfo) -> None:
        span = spans.get(info.call_id)
        if span is None:
            span = tracer.start_span(
                f"chat {info.model}",
                kind=SpanKind.CLIENT,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": info.provider,
                    "gen_ai.system": info.provider,
                    "gen_ai.request.model": info.model,
                    "server.address": _host(info.url),
                },
            )
            spans[info.call_id] = span
        elif info.attempt == 0:  # a fallback model took over
            fallback = {"gen_ai.provider.name": info.provider, "gen_ai.request.model": info.model}
            span.add_event("mal.fallback", fallback)
        else:
            span.add_event("mal.retry", {"mal.attempt": info.attempt})
        if user_request is not None:
            user_request(info)

    def on_complete(stats: CallStats) -> None:
        span = spans.pop(stats.call_id, None)
        common = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": stats.provider,
            "gen_ai.request.model": stats.model,
        }
        if stats.error is not None:
            common["error.type"] = stats.error
        duration.record(stats.duration, common)
        if stats.input_tokens is not None:
            tokens.record(stats.input_tokens, {**common, "gen_ai.token.type": "input"})
        if stats.output_tokens is not None:
            tokens.record(stats.output_tokens, {**common, "gen_ai.token.type": "output"})
        if span is not None:
            span.set_attribute("gen_ai.response.model", stats.model)
            if stats.finish_reason is not None:
                span.set_attribute("gen_ai.response.finish_reasons", [stats.finish_reason])
            if stats.input_tokens is not None:
                span.set_attribute("gen_ai.usage.input_tokens", stats.input_tokens)
            if stats.output_tokens is not None:
                span.set_attribute("gen_ai.usage.output_tokens", stats.output_tokens)
            # Parts of the two above ("SHOULD be included in" them): the GenAI
            # registry's gen_ai.usage.cache_read.input_tokens,
            # gen_ai.usage.cache_creation.input_tokens (open-telemetry/semantic-conventions
            # #3163) and gen_ai.usage.reasoning.output_tokens (#3383). Not on the
            # token histogram: its gen_ai.token.type has only "input" and "output".
            for name, value in (
                ("gen_ai.usage.cache_read.input_tokens", stats.cache_read_tokens),
                ("gen_ai.usage.cache_creation.input_tokens", stats.cache_write_tokens),
                ("gen_ai.usage.reasoning.output_tokens", stats.reasoning_tokens),
            ):
                if value is not None:
                    span.set_attribute(name, value)
            if stats.time_to_first_token is not None:
                span.set_attribute("mal.time_to_first_token", stats.time_to_first_token)
            span.set_attribute("mal.retries", stats.retries)
            if stats.error is not None:
                span.set_attribute("error.type", stats.error)
                span.set_status(Status(StatusCode.ERROR, stats.error))
            span.end()
        if user_complete is not None:
            user_complete(stats)

    return Hooks(
        on_request=on_request,
        on_first_token=hooks.on_first_token,
        on_chunk=hooks.on_chunk,
        on_retry=hooks.on_retry,
        on_fallback=hooks.on_fallback,
        on_complete=on_complete,
    )


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""
