"""The Redis store of rate limits and cool-downs: every process that points at
the same Redis (``MALConfig.shared_state="redis://..."``) shares them.

Each command of :mod:`mal.limits` is one Lua script run on the server, so it
is atomic: Redis runs a script to its end before it runs any other command
(https://redis.io/docs/latest/develop/programmability/eval-intro/). Scripts
are sent once and then called by their SHA1 (``EVALSHA``; redis-py's
``register_script`` loads a script again when the server answers NOSCRIPT).

**Time** is Redis's own ``TIME``, read inside the script, so that hosts whose
clocks disagree still agree on the window. A script may write after reading
the time because Redis replicates a script by its effects (the writes it
made), not by running it again: the default since Redis 5.0, the only mode
since 7.0 (same page, "Replicating commands instead of scripts"). Scores are
microseconds since the epoch, about 1.8e15: exact in Lua's doubles (below
2**53). A Lua number returned to the client is cut to an integer
(https://redis.io/docs/latest/develop/programmability/lua-api/, "Lua to RESP2
type conversion"), so waits come back as whole microseconds.

**Why a sliding log.** The rule a store keeps is that no span of ``window``
seconds holds more requests (or tokens) than the limit: what a provider's
per-minute limit promises to accept. A log of the requests granted in the
last window (a sorted set scored by time) checks exactly that: a request is
granted when fewer than ``limit`` entries are younger than ``window``, and a
refused one learns how long until the oldest of them leaves. GCRA, the
other usual choice on Redis, keeps one timestamp per limit, the theoretical
arrival time, and admits a request at ``t`` when ``t >= TAT - tau``, moving
``TAT`` by ``T = window / limit`` (https://en.wikipedia.org/wiki/Generic_cell_rate_algorithm;
https://brandur.org/rate-limiting). With a burst of ``L = limit`` requests
(``tau = (L - 1) * T``) it admits ``L`` requests at once and then one every
``T``: the span ``[0, window)`` holds ``L + (L - 1) = 2L - 1`` of them,
twice the limit. With no burst (``tau = 0``) it spaces requests ``T`` apart
and refuses a parallel burst that the provider accepts: Anthropic's limits
are a token bucket refilled continuously up to the full limit
(https://docs.anthropic.com/en/api/rate-limits), and OpenAI's a per-minute
limit that it may also enforce over shorter periods, "60,000
requests/minute may be enforced as 1,000 requests/second"
(https://platform.openai.com/docs/guides/rate-limits). The log's cost is
memory: one entry per request in the window (a few dozen bytes), O(limit)
per limit; a grant costs O(log n) plus the entries that left, and a token
refusal reads the oldest entries until enough tokens would be free. At
per-minute limits of thousands this is kilobytes and microseconds.

**Keys** of the limit ``name`` (a provider, or "provider/model") are
``mal:rl:{provider}:<name>:<part>``: the request log ``req`` (lease ->
time), the token log ``tok`` (lease -> time) with the hash ``cost`` of each
entry's tokens (``l:<lease>``, corrected by :class:`Correct`) and of their
total (``sum``, kept as entries come and go, so that a grant reads one
number),
the concurrency slots ``lease`` (lease -> expiry time), and the ``pause``
key (a string with a PX expiry). A model's cool-down is ``mal:cd:{provider}:
<model>:cool`` (PX expiry) and its count of failures in a row ``...:fails``.
The part in braces is a Redis Cluster hash tag
(https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags):
it is the provider rather than the whole name so that an Acquire of a
provider's limit and of one of its models, taken all or none in one script,
touches keys of one slot only. Every key expires when nothing in it can
count any more: a log ``window`` plus :data:`MARGIN` after its newest entry,
the slots ``lease_ttl`` plus :data:`MARGIN` after the newest one, a pause or
a cool-down when it ends, the failure count :data:`FAILURES_TTL` after the
last failure.

**When Redis fails** (cannot be reached, answers slower than
:data:`TIMEOUT`, or answers with an error), the command is carried out by the
``fallback`` store (per-process state) instead: limits then hold per process
until Redis answers again, which is tried every :data:`RETRY_INTERVAL`
seconds. One WARNING on the ``mal`` logger says so, and one INFO line when
Redis is back. A URL's password never appears in a log line or a repr.

Sync calls use a ``redis.Redis``; async calls under asyncio use a
``redis.asyncio.Redis`` made for the running event loop (its connections
belong to that loop), and under trio, which redis-py does not support, the
sync client in a worker thread.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import weakref
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import anyio.to_thread

from ._log import logger
from .errors import ConfigError
from .limits import Acquire, Command, Cooling, Correct, Pause, Release, Report, Store

__all__ = ["FAILURES_TTL", "MARGIN", "POLL", "RETRY_INTERVAL", "TIMEOUT", "RedisStore", "redact"]

#: Seconds to connect to Redis, and to wait for each answer. A store must
#: never hold a call up for long: past this the command goes to the fallback.
TIMEOUT = 0.5

#: Seconds between attempts to reach Redis again after it failed.
RETRY_INTERVAL = 5.0

#: Seconds a refused Acquire waits when a concurrency limit is full (or less,
#: when the oldest slot's lease ends sooner): a slot is freed by a Release
#: that nothing announces, so the waiter asks again.
POLL = 0.05

#: Seconds a key outlives the last entry that can still count in it.
MARGIN = 1.0

#: Seconds a count of failures in a row is kept after the last failure.
FAILURES_TTL = 3600.0

# ------------------------------------------------------------------ scripts
# Times in the scripts are microseconds (``now``, scores, waits); durations
# given to PEXPIRE, SET PX and PTTL are milliseconds.

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# A key's expiry is moved later, never earlier: callers may pass different
# windows or lease lengths. (PEXPIRE's GT flag treats a key without an
# expiry as never expiring, so it would never set the first one.)
_EXTEND = """
local function extend(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
"""

# The costs of entries that left the window, out of the total and the hash.
# (Lua's unpack() is limited by the C stack, LUAI_MAXCSTACK = 8000: slices.)
_FORGET = """
local function forget(costs, leases)
  local freed = 0
  for i = 1, #leases, 1000 do
    local fields = {}
    for j = i, math.min(i + 999, #leases) do fields[#fields + 1] = 'l:' .. leases[j] end
    for _, v in ipairs(redis.call('HMGET', costs, unpack(fields))) do
      freed = freed + (tonumber(v) or 0)
    end
    redis.call('HDEL', costs, unpack(fields))
  end
  redis.call('HINCRBY', costs, 'sum', -freed)
end
"""

#: KEYS: per limit req, tok, cost, lease, pause.
#: ARGV: cost, lease, lease_ttl (us), window (us), poll (us), margin (ms),
#: then per limit: name, requests, tokens, concurrent (0: unlimited).
#: Returns {wait (us), name}: {0, ''} when granted and recorded.
_ACQUIRE = (
    _NOW
    + _EXTEND
    + _FORGET
    + """
local cost, lease = tonumber(ARGV[1]), ARGV[2]
local ttl, window, poll = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local margin = tonumber(ARGV[6])
local n = #KEYS / 5
local wait, who = 0, ''
for i = 0, n - 1 do
  local k = 5 * i
  local req, tok, costs, slots, pause = KEYS[k+1], KEYS[k+2], KEYS[k+3], KEYS[k+4], KEYS[k+5]
  local a = 7 + 4 * i
  local requests, tokens, concurrent = tonumber(ARGV[a+1]), tonumber(ARGV[a+2]), tonumber(ARGV[a+3])
  local w = 0
  local paused = redis.call('PTTL', pause)
  if paused > 0 then w = paused * 1000 end
  if requests > 0 then
    redis.call('ZREMRANGEBYSCORE', req, '-inf', now - window)
    local count = redis.call('ZCARD', req)
    if count >= requests then
      -- the entry whose leaving brings the count below the limit
      local e = redis.call('ZRANGE', req, count - requests, count - requests, 'WITHSCORES')
      w = math.max(w, tonumber(e[2]) + window - now)
    end
  end
  if tokens > 0 then
    local gone = redis.call('ZRANGEBYSCORE', tok, '-inf', now - window)
    if #gone > 0 then
      forget(costs, gone)
      redis.call('ZREMRANGEBYSCORE', tok, '-inf', now - window)
    end
    local c = math.min(cost, tokens)
    local used = tonumber(redis.call('HGET', costs, 'sum') or '0')
    if used + c > tokens then
      -- Wait until enough of the oldest entries have left; read a page at a time.
      local found, from = false, 0
      while not found do
        local page = redis.call('ZRANGE', tok, from, from + 99, 'WITHSCORES')
        if #page == 0 then break end
        for j = 1, #page, 2 do
          used = used - tonumber(redis.call('HGET', costs, 'l:' .. page[j]) or '0')
          if used + c <= tokens then
            w = math.max(w, tonumber(page[j+1]) + window - now)
            found = true
            break
          end
        end
        from = from + 100
      end
      -- A total above its entries (a key lost to eviction): wait a window, and
      -- the keys, no longer written, expire.
      if not found then w = math.max(w, window) end
    end
  end
  if concurrent > 0 then
    redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
    if redis.call('ZCARD', slots) >= concurrent then
      local e = redis.call('ZRANGE', slots, 0, 0, 'WITHSCORES')
      w = math.max(w, math.min(poll, tonumber(e[2]) - now))
    end
  end
  if w > wait then wait, who = w, ARGV[a] end
end
if wait > 0 then return {math.ceil(wait), who} end
for i = 0, n - 1 do
  local k = 5 * i
  local req, tok, costs, slots = KEYS[k+1], KEYS[k+2], KEYS[k+3], KEYS[k+4]
  local a = 7 + 4 * i
  local requests, tokens, concurrent = tonumber(ARGV[a+1]), tonumber(ARGV[a+2]), tonumber(ARGV[a+3])
  local keep = math.ceil(window / 1000) + margin
  if requests > 0 then
    redis.call('ZADD', req, now, lease)
    extend(req, keep)
  end
  if tokens > 0 then
    local c = math.min(cost, tokens)
    redis.call('ZADD', tok, now, lease)
    redis.call('HSET', costs, 'l:' .. lease, c)
    redis.call('HINCRBY', costs, 'sum', c)
    extend(tok, keep)
    extend(costs, keep)
  end
  if concurrent > 0 then
    redis.call('ZADD', slots, now + ttl, lease)
    extend(slots, math.ceil(ttl / 1000) + margin)
  end
end
return {0, ''}
"""
)

#: KEYS: per name its slots. ARGV: lease.
_RELEASE = """
for _, key in ipairs(KEYS) do redis.call('ZREM', key, ARGV[1]) end
return 0
"""

#: KEYS: per limit with a token limit, tok and cost.
#: ARGV: lease, cost, window (us), then per limit its tokens per minute.
_CORRECT = (
    _NOW
    + """
local lease, cost, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 0, #KEYS / 2 - 1 do
  local tok, costs = KEYS[2*i+1], KEYS[2*i+2]
  local at = redis.call('ZSCORE', tok, lease)
  local old = redis.call('HGET', costs, 'l:' .. lease)
  if at and old and tonumber(at) > now - window then
    local new = math.min(cost, tonumber(ARGV[4+i]))
    redis.call('HSET', costs, 'l:' .. lease, new)
    redis.call('HINCRBY', costs, 'sum', new - tonumber(old))
  end
end
return 0
"""
)

#: A Release that carries its request's Correct: ARGV[1] is how many of the
#: KEYS are slot keys; the rest of KEYS and ARGV are the Correct's.
_RELEASE_CORRECT = (
    _NOW
    + """
local n = tonumber(ARGV[1])
local lease, cost, window = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 1, n do redis.call('ZREM', KEYS[i], lease) end
for i = 0, (#KEYS - n) / 2 - 1 do
  local tok, costs = KEYS[n+2*i+1], KEYS[n+2*i+2]
  local at = redis.call('ZSCORE', tok, lease)
  local old = redis.call('HGET', costs, 'l:' .. lease)
  if at and old and tonumber(at) > now - window then
    local new = math.min(cost, tonumber(ARGV[5+i]))
    redis.call('HSET', costs, 'l:' .. lease, new)
    redis.call('HINCRBY', costs, 'sum', new - tonumber(old))
  end
end
return 0
"""
)


#: KEYS: the pause keys. ARGV: milliseconds.
_PAUSE = """
local ms = tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  if redis.call('PTTL', key) < ms then redis.call('SET', key, '1', 'PX', ms) end
end
return 0
"""

#: KEYS: fails, cool. ARGV: ok (1/0), failures, cooldown (ms), failures' ttl (ms).
_REPORT = """
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 0
end
local count = redis.call('INCR', KEYS[1])
if count >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  local ms = tonumber(ARGV[3])
  if ms > 0 then redis.call('SET', KEYS[2], '1', 'PX', ms) end
else
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 0
"""

#: KEYS: the cool keys. Returns 1 or 0 per key.
_COOLING = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('EXISTS', key) end
return out
"""

_SCRIPTS = {
    "acquire": _ACQUIRE,
    "release": _RELEASE,
    "correct": _CORRECT,
    "release_correct": _RELEASE_CORRECT,
    "pause": _PAUSE,
    "report": _REPORT,
    "cooling": _COOLING,
}

# -------------------------------------------------------------------- keys


def _tag(name: str) -> str:
    """The hash tag of a limit or model name: its provider."""
    return name.partition("/")[0]


def _limit_key(name: str, part: str) -> str:
    return f"mal:rl:{{{_tag(name)}}}:{name}:{part}"


def _model_key(model: str, part: str) -> str:
    return f"mal:cd:{{{_tag(model)}}}:{model}:{part}"


def _us(seconds: float) -> int:
    return max(0, math.ceil(seconds * 1_000_000))


def _ms(seconds: float) -> int:
    return max(0, math.ceil(seconds * 1000))


def _count(value: int | None) -> int:
    return 0 if value is None else value


#: A script's name, its keys and its arguments.
_Call = tuple[str, list[str], list[Any]]


def _call(command: Command) -> _Call:
    """The script, keys and arguments that carry out ``command``."""
    if isinstance(command, Acquire):
        keys: list[str] = []
        args: list[Any] = [
            command.cost,
            command.lease,
            _us(command.lease_ttl),
            _us(command.window),
            _us(POLL),
            _ms(MARGIN),
        ]
        for name, limit in command.limits:
            keys += [_limit_key(name, p) for p in ("req", "tok", "cost", "lease", "pause")]
            args += [
                name,
                _count(limit.requests_per_minute),
                _count(limit.tokens_per_minute),
                _count(limit.concurrent),
            ]
        return "acquire", keys, args
    if isinstance(command, Release):
        slots = [_limit_key(n, "lease") for n in command.names]
        if command.correct is None:
            return "release", slots, [command.lease]
        _, keys, args = _call(command.correct)
        return "release_correct", slots + keys, [len(slots), *args]
    if isinstance(command, Correct):
        keys, args = [], [command.lease, command.cost, _us(command.window)]
        for name, limit in command.limits:
            if limit.tokens_per_minute is not None:
                keys += [_limit_key(name, "tok"), _limit_key(name, "cost")]
                args.append(limit.tokens_per_minute)
        return "correct", keys, args
    if isinstance(command, Pause):
        return "pause", [_limit_key(n, "pause") for n in command.names], [_ms(command.seconds)]
    if isinstance(command, Report):
        keys = [_model_key(command.model, "fails"), _model_key(command.model, "cool")]
        args = [
            1 if command.ok else 0,
            command.failures,
            _ms(command.cooldown),
            _ms(FAILURES_TTL),
        ]
        return "report", keys, args
    if isinstance(command, Cooling):
        return "cooling", [_model_key(m, "cool") for m in command.models], []
    raise TypeError(f"not a command of mal.limits: {command!r}")


def _result(command: Command, reply: Any) -> Any:
    """The command's result (see :mod:`mal.limits`) from the script's reply."""
    if isinstance(command, Acquire):
        wait, name = reply
        return (int(wait) / 1_000_000, str(name))
    if isinstance(command, Cooling):
        return tuple(bool(int(x)) for x in reply)
    return None


def _empty(command: Command) -> Any:
    """The result of a command that names no key: nothing to ask Redis."""
    if isinstance(command, Acquire):
        return (0.0, "")
    if isinstance(command, Cooling):
        return ()
    return None


#: Commands the fallback is given too, Redis or not: a request granted by
#: the fallback while Redis failed frees its slot and corrects its cost there
#: (the lease is unknown elsewhere, so it changes nothing else). A fallback
#: that can (``LocalStore.record``) also records each
#: request Redis granted: when Redis fails, the process's own limits then
#: count what it already took in the window, so that a fleet falling back
#: goes no higher than one limit per process.
_BOTH = (Release, Correct)

# -------------------------------------------------------------------- urls


def redact(url: str) -> str:
    """``url`` fit for a log: its password (in the authority, or a
    ``password=`` query parameter, both read by redis-py) replaced by ``***``."""
    parts = urlsplit(url)
    public = url
    user, at, host = parts.netloc.rpartition("@")
    if at and ":" in user:
        netloc = f"{user.partition(':')[0]}:***@{host}"
        public = public.replace(f"//{parts.netloc}", f"//{netloc}", 1)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(k.lower() == "password" for k, _ in pairs):
            hidden = [(k, "***" if k.lower() == "password" else v) for k, v in pairs]
            public = public.replace(f"?{parts.query}", f"?{urlencode(hidden, safe='*')}", 1)
    return public


def _secrets(url: str) -> list[str]:
    parts = urlsplit(url)
    found = [parts.password, unquote(parts.password)] if parts.password else []
    found += [v for k, v in parse_qsl(parts.query) if k.lower() == "password" and v]
    return found


# ------------------------------------------------------------------- store


class _Clients:
    """A client and its registered scripts."""

    __slots__ = ("client", "scripts")

    def __init__(self, client: Any) -> None:
        self.client = client
        self.scripts = {name: client.register_script(src) for name, src in _SCRIPTS.items()}


class RedisStore:
    """A :class:`mal.limits.Store` on Redis, shared by every process that uses
    the same URL; ``fallback`` carries out the commands while Redis fails."""

    def __init__(self, url: str, *, fallback: Store) -> None:
        try:
            import redis
            import redis.asyncio  # checked here, used per event loop
            import redis.retry
        except ImportError:
            raise ConfigError(
                "shared_state='redis://...' needs the redis package: pip install 'mal-llm[redis]'"
            ) from None
        self._url = url
        self._public = redact(url)
        self._secrets = _secrets(url)
        self._fallback = fallback
        #: The limits this store has granted concurrency slots under.
        self._slotted: set[str] = set()
        self._lock = threading.Lock()
        #: None while Redis answers; else the monotonic time to try it again.
        self._down_until: float | None = None
        try:
            sync_client = redis.Redis.from_url(url, **self._options(redis.retry.Retry))
        except ValueError as exc:
            raise ConfigError(
                f"MALConfig.shared_state {self._public!r} is not a Redis URL "
                f"(redis://, rediss:// or unix://): {self._scrub(str(exc))}"
            ) from None
        self._sync = _Clients(sync_client)
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Clients]
        self._per_loop = weakref.WeakKeyDictionary()

    @staticmethod
    def _options(retry: Any) -> dict[str, Any]:
        from redis.backoff import NoBackoff

        # No retries inside the client: since redis-py 6.0 a client retries a
        # failed command with an exponential back-off by default (3 times,
        # 10 in later releases; https://github.com/redis/redis-py/releases/tag/v6.0.0),
        # which would hold a call up for seconds; the store has the fallback
        # instead. Replies decoded as text: names and counts.
        return {
            "socket_connect_timeout": TIMEOUT,
            "socket_timeout": TIMEOUT,
            "retry": retry(NoBackoff(), 0),
            "decode_responses": True,
        }

    def __repr__(self) -> str:
        return f"RedisStore({self._public!r})"

    # ------------------------------------------------------------- commands

    def execute(self, command: Command) -> Any:
        """Carry out ``command`` on Redis, or on the fallback while Redis fails."""
        call = self._plan(command)
        result = _empty(command)
        if call[1]:
            if not self._try_redis():
                return self._fallback.execute(command)
            try:
                result = self._run_sync(command, call)
            except Exception as exc:
                if not self._failed(exc):
                    raise
                return self._fallback.execute(command)
            self._answered()
        self._mirror(command, result)
        if isinstance(command, _BOTH):
            self._fallback.execute(command)
        return result

    async def aexecute(self, command: Command) -> Any:
        """:meth:`execute` for async code, under asyncio or trio."""
        call = self._plan(command)
        result = _empty(command)
        if call[1]:
            if not self._try_redis():
                return await self._fallback.aexecute(command)
            try:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    # trio: redis-py's async client runs on asyncio only.
                    result = await anyio.to_thread.run_sync(self._run_sync, command, call)
                else:
                    result = await self._run_async(loop, command, call)
            except Exception as exc:
                if not self._failed(exc):
                    raise
                return await self._fallback.aexecute(command)
            self._answered()
        self._mirror(command, result)
        if isinstance(command, _BOTH):
            await self._fallback.aexecute(command)
        return result

    def close(self) -> None:
        """Close the sync client's connections (it opens new ones if used again)."""
        self._sync.client.close()

    async def aclose(self) -> None:
        """Close the connections of the running event loop's client (asyncio;
        under trio the sync client serves, see :meth:`close`)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        clients = self._per_loop.pop(loop, None)
        if clients is not None:
            # aclose() since redis-py 5.0.1; close() before it.
            closing = getattr(clients.client, "aclose", None) or clients.client.close
            await closing()

    # ------------------------------------------------------------ internals

    def _mirror(self, command: Command, result: Any) -> None:
        """Tell a fallback that can record them of the requests Redis granted."""
        if isinstance(command, Acquire) and result[0] <= 0:
            record = getattr(self._fallback, "record", None)
            if record is not None:
                record(command)

    def _plan(self, command: Command) -> _Call:
        """The script call of ``command``. A Release names only the limits
        this store ever granted a concurrency slot under: a lease holds a slot
        only where its Acquire, in this process, recorded one, so the others
        have nothing to free, and a Release with nothing to free costs no
        round trip."""
        if isinstance(command, Acquire):
            for name, limit in command.limits:
                if limit.concurrent is not None and name not in self._slotted:
                    self._slotted.add(name)
        elif isinstance(command, Release):
            names = tuple(n for n in command.names if n in self._slotted)
            if names != command.names:
                command = Release(names, command.lease, command.correct)
        return _call(command)

    def _run_sync(self, command: Command, call: _Call) -> Any:
        script, keys, args = call
        return _result(command, self._sync.scripts[script](keys=keys, args=args))

    async def _run_async(
        self, loop: asyncio.AbstractEventLoop, command: Command, call: _Call
    ) -> Any:
        clients = self._per_loop.get(loop)
        if clients is None:
            import redis.asyncio
            import redis.asyncio.retry

            options = self._options(redis.asyncio.retry.Retry)
            client = redis.asyncio.Redis.from_url(self._url, **options)
            clients = self._per_loop.setdefault(loop, _Clients(client))
        script, keys, args = call
        return _result(command, await clients.scripts[script](keys=keys, args=args))

    def _try_redis(self) -> bool:
        """Whether this command goes to Redis: yes while it answers; while it
        fails, one command every RETRY_INTERVAL seconds tries it again."""
        if self._down_until is None:
            return True
        with self._lock:
            now = time.monotonic()
            if self._down_until is None:
                return True
            if now < self._down_until:
                return False
            self._down_until = now + RETRY_INTERVAL
            return True

    def _failed(self, exc: Exception) -> bool:
        """Note that Redis failed with ``exc``; False if ``exc`` is not a
        failure of Redis's (then it is raised)."""
        import redis

        if not isinstance(exc, (redis.RedisError, OSError, asyncio.TimeoutError)):
            return False
        with self._lock:
            first = self._down_until is None
            self._down_until = time.monotonic() + RETRY_INTERVAL
        if first:
            logger.warning(
                "shared_state %s failed (%s: %s): rate limits and cool-downs are kept "
                "per process until it answers; trying it again every %g s",
                self._public,
                type(exc).__name__,
                self._scrub(str(exc)),
                RETRY_INTERVAL,
            )
        return True

    def _answered(self) -> None:
        if self._down_until is None:
            return
        with self._lock:
            back = self._down_until is not None
            self._down_until = None
        if back:
            logger.info(
                "shared_state %s answers again: rate limits and cool-downs are shared",
                self._public,
            )

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
