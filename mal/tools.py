"""Tools: what the model may call, declared once and sent in each provider's
own form. This module does no I/O.

A :class:`Tool` is a name, a description and a JSON schema of its
parameters, with or without a Python function behind it. A plain function is
a tool too (:meth:`Tool.from_function`): its name, its docstring and its
annotated parameters make the declaration, and ``msgspec`` builds the
parameters' schema and checks the model's arguments against the annotations
before the function runs.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from .errors import ConfigError
from .schema import NoSchemaForm, drop_nulls, openai_strict_form

__all__ = ["Tool", "as_tools", "format_result"]

#: What OpenAI accepts as a function name (Anthropic's rule is the same).
_NAME = re.compile(r"\A[a-zA-Z0-9_-]{1,64}\Z")
#: A Google-style docstring section that lists the parameters.
_ARGS_HEADER = re.compile(r"^(Args|Arguments|Parameters|Params):\s*$")
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SECTION = re.compile(r"^[A-Z][A-Za-z ]*:\s*$")

_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


class Tool:
    """A tool the model may call.

    ``parameters`` is the JSON schema of the arguments (an object schema; an
    empty one when left out). ``function``, when given, is what ``tool_rounds``
    runs: it is called with the arguments as keyword arguments (checked against
    its annotations when the tool was made by :meth:`from_function`). ``strict``
    asks OpenAI for strict argument decoding (the schema is made strict-fit).
    """

    __slots__ = (
        "_args_type",
        "_positional",
        "description",
        "function",
        "name",
        "parameters",
        "strict",
    )

    def __init__(
        self,
        name: str,
        description: str = "",
        parameters: Mapping[str, Any] | None = None,
        *,
        function: Callable[..., Any] | None = None,
        strict: bool = False,
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"a tool name must be 1 to 64 letters, digits, '_' or '-', not {name!r}"
            )
        if not isinstance(description, str):
            raise ConfigError(f"tool {name!r}: description must be a string")
        if parameters is None:
            parameters = _EMPTY_PARAMETERS
        if not isinstance(parameters, Mapping) or parameters.get("type", "object") != "object":
            raise ConfigError(f"tool {name!r}: parameters must be a JSON schema of an object")
        if function is not None and not callable(function):
            raise ConfigError(f"tool {name!r}: function must be callable")
        self.name = name
        self.description = description
        self.parameters: dict[str, Any] = {"type": "object", **parameters}
        self.function = function
        self.strict = bool(strict)
        # Set by from_function: the arguments' Struct, and the parameters that
        # must be passed by position.
        self._args_type: type[msgspec.Struct] | None = None
        self._positional: tuple[str, ...] = ()

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool = False,
    ) -> Tool:
        """The tool of a plain (sync or async) function: its ``__name__``, its
        docstring (the text before an ``Args:`` section; the section's lines
        describe the parameters) and its annotated parameters. A parameter with
        a default is optional. A parameter without an annotation, of a type
        msgspec cannot describe, or ``*args``/``**kwargs`` is a ConfigError
        naming it. Tools of a function are built once and cached."""
        if name is None and description is None and not strict:
            cached = _cached(function)
            if cached is not None:
                return cached
        tool = _from_function(function, name, description, strict)
        if name is None and description is None and not strict:
            _remember(function, tool)
        return tool

    @property
    def is_async(self) -> bool:
        """Whether ``function`` is a coroutine function."""
        function = self.function
        while isinstance(function, functools.partial):
            function = function.func
        if inspect.iscoroutinefunction(function):
            return True
        # An object whose __call__ is a coroutine function.
        return inspect.iscoroutinefunction(type(function).__call__) if function else False

    def bind(self, arguments: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The positional and keyword arguments of a call of ``function``.

        For a tool made from a function, the arguments are converted to the
        annotated types (a nested Struct or dataclass is built, a wrong type
        is an error): ``msgspec.ValidationError`` names the path. Otherwise
        they are passed as they are. A strict tool's optional parameters are
        nullable (see :func:`mal.schema.openai_strict_form`): a null one takes
        its default."""
        if self._args_type is None:
            return (), dict(arguments)
        try:
            value: Any = msgspec.convert(dict(arguments), self._args_type)
        except msgspec.ValidationError:
            value = self._without_nulls(arguments) if self.strict else None
            if value is None:
                raise
        fields = {f: getattr(value, f) for f in self._args_type.__struct_fields__}
        args = tuple(fields.pop(f) for f in self._positional)
        return args, fields

    def _without_nulls(self, arguments: Mapping[str, Any]) -> Any:
        try:
            return msgspec.convert(drop_nulls(dict(arguments)), self._args_type)
        except msgspec.ValidationError:
            return None

    def to_openai(self) -> dict[str, Any]:
        """The declaration in OpenAI's ``tools`` list (Ollama's is the same)."""
        function: dict[str, Any] = {"name": self.name}
        if self.description:
            function["description"] = self.description
        if self.strict:
            try:
                function["parameters"] = openai_strict_form(self.parameters)
            except NoSchemaForm as exc:
                raise ConfigError(
                    f"tool {self.name!r} cannot be strict: its parameters have no strict form "
                    f"({exc})"
                ) from None
            function["strict"] = True
        else:
            function["parameters"] = self.parameters
        return {"type": "function", "function": function}

    def to_anthropic(self) -> dict[str, Any]:
        """The declaration in Anthropic's ``tools`` list."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["input_schema"] = self.parameters
        return out

    def to_ollama(self) -> dict[str, Any]:
        """The declaration in Ollama's ``tools`` list."""
        function: dict[str, Any] = {"name": self.name}
        if self.description:
            function["description"] = self.description
        function["parameters"] = self.parameters
        return {"type": "function", "function": function}

    def __repr__(self) -> str:
        kind = "function" if self.function is not None else "declaration"
        return f"Tool({self.name!r}, {kind})"


