"""``complete``: a call run to its end, with its tool rounds and its
structured-output re-asks, written once for the sync and the async driver.

This module contains no networking code at all. :func:`run_complete` is a
generator, like :func:`mal._lifecycle.run_call` one level up: each model call
(the first, each tool round and each re-ask) is an ordinary stream with its
own retries, clocks, fallbacks, hooks and stats, which the driver runs. It
yields

* ``RunCall(call)``: run this call as a stream to its end; the driver sends
  back the :class:`CallState` of that stream (an error of the stream is
  raised by the driver, out of the generator);
* ``RunTools(runs)``: call these tool functions (the async driver runs them
  concurrently); the driver sends back one ``(value, exception)`` pair per
  run, in order, and never raises a tool's exception itself.

It returns the final :class:`mal.Response`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any

import msgspec

from ._lifecycle import Call, CallState
from .errors import ConfigError, OutputValidationError, RefusalError, ToolError
from .protocols._base import forced_tool
from .tools import Tool, format_result
from .types import Message, MessageLike, Prompt, Response, ToolCall, Usage

__all__ = ["RunCall", "RunTools", "ToolRun", "response_of", "run_complete"]


class RunCall(msgspec.Struct):
    call: Call


class ToolRun(msgspec.Struct):
    """One tool function to call: ``tool.function(*args, **kwargs)``."""

    tool: Tool
    call: ToolCall
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    #: The call's position in its turn.
    position: int = 0


class RunTools(msgspec.Struct):
    runs: list[ToolRun]


#: What a driver sends back for each run: its return value, or what it raised.
Outcome = tuple[Any, BaseException | None]


class CompleteOptions(msgspec.Struct, frozen=True):
    """The options only ``complete`` (and ``generate``) take, checked."""

    schema_retries: int = 0
    tool_rounds: int = 0
    tool_errors: str = "raise"


#: What :func:`run_complete` yields, is sent and returns.
CompleteGenerator = Generator[RunCall | RunTools, Any, Response]


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


def check_complete_options(options: Mapping[str, Any]) -> CompleteOptions:
    """``schema_retries``, ``tool_rounds`` and ``tool_errors``, checked."""
    retries = options.get("schema_retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"schema_retries must be an integer >= 0, not {retries!r}")
    if retries and options.get("schema") is None:
        raise ConfigError("schema_retries needs a schema")
    rounds = options.get("tool_rounds", 0)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ConfigError(f"tool_rounds must be an integer >= 0, not {rounds!r}")
    if rounds and not options.get("tools"):
        raise ConfigError("tool_rounds needs tools")
    errors = options.get("tool_errors", "raise")
    if errors not in ("raise", "send"):
        raise ConfigError(f"tool_errors must be 'raise' or 'send', not {errors!r}")
    return CompleteOptions(retries, rounds, errors)


#: How a round's call is prepared: ``make_round(messages, first, overrides)``.
MakeRound = Callable[[list[MessageLike], Call, Mapping[str, Any]], Call]


def run_complete(
    first: Call,
    make_round: MakeRound,
    options: CompleteOptions,
    *,
    allow_async: bool,
    on_schema_retry: Callable[[int, OutputValidationError], object] | None = None,
) -> CompleteGenerator:
    """A call run to its end, with its tool rounds and schema re-asks.

    ``make_round(messages, first, overrides)`` prepares the next call, whose
    prompt is ``messages`` and whose options are the first call's with
    ``overrides``. ``allow_async``: whether the driver can run coroutine
    functions. See the module docstring for what it yields.
    """
    params = first.params
    schema = params.schema
    tools = {tool.name: tool for tool in params.tools or ()}
    overrides: dict[str, Any] = {}
    if forced_tool(params):
        # Forcing a call again after its result came back would force one
        # call after another: the rounds after the first leave it to the model.
        overrides["tool_choice"] = "auto"
    conversation: list[MessageLike] = []
    added: list[Message] = []
    steps: list[Response] = []
    reasks = rounds = 0
    call = first
    while True:
        state: CallState = yield RunCall(call)
        response = response_of(state)
        steps.append(response)
        added.append(response.message)
        if not conversation:
            conversation = _as_messages(params.prompt)
        if rounds < options.tool_rounds and response.tool_calls:
            try:
                runs, results = _plan(response, tools, options, allow_async)
            except ToolError as exc:
                exc.response = _finish(response, steps, added, reasks)
                raise
            if runs is not None:
                outcomes: list[Outcome] = yield RunTools(runs)
                for run, (value, error) in zip(runs, outcomes, strict=True):
                    if error is not None and options.tool_errors == "raise":
                        raise ToolError(
                            f"tool {run.call.name!r} raised {type(error).__name__}: {error}",
                            tool_call=run.call,
                            partial_text=response.text,
                            response=_finish(response, steps, added, reasks),
                        ) from error
                    results[run.position] = _result(run.call, value, error)
                # In the order of the calls (ids need not be unique: pair by position).
                messages = [results[i] for i in range(len(response.tool_calls))]
                added += messages
                conversation += [response.message, *messages]
                rounds += 1
                call = make_round(list(conversation), first, overrides)
                continue
        if schema is None or (response.tool_calls and response.finish_reason == "tool_calls"):
            break  # nothing to decode: no schema, or the turn ended on calls
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
            if reasks >= options.schema_retries:
                _finish(response, steps, added, reasks)
                raise
            reasks += 1
            if on_schema_retry is not None:
                on_schema_retry(reasks, exc)
            reask = Message("user", schema.reask_message(exc))
        else:
            break
        added.append(reask)
        conversation += [response.message, reask]
        call = make_round(list(conversation), first, overrides)
    return _finish(response, steps, added, reasks)


def _plan(
    response: Response, tools: Mapping[str, Tool], options: CompleteOptions, allow_async: bool
) -> tuple[list[ToolRun] | None, dict[int, Message]]:
    """The tool runs of a turn, and the results known before any runs (calls
    of unknown tools, arguments that do not fit, with ``tool_errors="send"``).
    No runs (None) when the turn must go back to the caller: a call cut off, or
    a call of a tool that has no function (the caller runs it)."""
    runs: list[ToolRun] = []
    results: dict[int, Message] = {}
    for call in response.tool_calls:
        if not call.complete:
            return None, results
        tool = tools.get(call.name)
        if tool is not None and tool.function is None:
            return None, results
    for position, call in enumerate(response.tool_calls):
        tool = tools.get(call.name)
        problem: str
        if tool is None:
            known = ", ".join(repr(name) for name in tools)
            problem = f"the model called {call.name!r}, which is not one of the tools ({known})"
        else:
            if tool.is_async and not allow_async:
                raise ConfigError(
                    f"tool {tool.name!r} is an async function: run it with mal.AsyncClient "
                    "(mal.Client runs sync functions only)"
                )
            try:
                args, kwargs = tool.bind(call.arguments)
            except (msgspec.ValidationError, TypeError) as exc:
                problem = f"the arguments of {call.name!r} do not fit its parameters: {exc}"
            else:
                runs.append(ToolRun(tool, call, args, kwargs, position))
                continue
        if options.tool_errors == "raise":
            raise ToolError(problem, tool_call=call, partial_text=response.text)
        results[position] = Message(
            "tool", problem, tool_call_id=call.id, name=call.name, is_error=True
        )
    return runs, results


def _result(call: ToolCall, value: Any, error: BaseException | None) -> Message:
    """The tool result of a run: its formatted value, or its error."""
    if error is not None:
        return Message(
            "tool",
            f"{type(error).__name__}: {error}",
            tool_call_id=call.id,
            name=call.name,
            is_error=True,
        )
    return Message("tool", format_result(value), tool_call_id=call.id, name=call.name)


_USAGE_FIELDS = Usage.__struct_fields__


def add_usage(steps: list[Response]) -> Usage | None:
    """The usage of a call of several steps: each field summed over the steps
    that report it (None where no step does); None when no step has usage."""
    usages = [step.usage for step in steps if step.usage is not None]
    if not usages:
        return None
    sums: dict[str, int | None] = {}
    for name in _USAGE_FIELDS:
        values = [value for u in usages if (value := getattr(u, name)) is not None]
        sums[name] = sum(values) if values else None
    return Usage(**sums)


def _finish(
    response: Response, steps: list[Response], added: list[Message], reasks: int
) -> Response:
    """The response of the whole call: the last step's, with every step, the
    messages added, and (over several steps) the usage summed over the steps.
    Each step keeps its own usage and stats."""
    if len(steps) > 1:
        usage = add_usage(steps)
        stats = response.stats
        if stats is not None:
            stats = msgspec.structs.replace(stats)
            for name in _USAGE_FIELDS:
                setattr(stats, name, getattr(usage, name) if usage is not None else None)
        response = msgspec.structs.replace(response, usage=usage, stats=stats)
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
