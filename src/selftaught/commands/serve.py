"""`selftaught serve`: an OpenAI-compatible HTTP server over `HFEngine`, on 127.0.0.1 by default."""

from __future__ import annotations

import argparse
import signal
from typing import Any

from selftaught.commands.common import add_model_arg, load_model_spec


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible HTTP API",
        description="/v1/models, /v1/completions and /v1/chat/completions (non-streaming, "
        "with logprobs) over HFEngine; concurrent requests are batched together.",
    )
    add_model_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1: this machine)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--served-model-name", default=None, help="model name clients send (default: --model)")
    p.add_argument(
        "--api-key-env",
        default=None,
        help="environment variable holding the key clients must send as a bearer token (default: none)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="sequences decoded together")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="batching window in ms (default: 5)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl+C or SIGTERM."""
    from selftaught.engines.hf import HFEngine
    from selftaught.engines.server import EngineServer, read_api_key

    api_key = read_api_key(args.api_key_env)  # before the slow model load: a missing key fails fast
    model, tokenizer = load_model_spec(args.model)
    engine = HFEngine(model, tokenizer, batch_size=args.batch_size)
    name = args.served_model_name or args.model
    max_wait_s = args.max_wait_ms / 1000
    server = EngineServer(
        engine, tokenizer, name, host=args.host, port=args.port, api_key=api_key, max_wait_s=max_wait_s
    )
    # Ctrl+C and SIGTERM stop it, also when started as a shell's background job (SIGINT ignored)
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.default_int_handler)
    print(f"serving {name!r} at {server.url} (Ctrl+C or SIGTERM stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