#: Tools made from plain functions, built once per function.
_by_function: weakref.WeakKeyDictionary[Any, Tool] = weakref.WeakKeyDictionary()


def _cached(function: Any) -> Tool | None:
    try:
        return _by_function.get(function)
    except TypeError:  # not weakly referenceable
        return None


def _remember(function: Any, tool: Tool) -> None:
    if inspect.isfunction(function):  # bound methods die at once; not worth it
        _by_function[function] = tool


def _from_function(
    function: Callable[..., Any], name: str | None, description: str | None, strict: bool
) -> Tool:
    if not callable(function):
        raise ConfigError(f"a tool must be a mal.Tool or a function, not {function!r:.80}")
    fname = name or getattr(function, "__name__", None) or type(function).__name__
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        raise ConfigError(f"tool {fname!r}: its signature cannot be read") from None
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:  # an annotation that does not evaluate
        raise ConfigError(f"tool {fname!r}: its annotations cannot be evaluated ({exc})") from None
    doc, arg_docs = _split_doc(inspect.getdoc(function) or "")
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    positional: list[str] = []
    for param in signature.parameters.values():
        where = f"tool {fname!r}: parameter {param.name!r}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(f"{where}: *args and **kwargs cannot be tool parameters")
        if param.name not in hints:
            raise ConfigError(f"{where} has no type annotation")
        annotation = hints[param.name]
        try:
            msgspec.json.schema(annotation)
        except (TypeError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[-1]
            raise ConfigError(
                f"{where}: its type {annotation!r} has no JSON schema ({reason})"
            ) from None
        if param.name in arg_docs and typing.get_origin(annotation) is not typing.Annotated:
            meta = msgspec.Meta(description=arg_docs[param.name])
            annotation = typing.Annotated[annotation, meta]
        if param.default is param.empty:
            fields.append((param.name, annotation))
        else:
            fields.append((param.name, annotation, param.default))
        if param.kind is param.POSITIONAL_ONLY:
            positional.append(param.name)
    try:
        args_type = msgspec.defstruct(f"{fname}_arguments", fields, kw_only=True)
        schema = msgspec.json.schema(args_type)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"tool {fname!r}: its parameters have no JSON schema ({exc})") from None
    parameters = _inline_root(schema)
    tool = Tool(
        fname,
        doc if description is None else description,
        parameters,
        function=function,
        strict=strict,
    )
    tool._args_type = args_type
    tool._positional = tuple(positional)
    return tool


def _inline_root(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of the arguments' Struct, with its root ``$ref`` inlined and
    the generated title dropped."""
    defs = dict(schema.get("$defs", {}))
    ref = schema.get("$ref", "")
    root = dict(defs.pop(ref.rsplit("/", 1)[-1], schema))
    root.pop("title", None)
    root.setdefault("properties", {})
    if not root.get("required"):
        root.pop("required", None)
    if defs:
        root["$defs"] = defs
    return root


def _split_doc(doc: str) -> tuple[str, dict[str, str]]:
    """A docstring's description and its ``Args:`` lines, by parameter: the
    section ends at the next unindented ``Heading:`` line, and a line that
    does not start ``name:`` continues the parameter above it."""
    lines = doc.splitlines()
    start = next((i for i, line in enumerate(lines) if _ARGS_HEADER.match(line.strip())), None)
    if start is None:
        return doc.strip(), {}
    described: dict[str, str] = {}
    current: str | None = None
    end = len(lines)
    for i in range(start + 1, len(lines)):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped:
            continue
        if not raw[:1].isspace() and _SECTION.match(stripped):
            end = i
            break
        match = _ARG_LINE.match(stripped)
        if match is not None:
            current = match.group(1).lstrip("*")
            described[current] = match.group(2).strip()
        elif current is not None:
            described[current] = f"{described[current]} {stripped}".strip()
    description = "\n".join(lines[:start]).strip()
    rest = "\n".join(lines[end:]).strip()
    if rest:
        description = f"{description}\n\n{rest}".strip()
    return description, described


def as_tools(tools: Sequence[Any] | None) -> list[Tool] | None:
    """The ``tools`` option as :class:`Tool` objects (functions are made
    tools); a ConfigError for anything else, or for two tools of one name."""
    if tools is None:
        return None
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise ConfigError("tools must be a list of mal.Tool objects or functions")
    out: list[Tool] = []
    seen: set[str] = set()
    for item in tools:
        if isinstance(item, Tool):
            tool = item
        elif callable(item) and not isinstance(item, type):
            tool = Tool.from_function(item)
        else:
            raise ConfigError(
                f"a tool must be a mal.Tool or a function, not {type(item).__name__}"
                + (
                    " (use mal.Tool(name=..., parameters=...) for a schema)"
                    if isinstance(item, Mapping)
                    else ""
                )
            )
        if tool.name in seen:
            raise ConfigError(f"two tools are named {tool.name!r}")
        seen.add(tool.name)
        out.append(tool)
    return out


_result_encoder = msgspec.json.Encoder()


def format_result(value: Any) -> Any:
    """What a tool's return value is sent as: a string as it is, ``None`` as
    ``""``, a :class:`mal.Image` or a list of str and Image parts as content
    parts, anything else as compact JSON (Structs, dataclasses, dicts, lists,
    numbers)."""
    from .images import Image

    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, Image):
        return [value]
    if isinstance(value, list) and value and any(isinstance(v, Image) for v in value):
        return list(value)
    try:
        return _result_encoder.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        return str(value)
