"""The TopK SAE (papers_B §5.2-5.3): encode (pre-activations exposed), decode, normalised-MSE
training, dead-latent accounting, and save / load in SAELens's layout."""

import json

import pytest
import torch
from safetensors.torch import load_file

from selftaught.models.sae import TopKSAE, layer_norm_stats, load_sae, normalized_mse, save_sae, train_sae


def test_encode_keeps_k_nonnegative_activations_and_exposes_pre_activations():
    torch.manual_seed(0)
    sae = TopKSAE(8, 32, 3)
    x = torch.randn(5, 8) * 4 + 1
    c, info = sae.encode(x)
    assert c.shape == info["pre"].shape == (5, 32)
    assert ((c > 0).sum(-1) <= 3).all() and (c >= 0).all()
    x_hat = (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-5)  # unbiased std
    assert torch.allclose(info["pre"], (x_hat - sae.b_pre) @ sae.W_enc.t() + sae.b_enc, atol=1e-6)
    top = info["pre"].topk(3, -1)
    assert torch.allclose(c.gather(-1, top.indices), top.values.relu())
    recon = sae.decode(c, info)  # decode undoes the LN
    assert torch.allclose(recon, (c @ sae.W_dec.t() + sae.b_pre) * info["scale"] + info["mean"])


def test_layer_norm_stats_use_the_unbiased_std():
    x = torch.tensor([[1.0, 2.0, 3.0, 6.0]])
    x_hat, mean, scale = layer_norm_stats(x)
    assert mean.item() == 3.0 and scale.item() == pytest.approx(x.std().item() + 1e-5)
    assert torch.allclose(x_hat * scale + mean, x)


def test_a_full_width_sae_learns_to_reconstruct_and_counts_dead_latents():
    torch.manual_seed(0)
    basis = torch.randn(4, 16)
    data = torch.randn(2048, 4) @ basis  # rank-4 activations
    sae = TopKSAE(16, 32, 4)
    with torch.no_grad():
        before = float(normalized_mse(sae, data)[0])
    result = train_sae(sae, data, num_steps=300, batch_size=256, lr=3e-3)
    assert result.nmse < 0.2 < before
    assert torch.allclose(sae.W_dec.norm(dim=0), torch.ones(32), atol=1e-5)  # unit decoder columns
    assert 0.0 <= result.dead_fraction < 1.0
    sae.tokens_since_fired.zero_()
    c = torch.zeros(10, 32)
    c[:, 0] = 1.0
    sae.count_firing(c)
    assert sae.dead_fraction(window=10) == pytest.approx(31 / 32)


def test_save_and_load_in_saelens_layout(tmp_path):
    torch.manual_seed(0)
    sae = TopKSAE(8, 16, 2, normalize=False)
    torch.nn.init.normal_(sae.b_enc)
    save_sae(sae, tmp_path / "sae", hook_layer=2)
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and (cfg["d_in"], cfg["d_sae"], cfg["k"]) == (8, 16, 2)
    assert cfg["normalize_activations"] == "none" and cfg["hook_layer"] == 2
    tensors = load_file(tmp_path / "sae" / "sae_weights.safetensors")
    assert tensors["W_enc"].shape == (8, 16) and tensors["W_dec"].shape == (16, 8)  # SAELens orientation
    loaded, _ = load_sae(tmp_path / "sae")
    x = torch.randn(3, 8)
    assert torch.equal(loaded(x), sae(x))


def test_loading_something_else_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="cfg.json"):
        load_sae(tmp_path)
    (tmp_path / "cfg.json").write_text(json.dumps({"architecture": "standard"}))
    with pytest.raises(ValueError, match="only 'topk'"):
        load_sae(tmp_path)
