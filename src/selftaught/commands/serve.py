"""`selftaught serve`: an OpenAI-compatible HTTP server over `HFEngine`, on 127.0.0.1 by default:
completions and chat completions (streamed or not, lists of prompts, logprobs with top
alternatives), `/tokenize`, `/detokenize` and Prometheus `/metrics`, as vLLM serves them; the
fields honoured and refused are tabled in `engines/openai_protocol.py`.

`--model scripted:echo` serves `engines/echo.py`'s `EchoEngine` (it repeats the prompt, at almost no
cost) over the tiny world's tokenizer: for benchmarks and tests of the serving path, not a model.

Weight reload (`POST /v1/admin/reload`, for `RemoteSyncEngine`) is off unless `--allow-reload DIR`
names the directories it may load from, and it needs `--api-key-env`. The `--max-*` and
`--timeout-s` flags bound what one client may ask (see `engines/server.py` and `engines/http_server.py`).
"""

from __future__ import annotations

import argparse
import signal
from typing import Any

from selftaught.commands.common import add_model_arg, load_model_spec, require


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible HTTP API",
        description="/v1/models, /v1/completions and /v1/chat/completions (streamed or not, with "
        "logprobs and top logprobs), /tokenize, /detokenize and Prometheus /metrics over HFEngine; "
        "concurrent requests are batched together. `--model scripted:echo` serves a model that repeats "
        "its prompt (benchmarks and tests of the serving path).",
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
    p.add_argument(
        "--allow-reload",
        action="append",
        default=[],
        metavar="DIR",
        help="let POST /v1/admin/reload load model directories in or below DIR (repeatable; needs "
        "--api-key-env; default: reload is off)",
    )
    add_limit_args(p)
    p.set_defaults(func=cmd_serve)


LIMIT_FLAGS: list[tuple[str, type, float, str]] = [
    ("--max-n", int, 32, "most samples (n) per request"),
    ("--max-tokens", int, 4096, "most new tokens per sample (max_tokens)"),
    ("--max-prompt-tokens", int, 8192, "most tokens in a rendered prompt"),
    ("--max-body-bytes", int, 8 * 1024 * 1024, "largest request body in bytes; larger ones get a 413"),
    ("--timeout-s", float, 60.0, "socket timeout per read or write of a request"),
    ("--idle-timeout-s", float, 5.0, "a connection waiting for its next request closes after it"),
    (
        "--max-connections",
        int,
        256,
        "connections served at once, a thread each; a new one closes the longest idle one, else waits",
    ),
]
"""`(flag, type, default, help)` of the limits: the defaults of `RequestLimits` and `HttpLimits`, spelled
out so that building the parser imports no engine (a test checks that they agree)."""


def add_limit_args(p: argparse.ArgumentParser) -> None:
    """What one client may ask for: request sizes, timeouts, connections."""
    for flag, kind, default, text in LIMIT_FLAGS:
        p.add_argument(flag, type=kind, default=default, help=f"{text} (default: %(default)s)")


def check_serve_args(args: argparse.Namespace) -> None:
    """A ValueError naming the flag when a port, batch size, wait or limit is out of range."""
    require(0 <= args.port <= 65535, "--port", "between 0 and 65535 (0 picks a free one)", args.port)
    require(args.batch_size >= 1, "--batch-size", ">= 1", args.batch_size)
    require(args.max_wait_ms >= 0, "--max-wait-ms", ">= 0", args.max_wait_ms)
    for flag, _, _, _ in LIMIT_FLAGS:
        value = getattr(args, flag.removeprefix("--").replace("-", "_"))
        require(value > 0, flag, "> 0", value)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl+C or SIGTERM."""
    from selftaught.engines.http_server import HttpLimits
    from selftaught.engines.openai_protocol import RequestLimits
    from selftaught.engines.server import EngineServer, read_api_key

    # Before the slow model load: a missing key or a bad limit fails fast.
    check_serve_args(args)
    api_key = read_api_key(args.api_key_env)
    if args.allow_reload and api_key is None:
        raise ValueError("--allow-reload needs --api-key-env: reload loads files from the server's disk")
    request_limits = RequestLimits(args.max_n, args.max_tokens, args.max_prompt_tokens)
    http_limits = HttpLimits(args.max_body_bytes, args.timeout_s, args.idle_timeout_s, args.max_connections)
    engine, tokenizer = serve_engine(args.model, args.batch_size)
    name = args.served_model_name or args.model
    server = EngineServer(
        engine,
        tokenizer,
        name,
        host=args.host,
        port=args.port,
        api_key=api_key,
        max_wait_s=args.max_wait_ms / 1000,
        default_max_tokens=min(256, request_limits.max_tokens),
        allow_reload=args.allow_reload,
        request_limits=request_limits,
        http_limits=http_limits,
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


def serve_engine(model: str, batch_size: int) -> tuple[Any, Any]:
    """`(engine, tokenizer)` for `--model`: an `HFEngine`, or the echo engine for `scripted:echo`."""
    from selftaught.engines.echo import ECHO_MODEL, echo_engine

    if model == ECHO_MODEL:
        return echo_engine()
    from selftaught.engines.hf import HFEngine

    hf_model, tokenizer = load_model_spec(model)
    return HFEngine(hf_model, tokenizer, batch_size=batch_size), tokenizer
