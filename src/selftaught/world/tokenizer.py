"""The tiny world's tokenizer: byte-level BPE trained in memory on arithmetic text.

Every digit is its own token, so a model reads and writes numbers digit by digit, as column
arithmetic does. All 256 bytes are in the vocabulary, so any text round-trips through
encode / decode. The merges are learned from a fixed corpus (all levels, all strategies, plain
and word forms), so two builds give the same vocabulary and no file has to be shipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from selftaught.world.arith import STRATEGIES, sample_problems, solve

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (PAD, BOS, EOS, *ROLE_TOKENS)
"""Ids 0..5, in this order."""

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}<|system|>{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}<|user|>{{ message['content'] }}"
    "{% else %}<|assistant|>{{ message['content'] }}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
"""`<s><|user|>33-25-7<|assistant|>33-25=8 8-7=1 Answer: 1</s>`. No newlines or spaces around the
markers: role tokens already separate the turns, and every extra token lengthens tiny sequences.
Each rendering of the first turns is a prefix of the rendering of the whole conversation, as
`selftaught.data.chat.render_conversation` requires."""

_CORPUS_LEVELS = (1, 2, 3, 4)
_CORPUS_PROBLEMS_PER_LEVEL = 400


def _iter_corpus() -> Iterator[str]:
    """The fixed text the merges are learned from: for train-split problems of levels 1-4, the
    plain and word questions and a solution per strategy."""
    num_problems = len(_CORPUS_LEVELS) * _CORPUS_PROBLEMS_PER_LEVEL
    for problem in sample_problems("train", num_problems, _CORPUS_LEVELS, seed=0):
        yield problem.text
        yield dataclasses.replace(problem, word=True).text
        for strategy in STRATEGIES:
            yield solve(problem, strategy)


def build_tokenizer(vocab_size: int = 320) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with `vocab_size` entries, trained in memory on the world corpus.

    Pre-tokenisation splits every digit into its own piece before the byte-level split, so digits
    never merge. `SPECIAL_TOKENS` take ids 0..5 and the 256 byte symbols follow. The
    `vocab_size - 262` merges left are learned from the world corpus. `pad`, `bos` and `eos`
    are set, and `CHAT_TEMPLATE` is the chat template. Deterministic: two calls give the same
    vocabulary and merges.
    """
    num_base = len(SPECIAL_TOKENS) + len(pre_tokenizers.ByteLevel.alphabet())
    if vocab_size < num_base:
        raise ValueError(f"vocab_size must be >= {num_base} (special tokens + 256 bytes), got {vocab_size}")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_iter_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        extra_special_tokens=list(ROLE_TOKENS),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
