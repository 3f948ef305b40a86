"""The fused log-prob head against the plain path (`model(...).logits` -> `selective_log_softmax`):
values and gradients of every parameter, tied and untied heads, left and right padding, chunk sizes
that do not divide the rows, completion-only masks, LoRA, every listed architecture, and a check that
no [rows, V] tensor larger than one chunk is ever created."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from selftaught.losses import fused_head
from selftaught.losses.fused_head import FUSED_MODEL_TYPES, LMHead, fused_lm_head, head_logps
from selftaught.losses.logps import token_logps
from selftaught.models.tiny import build_tiny_llama

VOCAB = 40
SMALL = {
    "vocab_size": VOCAB,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 8,
    "max_position_embeddings": 64,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 2,
}
EXTRA = {
    "gemma2": {"final_logit_softcapping": 2.0},
    "gemma3_text": {"final_logit_softcapping": 2.0},
    "granite": {"logits_scaling": 4.0},
    "cohere": {"logit_scale": 0.5},
    "gpt2": {"n_positions": 64, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0},
}


def untied_llama(vocab: int = VOCAB) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(**{**SMALL, "vocab_size": vocab}, tie_word_embeddings=False)
    return LlamaForCausalLM(config)


def tied_llama() -> LlamaForCausalLM:
    return build_tiny_llama("xs", VOCAB, bos_token_id=0, eos_token_id=1, pad_token_id=2)


def model_of_type(model_type: str):
    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, **SMALL, **EXTRA.get(model_type, {}))
    return AutoModelForCausalLM.from_config(config).float().eval()


def padded_batch(side: str, lengths=(9, 5, 7), width: int = 9, seed: int = 0):
    """(input_ids, attention_mask, loss_mask): rows padded on `side`; the loss mask marks each
    row's second half (its "completion"), the rest is "prompt"."""
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.full((len(lengths), width), 2, dtype=torch.long)
    attention_mask = torch.zeros(len(lengths), width, dtype=torch.long)
    loss_mask = torch.zeros(len(lengths), width, dtype=torch.bool)
    for i, n in enumerate(lengths):
        start = width - n if side == "left" else 0
        input_ids[i, start : start + n] = torch.randint(3, VOCAB, (n,), generator=gen)
        attention_mask[i, start : start + n] = 1
        loss_mask[i, start + n // 2 : start + n] = True
    return input_ids, attention_mask, loss_mask


def logps_and_grads(model, input_ids, attention_mask, **kwargs):
    """token_logps [B, T] and the gradient of a weighted sum of it w.r.t. every parameter."""
    logps = token_logps(model, input_ids, attention_mask, **kwargs)
    weights = torch.linspace(-1.0, 2.0, logps.numel()).view_as(logps)  # a non-uniform upstream gradient
    names, params = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad], strict=True)
    grads = torch.autograd.grad((logps * weights).sum(), params, allow_unused=True)
    return logps, dict(zip(names, grads, strict=True))


def assert_same(fused, plain, atol=1e-6, rtol=1e-5):
    """Equal log-probs (to `atol`) and gradients (to `atol` times the gradient's largest entry, at
    least 1, plus `rtol`): summation order differs between the paths, so rounding scales with it."""
    (logps_f, grads_f), (logps_p, grads_p) = fused, plain
    torch.testing.assert_close(logps_f, logps_p, atol=atol, rtol=0)
    assert grads_f.keys() == grads_p.keys()
    for name, expected in grads_p.items():
        if expected is None:
            assert grads_f[name] is None, name
        else:
            scale = max(1.0, float(expected.abs().max()))
            torch.testing.assert_close(grads_f[name], expected, atol=atol * scale, rtol=rtol, msg=name)


