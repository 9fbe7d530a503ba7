"""The layer in front of xlwings Server that ``sheetdl serve`` runs: one error policy.

- A request whose ``Host`` header is not an allowed name is refused (403): a web page
  that rebinds its own DNS name to 127.0.0.1 must not reach the functions.
- A call of a function sheetdl does not have is a 404, and a call with too few or too
  many arguments a 400, each with the message Excel shows in the cell; xlwings Server
  would answer both with HTTP 500 "An error occurred.", which Office.js retries.
- Everything else passes through unchanged: a bad argument value is the function's
  ``UdfError`` (an XlwingsError, 400); only a real bug is a 500.
- ``answer_calls`` has the app answer a call with ``json.dumps`` of xlwings Server's own
  result, parsed once, rather than FastAPI's per-value encoding (2× quicker end to end).
- Work is bounded by design: a body past ``MAX_BODY`` is refused (413) from its
  Content-Length or while it streams in, before it is held whole; at most ``RUNNING``
  calls compute at once and ``WAITING`` wait (their bodies together under
  ``MAX_WAITING_BYTES``), any more get 503 with Retry-After; each function bounds its own
  memory from its arguments (``udfs.MAX_CALL_BYTES``); a caller that hangs up cancels its
  call (``math.cancel``). ``GET /sheetdl/calls`` says how many run and wait.
"""

import asyncio
import contextlib
import inspect
import json
import threading

from . import manifest, udfs
from ..math import cancel

CALL_PATH = "/xlwings/custom-functions-call"
STATUS_PATH = "/sheetdl/calls"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: sheetdl's manifest in place of xlwings Server's (its paths), and the icons it names
MANIFEST_PATHS = ("/manifest", "/manifest.xml", "/manifest/download")
ICONS = {manifest.ICON_PATH.format(size=s): manifest.icon_png(s) for s in manifest.ICON_SIZES}

#: the largest call body read: a 1,000,000-cell range is about 20 MB of JSON
MAX_BODY = 64 * 1024 * 1024
#: calls computing at once (one a core here), and calls queued behind them
RUNNING = 2
WAITING = 64
#: what the queued calls' bodies may hold together
MAX_WAITING_BYTES = 256 * 1024 * 1024
#: the fields xlwings Server reads from every call, and those it reads when present
CALL_FIELDS = ("func_name", "args", "client", "version", "runtime")
TEXT_FIELDS = ("client", "version", "runtime")
OPTIONAL_TEXT_FIELDS = ("caller_address", "culture_info_name", "date_format", "session_id")


def hostname(host: str) -> str:
    """``[::1]:8000`` → ``::1``, ``Localhost:8000`` → ``localhost``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def arity(name: str) -> tuple[int, int]:
    """(required, total) positional arguments of add-in function ``name``."""
    params = inspect.signature(getattr(udfs, name)).parameters.values()
    return sum(p.default is inspect.Parameter.empty for p in params), len(params)


UNSUPPORTED = (415, "sheetdl serve: a custom-functions call is sent as application/json")


def check_call(body: bytes, content_type: bytes) -> tuple[int, str] | dict:
    """(status, message) refusing a custom-functions call, or the call, parsed, to let
    through."""
    if not _json_content(content_type):
        # a web page may POST text/plain to 127.0.0.1 with no CORS preflight; xlwings
        # Server's own route refuses what is not JSON too
        return UNSUPPORTED
    if len(body) > MAX_BODY:
        return _too_large()
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting a thousand deep
        data = None
    if not isinstance(data, dict) or not all(k in data for k in CALL_FIELDS) or not all(
            isinstance(data[k], str) for k in TEXT_FIELDS) or not all(
            isinstance(data.get(k), (str, type(None))) for k in OPTIONAL_TEXT_FIELDS):
        return 400, ("not a custom-functions call: a JSON object with func_name, args and "
                     f"the texts {', '.join(TEXT_FIELDS[:-1])} and {TEXT_FIELDS[-1]}")
    name, args = data["func_name"], data["args"]
    if not isinstance(name, str) or name not in udfs.PUBLIC:
        shown = name if isinstance(name, str) else type(name).__name__
        return 404, (f"sheetdl has no function {shown[:64]!r}; it has "
                     + ", ".join(udfs.PUBLIC))
    if not isinstance(args, list):
        return 400, f"{name}: args must be a list"
    lo, hi = arity(name)
    if not lo <= len(args) <= hi:
        takes = f"{lo}" if lo == hi else f"{lo} to {hi}"
        return 400, f"{name.upper()} takes {takes} arguments, got {len(args)}"
    names = list(inspect.signature(getattr(udfs, name)).parameters)
    for i, (arg, pname) in enumerate(zip(args, names)):
        bad = _argument_shape(arg, pname in udfs._ARRAYS)
        if bad:
            return 400, f"{name.upper()} argument {i + 1} ({pname}) {bad}"
    return data


def _argument_shape(arg, is_range: bool) -> str | None:
    """Why ``arg`` is not what Office.js sends (null, a value, or a non-empty rectangle of
    values), or None. Checked here so that no malformed argument reaches xlwings'
    conversions, which answer it with a 500."""
    if arg is None or _value(arg):
        return None if _in_range(arg) else "holds a number too large for a cell"
    if not isinstance(arg, list) or not arg or not all(isinstance(r, list) for r in arg):
        return "must be a range: a list of rows"
    width = len(arg[0])
    if width == 0 or any(len(r) != width for r in arg):
        return "must be a non-empty range whose rows are all one length"
    if not is_range and len(arg) * width != 1:
        return f"must be one cell, got {len(arg)}×{width}"
    for row in arg:
        for v in row:
            if not (v is None or _value(v)):
                return "holds a cell that is not a number, text, TRUE/FALSE or empty"
            if not _in_range(v):
                return "holds a number too large for a cell"
    return None


_value = lambda v: isinstance(v, (str, bool, int, float))


def _in_range(v) -> bool:
    """An int beyond float's range (10**4299 parses as one) would be an OverflowError."""
    return not isinstance(v, int) or isinstance(v, bool) or abs(v) < 2.0 ** 1023


