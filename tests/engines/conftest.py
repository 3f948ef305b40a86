"""A random-init tiny Llama and a byte-level BPE tokenizer, both built in memory (no hub)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from selftaught.data.chat import DEFAULT_CHAT_TEMPLATE

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is 12 + 35? Let us add: 12 + 35 = 47. Answer: 47",
    "Tell a story about the sea. The calm whale swims slowly.",
    "<|user|>\nName an animal.\n<|assistant|>\nA cat.",
] * 20
SPECIAL_TOKENS = ["<s>", "</s>", "<pad>"]


def build_tokenizer(vocab_size: int = 300) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on `CORPUS`; ids 0, 1, 2 are `<s>`, `</s>`, `<pad>`."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        chat_template=DEFAULT_CHAT_TEMPLATE,
    )


def build_model(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> LlamaForCausalLM:
    """The tiny world's xs shape (hidden 64, 2 layers, 4 heads / 2 kv, tied), fp32, random init.

    `initializer_range` is larger than Llama's 0.02 so the next-token distribution is peaked enough
    that greedy decoding has no near-ties for float noise to flip.
    """
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).float().eval()


def build_gpt2(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> GPT2LMHeadModel:
    """A GPT-2 of the same size: learned absolute positions, so unlike RoPE a wrong position id
    under left padding changes its outputs."""
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=256,
        n_embd=64,
        n_layer=2,
        n_head=4,
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config).float().eval()


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer()


@pytest.fixture
def model(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    return build_model(tokenizer)


@pytest.fixture(params=["llama", "gpt2"])
def any_model(request: pytest.FixtureRequest, tokenizer: PreTrainedTokenizerFast) -> torch.nn.Module:
    """Each architecture in turn: rotary (Llama) and learned absolute positions (GPT-2)."""
    return build_model(tokenizer) if request.param == "llama" else build_gpt2(tokenizer)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models are launch-overhead bound: on a shared 2-core machine a second intra-op thread
    makes them up to 10x slower, so these tests run single-threaded (restored afterwards)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
