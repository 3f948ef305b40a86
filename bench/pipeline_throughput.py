"""Questions per second through a whole generate + parse pipeline against a local `selftaught serve`
with a scripted fast model (`--model scripted:echo`, which repeats its prompt): our stages on the
local executor and on Ray, and distilabel doing the generation step on the same server, in one run.

    python bench/pipeline_throughput.py --docs 2000 --peer-python /path/to/distilabel-venv/bin/python

Ours is the shipped code: `pipelines.stages.generate` (the question template rendered on each
document, `OpenAIEngine` over the server(s), resumable shards) then `pipelines.stages.parse` (a
strict question parser, failures counted), each a stage directory written in a fresh temporary
directory (so nothing comes from a cache). A question is a parsed, non-None output. The clock runs
from the first stage's call to the second's return; Ray is initialised and its workers warmed up
on a 2-document stage before the clock starts. distilabel (`bench/peer_distilabel.py`, run with
`--peer-python`, its own virtual environment) gets the same rendered prompts, the same server, the
same `max_tokens` and `--max-concurrency` as its `input_batch_size`, and is timed over
`Pipeline.run`; it only generates (no parse, no shards), so the ratio favours it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from harness import cpu_model, load_average

from selftaught.data.executors import RayExecutor
from selftaught.data.templates import PromptTemplate
from selftaught.engines.base import SamplingParams
from selftaught.engines.openai import OpenAIConfig, OpenAIEngine
from selftaught.pipelines.stages import generate, parse

MODEL = "echo"
TEMPLATE = PromptTemplate(
    "bench-question",
    1,
    "Document: {document}\nWrite one question that the document answers.\nQuestion: What does it say about {topic}?",
    ("document", "topic"),
)
QUESTION = re.compile(r"Question: (.+\?)\s*$")
SAMPLING = SamplingParams(temperature=1.0, max_new_tokens=512)


def parse_question(text: str) -> str | None:
    """The question on the reply's last line, or None."""
    match = QUESTION.search(text)
    return match.group(1) if match else None


def make_documents(num: int) -> list[dict[str, Any]]:
    topics = ["rivers", "prime numbers", "bridges", "tides", "compilers", "bees", "glaciers", "markets"]
    return [
        {
            "id": f"doc-{i}",
            "topic": topics[i % len(topics)],
            "document": f"Document {i} is about {topics[i % len(topics)]}. "
            + "It explains a step. " * (5 + i % 7),
        }
        for i in range(num)
    ]


@contextmanager
def echo_server() -> Iterator[str]:
    """`selftaught serve --model scripted:echo` on a free loopback port; its base URL."""
    command = [sys.executable, "-m", "selftaught.cli", "serve", "--model", "scripted:echo", "--port", "0"]
    command += ["--served-model-name", MODEL]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        match = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", process.stdout.readline())
        if not match:
            raise RuntimeError(f"selftaught serve did not start (exit code {process.poll()})")
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_ours(
    out_dir: Path, docs: list[dict], urls: list[str], executor: Any, args: argparse.Namespace
) -> dict:
    """Seconds and counts of one generate + parse pipeline over `docs`."""
    engine = OpenAIEngine(OpenAIConfig(model=MODEL, base_url=urls, max_concurrency=args.max_concurrency))
    start = time.perf_counter()
    made = generate(
        out_dir / "questions", docs, engine, TEMPLATE, SAMPLING,
        generator=MODEL, seed=0, shard_size=args.shard_size, executor=executor,
    )  # fmt: skip
    parsed, counts = parse(
        out_dir / "parsed", made, parse_question, parser_name="bench-question@1",
        shard_size=args.shard_size, executor=executor,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "questions": counts["num_outputs"] - counts["num_unparsed"],
        "rows": len(parsed),
    }


