"""Testing helpers for mal: a local, scriptable model server.

`MockServer` speaks the Ollama, OpenAI and Anthropic wire formats on
127.0.0.1 and answers each request with the next queued `Reply`::

    from mal.testing import MockServer, Reply

    with MockServer() as server:
        server.add(Reply(text="Hello there", chunk_delay=0.01))
        base_url = server.url("openai")

The server is strict by default: a request the real API would reject is
answered with that provider's own error, and `RecordedRequest.violation` (a
`Violation`) says which rule it broke. ``MockServer(strict=False)`` accepts
any request.

Tool loops are scripted with ``Reply(tool_calls=[{"name": ..., "arguments": {...}}])``
followed by the final ``Reply(text=...)``.
"""

from mal.testing._rules import Violation
from mal.testing._script import (
    DEFAULT_TEXT,
    RecordedRequest,
    Reply,
    ScriptedToolCall,
    split_tokens,
)
from mal.testing._server import MockServer

__all__ = [
    "DEFAULT_TEXT",
    "MockServer",
    "RecordedRequest",
    "Reply",
    "ScriptedToolCall",
    "Violation",
    "split_tokens",
]
