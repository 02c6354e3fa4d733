"""`ai-writer serve [FILE] [--host H] [--port P] [--token]`: the studio in a browser tab.

Each browser connection runs one studio on FILE (the terminal studio, with Textual's web
driver), so the terminal's rules hold: the first studio on a file locks it, a second opens it
read-only, a closed tab saves. Loopback only unless told otherwise; any other host gets a token
(studio/web/access.py). textual-serve is imported only when the command runs.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

DEFAULT_PORT = 8001  # serve-api's is 8000: both can run at once


def add_parser(sub) -> None:
    serve = sub.add_parser("serve", help="serve the studio to a web browser (one studio per browser tab)")
    serve.add_argument("file", nargs="?", help="a UTF-8 manuscript (.txt/.md); each tab starts a new one if left out")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default 127.0.0.1, this machine only; any other needs a token, "
                            "which is then made and printed)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"the port (default {DEFAULT_PORT}; 0: any free one)")
    serve.add_argument("--token", action="store_true",
                       help="ask for a token on loopback too (other users of this machine can reach 127.0.0.1; "
                            "needed behind a reverse proxy)")
    serve.set_defaults(run=command_serve)


def studio_argv(config: str | None, file: str | None) -> list[str]:
    """The command line each connection runs: this Python, the studio's main(), the same config and file."""
    argv = [sys.executable, "-m", "ai_writer.studio.web.child"]
    if config:
        argv += ["--config", str(Path(config).expanduser().resolve())]
    if file:
        argv.append(str(Path(file).expanduser().resolve()))  # absolute: never read as a command name
    return argv


def shown_host(host: str) -> str:
    """The host to put in printed URLs: this machine's name for a wildcard address."""
    if host in ("0.0.0.0", "::", ""):
        return socket.gethostname() or "localhost"
    return f"[{host}]" if ":" in host else host


def command_serve(args) -> int:
    from ai_writer.studio.cli import UserError, check_studio_file
    from ai_writer.studio.config import load_config

    load_config(args.config)  # a broken config: one line now, not a blank tab later
    if args.file is not None:
        check_studio_file(Path(args.file))
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port} is outside 0..65535")
    try:
        from ai_writer.studio.web.access import Access, is_loopback, new_token
        from ai_writer.studio.web.server import StudioWebServer
    except ImportError as exc:
        raise UserError(f"serve needs textual-serve (pip install 'textual-serve>=1.1'): {exc}") from None
    loopback = is_loopback(args.host)
    token = new_token() if args.token or not loopback else None
    what = Path(args.file).name if args.file else "a new manuscript per tab"
    server = StudioWebServer(studio_argv(args.config, args.file), Access(token, loopback), args.host, args.port,
                             title=f"AI-Writer Studio · {what}")

    def ready(port: int) -> None:
        url = f"http://{shown_host(args.host)}:{port}/"
        print(f"serving the studio on {args.file or 'a new manuscript per tab'} at {url} (Ctrl+C stops)", flush=True)
        if token is not None:
            why = "--token" if loopback else f"--host {args.host} is not loopback"
            print(f"a token is required ({why}); it is printed once, here: open {url}?token={token}", flush=True)

    try:
        server.run(on_ready=ready)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    print("stopped", file=sys.stderr)
    return 0
