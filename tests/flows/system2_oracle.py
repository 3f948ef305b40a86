"""A scripted System 1 / System 2 of the System 2 world, for the system2-distill flow's tests.

`OracleEngine` answers `<s1> x` with the world's System 1 heuristics and `<s2> x` with the
scratchpad, slipping on each step with probability `noise` when sampled (T > 0; greedy never slips;
a random stream per prompt and sample),
names the response with the majority answer when asked for universal self-consistency,
and gives each completion one token per character, so costs are not zero. `patch(base)` makes the
flow use it for the model `base` and a real `HFEngine` for any other model (the distilled one).

Run as a script, it is the CLI with that patch: `python tests/flows/system2_oracle.py BASE args...`
(the kill -9 test's subprocesses).
"""

from __future__ import annotations

import random
import re
import sys
from collections import Counter

from selftaught.types import Completion
from selftaught.world import system2 as world


class OracleEngine:
    def __init__(self, noise: float = 0.1) -> None:
        self.noise, self.calls = noise, 0

    def generate(self, prompts, sampling):
        self.calls += 1
        noise = self.noise if sampling.temperature > 0 else 0.0  # greedy: the mode, no slips
        return [[self._complete(p, j, sampling.seed, noise) for j in range(sampling.n)] for p in prompts]

    def _complete(self, prompt, j, seed, noise):
        if prompt.messages[-1]["content"].startswith("I have generated"):  # USC: name a majority response
            return self._usc(prompt)
        mode, text = prompt.messages[-1]["content"].split(" ", 1)
        question = world.parse_question(text)
        rng = random.Random(f"{seed}|{prompt.id}|{j}")
        out = world.s1_target(question) if mode == "<s1>" else world.s2_target(question, rng, noise)
        return Completion(prompt.id, out, token_ids=list(range(len(out))), finish_reason="stop")

    def _usc(self, prompt):
        responses = re.findall(r"Response \d+: .*?Answer: (\w+)", prompt.messages[-1]["content"])
        best = Counter(responses).most_common(1)[0][0]
        out = f"The most consistent response is Response {responses.index(best) + 1}"
        return Completion(prompt.id, out, token_ids=list(range(len(out))), finish_reason="stop")


def patch(base: str, noise: float = 0.1, monkeypatch=None) -> OracleEngine:
    """Route the flow's engine for `base` to an `OracleEngine`; other models load for real."""
    from selftaught.flows import system2_distill as flow

    oracle, real = OracleEngine(noise), flow._engine

    def engine(kind, model, batch_size):
        return oracle if model == base else real(kind, model, batch_size)

    if monkeypatch is None:
        flow._engine = engine
    else:
        monkeypatch.setattr(flow, "_engine", engine)
    return oracle


if __name__ == "__main__":
    from selftaught import cli

    patch(sys.argv[1])
    sys.exit(cli.main(sys.argv[2:]))