@pytest.mark.parametrize("build", [tied_llama, untied_llama])
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("completion_only", [False, True])
@pytest.mark.parametrize("chunk_size", [4, None])
def test_fused_equals_plain_values_and_gradients(build, side, completion_only, chunk_size):
    model = build()
    input_ids, attention_mask, loss_mask = padded_batch(side)
    kwargs = {"loss_mask": loss_mask if completion_only else None, "chunk_size": chunk_size}

    fused = logps_and_grads(model, input_ids, attention_mask, **kwargs)
    plain = logps_and_grads(model, input_ids, attention_mask, fused=False, **kwargs)

    assert fused_lm_head(model) is not None
    assert_same(fused, plain)
    scored = fused[0] != 0
    assert not scored[attention_mask == 0].any()
    if completion_only:
        assert not scored[~loss_mask].any()
    if build is tied_llama:
        assert model.lm_head.weight is model.model.embed_tokens.weight  # one grad for both uses
        assert "lm_head.weight" not in fused[1]


def frozen_head_phi():
    model = model_of_type("phi")  # a head with a bias
    model.lm_head.requires_grad_(False)
    return model


@pytest.mark.parametrize(
    "build", [tied_llama, untied_llama, lambda: model_of_type("gemma3_text"), frozen_head_phi]
)
def test_row_blocks_and_vocabulary_slices_equal_plain(build, monkeypatch):
    """A tile budget of 64 logits: 9-row blocks x 7-entry vocabulary slices (neither divides), so the
    running max / sum and the per-slice gradients are all exercised, softcap and frozen head too."""
    monkeypatch.setattr(fused_head, "FUSED_CHUNK_ELEMENTS", 64)
    monkeypatch.setattr(fused_head, "MIN_VOCAB_CHUNK", 7)
    model = build()
    input_ids, attention_mask, loss_mask = padded_batch("left", lengths=(9, 8, 9), seed=2)

    fused = logps_and_grads(model, input_ids, attention_mask, loss_mask=loss_mask)
    plain = logps_and_grads(model, input_ids, attention_mask, loss_mask=loss_mask, fused=False)

    assert fused_head.tile_shape(int(loss_mask[:, 1:].sum()), VOCAB, None, None) == (9, 7)
    assert_same(fused, plain, atol=1e-5, rtol=1e-4)


def test_completion_only_equals_the_full_scores_on_the_completion():
    model = untied_llama()
    input_ids, attention_mask, loss_mask = padded_batch("left")

    full = token_logps(model, input_ids, attention_mask)
    completion = token_logps(model, input_ids, attention_mask, loss_mask=loss_mask)

    torch.testing.assert_close(completion, full * loss_mask, atol=1e-6, rtol=0)


def test_fused_equals_plain_in_fp64_to_rounding():
    model = untied_llama().double()
    input_ids, attention_mask, loss_mask = padded_batch("right")

    fused = logps_and_grads(model, input_ids, attention_mask, loss_mask=loss_mask, chunk_size=3)
    plain = logps_and_grads(model, input_ids, attention_mask, loss_mask=loss_mask, fused=False)

    assert fused[0].dtype == torch.float64
    assert_same(fused, plain, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("model_type", sorted(FUSED_MODEL_TYPES))
def test_every_listed_architecture_matches_its_own_logits(model_type):
    """Each entry of FUSED_MODEL_TYPES reproduces its model's forward (softcap, scales, bias)."""
    model = model_of_type(model_type)
    head = fused_lm_head(model)
    input_ids, attention_mask, loss_mask = padded_batch("right", seed=1)

    fused = logps_and_grads(model, input_ids, attention_mask, loss_mask=loss_mask, chunk_size=5)
    plain = logps_and_grads(model, input_ids, attention_mask, loss_mask=loss_mask, fused=False)

    assert head is not None
    expected_softcap = 2.0 if model_type in ("gemma2", "gemma3_text") else None
    assert head.softcap == expected_softcap
    assert (head.bias is not None) == (model_type == "phi")
    assert_same(fused, plain, atol=1e-5, rtol=1e-4)


def test_lora_model_is_fused_and_gets_the_same_adapter_gradients():
    """Frozen head: the forward precomputes the hidden-state gradient (the eager branch)."""
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    model = peft.get_peft_model(tied_llama(), config)
    for name, param in model.named_parameters():  # non-zero B, so the adapters change the output
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.1)
    input_ids, attention_mask, loss_mask = padded_batch("left")

    fused = logps_and_grads(model, input_ids, attention_mask, loss_mask=loss_mask, chunk_size=4)
    plain = logps_and_grads(model, input_ids, attention_mask, loss_mask=loss_mask, fused=False)

    assert fused_lm_head(model) is not None
    assert all("lora_" in name for name in fused[1])
    assert_same(fused, plain)