def _too_large() -> tuple[int, str]:
    return 413, f"sheetdl serve: a call body may hold at most {MAX_BODY // 2**20} MB"


class _TooLarge(Exception):
    pass


class Calls:
    """How many calls compute and wait: ``RUNNING`` compute, ``WAITING`` queue, and their
    bodies together stay under ``MAX_WAITING_BYTES``."""

    def __init__(self, running: int = RUNNING, waiting: int = WAITING):
        self.slots = asyncio.Semaphore(running)
        self.running = 0
        self.waiting = 0
        self.waiting_bytes = 0
        self.max_waiting = waiting

    def admit(self, size: int) -> bool:
        full = self.slots.locked()  # every slot taken: this call would wait
        return not full or (self.waiting < self.max_waiting
                            and self.waiting_bytes + size <= MAX_WAITING_BYTES)

    @contextlib.asynccontextmanager
    async def slot(self, size: int):
        self.waiting += 1
        self.waiting_bytes += size
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
            self.waiting_bytes -= size
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self.slots.release()


class Guard:
    """ASGI middleware around xlwings Server's app."""

    def __init__(self, app, allowed_hosts=(), running: int = RUNNING, waiting: int = WAITING):
        self.app = app
        self.allowed = {hostname(h) for h in (*LOOPBACK, *allowed_hosts)}
        self.calls = None  # made on the server's event loop, at the first request
        self.limits = (running, waiting)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refused = self.refuse_host(scope)
        if refused:
            return await _answer(send, *refused) if scope["type"] == "http" else \
                await send({"type": "websocket.close", "code": 1008})
        if self.calls is None:
            self.calls = Calls(*self.limits)
        path = scope.get("path", "")
        if scope["type"] == "http" and path in MANIFEST_PATHS:
            return await self.serve_manifest(scope, send)
        if scope["type"] == "http" and path in ICONS:
            return await _answer(send, 200, ICONS[path], "image/png")
        if scope["type"] == "http" and path == STATUS_PATH:
            return await _answer(send, 200, json.dumps(
                {"running": self.calls.running, "waiting": self.calls.waiting}),
                "application/json")
        if scope["type"] == "http" and scope.get("method") == "POST" and \
                path.endswith(CALL_PATH):
            return await self.serve_call(scope, receive, send)
        return await self.app(scope, receive, send)

    async def serve_manifest(self, scope, send):
        """sheetdl's manifest for this server as the request names it: its Host (already
        checked) over https; over plain http there is none Office would load."""
        if scope.get("scheme") != "https":
            return await _answer(send, 404, "sheetdl serve: Office loads add-ins over HTTPS "
                                 "only; start sheetdl serve --https for a manifest Excel "
                                 "accepts (or write one with sheetdl addin manifest -o FILE)")
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        name = hostname(host) or "localhost"
        # the port the server listens on, not whatever follows a colon in the header
        port = (scope.get("server") or (None, 443))[1]
        text = manifest.manifest_xml(f"https://{f'[{name}]' if ':' in name else name}:{port}")
        disposition = [(b"content-disposition", b'attachment; filename="manifest.xml"')] \
            if scope["path"].endswith("/download") else []
        return await _answer(send, 200, text, "application/xml; charset=utf-8",
                             headers=disposition)

    def refuse_host(self, scope) -> tuple[int, str] | None:
        hosts = [v for k, v in scope.get("headers") or [] if k == b"host"]
        if len(hosts) > 1:  # RFC 9112 §3.2: a request with two Host fields is a 400
            return 400, "sheetdl serve: a request carries one Host header"
        host = hostname(hosts[0].decode("latin-1") if hosts else "")
        target = scope.get("raw_path") or b""
        if target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
            # an absolute-form target names the host it is for (RFC 9112 §3.2.2)
            host = hostname(target.split(b"/")[2].decode("latin-1"))
        if host not in self.allowed:
            return 403, (f"sheetdl serve: Host {host[:100]!r} is not allowed (allowed: "
                         f"{', '.join(sorted(self.allowed))}; add one with --allow-host)")
        return None

    async def serve_call(self, scope, receive, send):
        headers = dict(scope.get("headers") or [])
        if not _json_content(headers.get(b"content-type", b"")):
            return await _answer(send, *UNSUPPORTED)  # before a byte of the body is read
        try:
            size = int(headers.get(b"content-length", b"0"))
        except ValueError:
            size = 0
        if size > MAX_BODY:
            return await _answer(send, *_too_large())
        try:
            body = await _read(receive, MAX_BODY)
        except _TooLarge:
            return await _answer(send, *_too_large())
        call = check_call(body, headers.get(b"content-type", b""))
        if isinstance(call, tuple):
            return await _answer(send, *call)
        if not self.calls.admit(len(body)):
            return await _answer(send, 503, f"sheetdl serve: {self.calls.running} calls "
                                 f"running and {self.calls.waiting} waiting; try again in a "
                                 "second", headers=[(b"retry-after", b"1")])
        async with self.calls.slot(len(body)):
            await self.run_cancellable({**scope, PARSED: call}, body, receive, send)

    async def run_cancellable(self, scope, body, receive, send):
        """Run the app on a parsed call; if the client hangs up first, set the call's
        cancel token (its loop stops at its next step) and stop waiting for it."""
        hung_up = threading.Event()
        disconnected = asyncio.get_running_loop().create_future()

        async def watch():
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    hung_up.set()
                    disconnected.set_result(message)
                    return

        cancel.token.set(hung_up)  # copied into the app's task and its worker thread
        app = asyncio.ensure_future(self.app(scope, _replay(body, disconnected), send))
        watcher = asyncio.ensure_future(watch())
        try:
            await asyncio.wait([app, watcher], return_when=asyncio.FIRST_COMPLETED)
            if not app.done():  # the client left: nobody reads the answer
                app.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await app
        finally:
            watcher.cancel()


