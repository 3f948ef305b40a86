import pytest
import torch

from selftaught.losses.logps import token_logps
from selftaught.models.tiny import build_tiny_llama
from selftaught.train import reference
from selftaught.train.reference import compute_sequence_logps, load_or_compute_ref_logps, weights_fingerprint

VOCAB = 40
PAD = 0


@pytest.fixture
def model() -> torch.nn.Module:
    return build_tiny_llama("xs", VOCAB, bos_token_id=1, eos_token_id=2, pad_token_id=PAD).train()


def make_examples() -> list[tuple[list[int], list[bool]]]:
    """Sequences of different lengths; the first tokens are the prompt (not summed)."""
    generator = torch.Generator().manual_seed(1)
    examples = []
    for length, prompt in [(7, 3), (12, 5), (4, 1), (9, 8)]:
        ids = torch.randint(3, VOCAB, (length,), generator=generator).tolist()
        examples.append((ids, [False] * prompt + [True] * (length - prompt)))
    return examples


def one_by_one(model: torch.nn.Module, examples) -> torch.Tensor:
    """Summed response log-probs, each sequence scored alone (no padding)."""
    with torch.no_grad():
        return torch.stack(
            [
                (
                    token_logps(model, torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0]
                    * torch.tensor(mask)
                ).sum()
                for ids, mask in examples
            ]
        )


@pytest.mark.parametrize("micro_batch_tokens", [0, 24])
def test_sequence_logps_equal_unpadded_scores(model, micro_batch_tokens):
    examples = make_examples()
    got = compute_sequence_logps(model, examples, pad_id=PAD, micro_batch_tokens=micro_batch_tokens)
    assert got.shape == (4,) and model.training  # train mode restored
    torch.testing.assert_close(got, one_by_one(model, examples), rtol=0, atol=1e-5)


def test_cache_is_reused_only_for_the_same_weights_and_tokens(model, tmp_path, monkeypatch):
    calls = []
    real = reference.compute_sequence_logps
    monkeypatch.setattr(reference, "compute_sequence_logps", lambda *a, **k: calls.append(1) or real(*a, **k))
    path = tmp_path / "ref_logps.safetensors"
    examples = make_examples()

    def ref(examples):
        return load_or_compute_ref_logps(path, model, examples, pad_id=PAD, micro_batch_tokens=0)

    first, reused = ref(examples)
    assert not reused and path.is_file() and len(calls) == 1
    again, reused = ref(examples)
    assert reused and len(calls) == 1 and torch.equal(again, first)

    changed_mask = [examples[0], (examples[1][0], [True] * len(examples[1][0])), *examples[2:]]
    _, reused = ref(changed_mask)
    assert not reused and len(calls) == 2
    changed_ids = [([5, *examples[0][0][1:]], examples[0][1]), *examples[1:]]
    _, reused = ref(changed_ids)
    assert not reused and len(calls) == 3

    with torch.no_grad():
        next(model.parameters()).add_(1e-3)  # any change of the weights invalidates the cache
    recomputed, reused = ref(examples)
    assert not reused and len(calls) == 4 and not torch.equal(recomputed, first)
    assert ref(examples)[1]  # the file now holds the new reference


def test_lora_reference_is_the_base_model_and_ignores_adapter_weights(model, tmp_path):
    peft = pytest.importorskip("peft")
    examples = make_examples()
    base_scores = one_by_one(model, examples)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    lora_model = peft.get_peft_model(model, config)
    with torch.no_grad():
        for name, param in lora_model.named_parameters():
            if "lora_B" in name:
                param.normal_()  # the adapters now change the outputs
    assert not torch.allclose(one_by_one(lora_model, examples), base_scores, atol=1e-3)
    path = tmp_path / "ref.safetensors"
    scores, _ = load_or_compute_ref_logps(path, lora_model, examples, pad_id=PAD, micro_batch_tokens=0)
    torch.testing.assert_close(scores, base_scores, rtol=0, atol=1e-5)
    fingerprint = weights_fingerprint(lora_model)
    with torch.no_grad():
        for name, param in lora_model.named_parameters():
            if "lora_A" in name:
                param.normal_()
    assert weights_fingerprint(lora_model) == fingerprint
    assert load_or_compute_ref_logps(path, lora_model, examples, pad_id=PAD, micro_batch_tokens=0)[1]


def test_a_lora_copy_scored_with_its_adapters_is_the_adapted_model(model):
    """A re-synced reference of a LoRA policy holds the policy's adapters of that step: scored with
    `adapters=True` it is the adapted model, not the base (online-rl's `ref_sync_every`)."""
    peft = pytest.importorskip("peft")
    examples = make_examples()
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    lora_model = peft.get_peft_model(model, config)
    with torch.no_grad():
        for name, param in lora_model.named_parameters():
            if "lora_B" in name:
                param.normal_()
    adapted = one_by_one(lora_model, examples)
    with lora_model.disable_adapter():
        base = one_by_one(lora_model, examples)
    assert not torch.allclose(adapted, base, atol=1e-3)
    for adapters, expected in ((True, adapted), (False, base)):
        got = compute_sequence_logps(
            lora_model, examples, pad_id=PAD, micro_batch_tokens=0, adapters=adapters
        )
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
