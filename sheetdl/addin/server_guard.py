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
"""

import inspect
import json

from . import udfs

CALL_PATH = "/xlwings/custom-functions-call"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


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


def check_call(body: bytes, content_type: bytes) -> tuple[int, str] | dict:
    """(status, message) refusing a custom-functions call, or the call, parsed, to let
    through."""
    if not _json_content(content_type):
        # a web page may POST text/plain to 127.0.0.1 with no CORS preflight; xlwings
        # Server's own route refuses what is not JSON too
        return 415, "sheetdl serve: a custom-functions call is sent as application/json"
    try:
        data = json.loads(body)
        name, args = data["func_name"], data["args"]
    except (ValueError, KeyError, TypeError):
        return 400, "not a custom-functions call: a JSON object with func_name and args"
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
    return data


class Guard:
    """ASGI middleware around xlwings Server's app."""

    def __init__(self, app, allowed_hosts=()):
        self.app = app
        self.allowed = {hostname(h) for h in (*LOOPBACK, *allowed_hosts)}

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        host = hostname(headers.get(b"host", b"").decode("latin-1"))
        if host not in self.allowed:
            return await _answer(send, 403, f"sheetdl serve: Host {host[:100]!r} is not "
                                 f"allowed (allowed: {', '.join(sorted(self.allowed))}; add "
                                 "one with --allow-host)") if scope["type"] == "http" else \
                await send({"type": "websocket.close", "code": 1008})
        if scope["type"] == "http" and scope.get("method") == "POST" and \
                scope.get("path", "").endswith(CALL_PATH):
            body = await _read(receive)
            call = check_call(body, headers.get(b"content-type", b""))
            if isinstance(call, tuple):
                return await _answer(send, *call)
            # parsed once: answer_calls reads it from the scope
            return await self.app({**scope, PARSED: call}, _replay(body, receive), send)
        return await self.app(scope, receive, send)


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


async def _read(receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive):
    """A receive that hands the app the body already read, then the real channel."""
    sent = False

    async def again():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def _answer(send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
