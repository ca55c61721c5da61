"""OpenTelemetry spans and metrics through mal.otel, against the built-in server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import mal
from mal.otel import otel_hooks
from mal.testing import MockServer, Reply

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


def telemetry() -> tuple[InMemorySpanExporter, InMemoryMetricReader, TracerProvider, MeterProvider]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    return exporter, reader, tracer_provider, MeterProvider(metric_readers=[reader])


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[object]]:
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[object]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


def test_a_call_is_one_span_with_genai_attributes(server: MockServer) -> None:
    exporter, reader, tracer_provider, meter_provider = telemetry()
    seen: list[int] = []
    hooks = otel_hooks(
        mal.Hooks(on_complete=lambda stats: seen.append(stats.call_id)),
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
    server.add(Reply(status=503))
    server.add(Reply(text="Hello there", input_tokens=7, output_tokens=3))
    config = mal.MALConfig(base_urls={"openai": server.url("openai")})
    with mal.Client(config, hooks=hooks, random=lambda: 0.0) as client:
        assert client.generate("Hi", model="openai/gpt-test", stream=True) == "Hello there"

    (span,) = exporter.get_finished_spans()
    assert span.name == "chat gpt-test"
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-test"
    assert attributes["gen_ai.usage.input_tokens"] == 7
    assert attributes["gen_ai.usage.output_tokens"] == 3
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["mal.retries"] == 1
    assert [event.name for event in span.events] == ["mal.retry"]
    assert seen == [1]  # the user's own hook still runs

    points = metric_points(reader)
    assert len(points["gen_ai.client.operation.duration"]) == 1
    token_types = {
        dict(point.attributes)["gen_ai.token.type"]: point.sum  # type: ignore[attr-defined]
        for point in points["gen_ai.client.token.usage"]
    }
    assert token_types == {"input": 7, "output": 3}


def test_a_failed_call_has_an_error_status(server: MockServer) -> None:
    exporter, _, tracer_provider, meter_provider = telemetry()
    hooks = otel_hooks(tracer_provider=tracer_provider, meter_provider=meter_provider)
    server.add(Reply(status=404))
    config = mal.MALConfig(base_urls={"anthropic": server.url("anthropic")})
    with mal.Client(config, hooks=hooks) as client, pytest.raises(mal.NotFoundError):
        client.generate("Hi", model="anthropic/nope")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "NotFoundError"


def test_cache_and_reasoning_tokens_are_span_attributes(server: MockServer) -> None:
    exporter, reader, tracer_provider, meter_provider = telemetry()
    hooks = otel_hooks(tracer_provider=tracer_provider, meter_provider=meter_provider)
    body = (DATA / "anthropic" / "stream_cache_write_thinking.sse").read_bytes()
    server.add(Reply(raw=body, content_type="text/event-stream"))
    config = mal.MALConfig(base_urls={"anthropic": server.url("anthropic")})
    with mal.Client(config, hooks=hooks) as client:
        assert client.generate("Hi", model="anthropic/claude-test", stream=True)

    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    # The whole input, cached tokens included, and its parts.
    assert attributes["gen_ai.usage.input_tokens"] == 1842
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 0
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == 1830
    assert attributes["gen_ai.usage.output_tokens"] == 96
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 71
    token_types = {
        dict(point.attributes)["gen_ai.token.type"]: point.sum  # type: ignore[attr-defined]
        for point in metric_points(reader)["gen_ai.client.token.usage"]
    }
    assert token_types == {"input": 1842, "output": 96}


def test_counts_not_reported_are_not_span_attributes(server: MockServer) -> None:
    exporter, _, tracer_provider, meter_provider = telemetry()
    hooks = otel_hooks(tracer_provider=tracer_provider, meter_provider=meter_provider)
    body = (DATA / "openai" / "nonstream_null_details.json").read_bytes()
    server.add(Reply(raw=body, content_type="application/json"))
    config = mal.MALConfig(base_urls={"openai": server.url("openai")})
    with mal.Client(config, hooks=hooks) as client:
        assert client.generate("Hi", model="openai/qwen", stream=False)
    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.usage.input_tokens"] == 30
    assert not {name for name in attributes if "cache" in name or "reasoning" in name}
