"""The loop of a call: its tool rounds and its structured-output re-asks,
written once for ``complete`` and for a stream with ``tool_rounds``, and for
the sync and the async driver.

This module contains no networking code at all. :func:`run_loop` is a
generator like :func:`mal._lifecycle.run_call`, which runs each model call of
the loop (the first, each tool round and each re-ask) with its own retries,
clocks, fallbacks, hooks and stats: it yields what ``run_call`` yields (the
driver does what each op asks and hands the chunks to the caller), and

* ``RunTools(runs)``: call these tool functions (the async driver runs them
  concurrently); the driver sends back one ``(value, exception)`` pair per
  run, in order, and never raises a tool's exception itself;
* after a step's tools ran, a :class:`mal.Chunk` whose ``tool_results`` holds
  what each call was sent back, for the caller.

``complete`` is that stream read to its end: the loop's final
:class:`mal.Response` is left in :attr:`Run.final`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any

import msgspec

from ._lifecycle import CallState, Runtime, run_call
from ._ops import CallGenerator, Op
from ._prepare import Call, round_call
from .errors import ConfigError, MALError, OutputValidationError, RefusalError, ToolError
from .protocols._base import forced_tool
from .tools import Tool, format_result
from .types import Chunk, Message, MessageLike, Prompt, Response, ToolCall, ToolResult, Usage

__all__ = ["Run", "RunTools", "ToolRun", "response_of", "run_loop"]


class Run:
    """What a stream knows of its call across the steps: the state of the
    step under way, the responses of the steps that ended, and the response
    of the whole once the loop has ended."""

    __slots__ = ("final", "state", "step", "steps")

    def __init__(self, call: Call) -> None:
        self.state = CallState(call)
        #: The number of the step under way (0, 1, ...).
        self.step = 0
        self.steps: list[Response] = []
        self.final: Response | None = None


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


#: What :func:`run_loop` yields, is sent and returns.
LoopGenerator = Generator[Op | Chunk | RunTools, Any, Response]


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


def run_loop(
    first: Call,
    options: CompleteOptions,
    runtime: Runtime,
    run: Run,
    *,
    allow_async: bool,
    on_schema_retry: Callable[[int, OutputValidationError], object] | None = None,
) -> LoopGenerator:
    """A call run to its end, with its tool rounds and schema re-asks.

    Each step after the first is prepared by
    :func:`mal._prepare.round_call`: its prompt is the conversation so far,
    its options the first call's (with ``tool_choice`` left to the model
    after a forced call). ``run`` holds the state of each step as it runs.
    ``allow_async``: whether the driver can run coroutine functions. See the
    module docstring for what it yields.
    """
    steps = run.steps
    try:
        response = yield from _loop(first, options, runtime, run, allow_async, on_schema_retry)
    except MALError as exc:
        # What arrived is kept: the steps that ended (the text of the one
        # under way is the error's partial_text).
        if not exc.steps:
            exc.steps = list(steps)
        raise
    run.final = response
    return response


def _loop(
    first: Call,
    options: CompleteOptions,
    runtime: Runtime,
    run: Run,
    allow_async: bool,
    on_schema_retry: Callable[[int, OutputValidationError], object] | None,
) -> LoopGenerator:
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
    steps = run.steps
    reasks = rounds = 0
    call = first
    state = run.state

    def next_round(messages: list[MessageLike]) -> Call:
        return round_call(runtime.config, runtime.endpoints, messages, first, overrides)

    while True:
        step: CallGenerator = run_call(call, state, runtime)
        yield from step
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
                for tool_run, (value, error) in zip(runs, outcomes, strict=True):
                    if error is not None and options.tool_errors == "raise":
                        raise ToolError(
                            f"tool {tool_run.call.name!r} raised {type(error).__name__}: {error}",
                            tool_call=tool_run.call,
                            partial_text=response.text,
                            response=_finish(response, steps, added, reasks),
                        ) from error
                    results[tool_run.position] = _result(tool_run.call, value, error)
                # In the order of the calls (ids need not be unique: pair by position).
                messages = [results[i] for i in range(len(response.tool_calls))]
                yield Chunk(
                    step=run.step,
                    tool_results=tuple(
                        ToolResult(tool_call, message.content, message.is_error)
                        for tool_call, message in zip(response.tool_calls, messages, strict=True)
                    ),
                )
                added += messages
                conversation += [response.message, *messages]
                rounds += 1
                call = _next_step(next_round(list(conversation)), run)
                state = run.state
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
        call = _next_step(next_round(list(conversation)), run)
        state = run.state
    return _finish(response, steps, added, reasks)


def _next_step(call: Call, run: Run) -> Call:
    """``call``, numbered as the loop's next step, whose state ``run`` holds."""
    run.step += 1
    call.step = run.step
    run.state = CallState(call)
    return call


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
