"""distilabel doing the generation step of `pipeline_throughput.py`, in its own virtual environment.

Run by `pipeline_throughput.py --peer-python VENV/bin/python` (distilabel and selftaught need not
share an environment). Reads the instructions that our pipeline renders (a JSONL file of
`{"instruction": ...}`), runs one distilabel pipeline `LoadDataFromDicts >> TextGeneration(OpenAILLM)`
against the same server, and prints one JSON line: distilabel's version, the wall time of
`Pipeline.run` (distilabel's process start-up included: a user pays it), how many generations
came back non-empty, and how many equal their prompt (the echo model's answer).
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--input", required=True, help="JSONL file of {'instruction': ...}")
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--batch-size", type=int, default=32, help="TextGeneration input_batch_size")
    p.add_argument("--max-tokens", type=int, default=512)
    args = p.parse_args()

    import distilabel
    from distilabel.models.llms import OpenAILLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import TextGeneration

    with open(args.input, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    with Pipeline(name="selftaught-bench") as pipeline:
        load = LoadDataFromDicts(data=rows, batch_size=args.batch_size)
        llm = OpenAILLM(model=args.model, base_url=args.base_url, api_key="unused", max_retries=3)
        generate = TextGeneration(llm=llm, input_batch_size=args.batch_size, add_raw_output=False)
        load >> generate
    start = time.perf_counter()
    distiset = pipeline.run(
        use_cache=False,
        parameters={generate.name: {"llm": {"generation_kwargs": {"max_new_tokens": args.max_tokens}}}},
    )
    seconds = time.perf_counter() - start
    generations = distiset["default"]["train"]["generation"]
    instructions = distiset["default"]["train"]["instruction"]
    print(
        json.dumps(
            {
                "peer": "distilabel",
                "version": distilabel.__version__,
                "seconds": seconds,
                "num_rows": len(generations),
                "num_generations": sum(bool(g) for g in generations),
                "num_echoed": sum(g == i for g, i in zip(generations, instructions, strict=True)),
            }
        )
    )


if __name__ == "__main__":
    main()
