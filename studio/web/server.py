"""The studio served to browsers with textual-serve: each websocket runs one studio process.

textual-serve's Server and AppService, with what `ai-writer serve` needs on top:
- every request passes access.Access (token, Origin and Host checks) before any handler;
- the studio is started from an argument list (no shell), in a session of its own;
- a closed tab (or the server stopping) sends the studio SIGHUP, which saves the manuscript
  as after a dropped SSH connection; textual-serve's own "quit" would exit without saving;
- the page's websocket address comes from the request (right for port 0, 0.0.0.0 and any
  name the browser used), and the page loads nothing from other sites (no web font).
Of textual-serve's internals this uses AppService._open_app_process, _build_environment, _process,
_task, _stdin and _download_manager, and Server._make_app (pyproject pins textual-serve below 2).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal

import aiohttp_jinja2
from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from ai_writer.studio.web.access import Access, is_https
from ai_writer.studio.web.child import PARENT_ENV

log = logging.getLogger("textual-serve")

HANG_UP = getattr(signal, "SIGHUP", signal.SIGTERM)
SAVE_WAIT = 30.0  # seconds a studio has to save and exit after the hang-up, before it is killed
_EXTERNAL_FONT = re.compile(r'\s*<link[^>]*fonts\.googleapis\.com[^>]*>', re.S)


class StudioSession(AppService):
    """One studio process for one websocket."""

    def __init__(self, argv: list[str], **kwargs):
        super().__init__(" ".join(argv), **kwargs)
        self.argv = argv
        self.exited = False  # the studio said it is exiting (the author quit in the tab)

    async def _open_app_process(self, width: int = 80, height: int = 24):
        environment = self._build_environment(width=width, height=height)
        environment[PARENT_ENV] = str(os.getpid())
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=environment,
            start_new_session=True)  # not in the server's terminal: Ctrl+C there reaches the server only
        self._stdin = process.stdin
        return process

    async def run(self) -> None:
        await super().run()
        await self.remote_close()  # the studio ended (or never started): the tab shows "Session ended"

    async def on_data(self, payload: bytes) -> None:
        try:
            await super().on_data(payload)
        except (ConnectionError, RuntimeError):  # the tab is gone: keep reading, so the studio never blocks writing
            pass

    async def on_meta(self, data: bytes) -> None:
        if json.loads(data).get("type") == "exit":
            self.exited = True
        try:
            await super().on_meta(data)
        except (ConnectionError, RuntimeError):
            pass

    async def stop(self) -> None:
        """Hang up on the studio (it saves and exits) and wait for it; killed if it takes over SAVE_WAIT."""
        task, self._task = self._task, None
        if task is None:
            return
        await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
        process = self._process
        if not self.exited and process.returncode is None:
            try:
                process.send_signal(HANG_UP)
            except ProcessLookupError:
                pass
        try:
            await asyncio.wait_for(asyncio.shield(task), SAVE_WAIT)
            await asyncio.wait_for(process.wait(), SAVE_WAIT)
        except asyncio.TimeoutError:
            log.warning("a studio (process %s) did not exit %s s after the hang-up: killed", process.pid, SAVE_WAIT)
            try:
                process.kill()
            except ProcessLookupError:
                pass
            await task


class StudioWebServer(Server):
    """`argv` is run once per browser connection; access decides who may connect."""

    def __init__(self, argv: list[str], access: Access, host: str, port: int, title: str):
        super().__init__(" ".join(argv), host=host, port=port, title=title)
        self.argv = argv
        self.access = access
        self.sessions: set[StudioSession] = set()
        self._runner: web.AppRunner | None = None

    # -- running -------------------------------------------------------------

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guard)
        return app

    async def start(self) -> int:
        """Listen (port 0: any free one) and return the port."""
        self._runner = web.AppRunner(await self._make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self.port = self.access.port = self._runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()  # on_shutdown below hangs up on every studio first

    def run(self, on_ready=None) -> None:
        """Serve until Ctrl+C, SIGTERM or SIGHUP; on_ready(port) once listening."""
        async def main():
            port = await self.start()
            stopping = asyncio.Event()
            loop = asyncio.get_running_loop()
            for name in ("SIGINT", "SIGTERM", "SIGHUP"):
                if hasattr(signal, name):
                    try:
                        loop.add_signal_handler(getattr(signal, name), stopping.set)
                    except (NotImplementedError, RuntimeError):
                        pass
            if on_ready is not None:
                on_ready(port)
            try:
                await stopping.wait()
            finally:
                await self.stop()

        asyncio.run(main())

    async def on_startup(self, app: web.Application) -> None:
        pass  # the command prints its own lines (textual-serve prints a logo)

    async def on_shutdown(self, app: web.Application) -> None:
        await asyncio.gather(*(session.stop() for session in list(self.sessions)), return_exceptions=True)

    # -- handlers ------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        refusal = self.access.refusal(request)
        if refusal is not None:
            return web.Response(status=403, text=refusal + "\n")
        if request.method == "GET" and request.path == "/" and self.access.token_in_query(request):
            return self.access.redirect_with_cookie(request)
        return await handler(request)

    async def handle_index(self, request: web.Request) -> web.Response:
        """textual-serve's page, its websocket address taken from the address the browser used."""
        scheme = "wss" if is_https(request) else "ws"
        context = {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{scheme}://{request.host}/ws",
            "config": {"static": {"url": "/static/"}},
            "application": {"name": self.title},
        }
        page = aiohttp_jinja2.render_string("app_index.html", request, context)
        headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",  # no framing by other sites:
                   "Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY"}
        return web.Response(text=_EXTERNAL_FONT.sub("", page), content_type="text/html", headers=headers)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """textual-serve's handler, with a StudioSession kept in self.sessions while it runs."""
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        session: StudioSession | None = None
        try:
            await websocket.prepare(request)
            session = StudioSession(self.argv, write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                                    close=websocket.close, download_manager=self.download_manager)
            self.sessions.add(session)
            await session.start(width, height)
            await self._process_messages(websocket, session)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception as error:  # one line in the server's log; the studio still gets its hang-up below
            log.error("a browser connection failed: %s", error)
        finally:
            if session is not None:
                await session.stop()
                self.sessions.discard(session)
        return websocket

    async def _process_messages(self, websocket: web.WebSocketResponse, session: StudioSession) -> None:
        """The browser's messages (keys, size, focus); anything malformed is skipped."""
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = json.loads(message.data)
                kind, data = (envelope + [None])[:2] if isinstance(envelope, list) else (None, None)
                if kind == "stdin" and isinstance(data, str):
                    await session.send_bytes(data.encode("utf-8"))
                elif kind == "resize" and isinstance(data, dict):
                    await session.set_terminal_size(int(data["width"]), int(data["height"]))
                elif kind == "ping":
                    await websocket.send_json(["pong", data])
                elif kind == "blur":
                    await session.blur()
                elif kind == "focus":
                    await session.focus()
            except (ValueError, KeyError, TypeError):
                continue
