"""``complete``: a call run to its end, with structured output and its
re-asks, written once for the sync and the async driver.

This module contains no networking code at all. :func:`run_complete` is a
generator, like :func:`mal._lifecycle.run_call` one level up: each model call
(the first, and each re-ask) is an ordinary stream with its own retries,
clocks, fallbacks, hooks and stats, which the driver runs. It yields
``RunCall(call)``: run this call as a stream to its end; the driver sends back
the :class:`CallState` of that stream (an error of the stream is raised by the
driver, out of the generator). It returns the final :class:`mal.Response`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any

import msgspec

from ._lifecycle import Call, CallState
from .errors import ConfigError, OutputValidationError, RefusalError
from .types import Message, MessageLike, Prompt, Response

__all__ = ["RunCall", "response_of", "run_complete"]


class RunCall(msgspec.Struct):
    call: Call


#: What :func:`run_complete` yields, is sent and returns.
CompleteGenerator = Generator[RunCall, Any, Response]


def response_of(state: CallState) -> Response:
    """The :class:`mal.Response` of a stream that ended."""
    decoder = state.decoder
    if decoder is None:  # nothing was sent (closed before it started)
        return Response(provider=state.provider, model=state.model, stats=state.stats)
    return Response(
        text=state.text,
        reasoning=decoder.reasoning,
        tool_calls=list(decoder.tool_calls),
        finish_reason=decoder.finish_reason,
        raw_finish_reason=decoder.raw_finish_reason,
        usage=decoder.usage,
        message=decoder.message(),
        refusal=decoder.refusal,
        provider=state.provider,
        model=state.model,
        stats=state.stats,
    )


def check_complete_options(options: Mapping[str, Any]) -> int:
    """``schema_retries``, checked."""
    retries = options.get("schema_retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"schema_retries must be an integer >= 0, not {retries!r}")
    if retries and options.get("schema") is None:
        raise ConfigError("schema_retries needs a schema")
    return retries


def run_complete(
    first: Call,
    make_round: Callable[[list[MessageLike], Call], Call],
    *,
    schema_retries: int = 0,
    on_schema_retry: Callable[[int, OutputValidationError], object] | None = None,
) -> CompleteGenerator:
    """A call run to its end, with its schema re-asks.

    ``make_round(messages, first)`` prepares the call of a re-ask, whose
    prompt is ``messages``. See the module docstring for what it yields.
    """
    params = first.params
    schema = params.schema
    conversation: list[MessageLike] | None = None  # built on the first re-ask
    added: list[Message] = []
    steps: list[Response] = []
    reasks = 0
    call = first
    while True:
        state: CallState = yield RunCall(call)
        response = response_of(state)
        steps.append(response)
        added.append(response.message)
        if schema is None:
            break
        if response.refusal or response.raw_finish_reason == "refusal":
            _finish(response, steps, added, reasks)
            raise RefusalError(
                f"{response.provider}/{response.model} refused to answer: "
                f"{response.refusal or response.text or '(no text)'}",
                refusal=response.refusal or response.text,
                partial_text=response.text,
            )
        try:
            response.parsed = schema.decode(response.text)
        except OutputValidationError as exc:
            if reasks >= schema_retries:
                _finish(response, steps, added, reasks)
                raise
            reasks += 1
            if on_schema_retry is not None:
                on_schema_retry(reasks, exc)
            reask = Message("user", schema.reask_message(exc))
        else:
            break
        added.append(reask)
        if conversation is None:
            conversation = _as_messages(params.prompt)
        conversation += [response.message, reask]
        call = make_round(list(conversation), first)
    return _finish(response, steps, added, reasks)


def _finish(
    response: Response, steps: list[Response], added: list[Message], reasks: int
) -> Response:
    response.steps = steps
    response.messages = added
    if response.stats is not None:
        response.stats.schema_retries = reasks
    return response


def _as_messages(prompt: Prompt) -> list[MessageLike]:
    """The prompt as a list of messages, the start of a conversation."""
    if isinstance(prompt, str):
        return [Message("user", prompt)]
    return list(prompt)
