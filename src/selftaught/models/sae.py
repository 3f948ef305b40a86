"""A TopK sparse autoencoder (Gao et al. 2024) as CoCoMix uses it (papers_B §5.2-5.3), its
normalised-MSE trainer, and save / load in SAELens's on-disk layout.

    x_hat = LN(x) = (x - mean) / (std + 1e-5)        (`normalize=True`; unbiased std, no affine)
    c_pre = W_enc (x_hat - b_pre) + b_enc            [.., C]  pre-activations
    c     = ReLU(TopK_k(c_pre))                      [.., C]  k non-zero at most
    x_rec = (W_dec c + b_pre) * (std + 1e-5) + mean  decode, then undo the normalisation

Files (`save_sae` / `load_sae`), the layout SAELens (`SAE.load_from_disk`) reads for its `topk`
architecture, written without depending on sae-lens (it pulls transformer-lens and a torch pin):

    <dir>/sae_weights.safetensors   W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in]
    <dir>/cfg.json                  {"architecture": "topk", "d_in", "d_sae", "k",
                                     "normalize_activations": "layer_norm" | "none",
                                     "apply_b_dec_to_input": true, "dtype": "float32", ...}

`b_dec` is `b_pre` (subtracted before encoding, added after decoding). `layer_norm` in SAELens
divides by the biased std + 1e-5 while this class (like the CoCoMix code) uses the unbiased std: the
two differ by a factor sqrt(d / (d - 1)) on the normalised input (0.4% at d = 128).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

LN_EPS = 1e-5


def layer_norm_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(x_hat, mean, scale)` with `x_hat = (x - mean) / scale`, `scale = std + 1e-5` (unbiased std),
    over the last dimension: the SAE's and CoCoMix's affine-free LN."""
    mean = x.mean(-1, keepdim=True)
    scale = x.std(-1, keepdim=True) + LN_EPS
    return (x - mean) / scale, mean, scale


