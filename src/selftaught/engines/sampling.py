"""Token sampling for `HFEngine`: greedy or temperature + top-p, by inverting the CDF with one uniform
per row, from a shared `torch.Generator` or from per-sample counter-based streams
(`SamplingParams.per_prompt_seeds`).

Over a large vocabulary (Gemma's 262,144 ids) the [A, V] passes of a step cost more than their
arithmetic: each fresh 100+ MB tensor is paid again in page faults. A `Scratch` holds two [B, V]
buffers that every step of a micro-batch reuses (`out=`); results are bitwise those of fresh tensors.
"""

from __future__ import annotations

import torch

from selftaught.engines.base import SamplingParams

NUCLEUS_CANDIDATES = 1024
"""Top-p first looks for the nucleus among this many most likely tokens (`torch.topk`); only rows
whose nucleus is larger sort their whole vocabulary."""


class Scratch:
    """Two reusable [rows, V] fp32 buffers for `sample_next_tokens` (one micro-batch's steps)."""

    def __init__(self, rows: int, vocab: int, device: torch.device | str) -> None:
        self.buffers = [torch.empty(rows, vocab, device=device) for _ in range(2)]

    def get(self, index: int, like: torch.Tensor) -> torch.Tensor | None:
        """Buffer `index`'s first rows, shaped as `like` [A, V] (None when it does not fit)."""
        buffer = self.buffers[index]
        if like.dim() != 2 or like.shape[0] > buffer.shape[0] or like.shape[1] != buffer.shape[1]:
            return None
        return buffer[: like.shape[0]]


