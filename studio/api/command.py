"""`ai-writer serve-api [--host H] [--port P] [--api-key KEY] [--cors ORIGIN] [--queue N] [--model PATH] [--device D]`.

Loopback only unless told otherwise; any other host needs --api-key (checked as Authorization: Bearer).
aiohttp is imported only when the command runs.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

DEFAULT_PORT = 8000


def add_parser(sub, add_model_options) -> None:
    serve = sub.add_parser("serve-api", help="serve the model as an OpenAI-compatible completions API (/v1)")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the port (default {DEFAULT_PORT}; 0: any free one)")
    serve.add_argument("--api-key", metavar="KEY", help="required of clients as 'Authorization: Bearer KEY' "
                                                         "(needed for any host but loopback)")
    serve.add_argument("--cors", metavar="ORIGIN", help="let web pages from ORIGIN (or '*': any) call the API from a "
                                                        "browser, as mikupad does (default: none)")
    serve.add_argument("--queue", type=int, default=8, metavar="N",
                       help="requests that may wait behind the running one (default 8; more get 429)")
    add_model_options(serve)
    serve.set_defaults(run=command_serve_api)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def command_serve_api(args) -> int:
    from ai_writer.studio.cli import UserError, open_engine
    from ai_writer.studio.config import load_config
    from ai_writer.studio.generation_setup import make_service

    if not is_loopback(args.host) and not args.api_key:
        raise UserError(f"--host {args.host} lets other machines in: give an --api-key they must send")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port} is outside 0..65535")
    if args.queue < 0:
        raise UserError(f"--queue {args.queue} must be 0 or more")
    try:
        from ai_writer.studio.api.server import ApiServer
    except ImportError as exc:
        raise UserError(f"serve-api needs aiohttp (pip install 'aiohttp>=3.9'): {exc}") from None
    config = load_config(args.config)
    engine = open_engine(config, args.model, args.device)
    service = make_service(config, engine)
    model_id = Path(engine.info.model_path).stem if engine.info.model_path else "ai-writer"
    server = ApiServer(service, model_id, config.sampling.settings, api_key=args.api_key, queue_size=args.queue,
                       cors_origin=args.cors)

    def ready(port: int) -> None:
        print(f"serving {model_id} at http://{args.host}:{port}/v1 (Ctrl+C stops)", flush=True)

    try:
        server.run(args.host, args.port, on_ready=ready)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        service.close(wait=True)
    return 0
