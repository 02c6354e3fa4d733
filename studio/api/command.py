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
    from ai_writer.studio.i18n import choose_language, set_language, tr

    config = load_config(args.config)
    set_language(choose_language(config.studio.language))
    if not is_loopback(args.host) and not args.api_key:
        raise UserError(tr("api_needs_key", host=args.host))
    if not 0 <= args.port <= 65535:
        raise UserError(tr("api_bad_port", port=args.port))
    if args.queue < 0:
        raise UserError(tr("api_bad_queue", queue=args.queue))
    try:
        from ai_writer.studio.api.server import ApiServer
    except ImportError as exc:
        raise UserError(tr("api_no_aiohttp", error=exc)) from None
    engine = open_engine(config, args.model, args.device, args.state)
    service = make_service(config, engine)
    model_id = Path(engine.info.model_path).stem if engine.info.model_path else "ai-writer"
    server = ApiServer(service, model_id, config.sampling.settings, api_key=args.api_key, queue_size=args.queue,
                       cors_origin=args.cors)

    def ready(port: int) -> None:
        print(tr("api_serving", model=model_id, url=f"http://{args.host}:{port}/v1"), flush=True)

    try:
        server.run(args.host, args.port, on_ready=ready)
    except OSError as exc:
        raise UserError(tr("api_cannot_listen", host=args.host, port=args.port, error=exc.strerror or exc)) from None
    except KeyboardInterrupt:
        print(tr("api_stopped"), file=sys.stderr)
    finally:
        service.close(wait=True)
    return 0
