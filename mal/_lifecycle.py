"""The life of one call, written once for the sync and the async driver.

This module contains no networking code at all. :func:`run_call` is a
generator that runs a prepared :class:`mal._prepare.Call`: its attempts, the
clocks of each (first token, idle, total), its retries with their back-off,
the resend of a request that met a closed kept-alive connection, and its
fallback models; with ``MALConfig.rate_limits``, the turn of each request
under them, and with cool-downs, the order of the models. It yields ops for
its driver and chunks for the caller: what it yields, what it is sent back
and what it returns is the protocol of :mod:`mal._ops`.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from typing import Any, Final

from . import _limits
from ._limits import make_store
from ._log import describe, log_attempt, logger
from ._ops import (
    READ_ERROR_BODY,
    RECEIVE,
    Await,
    CallGenerator,
    Handoff,
    Op,
    Receive,
    ResponseHead,
    Send,
    Shared,
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
    RateLimitError,
    RunawayError,
    StreamError,
    request_id_of,
)
from .hooks import CallStats, ClientMetrics, Hooks, RequestInfo
from .limits import Acquire, Cooling, Correct, Pause, RateLimit, Release, Report, Store
from .protocols import GenerateParams, HTTPRequest, ResponseDecoder, split_model
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
    fallback's call or a tool round's), clock, randomness, hooks, counters,
    and the store of its rate limits and cool-downs."""

    __slots__ = (
        "call_ids",
        "clock",
        "config",
        "endpoints",
        "hooks",
        "metrics",
        "random",
        "store",
    )

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
        #: Where the rate limits and cool-downs are kept; None when the config
        #: has neither (then a call asks nothing of a store).
        self.store: Store | None = (
            make_store(config.shared_state)
            if config.rate_limits or config.cooldown_failures is not None
            else None
        )


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
    # The models to try, in order: None is the call's own, then its fallbacks.
    chain: list[str | None] = [None, *call.fallbacks]
    cools = config.cooldown_failures is not None
    if cools and call.fallbacks:
        chain = yield from _order_by_cooling(call, chain, runtime, stats)
    current = call
    metrics.streamed += call.params.stream
    metrics.non_streamed += not call.params.stream
    error: MALError | None = None
    try:
        for position, model in enumerate(chain):  # the call's model, then its fallbacks
            if position:
                assert error is not None
                if total_at is not None and clock() >= total_at:
                    raise error
                following = model if model is not None else f"{call.provider}/{call.model}"
                if hooks.on_fallback is not None:
                    hooks.on_fallback(f"{current.provider}/{current.model}", following, error)
                logger.info(
                    "falling back from %s/%s to %s after %s",
                    current.provider,
                    current.model,
                    following,
                    describe(error),
                )
                stats.fallbacks += 1
                metrics.fallbacks += 1
            if model is None:
                current = call
            else:
                current = fallback_call(config, runtime.endpoints, model, call)
                current.step = call.step
            state.provider = stats.provider = current.provider
            state.model = stats.model = current.model
            limits = _limits_of(config, current) if config.rate_limits else ()
            attempt = 0
            while True:  # over the attempts of one model
                metrics.requests += 1
                try:
                    yield from _attempt(current, state, runtime, attempt, start, total_at, limits)
                except MALError as exc:
                    error = exc
                    if current.unknown_prefix is not None and _cannot_connect(exc):
                        _add_hint(exc, current.unknown_prefix)
                    if isinstance(exc, APITimeoutError):
                        metrics.timeouts[exc.phase] = metrics.timeouts.get(exc.phase, 0) + 1
                    if cools and exc.retryable:
                        yield _report(runtime, current, ok=False)
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
                else:
                    if cools:
                        yield _report(runtime, current, ok=True)
                    return
        assert error is not None
        raise error
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


# Rate limits and cool-downs ----------------------------------------------------------

#: Bytes of a request body per token, to estimate a request's tokens before it
#: is sent: about 4 characters of English text make a token (OpenAI, "What are
#: tokens and how to count them", help.openai.com/en/articles/4936856). JSON
#: and base64 images make the estimate high; the usage a response reports
#: replaces it (``Correct``).
BYTES_PER_TOKEN = 4


def _limits_of(config: MALConfig, call: Call) -> tuple[tuple[str, RateLimit], ...]:
    """The limits a call waits under: its provider's and its model's. A call of
    OpenAI's Responses API counts under OpenAI's too (the same key, the same
    limits: it shares OpenAI's settings)."""
    rate_limits = config.rate_limits
    names = [call.provider, f"{call.provider}/{call.model}"]
    if call.provider == "openai-responses":
        names += ["openai", f"openai/{call.model}"]
    return tuple((name, rate_limits[name]) for name in names if name in rate_limits)