def run_distilabel(work: Path, docs: list[dict], url: str, args: argparse.Namespace) -> dict:
    """distilabel's `TextGeneration` over the same rendered prompts, in `--peer-python`."""
    instructions = work / "instructions.jsonl"
    with instructions.open("w", encoding="utf-8") as f:
        for doc in docs:
            [message] = TEMPLATE.render_messages({"document": doc["document"], "topic": doc["topic"]})
            f.write(json.dumps({"instruction": message["content"]}) + "\n")
    command = [
        args.peer_python,
        str(Path(__file__).with_name("peer_distilabel.py")),
        "--input",
        str(instructions),
    ]
    command += ["--base-url", url, "--model", MODEL, "--batch-size", str(args.max_concurrency)]
    command += ["--max-tokens", str(SAMPLING.max_new_tokens)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=work, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"distilabel failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["num_echoed"] != result["num_generations"]:
        raise RuntimeError(
            f"distilabel: {result['num_echoed']} of {result['num_generations']} generations are the echo"
        )
    return {**result, "questions": result["num_generations"], "rows": result["num_rows"]}


def warm_up_ray(work: Path, urls: list[str], args: argparse.Namespace) -> None:
    import ray

    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    run_ours(work / "ray-warm-up", make_documents(2), urls, RayExecutor(), args)


def print_table(rows: dict[str, list[dict]], num_docs: int) -> None:
    """One row per contender: the median of its repeats (every repeat's seconds listed)."""
    print(
        "\n| contender | documents | questions | seconds (each repeat) | questions/s (median) | vs distilabel |"
    )
    print("|---|---|---|---|---|---|")
    rates = {
        name: statistics.median(r["questions"] / r["seconds"] for r in runs) for name, runs in rows.items()
    }
    peer = next((rate for name, rate in rates.items() if name.startswith("distilabel")), None)
    for name, runs in rows.items():
        seconds = ", ".join(f"{r['seconds']:.1f}" for r in runs)
        ratio = f"{rates[name] / peer:.2f}x" if peer else "-"
        print(f"| {name} | {num_docs} | {runs[0]['questions']} | {seconds} | {rates[name]:.1f} | {ratio} |")


def run_contenders(
    work: Path, docs: list[dict], urls: list[str], contenders: list[str], args: argparse.Namespace
) -> Iterator[tuple[str, dict]]:
    """One run of each contender, in the order given, each in a fresh directory."""
    for contender in contenders:
        if contender == "local":
            yield "selftaught, local executor", run_ours(work / "local", docs, urls, None, args)
        elif contender == "ray":
            result = run_ours(work / "ray", docs, urls, RayExecutor(), args)
            yield f"selftaught, Ray executor ({args.ray_cpus} CPUs)", result
        elif contender == "distilabel":
            (work / "distilabel").mkdir(parents=True)
            result = run_distilabel(work / "distilabel", docs, urls[0], args)
            yield f"distilabel {result['version']} (generation only)", result
        else:
            raise SystemExit(f"unknown contender {contender!r}; use local, ray, distilabel")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=2000, help="documents (one question each)")
    p.add_argument("--shard-size", type=int, default=250, help="records per shard (both stages)")
    p.add_argument("--max-concurrency", type=int, default=32, help="requests in flight per server / task")
    p.add_argument("--servers", type=int, default=1, help="echo servers (a fleet when > 1)")
    p.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    p.add_argument("--contenders", default="local,ray,distilabel", help="comma-separated subset")
    p.add_argument("--peer-python", default=None, help="python of a venv with distilabel (and openai)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each contender, alternating")
    args = p.parse_args()
    contenders = args.contenders.split(",")
    import ray

    print(
        f"{cpu_model()}, {os.cpu_count()} CPUs, load {load_average():.1f}; Python {sys.version.split()[0]}, ray {ray.__version__}"
    )
    docs = make_documents(args.docs)
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        work = Path(tmp)
        urls = [stack.enter_context(echo_server()) for _ in range(args.servers)]
        if "ray" in contenders:
            warm_up_ray(work, urls, args)
        if "distilabel" in contenders and args.peer_python is None:
            raise SystemExit("--peer-python is needed for distilabel (a venv with distilabel and openai)")
        for repeat in range(args.repeats):
            for name, result in run_contenders(work / f"repeat-{repeat}", docs, urls, contenders, args):
                rows.setdefault(name, []).append(result)
    print(
        f"{args.servers} echo server(s), shard size {args.shard_size}, {args.max_concurrency} requests in flight"
    )
    print_table(rows, len(docs))


if __name__ == "__main__":
    main()
