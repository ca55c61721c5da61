"""The life of one call, written once for the sync and the async driver.

This module contains no networking code at all. :func:`run_call` is a
generator that runs a prepared :class:`mal._prepare.Call`: its attempts, the
clocks of each (first token, idle, total), its retries with their back-off,
the resend of a request that met a closed kept-alive connection, and its
fallback models. It yields ops for its driver and chunks for the caller:
what it yields, what it is sent back and what it returns is the protocol of
:mod:`mal._ops`.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from ._log import describe, log_attempt, logger
from ._ops import (
    READ_ERROR_BODY,
    RECEIVE,
    Await,
    CallGenerator,
    Handoff,
    Receive,
    ResponseHead,
    Send,
    Sleep,
    _Op,
)
from ._prepare import Call, fallback_call
from .config import Endpoint, MALConfig
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    DecodeError,
    MALError,
    RunawayError,
    StreamError,
    request_id_of,
)
from .hooks import CallStats, ClientMetrics, Hooks, RequestInfo
from .protocols import ResponseDecoder
from .types import Chunk, Usage

__all__ = ["UNSET", "CallState", "Runtime", "run_call"]

#: Exponential back-off with full jitter: a retry waits a random time between
#: 0 and min(BACKOFF_CAP, BACKOFF_BASE * 2 ** retry) seconds, so that clients
#: that failed together do not retry together.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0


#: A value not computed yet.
UNSET: Final = _Op("UNSET")


class Runtime:
    """What a client lends its calls: config, endpoints (to prepare a
    fallback's call or a tool round's), clock, randomness, hooks, counters."""

    __slots__ = ("call_ids", "clock", "config", "endpoints", "hooks", "metrics", "random")

    def __init__(
        self,
        config: MALConfig,
        endpoints: Mapping[str, Endpoint],
        *,
        hooks: Hooks | None = None,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.endpoints = endpoints
        self.hooks = hooks if hooks is not None else Hooks()
        self.metrics = ClientMetrics()
        self.clock: Callable[[], float] = clock
        self.random: Callable[[], float] = random
        self.call_ids = itertools.count(1)


class CallState:
    """What a stream knows about its call so far; the public streams read it."""

    __slots__ = ("decoder", "delivered", "model", "parsed", "parts", "provider", "stats")

    def __init__(self, call: Call) -> None:
        #: Texts of the chunks handed to the caller.
        self.parts: list[str] = []
        #: Whether anything reached the caller: no retry or fallback after that.
        self.delivered = False
        self.provider = call.provider
        self.model = call.model
        self.decoder: ResponseDecoder | None = None
        self.stats = CallStats(call.provider, call.model, call.params.stream)
        #: The output decoded into the schema, once asked for (``UNSET`` before).
        self.parsed: Any = UNSET

    @property
    def text(self) -> str:
        parts = self.parts
        if len(parts) > 1:
            parts[:] = ["".join(parts)]
        return parts[0] if parts else ""

    @property
    def finish_reason(self) -> str | None:
        return self.decoder.finish_reason if self.decoder is not None else None

    @property
    def raw_finish_reason(self) -> str | None:
        return self.decoder.raw_finish_reason if self.decoder is not None else None

    @property
    def usage(self) -> Usage | None:
        return self.decoder.usage if self.decoder is not None else None


def run_call(call: Call, state: CallState, runtime: Runtime) -> CallGenerator:
    """The lifecycle of one call: its attempts, retries and fallbacks.

    See the module docstring for what it yields and is sent.
    """
    config = runtime.config
    hooks = runtime.hooks
    metrics = runtime.metrics
    clock = runtime.clock
    stats = state.stats
    stats.call_id = next(runtime.call_ids)
    start = clock()
    total_at = start + config.total_timeout if config.total_timeout is not None else None
    fallbacks = iter(call.fallbacks)
    current = call
    metrics.streamed += call.params.stream
    metrics.non_streamed += not call.params.stream
    error: MALError | None = None
    try:
        while True:  # over the call's model, then its fallbacks
            attempt = 0
            while True:  # over the attempts of one model
                metrics.requests += 1
                try:
                    yield from _attempt(current, state, runtime, attempt, start, total_at)
                    return
                except MALError as exc:
                    error = exc
                    if current.unknown_prefix is not None and _cannot_connect(exc):
                        _add_hint(exc, current.unknown_prefix)
                    if isinstance(exc, APITimeoutError):
                        metrics.timeouts[exc.phase] = metrics.timeouts.get(exc.phase, 0) + 1
                    if state.delivered:
                        raise
                    delay = _retry_delay(exc, attempt, current.max_retries, runtime)
                    if delay is None or (total_at is not None and clock() + delay >= total_at):
                        break
                    attempt += 1
                    stats.retries += 1
                    metrics.retries += 1
                    if hooks.on_retry is not None:
                        hooks.on_retry(attempt, delay, exc)
                    logger.info(
                        "retrying %s/%s in %.2f s after %s (retry %d of %d)",
                        current.provider,
                        current.model,
                        delay,
                        describe(exc),
                        attempt,
                        current.max_retries,
                    )
                    if delay > 0:
                        yield Sleep(delay)
            following = next(fallbacks, None)
            if following is None or (total_at is not None and clock() >= total_at):
                assert error is not None
                raise error
            if hooks.on_fallback is not None:
                hooks.on_fallback(f"{current.provider}/{current.model}", following, error)
            logger.info(
                "falling back from %s/%s to %s after %s",
                current.provider,
                current.model,
                following,
                describe(error),
            )
            current = fallback_call(config, runtime.endpoints, following, call)
            current.step = call.step
            state.provider = stats.provider = current.provider
            state.model = stats.model = current.model
            stats.fallbacks += 1
            metrics.fallbacks += 1
    except MALError as exc:
        error = exc
        name = type(exc).__name__
        metrics.errors[name] = metrics.errors.get(name, 0) + 1
        stats.error = name
        raise
    finally:
        _finish_stats(state, clock() - start)
        if hooks.on_complete is not None:
            hooks.on_complete(stats)


def _cannot_connect(error: MALError) -> bool:
    """Whether ``error`` says that the request did not reach a server: a
    connection error, or the connect timeout (not a later timeout)."""
    if isinstance(error, APITimeoutError):
        return error.phase == "connect"
    return isinstance(error, APIConnectionError)


def _add_hint(error: MALError, hint: str) -> None:
    """Add ``hint`` to the message of ``error``."""
    error.message = f"{error.message} ({hint})"
    error.args = (error.message, *error.args[1:])


def _retry_delay(error: MALError, attempt: int, max_retries: int, runtime: Runtime) -> float | None:
    """Seconds to wait before retrying, or None when this error is not retried."""
    if not error.retryable or attempt >= max_retries:
        return None
    retry_after = error.retry_after if isinstance(error, APIStatusError) else None
    if retry_after is not None:
        # The server said when: honour it, unless it is longer than we may wait
        # (then fail at once, or fall back, rather than sleep).
        return retry_after if retry_after <= runtime.config.max_retry_after else None
    return runtime.random() * min(BACKOFF_CAP, BACKOFF_BASE * 2.0**attempt)


def _head_clock(first_at: float | None, total_at: float | None, now: float) -> Receive | None:
    """The clock that runs while a response head is awaited from ``now``: the
    first-token clock, or the total one if it runs out sooner."""
    head_clock = None
    if first_at is not None and (total_at is None or first_at < total_at):
        head_clock = Receive(first_at - now, "first_token")
    elif total_at is not None:
        head_clock = Receive(total_at - now, "total")
    if head_clock is not None and head_clock.timeout <= 0:
        raise head_clock.expired()
    return head_clock


def _attempt(
    call: Call,
    state: CallState,
    runtime: Runtime,
    attempt: int,
    start: float,
    total_at: float | None,
) -> CallGenerator:
    """One request and its response, with the clocks running."""
    config = runtime.config
    clock = runtime.clock
    hooks = runtime.hooks
    stats = state.stats
    protocol = call.protocol
    request = call.request
    if request is None:
        request = call.request = protocol.build_request(
            call.params, base_url=call.endpoint.base_url, api_key=call.endpoint.api_key
        )
    decoder = protocol.decoder_for(call.params, request.stream, max_size=call.max_event_size)
    state.decoder = decoder
    parts = state.parts
    callback = call.progress_callback
    callback_awaits = call.callback_awaits
    step = call.step
    on_chunk = hooks.on_chunk
    idle = config.idle_timeout
    first_token = config.first_token_timeout
    guard = _Guard(config) if config.max_output_chars or config.max_repeated_deltas else None
    if hooks.on_request is not None:
        hooks.on_request(
            RequestInfo(
                call.provider, call.model, request.url, request.stream, attempt, stats.call_id
            )
        )
    sent_at = clock()
    first_at = sent_at + first_token if first_token is not None else None
    clocked = first_at is not None or idle is not None or total_at is not None
    # Before the first chunk, metadata-only chunks (Anthropic's usage at
    # message_start) are held back, so that a failure there can still be retried.
    held: list[Chunk] = []
    got_content = False
    next_at = first_at  # when the first-token, then the idle, clock runs out
    # Once text flows and nothing watches each chunk, a chunk costs one append.
    watched = guard is not None or idle is not None or on_chunk is not None or callback is not None
    fast = False
    received = handed = 0  # body bytes and chunks, kept in stats at the end
    status: int | None = None
    head_at: float | None = None
    outcome: BaseException | None = None
    head: ResponseHead | None = None
    try:
        send = Send(request, call.timeouts, _head_clock(first_at, total_at, sent_at))
        try:
            head = yield send
        except MALError as exc:
            if not (send.reused and send.unanswered):
                raise
            # The request went out on a kept-alive connection that the server
            # had closed (llama.cpp's server closes it after every stream while
            # advertising keep-alive; any server may at the end of its idle
            # timeout): no byte of a response came, and the close means the
            # server did not take the request. So it is sent again at once,
            # once, whatever max_retries says: not a retry, no back-off, and to
            # the hooks and stats the same request. The pool has dropped the
            # closed connection (and drops idle ones it sees closed), so the
            # request goes on a new one. Browsers do the same, for any method:
            # Chromium's net/http/http_network_transaction.cc,
            # ShouldResendRequest (a reused connection reset, closed or empty
            # before any response header).
            logger.info(
                "sending the request to %s/%s again at once: the server had closed "
                "the kept-alive connection it went out on (%s)",
                call.provider,
                call.model,
                exc,
            )
            head = None
        if head is None:
            head = yield Send(request, call.timeouts, _head_clock(first_at, total_at, clock()))
        status, head_at = head.status, clock()
        if not 200 <= head.status < 300:
            body: bytes = yield READ_ERROR_BODY
            raise protocol.status_error(head.status, head.headers, body)
        content_type = head.headers.get("content-type", "")
        streamed = protocol.body_kind(content_type, request.stream)
        if streamed is None:
            # A gateway's or a login page's HTML with a 200, or anything else
            # that is not what the provider sends: not the provider.
            body = yield READ_ERROR_BODY
            excerpt = body[:200].decode("utf-8", "replace")
            raise DecodeError(
                f"expected a {protocol.name} response, got Content-Type {content_type!r}: "
                f"{excerpt!r}"
            )
        if streamed != request.stream:
            # A proxy that answers a streamed request with the whole JSON
            # message (litellm's does): decode it as the non-streamed body.
            decoder = state.decoder = protocol.decoder_for(
                call.params, streamed, max_size=call.max_event_size
            )
        failure: StreamError | None = None
        handoff = Handoff()
        # Bytes the driver read after a hand-off, not decoded yet.
        ahead: bytes | None = None
        while True:
            if ahead is not None:
                data, ahead = ahead, None
            else:
                op: Receive | _Op = RECEIVE
                if clocked:
                    deadline, phase = (
                        (next_at, "idle" if got_content else "first_token")
                        if next_at is not None
                        else (None, "")
                    )
                    if total_at is not None and (deadline is None or total_at <= deadline):
                        deadline, phase = total_at, "total"
                    if deadline is not None:
                        remaining = deadline - clock()
                        op = Receive(remaining, phase)
                        if remaining <= 0:
                            raise op.expired()
                data = yield op
            received += len(data)
            try:
                chunks = decoder.feed(data) if data else decoder.flush()
            except StreamError as exc:
                # The chunks the piece gave before the failure reach the
                # caller first; the error is raised after them, below.
                if not exc.chunks:
                    raise
                chunks, failure = list(exc.chunks), exc
                exc.chunks = ()
            # A hand-off reads without a clock: only when none runs.
            last = (
                chunks[-1] if fast and chunks and data and failure is None and not clocked else None
            )
            for chunk in chunks:
                if step:
                    chunk.step = step
                text = chunk.text
                if fast:
                    if text:
                        parts.append(text)
                    handed += 1
                    if chunk is last:
                        # The piece's last chunk, and the body goes on: the
                        # driver reads the next piece when the caller is back.
                        handoff.chunk = chunk
                        ahead = yield handoff
                    else:
                        yield chunk
                    continue
                if not got_content:
                    if text or chunk.reasoning or chunk.tool_calls or chunk.refusal:
                        got_content = True
                        fast = not watched
                        now = clock()
                        stats.time_to_first_token = now - start
                        # The first-token clock stops; the idle clock starts.
                        next_at = now + idle if idle is not None else None
                        if hooks.on_first_token is not None:
                            hooks.on_first_token(now - start)
                    elif data:
                        held.append(chunk)
                        continue
                    state.delivered = True
                    for early in held:
                        if on_chunk is not None:
                            on_chunk(early)
                        handed += 1
                        yield early
                    held.clear()
                if guard is not None:
                    guard.check(chunk)
                if text:
                    parts.append(text)
                    if callback is not None:
                        if callback_awaits:
                            yield Await(callback(text))
                        else:
                            callback(text)
                if idle is not None and (
                    text or chunk.reasoning or chunk.tool_calls or chunk.refusal
                ):
                    next_at = clock() + idle
                if on_chunk is not None:
                    on_chunk(chunk)
                handed += 1
                yield chunk
            if failure is not None:
                raise failure
            if not data:
                break
    except MALError as exc:
        outcome = exc
        if not exc.partial_text:
            exc.partial_text = decoder.text
        if head is not None and isinstance(exc, StreamError) and exc.request_id is None:
            exc.request_id = request_id_of(head.headers)
        raise
    except GeneratorExit:
        outcome = GeneratorExit()  # the caller stopped reading
        raise
    finally:
        stats.bytes += received
        stats.chunks += handed
        if logger.isEnabledFor(logging.DEBUG):
            log_attempt(
                call,
                request,
                attempt,
                status,
                clock() - sent_at,
                head_at - sent_at if head_at is not None else None,
                (
                    start + stats.time_to_first_token - sent_at
                    if got_content and stats.time_to_first_token is not None
                    else None
                ),
                received,
                handed,
                outcome,
                config.log_prompts,
            )


class _Guard:
    """The runaway guard: too much output, or the same delta over and over."""

    __slots__ = ("chars", "last", "max_chars", "max_repeats", "repeats")

    def __init__(self, config: MALConfig) -> None:
        self.max_chars = config.max_output_chars
        self.max_repeats = config.max_repeated_deltas
        self.chars = 0
        self.last = ""
        self.repeats = 0

    def check(self, chunk: Chunk) -> None:
        text = chunk.text
        if not text:
            return
        self.chars += len(text)
        if self.max_chars is not None and self.chars > self.max_chars:
            raise RunawayError(
                f"the output passed max_output_chars={self.max_chars}; the stream was stopped",
                reason="max_output_chars",
            )
        if text == self.last:
            self.repeats += 1
            if self.max_repeats is not None and self.repeats >= self.max_repeats:
                raise RunawayError(
                    f"the same delta {text!r} came {self.repeats} times in a row; "
                    "the stream was stopped",
                    reason="repeated_deltas",
                )
        else:
            self.last = text
            self.repeats = 1


def _finish_stats(state: CallState, duration: float) -> None:
    stats = state.stats
    stats.duration = duration
    stats.finish_reason = state.finish_reason
    usage = state.usage
    if usage is not None:
        stats.input_tokens = usage.input_tokens
        stats.output_tokens = usage.output_tokens
        stats.cache_read_tokens = usage.cache_read_tokens
        stats.cache_write_tokens = usage.cache_write_tokens
        stats.reasoning_tokens = usage.reasoning_tokens
        ttft = stats.time_to_first_token
        if usage.output_tokens and ttft is not None and duration > ttft:
            stats.tokens_per_second = usage.output_tokens / (duration - ttft)