def sample_next_tokens(
    logits: torch.Tensor,
    sampling: SamplingParams,
    generator: torch.Generator,
    keys: torch.Tensor | None = None,
    step: int = 0,
    temperatures: torch.Tensor | None = None,
    scratch: Scratch | None = None,
    drawing: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick the next token of each row and its logprob under the unprocessed distribution.

    logits [A, V] -> (next_tokens [A], next_logps [A]). Greedy at temperature 0, else sampled from
    softmax(logits / temperature) restricted to the top-p nucleus. The logprob is always taken from
    log_softmax(logits) in fp32 (temperature 1, no top-p), the distribution a trainer recomputes.
    With `keys` [A] (per-sample stream keys), row r draws `counter_uniform(keys[r], step)` instead
    of the next number of `generator`. With `temperatures` [A] (an adaptive decoder's choice per row),
    they replace `sampling.temperature`: rows at 0 take the argmax, the others are sampled (every row
    draws its uniform, so a row's draw does not depend on the others' temperatures). With `drawing`
    [A] (bool), only those rows draw from `generator`, in order (the others' samples are unused).
    `scratch` only saves allocations: the result is the same without it.
    """
    logits = logits.float()
    first, second = (None, None) if scratch is None else (scratch.get(0, logits), scratch.get(1, logits))
    if temperatures is not None:
        tau = temperatures.to(device=logits.device, dtype=logits.dtype)
        greedy = tau == 0
        scaled = torch.div(logits, torch.where(greedy, 1.0, tau)[:, None], out=first)
        probs = nucleus_probs(scaled, sampling.top_p, out=second)
        uniform = _uniform(probs, generator, keys, step, drawing)
        sampled = sample_from_probs(probs, generator, uniform, cdf_out=first)
        next_tokens = torch.where(greedy, logits.argmax(-1), sampled)
    elif sampling.temperature == 0:
        next_tokens = logits.argmax(-1)
    else:
        # x / 1.0 == x exactly, so temperature 1 skips a pass.
        scaled = logits if sampling.temperature == 1 else torch.div(logits, sampling.temperature, out=first)
        probs = nucleus_probs(scaled, sampling.top_p, out=second)
        uniform = _uniform(probs, generator, keys, step, drawing)  # [A, 1] or None
        next_tokens = sample_from_probs(probs, generator, uniform, cdf_out=first)
    logps = torch.log_softmax(logits, -1, out=first) if first is not None else logits.log_softmax(-1)
    return next_tokens, logps.gather(-1, next_tokens[:, None]).squeeze(-1)


def _uniform(
    probs: torch.Tensor,
    generator: torch.Generator,
    keys: torch.Tensor | None,
    step: int,
    drawing: torch.Tensor | None,
) -> torch.Tensor | None:
    """[A, 1] uniforms of `sample_next_tokens`'s rows, or None for `sample_from_probs` to draw them."""
    if keys is not None:
        return counter_uniform(keys, step).to(probs.dtype)[:, None]
    if drawing is None:
        return None
    uniform = torch.zeros(len(probs), 1, device=probs.device, dtype=probs.dtype)
    uniform[drawing] = torch.rand(
        (int(drawing.sum()), 1), generator=generator, device=probs.device, dtype=probs.dtype
    )
    return uniform


def sample_from_probs(
    probs: torch.Tensor,
    generator: torch.Generator,
    uniform: torch.Tensor | None = None,
    cdf_out: torch.Tensor | None = None,
) -> torch.Tensor:
    """One draw per row of unnormalised probabilities `probs` [A, V] -> token ids [A].

    Inverts the CDF with one uniform per row. `torch.multinomial` gives the same distribution but
    is 7-15x slower on CPU (1.7 ms for [256, 300]; 1.6 s for [256, 262k]). The uniform is kept
    strictly below the total mass, so the draw lands on a token with non-zero probability.
    `cdf_out` [A, V]: a buffer for the CDF (not `probs` itself).
    """
    cdf = torch.cumsum(probs, -1, out=cdf_out)  # [A, V]
    total = cdf[:, -1:]  # [A, 1]
    if uniform is None:
        uniform = torch.rand(total.shape, generator=generator, device=probs.device, dtype=probs.dtype)
    target = (uniform * total).minimum(total.nextafter(torch.zeros_like(total)))  # [A, 1], < total
    return torch.searchsorted(cdf, target, right=True).squeeze(-1)


_MASK32 = 0xFFFFFFFF


def counter_uniform(keys: torch.Tensor, counter: int) -> torch.Tensor:
    """[A] uniforms in [0, 1) (float64, 32-bit resolution), a pure function of each (key, counter).

    A counter-based generator: the `lowbias32` integer hash (Chris Wellons' hash-prospector) of the
    key mixed with the hashed counter. Products wrap in int64, but only their low 32 bits are kept,
    which wrapping leaves exact.
    """
    mixed = keys & _MASK32 ^ _lowbias32(torch.tensor(counter + 0x9E3779B9, dtype=torch.long))
    return _lowbias32(mixed).double() / 2.0**32


def _lowbias32(x: torch.Tensor) -> torch.Tensor:
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def nucleus_probs(logits: torch.Tensor, top_p: float, out: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(logits) [A, V] with the tokens outside the top-p nucleus zeroed (not renormalised).

    The nucleus is the smallest set of most likely tokens whose mass reaches `top_p`: a token stays
    when the mass of the tokens more likely than it is below `top_p`, so the top token always stays.
    Rows whose `NUCLEUS_CANDIDATES` most likely tokens reach `top_p` are cut from those alone (the
    same cumulative sums as a full sort's first entries); the others sort the whole row.
    `out` [A, V]: a buffer for the result (not `logits` itself).
    """
    probs = torch.softmax(logits, -1, out=out)
    if top_p >= 1:
        return probs
    top, order = probs.topk(min(NUCLEUS_CANDIDATES, probs.shape[-1]), dim=-1)  # [A, K], descending
    mass = top.cumsum(-1)
    full = (mass[:, -1] < top_p).nonzero().squeeze(-1)  # rows whose nucleus may pass the candidates
    if len(full):
        sorted_probs, full_order = probs[full].sort(-1, descending=True)
        full_kept = _cut_nucleus(sorted_probs, sorted_probs.cumsum(-1), top_p)
    kept = _cut_nucleus(top, mass, top_p)
    probs.zero_().scatter_(-1, order, kept)
    if len(full):
        probs[full] = torch.zeros_like(full_kept).scatter_(-1, full_order, full_kept)
    return probs


def _cut_nucleus(sorted_probs: torch.Tensor, mass: torch.Tensor, top_p: float) -> torch.Tensor:
    """`sorted_probs` [A, K] (descending) with the tokens zeroed whose mass before them reaches `top_p`."""
    return sorted_probs.masked_fill(mass - sorted_probs >= top_p, 0.0)
