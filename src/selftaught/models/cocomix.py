"""CoCoMix's student (papers_B §5.4): a concept mixer inserted after layer l of a HF decoder.

    h      = hidden state after `insert_layer` blocks                         [B, T, d]
    u, mu, s = LN(h)                  (affine-free, unbiased std + 1e-5: the SAE's LN)
    z      = predictor(u - pre_bias)  concept logits                         [B, T, C]
    z[idx] *= alpha                   steering (`concept_scale={idx: alpha}`), before TopK
    c_hat  = (compress(TopK_k(z)) + pre_bias) * s + mu                       [B, T, d]
    interleave: (h_1, c_1, h_2, c_2, ...) for the upper layers (2T slots), next-token logits
                read from the concept slots;
    add:        h + c_hat (T slots);
    pause:      (h_1, p, h_2, p, ...) with one learned vector p instead of c_hat (the pause-token
                baseline; the concept head still predicts, so lambda > 0 trains it).

Any decoder of this project's family works: Llama-architecture tiny models and Gemma 3
(`model.model.layers`, `embed_tokens`, `rotary_emb`, `norm`, `lm_head`; Gemma's per-layer-type
rotary embeddings and sliding windows are handled). The upper layers run on 2T slots under an explicit
2T x 2T mask (papers_B §5.8.2): slot j attends to slot i iff i <= j (slot order), both real (the
padding mask duplicated per slot), and, on sliding-window layers, their token positions are less
than the window apart. A concept slot takes its token's position id (no extra position: with RoPE,
h_t and c_t sit at the same relative offset from every other token). Generation is cache-free
(`generate`): the per-layer ragged cache of §5.8.3 is not implemented.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, cast, overload

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from selftaught.models.sae import layer_norm_stats

MODES = ("interleave", "add", "pause")


class DecoderStack(Protocol):
    """What this module uses of a HF decoder stack (`LlamaModel`, `Gemma3TextModel`: a causal LM's `.model`)."""

    config: Any
    embed_tokens: nn.Module
    layers: nn.ModuleList
    norm: nn.Module
    rotary_emb: nn.Module


class CausalLM(Protocol):
    """What this project uses of a HF causal LM (`LlamaForCausalLM`, `Gemma3ForCausalLM`)."""

    config: Any
    model: DecoderStack
    lm_head: nn.Module

    def save_pretrained(self, save_directory: str | Path) -> Any: ...


def causal_lm(module: nn.Module) -> CausalLM:
    """`module` typed as a HF causal LM (`nn.Module.__getattr__` types every submodule `Tensor | Module`)."""
    return cast(CausalLM, module)


class ConceptMixer(nn.Module):
    """LN -> concept logits -> TopK -> compress -> de-normalise; `mode` says how `combine` mixes."""

    def __init__(self, hidden_size: int, num_concepts: int, k: int, mode: str = "interleave") -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"ConceptMixer: mode must be one of {MODES}, got {mode!r}")
        if not 0 < k <= num_concepts:
            raise ValueError(f"ConceptMixer: k must be in [1, num_concepts={num_concepts}], got {k}")
        self.mode, self.k = mode, k
        self.predictor = nn.Linear(hidden_size, num_concepts)
        self.compress = nn.Linear(num_concepts, hidden_size)
        self.pre_bias = nn.Parameter(torch.zeros(hidden_size))
        self.pause = nn.Parameter(torch.randn(hidden_size) * 0.02) if mode == "pause" else None

    def forward(
        self, hidden: torch.Tensor, concept_scale: dict[int, float] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(z [B, T, C], c_hat [B, T, d])` for `hidden [B, T, d]`; `z` unsteered (`concept_scale`
        changes which values TopK keeps and their size, not the logits the loss sees)."""
        u, mean, scale = layer_norm_stats(hidden)
        z = self.predictor(u - self.pre_bias)  # [B, T, C]
        steered = z
        if concept_scale:
            factors = torch.ones(z.shape[-1], dtype=z.dtype, device=z.device)
            for index, alpha in concept_scale.items():
                factors[index] = alpha
            steered = z * factors
        top = steered.topk(self.k, dim=-1)
        sparse = torch.zeros_like(z).scatter(-1, top.indices, top.values)  # kept values may be negative
        c_hat = (self.compress(sparse) + self.pre_bias) * scale + mean  # [B, T, d]
        return z, c_hat

    def pause_vector(self) -> nn.Parameter:
        """`p [d]`, the learned pause vector (pause mode only)."""
        if self.pause is None:
            raise ValueError(f"ConceptMixer: no pause vector in mode {self.mode!r}")
        return self.pause

    def column_norms(self) -> torch.Tensor:
        """`[C]`: the l2 norm of each concept's column of the compressor (papers_B §5.7: ~6% near 0)."""
        return self.compress.weight.detach().norm(dim=0)


@dataclass
class CoCoMixOutput:
    logits: torch.Tensor
    """[B, T, V] next-token logits (from the concept slots in interleave / pause mode)."""
    concept_logits: torch.Tensor
    """[B, T, C] z, the concept predictions (before steering)."""


@dataclass
class MixerSpec:
    """What `CoCoMixLM.save_pretrained` writes next to the base model (cocomix.json)."""

    insert_layer: int
    num_concepts: int
    k: int
    mode: str


class CoCoMixLM(nn.Module):
    """`base` (a HF causal LM) with a `ConceptMixer` after block `insert_layer` (0: on the embeddings)."""

    def __init__(self, base: nn.Module, insert_layer: int, num_concepts: int, k: int, mode: str) -> None:
        super().__init__()
        lm = causal_lm(base)
        layers = len(lm.model.layers)
        if not 0 <= insert_layer < layers:
            raise ValueError(
                f"insert_layer must be in [0, {layers - 1}] (the model has {layers}), got {insert_layer}"
            )
        self.base, self.insert_layer = base, insert_layer
        self.spec = MixerSpec(insert_layer, num_concepts, k, mode)
        self.mixer = ConceptMixer(lm.config.hidden_size, num_concepts, k, mode)
        self.config = base.config

    @property
    def device(self) -> torch.device:
        return self.mixer.pre_bias.device

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        concept_scale: dict[int, float] | None = None,
    ) -> CoCoMixOutput:
        text = causal_lm(self.base).model
        batch, length = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if position_ids is None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        hidden = text.embed_tokens(input_ids)  # [B, T, d]
        order = torch.arange(length, device=input_ids.device).expand(batch, length)
        hidden = run_layers(text, 0, self.insert_layer, hidden, position_ids, order, attention_mask)
        z, c_hat = self.mixer(hidden, concept_scale)
        mode = self.mixer.mode
        if mode == "add":
            hidden = run_layers(
                text, self.insert_layer, None, hidden + c_hat, position_ids, order, attention_mask
            )
            slots = hidden
        else:
            second = self.mixer.pause_vector().expand_as(hidden) if mode == "pause" else c_hat
            mixed = torch.stack((hidden, second), dim=2).reshape(batch, 2 * length, -1)  # [B, 2T, d]
            positions2 = position_ids.repeat_interleave(2, dim=1)
            order2 = torch.arange(2 * length, device=input_ids.device).expand(batch, 2 * length)
            real2 = attention_mask.repeat_interleave(2, dim=1)
            hidden = run_layers(text, self.insert_layer, None, mixed, positions2, order2, real2)
            slots = hidden[:, 1::2]  # the concept (or pause) slots predict the next token
        return CoCoMixOutput(logits=lm_logits(self.base, text.norm(slots)), concept_logits=z)

    def save_pretrained(self, out_dir: str | Path) -> Path:
        """The base model as a `transformers` directory, plus `concept_mixer.safetensors` and `cocomix.json`."""
        out = Path(out_dir)
        causal_lm(self.base).save_pretrained(out)
        save_file(
            {k: v.detach().contiguous() for k, v in self.mixer.state_dict().items()},
            str(out / "concept_mixer.safetensors"),
        )
        (out / "cocomix.json").write_text(json.dumps(asdict(self.spec), indent=2))
        return out

    @classmethod
    def from_pretrained(cls, path: str | Path) -> CoCoMixLM:
        path = Path(path)
        spec = MixerSpec(**json.loads((path / "cocomix.json").read_text()))
        model = cls(
            AutoModelForCausalLM.from_pretrained(path),
            spec.insert_layer,
            spec.num_concepts,
            spec.k,
            spec.mode,
        )
        model.mixer.load_state_dict(load_file(str(path / "concept_mixer.safetensors")))
        return model


def lm_logits(base: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The LM head on final hidden states, with Gemma's final logit soft-capping when configured."""
    logits = causal_lm(base).lm_head(hidden)
    cap = getattr(base.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def run_layers(
    text: DecoderStack,
    start: int,
    stop: int | None,
    hidden: torch.Tensor,
    position_ids: torch.Tensor,
    order: torch.Tensor,
    real: torch.Tensor,
) -> torch.Tensor:
    """Blocks `start:stop` of `text` (a LlamaModel / Gemma3TextModel) on `hidden [B, S, d]`, each slot
    at `position_ids [B, S]`, causal by `order [B, S]`, keys masked where `real [B, S]` is 0."""
    layers = text.layers[start:stop]
    if len(layers) == 0:
        return hidden
    layer_types = getattr(text.config, "layer_types", None) if _rope_takes_layer_type(text) else None
    window = getattr(text.config, "sliding_window", None)
    masks: dict[str | None, torch.Tensor] = {}
    ropes: dict[str | None, Any] = {}
    offset = start
    for i, layer in enumerate(layers):
        kind = layer_types[offset + i] if layer_types else None
        if kind not in masks:
            sliding = window if kind == "sliding_attention" else None
            masks[kind] = slot_mask(order, position_ids, real, sliding, hidden.dtype)
            ropes[kind] = (
                text.rotary_emb(hidden, position_ids, kind) if kind else text.rotary_emb(hidden, position_ids)
            )
        hidden = layer(
            hidden, attention_mask=masks[kind], position_embeddings=ropes[kind], position_ids=position_ids
        )
        if isinstance(hidden, tuple):  # older transformers return (hidden, ...)
            hidden = hidden[0]
    return hidden


def _rope_takes_layer_type(text: DecoderStack) -> bool:
    return "layer_type" in inspect.signature(text.rotary_emb.forward).parameters


def slot_mask(
    order: torch.Tensor,
    position_ids: torch.Tensor,
    real: torch.Tensor,
    window: int | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Additive attention mask `[B, 1, S, S]` (0 = attend, dtype min = blocked): query slot j sees key
    slot i iff order[i] <= order[j], key i is real, and (with a sliding `window`) positions differ by
    less than `window`. A query row with no visible key (a padded slot) attends to itself, so no row
    is all-blocked (NaN-free)."""
    allowed = order[:, None, :] <= order[:, :, None]  # [B, S(query), S(key)]
    allowed = allowed & real[:, None, :].bool()
    if window is not None:
        allowed = allowed & (position_ids[:, :, None] - position_ids[:, None, :] < window)
    eye = torch.eye(order.shape[1], dtype=torch.bool, device=order.device)
    allowed = allowed | (eye & ~allowed.any(-1, keepdim=True))
    mask = torch.zeros(allowed.shape, dtype=dtype, device=order.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


# --- students, forward and generation for any model of the family ---------------------------------


@dataclass(frozen=True)
class DecoderShape:
    hidden_size: int = 64
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    ffn_size: int = 256


def build_decoder(
    shape: DecoderShape, vocab_size: int, *, max_positions: int = 512, seed: int = 0
) -> LlamaForCausalLM:
    """A randomly initialised fp32 Llama of `shape` with tied embeddings (weights depend on `seed` only)."""
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.ffn_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    # PreTrainedModel.to is `@wraps(nn.Module.to)`, which mypy reads unbound: call it (in place, it
    # returns `model`) through nn.Module's signature.
    cast(nn.Module, model).to(torch.float32)
    return model


@overload
def forward_logits(
    model: CoCoMixLM,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    concept_scale: dict[int, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]: ...


@overload
def forward_logits(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    concept_scale: dict[int, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]: ...


def forward_logits(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    concept_scale: dict[int, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`(logits [B, T, V], concept_logits [B, T, C] or None)` of a `CoCoMixLM` or a plain HF model."""
    if isinstance(model, CoCoMixLM):
        out = model(input_ids, attention_mask, concept_scale=concept_scale)
        return out.logits, out.concept_logits
    if concept_scale:
        raise ValueError("concept_scale needs a CoCoMix model (mixer.mode interleave, add or pause)")
    return model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits, None


@torch.no_grad()
def generate(
    model: nn.Module,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
    concept_scale: dict[int, float] | None = None,
) -> torch.Tensor:
    """Cache-free decoding: every new token re-runs the whole prefix (exact for the ragged 2T layers,
    O(n^2)); `[B, T + max_new_tokens]`. `concept_scale` steers (multiplies z[idx] before TopK)."""
    ids = input_ids
    for _ in range(max_new_tokens):
        logits = forward_logits(model, ids, concept_scale=concept_scale)[0][:, -1].float()  # [B, V]
        if temperature == 0:
            nxt = logits.argmax(-1, keepdim=True)
        else:
            probs = torch.softmax(logits / temperature, -1)
            nxt = torch.multinomial(probs, 1, generator=generator)
        ids = torch.cat([ids, nxt], dim=1)
    return ids


def active_parameters(model: nn.Module) -> int:
    """Parameters a token uses: all, except the compressor columns beyond the k selected ones
    (papers_B §5.6: CoCoMix adds the predictor d*C plus k columns of the compressor)."""
    total = sum(p.numel() for p in model.parameters())
    if isinstance(model, CoCoMixLM):
        weight = model.mixer.compress.weight  # [d, C]
        total -= weight.shape[0] * (weight.shape[1] - model.mixer.k)
    return total
