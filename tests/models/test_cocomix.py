"""CoCoMix's student (papers_B §5.4, §5.8): the concept mixer, the 2T causal mask, readout from the
concept slots, cache-free generation (incremental == full-sequence logits), steering, Gemma 3."""

import pytest
import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

from selftaught.models.cocomix import (
    CoCoMixLM,
    ConceptMixer,
    DecoderShape,
    active_parameters,
    build_decoder,
    forward_logits,
    generate,
    slot_mask,
)

SHAPE = DecoderShape(hidden_size=32, num_layers=3, num_heads=4, num_kv_heads=2, ffn_size=64)


def tiny_gemma(sliding_window: int = 4) -> Gemma3ForCausalLM:
    config = Gemma3TextConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=sliding_window,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    return Gemma3ForCausalLM(config).eval()


def test_the_mixer_normalises_predicts_keeps_topk_compresses_and_denormalises():
    torch.manual_seed(0)
    mixer = ConceptMixer(8, 16, 3)
    torch.nn.init.normal_(mixer.pre_bias)
    h = torch.randn(2, 5, 8) * 3 + 2
    z, c_hat = mixer(h)
    mean, scale = h.mean(-1, keepdim=True), h.std(-1, keepdim=True) + 1e-5
    expected_z = mixer.predictor((h - mean) / scale - mixer.pre_bias)
    assert torch.allclose(z, expected_z, atol=1e-6)
    top = expected_z.topk(3, -1)
    sparse = torch.zeros_like(expected_z).scatter(-1, top.indices, top.values)  # no ReLU
    assert torch.allclose(c_hat, (mixer.compress(sparse) + mixer.pre_bias) * scale + mean, atol=1e-5)


def test_the_2t_mask_is_causal_over_slots_duplicates_padding_and_applies_the_window():
    order = torch.arange(6)[None]
    positions = torch.tensor([[0, 0, 1, 1, 2, 2]])
    real = torch.tensor([[1, 1, 1, 1, 0, 0]])  # the last token (and its concept slot) is padding
    mask = slot_mask(order, positions, real, window=None, dtype=torch.float32)[0, 0] == 0
    assert mask.shape == (6, 6)
    assert mask[1].tolist() == [True, True, False, False, False, False]  # c_1 sees h_1 and itself
    assert mask[2].tolist() == [True, True, True, False, False, False]  # h_2 sees c_1
    assert not mask[:4, 4:].any()
    assert mask[5].tolist() == [True, True, True, True, False, False]  # padded queries see real keys
    windowed = slot_mask(order, positions, torch.ones(1, 6), window=1, dtype=torch.float32)[0, 0] == 0
    assert windowed[3].tolist() == [False, False, True, True, False, False]  # same token position only


def test_pause_after_the_embeddings_equals_hf_on_the_interleaved_sequence():
    """An independent reference: with insert_layer 0 the pause model is the HF model run on
    (e_1, p, e_2, p, ...) at positions (0, 0, 1, 1, ...) under HF's own causal mask."""
    base = build_decoder(SHAPE, 50, seed=0)
    model = CoCoMixLM(base, 0, 16, 4, "pause").eval()
    ids = torch.randint(50, (2, 7), generator=torch.Generator().manual_seed(0))
    emb = base.model.embed_tokens(ids)
    mixed = torch.stack((emb, model.mixer.pause.expand_as(emb)), 2).reshape(2, 14, -1)
    positions = torch.arange(7).repeat_interleave(2).expand(2, 14)
    reference = base(
        inputs_embeds=mixed,
        position_ids=positions,
        attention_mask=torch.ones(2, 14, dtype=torch.long),
        use_cache=False,
    ).logits[:, 1::2]
    assert torch.allclose(model(ids).logits, reference, atol=1e-5)


@pytest.mark.parametrize("mode", ["interleave", "add", "pause"])
@pytest.mark.parametrize("insert_layer", [0, 1, 2])
def test_incremental_logits_equal_full_sequence_logits(mode, insert_layer):
    """Cache-free generation re-runs the prefix; the logits of prefix t must equal position t-1 of
    the full sequence, which fails if any slot sees a later token (a wrong 2T mask)."""
    model = CoCoMixLM(build_decoder(SHAPE, 50, seed=1), insert_layer, 16, 4, mode).eval()
    torch.nn.init.normal_(model.mixer.compress.weight, std=0.5)  # make the concept path matter
    ids = torch.randint(50, (2, 9), generator=torch.Generator().manual_seed(1))
    full = model(ids).logits
    for t in range(1, 10):
        assert torch.allclose(model(ids[:, :t]).logits[:, -1], full[:, t - 1], atol=1e-5)