class TopKSAE(nn.Module):
    """`TopKSAE(d_in, C, k, normalize)`: encode exposes the pre-activations (`info["pre"]`)."""

    tokens_since_fired: torch.Tensor
    """[C] long buffer (not persistent): tokens counted since each latent last fired."""

    def __init__(self, d_in: int, num_latents: int, k: int, normalize: bool = True) -> None:
        super().__init__()
        if not 0 < k <= num_latents:
            raise ValueError(f"TopKSAE: k must be in [1, num_latents={num_latents}], got {k}")
        self.d_in, self.num_latents, self.k, self.normalize = d_in, num_latents, k, normalize
        self.W_enc = nn.Parameter(torch.empty(num_latents, d_in))  # [C, d]
        self.b_enc = nn.Parameter(torch.zeros(num_latents))
        self.W_dec = nn.Parameter(torch.empty(d_in, num_latents))  # [d, C]: columns are concept directions
        self.b_pre = nn.Parameter(torch.zeros(d_in))
        nn.init.kaiming_uniform_(self.W_dec, a=5**0.5)
        with torch.no_grad():
            self.W_dec.div_(self.W_dec.norm(dim=0, keepdim=True))
            self.W_enc.copy_(self.W_dec.t())
        self.register_buffer(
            "tokens_since_fired", torch.zeros(num_latents, dtype=torch.long), persistent=False
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """`(c [.., C], info)`: post-TopK activations; `info` holds `pre` [.., C] and the LN `mean` /
        `scale` that `decode` needs."""
        if self.normalize:
            x, mean, scale = layer_norm_stats(x)
        else:
            mean, scale = torch.zeros_like(x[..., :1]), torch.ones_like(x[..., :1])
        pre = (x - self.b_pre) @ self.W_enc.t() + self.b_enc  # [.., C]
        top = pre.topk(self.k, dim=-1)
        c = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
        return c, {"pre": pre, "mean": mean, "scale": scale}

    def decode(self, c: torch.Tensor, info: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """`x_rec [.., d]`; in the normalised space when `info` is None."""
        x = c @ self.W_dec.t() + self.b_pre
        return x if info is None else x * info["scale"] + info["mean"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, info = self.encode(x)
        return self.decode(c, info)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Unit-norm decoder columns (so activations, not column norms, carry the scale)."""
        self.W_dec.div_(self.W_dec.norm(dim=0, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def count_firing(self, c: torch.Tensor) -> None:
        """Dead-latent accounting: add the tokens of `c [.., C]` to every latent's count since it last fired."""
        fired = (c.reshape(-1, self.num_latents) > 0).any(0)
        self.tokens_since_fired += c.reshape(-1, self.num_latents).shape[0]
        self.tokens_since_fired[fired] = 0

    def dead_fraction(self, window: int) -> float:
        """Share of latents that have not fired in the last `window` tokens counted."""
        return float((self.tokens_since_fired >= window).float().mean())


def normalized_mse(sae: TopKSAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(nmse, c)`: the reconstruction error in the SAE's input space divided by the inputs' variance
    around their mean (fraction of variance unexplained; 1 = predicting the mean), for `x [N, d]`."""
    target = layer_norm_stats(x)[0] if sae.normalize else x
    c, _ = sae.encode(x)
    recon = sae.decode(c)
    return (recon - target).pow(2).sum() / (target - target.mean(0)).pow(2).sum(), c


@dataclass
class SAETrainResult:
    nmse: float
    """Normalised MSE on the held-out activations."""
    dead_fraction: float
    """Latents that never fired on the held-out activations."""
    steps: int


def train_sae(
    sae: TopKSAE,
    activations: torch.Tensor,
    *,
    num_steps: int,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    held_out: torch.Tensor | None = None,
) -> SAETrainResult:
    """Adam on the normalised MSE over random mini-batches of `activations [N, d]`; decoder columns
    renormalised after each step; `b_pre` starts at the inputs' mean (in the SAE's input space)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        inputs = layer_norm_stats(activations)[0] if sae.normalize else activations
        sae.b_pre.copy_(inputs.mean(0))
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    for _ in range(num_steps):
        batch = activations[torch.randint(len(activations), (batch_size,), generator=generator)]
        loss, c = normalized_mse(sae, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sae.normalize_decoder()
        sae.count_firing(c)
    evaluate = activations if held_out is None else held_out
    with torch.no_grad():
        nmse, c = normalized_mse(sae, evaluate)
    dead = float(((c > 0).sum(0) == 0).float().mean())
    return SAETrainResult(nmse=float(nmse), dead_fraction=dead, steps=num_steps)


def save_sae(sae: TopKSAE, out_dir: str | Path, **extra: Any) -> Path:
    """Write SAELens's layout (module doc); `extra` goes into cfg.json (e.g. `hook_name`, `hook_layer`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {
        "W_enc": sae.W_enc.detach().t().contiguous(),
        "b_enc": sae.b_enc.detach().clone(),
        "W_dec": sae.W_dec.detach().t().contiguous(),
        "b_dec": sae.b_pre.detach().clone(),
    }
    save_file(tensors, str(out / "sae_weights.safetensors"))
    cfg = {
        "architecture": "topk",
        "d_in": sae.d_in,
        "d_sae": sae.num_latents,
        "k": sae.k,
        "normalize_activations": "layer_norm" if sae.normalize else "none",
        "apply_b_dec_to_input": True,
        "dtype": "float32",
        "device": "cpu",
        "selftaught_layer_norm": "unbiased std + 1e-5 (CoCoMix)",
        **extra,
    }
    (out / "cfg.json").write_text(json.dumps(cfg, indent=2))
    return out


def load_sae(path: str | Path) -> tuple[TopKSAE, dict[str, Any]]:
    """`(sae, cfg)` from a directory in SAELens's layout (ours, or a topk SAE saved by SAELens)."""
    path = Path(path)
    cfg_file = path / "cfg.json"
    if not cfg_file.is_file():
        raise ValueError(f"{path} holds no cfg.json: not an SAE directory (save one with save_sae)")
    cfg = json.loads(cfg_file.read_text())
    if cfg.get("architecture") != "topk":
        raise ValueError(f"{cfg_file}: architecture {cfg.get('architecture')!r}; only 'topk' SAEs load here")
    k = cfg.get("k") or cfg.get("activation_fn_kwargs", {}).get("k")
    normalize = cfg.get("normalize_activations", "none") == "layer_norm"
    sae = TopKSAE(int(cfg["d_in"]), int(cfg["d_sae"]), int(k), normalize=normalize)
    tensors = load_file(str(path / "sae_weights.safetensors"))
    with torch.no_grad():
        sae.W_enc.copy_(tensors["W_enc"].t())
        sae.b_enc.copy_(tensors["b_enc"])
        sae.W_dec.copy_(tensors["W_dec"].t())
        sae.b_pre.copy_(tensors["b_dec"])
    return sae, cfg