def test_frozen_untied_head_and_bias_gradients():
    """Both backward branches: a trainable head (lazy) and a frozen one (eager), with a bias."""
    model = model_of_type("phi")
    input_ids, attention_mask, loss_mask = padded_batch("left")
    model.lm_head.requires_grad_(False)

    fused = logps_and_grads(model, input_ids, attention_mask, loss_mask=loss_mask, chunk_size=2)
    plain = logps_and_grads(model, input_ids, attention_mask, loss_mask=loss_mask, fused=False)

    assert "lm_head.weight" not in fused[1] and "lm_head.bias" not in fused[1]
    assert_same(fused, plain, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("scale, softcap", [(1.0, None), (0.7, 1.5)])
@pytest.mark.parametrize("frozen_head", [False, True])
@pytest.mark.parametrize("tile", [(3, None), (3, 4), (None, 5)])
def test_head_logps_passes_gradcheck(scale, softcap, frozen_head, tile):
    """Tiles of rows and of vocabulary slices (4 and 5 do not divide 11), both backward branches."""
    gen = torch.Generator().manual_seed(5)
    hidden = torch.randn(7, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 6, generator=gen, dtype=torch.float64, requires_grad=not frozen_head)
    bias = torch.randn(11, generator=gen, dtype=torch.float64, requires_grad=not frozen_head)
    targets = torch.randint(0, 11, (7,), generator=gen)

    def logps(h, w, b):
        return head_logps(h, LMHead(torch.nn.Identity(), w, b, scale, softcap), targets, *tile)

    assert torch.autograd.gradcheck(logps, (hidden, weight, bias))


def test_reference_pass_under_inference_mode_matches():
    model = untied_llama()
    input_ids, attention_mask, loss_mask = padded_batch("left")
    with torch.inference_mode():
        fused = token_logps(model, input_ids, attention_mask, loss_mask=loss_mask)
        plain = token_logps(model, input_ids, attention_mask, loss_mask=loss_mask, fused=False)
    torch.testing.assert_close(fused, plain, atol=1e-6, rtol=0)


def test_bf16_autocast_close_to_plain_and_grads_keep_their_dtype():
    model = untied_llama()
    input_ids, attention_mask, loss_mask = padded_batch("right")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = logps_and_grads(model, input_ids, attention_mask, loss_mask=loss_mask, chunk_size=4)
        plain = logps_and_grads(model, input_ids, attention_mask, loss_mask=loss_mask, fused=False)
    assert fused[0].dtype == torch.float32
    assert all(g.dtype == torch.float32 for g in fused[1].values())
    assert_same(fused, plain, atol=2e-2, rtol=5e-2)


def confident_rows(scale: float, num_rows: int = 64, vocab: int = 4096, width: int = 256):
    """`(hidden [N, H], weight [V, H], targets [N])` whose hidden states point at their target's
    embedding: `scale` 2 gives p(target) ~ 0.999, 3 gives ~ 1 - 1e-7."""
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(vocab, width, generator=gen) * 0.05
    targets = torch.randint(0, vocab, (num_rows,), generator=gen)
    direction = weight[targets] / weight[targets].norm(dim=-1, keepdim=True)
    return torch.randn(num_rows, width, generator=gen) * 0.5 + 10 * scale * direction, weight, targets


@pytest.mark.parametrize("scale", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("autocast", [False, True])
def test_a_frozen_heads_hidden_gradient_stays_accurate_for_confident_tokens(scale, autocast):
    """With a frozen head (LoRA) the hidden-state gradient `(1 - p_t) W_t - sum_(j != t) p_j W_j` is
    built in the forward pass without the cancellation of `W_t - E_p[W]`: against fp64, fp32 keeps
    a 1e-5 relative error at p_t ~ 1 - 1e-7 (the cancelling form: 7%), and bf16 autocast is no worse
    than the plain path under autocast (the cancelling form: up to 1.5x-4x worse at p_t >= 0.96)."""
    hidden, weight, targets = confident_rows(scale)
    exact = hidden.double().requires_grad_(True)
    (exact @ weight.double().T).log_softmax(-1).gather(-1, targets[:, None]).sum().backward()

    def error(grad):
        return float((grad.double() - exact.grad).norm() / exact.grad.norm())

    fused_hidden = hidden.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        head_logps(
            fused_hidden, LMHead(torch.nn.Identity(), weight, None), targets, chunk_vocab=1024
        ).sum().backward()
    plain_hidden = hidden.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = torch.nn.functional.linear(plain_hidden, weight)
    logits.float().log_softmax(-1).gather(-1, targets[:, None]).sum().backward()
    if autocast:
        assert error(fused_hidden.grad) <= 1.1 * error(plain_hidden.grad)
    else:
        assert error(fused_hidden.grad) < 1e-5


class LargestVocabTensor(TorchDispatchMode):
    """Records the most rows (product of the leading dims) of any newly allocated op output whose last
    dim is the vocabulary: views (the head weight transposed) are not allocations."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab, self.rows = vocab, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else [out]:
            if (
                isinstance(tensor, torch.Tensor)
                and not func.is_view
                and tensor.dim() >= 2
                and tensor.shape[-1] == self.vocab
            ):
                self.rows = max(self.rows, tensor.numel() // self.vocab)
        return out


def test_fused_path_never_materialises_more_than_a_chunk_of_logits():
    vocab, chunk = 3001, 5
    model = untied_llama(vocab)
    input_ids, attention_mask, loss_mask = padded_batch("left", lengths=(20, 14), width=20)
    with LargestVocabTensor(vocab) as fused_mode:
        logps_and_grads(model, input_ids, attention_mask, loss_mask=loss_mask, chunk_size=chunk)
    with LargestVocabTensor(vocab) as plain_mode:
        logps_and_grads(model, input_ids, attention_mask, loss_mask=loss_mask, fused=False, chunk_size=chunk)

    assert fused_mode.rows == chunk  # the chunks' logits and softmax, in both passes
    assert plain_mode.rows == input_ids.numel()  # the plain path's [B, T, V] logits


def test_unrecognised_models_fall_back_to_the_plain_path():
    model = untied_llama()
    model.config.model_type = "not-a-listed-type"
    assert fused_lm_head(model) is None
    hooked = untied_llama()
    hooked.lm_head.register_forward_hook(lambda module, args, out: out * 2)
    assert fused_lm_head(hooked) is None

    input_ids, attention_mask, _ = padded_batch("right")
    expected = token_logps(untied_llama(), input_ids, attention_mask, fused=False)
    torch.testing.assert_close(token_logps(model, input_ids, attention_mask), expected)
    assert not torch.allclose(token_logps(hooked, input_ids, attention_mask), expected)  # the hook ran


def test_lora_on_the_head_falls_back():
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["lm_head"], lora_dropout=0.0)
    assert fused_lm_head(peft.get_peft_model(untied_llama(), config)) is None


def test_no_scored_position_gives_zeros_and_zero_gradients():
    model = untied_llama()
    input_ids, attention_mask, loss_mask = padded_batch("right")

    logps, grads = logps_and_grads(model, input_ids, attention_mask, loss_mask=torch.zeros_like(loss_mask))

    assert (logps == 0).all()
    assert all(grad is None or (grad == 0).all() for grad in grads.values())


def test_loss_mask_shape_is_checked():
    model = untied_llama()
    input_ids, attention_mask, loss_mask = padded_batch("right")
    with pytest.raises(ValueError, match="loss_mask shape"):
        token_logps(model, input_ids, attention_mask, loss_mask=loss_mask[:, 1:])
