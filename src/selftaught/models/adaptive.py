"""The adaptive decoder (Dhuliawala et al. 2025, papers_B §4.2): a small head that reads a frozen
model's final hidden state and picks the sampling temperature.

`AdaptiveDecoder` is an MLP `h_t -> logits over K temperatures` (default grid 0, .2, ..., 1.0; 0 is
greedy). Its last layer starts at zero, so a new head is uniform over the grid. At the **sequence**
level one temperature is chosen from the hidden state of the last prompt token and used for the
whole response; at the **token** level a fresh one is chosen at every step. At inference the head's
argmax (`select(..., sample=False)`; ties go to the lowest temperature) or a sample is used.

The head is saved next to the base model, never inside it: `save(dir)` writes `adaptive_head.json`
(its shape, grid and level) and `adaptive_head.safetensors`; `AdaptiveDecoder.load(dir)` reads them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from selftaught.types import StrEnum

DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
CONFIG_FILE = "adaptive_head.json"
WEIGHTS_FILE = "adaptive_head.safetensors"


class Level(StrEnum):
    SEQUENCE = "sequence"
    """One temperature per response, from the last prompt token's hidden state."""
    TOKEN = "token"
    """A temperature per generated token, from that step's hidden state."""


class AdaptiveDecoder(nn.Module):
    """`forward(hidden [..., d]) -> log P(tau_k | h) [..., K]` (see the module doc)."""

    def __init__(
        self,
        hidden_size: int,
        temperatures: tuple[float, ...] | list[float] = DEFAULT_TEMPERATURES,
        *,
        depth: int = 3,
        width: int | None = None,
        level: Level = Level.SEQUENCE,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1 (linear layers), got {depth}")
        if (
            not temperatures
            or any(t < 0 for t in temperatures)
            or list(temperatures) != sorted(set(temperatures))
        ):
            raise ValueError(f"temperatures must be distinct, increasing and >= 0, got {list(temperatures)}")
        self.hidden_size, self.depth, self.level = hidden_size, depth, Level(level)
        self.width = width or hidden_size
        self.temperatures = [float(t) for t in temperatures]
        sizes = [hidden_size] + [self.width] * (depth - 1) + [len(self.temperatures)]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
            layers.append(nn.Linear(a, b))
            if i < depth - 1:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        last = self.mlp[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        first = self.mlp[0]
        assert isinstance(first, nn.Linear)
        return self.mlp(hidden.to(first.weight.dtype)).log_softmax(-1)

    @torch.no_grad()
    def select(
        self, hidden: torch.Tensor, *, sample: bool, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(indices [...], temperatures [...])`: the head's argmax (ties: the lowest temperature) or a sample."""
        logps = self(hidden)
        if sample:
            flat = logps.reshape(-1, logps.shape[-1]).exp()
            index = torch.multinomial(flat, 1, generator=generator).reshape(logps.shape[:-1])
        else:
            index = logps.argmax(-1)  # the first maximum: the lowest temperature
        grid = torch.tensor(self.temperatures, device=index.device)
        return index, grid[index]

    def save(self, directory: str | Path) -> Path:
        """Write the head's config and weights into `directory` (created); returns it."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        config = {
            "hidden_size": self.hidden_size,
            "temperatures": self.temperatures,
            "depth": self.depth,
            "width": self.width,
            "level": str(self.level),
        }
        (path / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        save_file(
            {k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(path / WEIGHTS_FILE)
        )
        return path

    @classmethod
    def load(cls, directory: str | Path) -> AdaptiveDecoder:
        """The head saved in `directory` (ValueError naming the directory when it holds none)."""
        path = Path(directory)
        if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
            raise ValueError(f"{path} holds no adaptive head ({CONFIG_FILE} and {WEIGHTS_FILE})")
        config = json.loads((path / CONFIG_FILE).read_text())
        head = cls(
            config["hidden_size"],
            config["temperatures"],
            depth=config["depth"],
            width=config["width"],
            level=Level(config["level"]),
        )
        head.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
        return head