def _json_content(content_type: bytes) -> bool:
    kind = content_type.split(b";")[0].strip().lower()
    return kind == b"application/json" or kind.endswith(b"+json")


#: Where the Guard leaves a call it has parsed, for ``answer_calls``' route.
PARSED = "sheetdl.call"


def answer_calls(app) -> None:
    """Put a route for custom-function calls ahead of xlwings Server's own in its FastAPI
    ``app``: xlwings Server's endpoint itself (its user, its caller, its conversion of
    the arguments and of the result), called with the body the Guard parsed, its answer
    written by ``json.dumps``. FastAPI would parse the body again, then walk the answer
    with ``jsonable_encoder``, a Python call for every cell: 0.2 s of a 100,000-cell
    answer, three times the JSON itself."""
    from fastapi import Request, Response
    from xlwings_server import dependencies as dep
    from xlwings_server.config import settings
    from xlwings_server.routers import xlwings as routes

    # (this module does without `from __future__ import annotations`: FastAPI reads these
    # annotations at run time, and they name what is imported only here)
    async def call(request: Request, current_user: dep.User, redis_client: dep.RedisClient):
        data = request.scope.get(PARSED)
        if data is None:  # the app served without the Guard in front: it checks the same
            call = check_call(await request.body(),
                              request.headers.get("content-type", "").encode("latin-1"))
            if isinstance(call, tuple):
                return Response(call[1], status_code=call[0], media_type="text/plain")
            data = call
        result = await routes.custom_functions_call(current_user=current_user,
                                                    redis_client=redis_client, data=data)
        try:
            text = json.dumps(result, ensure_ascii=False, allow_nan=False,
                              separators=(",", ":"))
        except (TypeError, ValueError):
            return result  # what json cannot write, FastAPI's encoder does, as before
        return Response(text, media_type="application/json")

    app.router.add_api_route(settings.app_path + CALL_PATH, call, methods=["POST"])
    app.router.routes.insert(0, app.router.routes.pop())  # matched before xlwings Server's


async def _read(receive, limit: int) -> bytes:
    """The body, refused (``_TooLarge``) as soon as it passes ``limit`` bytes."""
    chunks, more, size = [], True, 0
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, disconnected):
    """A receive that hands the app the body already read, then waits for the
    disconnect that the Guard's watcher sees (one reader of the real channel)."""
    sent = False

    async def again():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await asyncio.shield(disconnected)

    return again


async def _answer(send, status: int, text: str, media: str = "text/plain; charset=utf-8",
                  headers=()) -> None:
    body = text if isinstance(text, bytes) else text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media.encode()),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})