def test_generation_appends_the_argmax_of_the_full_forward():
    model = CoCoMixLM(build_decoder(SHAPE, 50, seed=2), 1, 16, 4, "interleave").eval()
    prompt = torch.randint(50, (2, 4), generator=torch.Generator().manual_seed(2))
    out = generate(model, prompt, 5)
    assert out.shape == (2, 9) and torch.equal(out[:, :4], prompt)
    for t in range(4, 9):
        assert torch.equal(out[:, t], model(out[:, :t]).logits[:, -1].argmax(-1))


def test_padding_does_not_change_the_real_tokens_logits():
    model = CoCoMixLM(build_decoder(SHAPE, 50, seed=3), 1, 16, 4, "interleave").eval()
    ids = torch.randint(1, 50, (1, 6), generator=torch.Generator().manual_seed(3))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1)
    attention = torch.tensor([[1] * 6 + [0] * 3])
    assert torch.allclose(model(padded, attention).logits[:, :6], model(ids).logits, atol=1e-5)


def test_steering_scales_one_concept_logit_before_topk():
    torch.manual_seed(0)
    model = CoCoMixLM(build_decoder(SHAPE, 50, seed=4), 1, 16, 2, "interleave").eval()
    torch.nn.init.normal_(model.mixer.compress.weight, std=1.0)
    ids = torch.randint(50, (1, 6), generator=torch.Generator().manual_seed(4))
    plain = model(ids)
    concept = int(plain.concept_logits[0, -1].argmax())
    steered = model(ids, concept_scale={concept: 10.0})
    assert torch.equal(steered.concept_logits, plain.concept_logits)  # z is reported unscaled
    assert not torch.allclose(steered.logits[:, -1], plain.logits[:, -1])
    assert torch.equal(model(ids, concept_scale={concept: 1.0}).logits, plain.logits)
    with pytest.raises(ValueError, match="concept_scale needs a CoCoMix model"):
        forward_logits(build_decoder(SHAPE, 50), ids, concept_scale={0: 2.0})


def test_gemma3_plain_layers_match_hf_and_the_mixer_is_causal():
    base = tiny_gemma(sliding_window=4)  # windows shorter than the sequence: sliding masks matter
    ids = torch.randint(50, (2, 9), generator=torch.Generator().manual_seed(5))
    for mode in ("interleave", "add", "pause"):
        model = CoCoMixLM(base, 2, 16, 4, mode).eval()
        full = model(ids).logits
        for t in range(1, 10):
            assert torch.allclose(model(ids[:, :t]).logits[:, -1], full[:, t - 1], atol=1e-5)
    wide = tiny_gemma(sliding_window=64)
    model = CoCoMixLM(wide, 0, 16, 4, "pause").eval()
    emb = wide.model.embed_tokens(ids)
    mixed = torch.stack((emb, model.mixer.pause.expand_as(emb)), 2).reshape(2, 18, -1)
    positions = torch.arange(9).repeat_interleave(2).expand(2, 18)
    reference = wide(
        inputs_embeds=mixed,
        position_ids=positions,
        attention_mask=torch.ones(2, 18, dtype=torch.long),
        use_cache=False,
    ).logits[:, 1::2]
    assert torch.allclose(model(ids).logits, reference, atol=1e-5)


def test_save_and_load_round_trip(tmp_path):
    model = CoCoMixLM(build_decoder(SHAPE, 50, seed=6), 2, 16, 4, "add").eval()
    model.save_pretrained(tmp_path / "m")
    loaded = CoCoMixLM.from_pretrained(tmp_path / "m").eval()
    ids = torch.randint(50, (1, 5), generator=torch.Generator().manual_seed(6))
    assert loaded.mixer.mode == "add" and loaded.insert_layer == 2
    assert torch.allclose(loaded(ids).logits, model(ids).logits)


def test_active_parameters_count_k_compressor_columns():
    model = CoCoMixLM(build_decoder(SHAPE, 50), 1, 16, 4, "interleave")
    total = sum(p.numel() for p in model.parameters())
    assert active_parameters(model) == total - 32 * (16 - 4)
    plain = build_decoder(SHAPE, 50)
    assert active_parameters(plain) == sum(p.numel() for p in plain.parameters())


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="insert_layer"):
        CoCoMixLM(build_decoder(SHAPE, 50), 3, 16, 4, "interleave")
    with pytest.raises(ValueError, match="mode"):
        ConceptMixer(8, 16, 4, "concat")
