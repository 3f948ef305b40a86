"""selective_log_softmax and token_logps against the naive `log_softmax -> gather`, and padding invariance."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from selftaught.losses.logps import positions_from_mask, selective_log_softmax, token_logps

VOCAB = 40


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=32,
    )
    return LlamaForCausalLM(config)


def tiny_gpt2() -> GPT2LMHeadModel:
    """Learned absolute positions: unlike RoPE, a left-padding shift of the positions changes the output."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_embd=16,
        n_layer=2,
        n_head=2,
        n_positions=32,
        bos_token_id=0,
        eos_token_id=0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(config)


def naive_logps(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, index.unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
@pytest.mark.parametrize("chunk_size", [1, 3, 512])
def test_selective_log_softmax_matches_log_softmax_gather(dtype, tol, chunk_size):
    gen = torch.Generator().manual_seed(1)
    logits = (5 * torch.randn(2, 5, VOCAB, generator=gen)).to(dtype).requires_grad_()
    index = torch.randint(0, VOCAB, (2, 5), generator=gen)
    weights = torch.randn(2, 5, generator=gen).to(dtype)  # a non-uniform upstream gradient

    ours = selective_log_softmax(logits, index, chunk_size)
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), logits)
    reference = torch.log_softmax(logits, dim=-1).gather(-1, index.unsqueeze(-1)).squeeze(-1)
    (grad_reference,) = torch.autograd.grad((reference * weights).sum(), logits)

    assert ours.dtype == dtype
    torch.testing.assert_close(ours, reference, atol=tol, rtol=0)
    torch.testing.assert_close(grad_ours, grad_reference, atol=tol, rtol=0)


def test_selective_log_softmax_upcasts_bf16_and_returns_grad_in_bf16():
    gen = torch.Generator().manual_seed(2)
    logits = (3 * torch.randn(4, VOCAB, generator=gen)).to(torch.bfloat16).requires_grad_()
    index = torch.randint(0, VOCAB, (4,), generator=gen)

    ours = selective_log_softmax(logits, index, chunk_size=3)
    ours.sum().backward()

    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, naive_logps(logits.detach(), index), atol=1e-6, rtol=0)
    assert logits.grad.dtype == torch.bfloat16


def test_selective_log_softmax_rejects_mismatched_index():
    with pytest.raises(ValueError, match="index shape"):
        selective_log_softmax(torch.zeros(2, 3, VOCAB), torch.zeros(2, 4, dtype=torch.long))


def test_positions_from_mask_counts_real_tokens():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0]])
    assert positions_from_mask(mask).tolist() == [[0, 0, 0, 1], [0, 1, 2, 2]]


def test_token_logps_scores_each_token_given_its_prefix():
    model = tiny_llama()
    gen = torch.Generator().manual_seed(3)
    input_ids = torch.randint(0, VOCAB, (2, 6), generator=gen)
    attention_mask = torch.ones_like(input_ids)

    ours = token_logps(model, input_ids, attention_mask, chunk_size=4)
    logits = model(input_ids=input_ids).logits

    assert ours.shape == (2, 6)
    assert (ours[:, 0] == 0).all()
    torch.testing.assert_close(ours[:, 1:], naive_logps(logits[:, :-1], input_ids[:, 1:]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("build_model", [tiny_llama, tiny_gpt2])
def test_token_logps_is_the_same_left_padded_right_padded_and_alone(build_model):
    """Each row scored alone (no padding) must equal its scores inside a left- and a right-padded
    batch, and the gradient of the summed real-token scores must match too."""
    model = build_model()
    gen = torch.Generator().manual_seed(4)
    rows = [torch.randint(0, VOCAB, (n,), generator=gen) for n in (6, 3)]
    alone = [token_logps(model, r[None], torch.ones(1, len(r), dtype=torch.long))[0] for r in rows]
    (grad_alone,) = torch.autograd.grad(sum(a.sum() for a in alone), model.lm_head.weight)

    for side in ("left", "right"):
        input_ids = torch.zeros(2, 6, dtype=torch.long)
        attention_mask = torch.zeros(2, 6, dtype=torch.long)
        for i, r in enumerate(rows):
            span = slice(6 - len(r), 6) if side == "left" else slice(0, len(r))
            input_ids[i, span], attention_mask[i, span] = r, 1
        batch = token_logps(model, input_ids, attention_mask)
        (grad_batch,) = torch.autograd.grad(batch.sum(), model.lm_head.weight)

        for i, row_alone in enumerate(alone):
            torch.testing.assert_close(batch[i][attention_mask[i].bool()], row_alone, atol=1e-5, rtol=0)
        assert (batch[attention_mask == 0] == 0).all()
        torch.testing.assert_close(grad_batch, grad_alone, atol=1e-5, rtol=0)