def estimate_tokens(request: HTTPRequest, params: GenerateParams) -> int:
    """A request's tokens before it is sent: its body's, and the output it asks for."""
    tokens = -(-len(request.body) // BYTES_PER_TOKEN)
    return tokens + (params.max_tokens or 0)


def _take_turn(
    call: Call,
    request: HTTPRequest,
    limits: tuple[tuple[str, RateLimit], ...],
    runtime: Runtime,
    total_at: float | None,
    stats: CallStats,
) -> Generator[Op, Any, tuple[str, Shared | None]]:
    """Wait for the request's turn under ``limits``: ask the store, sleep as
    long as it says, ask again. Returns the request's lease and what frees its
    concurrency slot (None when no limit counts slots). When the turn would
    come after ``total_timeout`` runs out, a RateLimitError at once."""
    store = runtime.store
    assert store is not None
    clock = runtime.clock
    config = runtime.config
    lease = uuid.uuid4().hex
    ttl = config.total_timeout if config.total_timeout is not None else _limits.LEASE_TTL
    cost = estimate_tokens(request, call.params)
    command = Acquire(limits, cost, lease, ttl, _limits.counted_window())
    began = clock()
    try:
        while True:
            wait, name = yield Shared(store, command)
            if wait <= 0:
                break
            if total_at is not None and clock() + wait >= total_at:
                limit = dict(limits).get(name)
                raise RateLimitError(
                    f"rate_limits[{name!r}] ({_describe_limit(limit)}): this request's turn "
                    f"comes in {wait:.2f} s, after total_timeout runs out; it was not sent",
                    retry_after=wait,
                    provider=call.provider,
                    retryable=False,
                )
            logger.debug(
                "waiting %.3f s for the turn of %s/%s under rate_limits[%r]",
                wait,
                call.provider,
                call.model,
                name,
            )
            yield Sleep(wait)
    finally:
        stats.limit_wait += clock() - began
    slots = tuple(name for name, limit in limits if limit.concurrent is not None)
    return lease, Shared(store, Release(slots, lease)) if slots else None


def _describe_limit(limit: RateLimit | None) -> str:
    if limit is None:
        return "paused"
    fields = ("requests_per_minute", "tokens_per_minute", "concurrent")
    return ", ".join(f"{name}={getattr(limit, name)}" for name in fields if getattr(limit, name))


def _order_by_cooling(
    call: Call, chain: list[str | None], runtime: Runtime, stats: CallStats
) -> Generator[Op, Any, list[str | None]]:
    """The chain of models with those cooling down moved to its end, each
    part in its order: when every model cools, they are all still tried."""
    default = runtime.config.default_provider
    names = [_model_name(call.provider, call.model)]
    names += [_model_name(*split_model(model, default)) for model in call.fallbacks]
    cooling: tuple[bool, ...] = yield Shared(_store_of(runtime), Cooling(tuple(names)))
    if not any(cooling):
        return chain
    stats.cooling = tuple(name for name, cool in zip(names, cooling, strict=True) if cool)
    for name in stats.cooling:
        logger.info(
            "trying %s after the other models of the call: it is cooling down after "
            "%d failures in a row",
            name,
            runtime.config.cooldown_failures,
        )
    warm = [model for model, cool in zip(chain, cooling, strict=True) if not cool]
    cold = [model for model, cool in zip(chain, cooling, strict=True) if cool]
    return warm + cold


def _store_of(runtime: Runtime) -> Store:
    """The store of a call that has limits or cool-downs (so it has a store)."""
    store = runtime.store
    assert store is not None
    return store


def _model_name(provider: str, model: str) -> str:
    return f"{provider}/{model}"


def _report(runtime: Runtime, call: Call, *, ok: bool) -> Shared:
    """The outcome of an attempt, for the cool-downs."""
    config = runtime.config
    assert config.cooldown_failures is not None
    return Shared(
        _store_of(runtime),
        Report(
            _model_name(call.provider, call.model),
            ok,
            config.cooldown_failures,
            config.cooldown_seconds,
        ),
    )


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
    limits: tuple[tuple[str, RateLimit], ...] = (),
) -> CallGenerator:
    """One request and its response, with the clocks running; first, when
    ``limits`` hold the call, its turn under them."""
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
    lease: str | None = None
    release: Shared | None = None
    if limits:
        lease, release = yield from _take_turn(call, request, limits, runtime, total_at, stats)
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
        send = Send(request, call.timeouts, _head_clock(first_at, total_at, sent_at), release)
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
            if limits:  # a request again: its own turn (the first one's slot is free)
                lease, release = yield from _take_turn(
                    call, request, limits, runtime, total_at, stats
                )
            head_clock = _head_clock(first_at, total_at, clock())
            head = yield Send(request, call.timeouts, head_clock, release)
        status, head_at = head.status, clock()
        if not 200 <= head.status < 300:
            body: bytes = yield READ_ERROR_BODY
            error = protocol.status_error(head.status, head.headers, body)
            if limits and isinstance(error, RateLimitError) and error.retry_after:
                # The provider's own limit: nothing of the limits it holds is
                # granted until the time it asked for (at most what a retry
                # would wait for), to no worker sharing them.
                pause = min(error.retry_after, config.max_retry_after)
                names = tuple(name for name, _ in limits)
                yield Shared(_store_of(runtime), Pause(names, pause))
            raise error
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
        if lease is not None and any(limit.tokens_per_minute for _, limit in limits):
            usage = decoder.usage
            if usage is not None and (usage.input_tokens or usage.output_tokens):
                # What the request really cost replaces its estimate.
                tokens = (usage.input_tokens or 0) + (usage.output_tokens or 0)
                correct = Correct(limits, lease, tokens, _limits.counted_window())
                if release is not None:
                    # The driver frees the slot when it lets the response go,
                    # which comes next: the correction goes with it, one
                    # round trip to a shared store instead of two.
                    freed = release.command
                    assert isinstance(freed, Release)
                    release.command = Release(freed.names, freed.lease, correct)
                else:
                    yield Shared(_store_of(runtime), correct)
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
