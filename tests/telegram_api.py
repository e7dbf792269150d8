"""A local HTTP server that speaks the Telegram Bot API (https://core.telegram.org/bots/api) for
the methods our bot uses, so the bot can be tested as it runs against Telegram: over HTTP, through
its own library, with no shortcut into its code.

Implemented as documented: ``https://<host>/bot<token>/<method>``, parameters in the query string,
``application/x-www-form-urlencoded`` (objects JSON-serialized), ``multipart/form-data`` or JSON;
answers ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description"}``.
Methods: getMe, deleteWebhook, getUpdates (long polling with offset, limit, timeout),
sendMessage, answerCallbackQuery, editMessageReplyMarkup, setMyCommands. Updates are queued by
the test (a user's message, or a press on an inline button) and carry what Telegram attaches
(``bot_command`` entities, the message a callback belongs to).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

OBJECT_PARAMS = {"reply_markup", "allowed_updates", "link_preview_options", "commands", "entities"}
BOT = {"id": 4242, "is_bot": True, "first_name": "Recommender", "username": "recommender_bot"}


class FakeTelegram:
    """Run with :meth:`start` (a thread with its own event loop); stop with :meth:`stop`."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[tuple[str, dict[str, Any]]] = []  # every method call, in order
        self._updates: list[dict[str, Any]] = []
        self._next_update = 1
        self._next_message = 1
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._open_callbacks: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = False  # a long poll in flight answers at once (teardown took 10 s)
        self._arrived: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    # -- the HTTP side -------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
            return params
        if request.can_read_body:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        for name in OBJECT_PARAMS & params.keys():
            if isinstance(params[name], str):
                params[name] = json.loads(params[name])
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await self._params(request)
        with self._lock:
            self.calls.append((method, params))
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        try:
            result = await handler(params)
        except BadRequest as exc:
            return _error(400, f"Bad Request: {exc}")
        return web.json_response({"ok": True, "result": result})

    async def _m_getMe(self, params: dict[str, Any]) -> Any:
        return BOT

    async def _m_deleteWebhook(self, params: dict[str, Any]) -> Any:
        return True

    async def _m_setMyCommands(self, params: dict[str, Any]) -> Any:
        return True

    async def _m_getUpdates(self, params: dict[str, Any]) -> Any:
        offset = int(params.get("offset", 0))
        limit = max(1, min(100, int(params.get("limit", 100))))
        timeout = float(params.get("timeout", 0))
        deadline = time.monotonic() + timeout
        assert self._arrived is not None
        while True:
            with self._lock:
                if offset:  # confirms every update below it
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                ready = self._updates[:limit]
            if ready or time.monotonic() >= deadline or self._stopping:
                return ready
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), deadline - time.monotonic())

    async def _m_sendMessage(self, params: dict[str, Any]) -> Any:
        chat = int(params["chat_id"])
        text = str(params.get("text", ""))
        if not text.strip():
            raise BadRequest("message text is empty")
        if len(text) > 4096:
            raise BadRequest("message is too long")
        markup = params.get("reply_markup")
        _check_markup(markup)
        with self._lock:
            message = {
                "message_id": self._next_message,
                "from": BOT,
                "chat": {"id": chat, "type": "private", "first_name": "Tester"},
                "date": int(time.time()),
                "text": text,
            }
            if markup:
                message["reply_markup"] = markup
            self._messages[(chat, self._next_message)] = message
            self._next_message += 1
        return message

    async def _m_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        query = str(params.get("callback_query_id", ""))
        with self._lock:
            if query not in self._open_callbacks:
                raise BadRequest(
                    "query is too old and response timeout expired or query ID is invalid"
                )
            self._open_callbacks.discard(query)
        if len(str(params.get("text", ""))) > 200:
            raise BadRequest("text is too long")
        return True

    async def _m_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        key = (int(params["chat_id"]), int(params["message_id"]))
        markup = params.get("reply_markup") or None
        _check_markup(markup)
        with self._lock:
            message = self._messages.get(key)
            if message is None:
                raise BadRequest("message to edit not found")
            if message.get("reply_markup") == markup:
                raise BadRequest("message is not modified")
            message.pop("reply_markup", None)
            if markup:
                message["reply_markup"] = markup
            return dict(message)

    # -- the test side -------------------------------------------------------------------------

    def _queue(self, update: dict[str, Any]) -> None:
        with self._lock:
            update["update_id"] = self._next_update
            self._next_update += 1
            self._updates.append(update)
        assert self._loop is not None and self._arrived is not None
        self._loop.call_soon_threadsafe(self._arrived.set)

    def queue_raw(self, update: dict[str, Any]) -> None:
        """Hand out ``update`` as it is (given the next ``update_id``): a malformed update, or
        one of a kind the library does not know, as Telegram may send."""
        self._queue(dict(update))

    def user_says(self, chat: int, text: str) -> None:
        """A user sends ``text`` in a private chat (commands get their ``bot_command`` entity)."""
        user = {"id": chat, "is_bot": False, "first_name": "Tester"}
        with self._lock:
            message_id = self._next_message
            self._next_message += 1
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": user,
            "chat": {"id": chat, "type": "private", "first_name": "Tester"},
            "date": int(time.time()),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        self._queue({"message": message})

    def user_presses(self, chat: int, message_id: int, data: str) -> None:
        """A user presses the inline button with callback data ``data`` under a bot message."""
        with self._lock:
            message = dict(self._messages[(chat, message_id)])
            query = f"cb{self._next_update}"
            self._open_callbacks.add(query)
        self._queue(
            {
                "callback_query": {
                    "id": query,
                    "from": {"id": chat, "is_bot": False, "first_name": "Tester"},
                    "message": message,
                    "chat_instance": f"ci{chat}",
                    "data": data,
                }
            }
        )

    def wait_for(
        self, method: str, check: Callable[[dict[str, Any]], bool], *, after: int = 0,
        timeout: float = 20.0,
    ) -> tuple[int, dict[str, Any]]:  # fmt: skip
        """The first call of ``method`` at or after call index ``after`` whose params pass
        ``check``; returns (its index, its params)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                calls = list(enumerate(self.calls))[after:]
            for index, (name, params) in calls:
                if name == method and check(params):
                    return index, params
            time.sleep(0.05)
        with self._lock:
            seen = [(n, p.get("text", "")) for n, p in self.calls[after:]]
        raise AssertionError(f"no {method} as expected within {timeout:.0f}s; calls: {seen}")

    def sent_message(self, params: dict[str, Any]) -> dict[str, Any]:
        """The stored message a sendMessage call created (to press its buttons)."""
        with self._lock:
            for message in self._messages.values():
                if (
                    message["chat"]["id"] == int(params["chat_id"])
                    and message["text"] == params["text"]
                ):
                    return dict(message)
        raise KeyError(params["text"])

    def start(self) -> None:
        started = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._arrived = asyncio.Event()
            app = web.Application()
            app.router.add_route("*", "/bot{token}/{method}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        started.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def stop(self) -> None:
        assert self._loop is not None and self._arrived is not None
        self._stopping = True
        self._loop.call_soon_threadsafe(self._arrived.set)
        future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        future.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class BadRequest(Exception):
    pass


def _error(code: int, description: str) -> web.Response:
    return web.json_response(
        {"ok": False, "error_code": code, "description": description}, status=code
    )


def _check_markup(markup: Any) -> None:
    if not markup:
        return
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list):
        raise BadRequest("can't parse reply keyboard markup JSON object")
    for row in rows:
        for button in row:
            if not button.get("text"):
                raise BadRequest("text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(data.encode()) <= 64:
                raise BadRequest("BUTTON_DATA_INVALID")
