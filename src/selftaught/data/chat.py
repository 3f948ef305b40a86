"""Render conversations to token ids and a loss mask, with the tokenizer's own chat template.

One function, `render_conversation`, is the only place where chat text becomes training tokens, and
`render_prompt` is the only place where it becomes generation input; both tokenise the same text
pieces the same way, so what a model is trained on is exactly what it is prompted with.
`encode_prompt` is the one rule that turns a `Prompt` (raw text or chat) into generation input: every
engine, the server's token counts and the online trainer's rollout examples use it.

The template is rendered to text and cut into pieces at every assistant turn; each piece is
tokenised on its own and the pieces are concatenated. The assistant pieces (the reply and the
template's end-of-turn marker) get `loss_mask = True`, everything else `False`.
"""

from __future__ import annotations

import re
from typing import Any

from selftaught.data.sources import json_type
from selftaught.types import Message, Prompt

DEFAULT_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}<|system|>\n{{ message['content'] }}\n"
    "{% elif message['role'] == 'user' %}<|user|>\n{{ message['content'] }}\n"
    "{% else %}<|assistant|>\n{{ message['content'] }}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""Used for tokenizers that have no chat template (base models). Plain text markers, BOS first,
EOS closes every assistant turn so a model trained on it learns to stop."""

ROLES = ("system", "user", "assistant")


def chat_template(tokenizer: Any) -> str:
    """The tokenizer's chat template, or `DEFAULT_CHAT_TEMPLATE` when it has none."""
    return getattr(tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE


def apply_template(tokenizer: Any, messages: list[Message], add_generation_prompt: bool) -> str:
    """The conversation as text, exactly as the chat template writes it."""
    return tokenizer.apply_chat_template(
        messages,
        chat_template=chat_template(tokenizer),
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )


def encode_text(tokenizer: Any, text: str, add_bos: bool = False) -> list[int]:
    """Token ids of `text`; special-token strings in it (`<bos>`, `</s>`) become their ids.

    `add_bos` prepends the BOS id when the tokenizer has one and the text does not already start
    with it: for raw (non-chat) prompts. Gemma degenerates without BOS, and some tokenizer versions
    do not add it on their own, so we never rely on `add_special_tokens`.
    """
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    bos = tokenizer.bos_token_id
    if add_bos and bos is not None and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    return ids


def validate_messages(messages: list[Message]) -> None:
    """Raise a ValueError naming the bad turn when `messages` is not a chat conversation."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(
            f"messages must be a non-empty list of {{'role', 'content'}} dicts, got {messages!r:.200}"
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(f"messages[{i}] must be a dict with 'role' and 'content', got {message!r:.200}")
        if message["role"] not in ROLES:
            raise ValueError(f"messages[{i}]['role'] must be one of {ROLES}, got {message['role']!r}")
        if not isinstance(message["content"], str):
            raise ValueError(
                f"messages[{i}]['content'] must be a string, got {type(message['content']).__name__}"
            )


def render_prompt(tokenizer: Any, messages: list[Message]) -> list[int]:
    """Token ids that ask the model for the next assistant turn (generation input)."""
    validate_messages(messages)
    return encode_text(tokenizer, apply_template(tokenizer, messages, add_generation_prompt=True))


def encode_prompt(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Generation input of `prompt`: its raw `text` with BOS when set (base models, few-shot), else
    its `messages` through the chat template. One rule, so a prompt is the same tokens whether an
    engine samples from it or a trainer scores the samples."""
    if prompt.text is not None:
        return encode_text(tokenizer, prompt.text, add_bos=True)
    return render_prompt(tokenizer, prompt.messages)


def render_conversation(tokenizer: Any, messages: list[Message]) -> tuple[list[int], list[bool]]:
    """`(input_ids, loss_mask)` for a whole conversation; `loss_mask` is True on assistant tokens.

    Every assistant turn is trained, including the template's end-of-turn marker after it. Raises a
    ValueError when the template is not prefix-stable (rendering a conversation's first k turns is
    not a text prefix of rendering all of them), since the loss mask would then be ambiguous.
    """
    validate_messages(messages)
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError("the conversation needs at least one assistant turn to train on")
    if messages[0]["role"] == "assistant":
        # The template's text before a first assistant turn (BOS, turn header) cannot be rendered
        # on its own, so it would be trained; a reply needs something to reply to anyway.
        raise ValueError(
            "messages[0] is an assistant turn; a conversation must start with a system or user turn"
        )
    full_text = apply_template(tokenizer, messages, add_generation_prompt=False)
    input_ids: list[int] = []
    loss_mask: list[bool] = []
    done = 0  # characters of full_text already tokenised
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = apply_template(tokenizer, messages[:i], add_generation_prompt=True)
        through = apply_template(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if not (full_text.startswith(before) and full_text.startswith(through) and len(before) >= done):
            raise ValueError(
                "the chat template is not prefix-stable (rendering the first turns is not a prefix of "
                "rendering the whole conversation), so assistant tokens cannot be located; "
                "pass a tokenizer with a simpler template or set tokenizer.chat_template"
            )
        _append(tokenizer, full_text[done : len(before)], False, input_ids, loss_mask)
        _append(tokenizer, full_text[len(before) : len(through)], True, input_ids, loss_mask)
        done = len(through)
    _append(tokenizer, full_text[done:], False, input_ids, loss_mask)
    return input_ids, loss_mask


def render_prompt_completion(
    tokenizer: Any,
    prompt: list[Message] | str,
    completion: list[Message] | str,
    *,
    where: str = "record",
    column: str = "completion",
) -> tuple[list[int], list[bool]]:
    """`(input_ids, loss_mask)` of a TRL `prompt` + `completion` record, the completion trained.

    Conversational (both message lists): the chat template renders the whole conversation
    (`render_conversation`). Plain text (both strings): BOS + prompt, then the completion + EOS, no
    template. `where` and `column` (the completion's column name) locate a bad record in the error.
    """
    if isinstance(prompt, list) and isinstance(completion, list):
        return render_conversation(tokenizer, [*prompt, *completion])
    if isinstance(prompt, str) and isinstance(completion, str):
        prompt_ids = encode_text(tokenizer, prompt, add_bos=True)
        completion_ids = [*encode_text(tokenizer, completion), tokenizer.eos_token_id]
        return [*prompt_ids, *completion_ids], [False] * len(prompt_ids) + [True] * len(completion_ids)
    raise ValueError(
        f"{where}: `prompt` and `{column}` must both be message lists (conversational) or both "
        f"strings, got {json_type(prompt)} and {json_type(completion)}"
    )


def _append(tokenizer: Any, text: str, trained: bool, input_ids: list[int], loss_mask: list[bool]) -> None:
    if not text:
        return
    ids = encode_text(tokenizer, text)
    input_ids.extend(ids)
    loss_mask.extend([trained] * len(ids))


def emphasis_weights(
    tokenizer: Any, input_ids: list[int], loss_mask: list[bool], emphasis: dict[str, float]
) -> list[float]:
    """Per-token loss weights: 1 on trained tokens, `emphasis[pattern]` on the trained tokens whose
    text overlaps a match of the regex `pattern` (the largest such weight when several match), 0 off
    the loss mask.

    Each maximal run of trained tokens is decoded as one text; a token's characters are those its
    decode adds to the run's prefix, so a match is found on the text as the model writes it (e.g.
    `{"\\\\[\\\\[[AB]\\\\]\\\\]": 5.0}`: a judge's verdict, TINYWORLD_JUDGES_LPO §1.2).
    """
    compiled = [(re.compile(pattern), weight) for pattern, weight in emphasis.items()]
    emphasised: list[float | None] = [None] * len(loss_mask)
    for start, end in _trained_runs(loss_mask):
        bounds = [0] + [len(tokenizer.decode(input_ids[start : k + 1])) for k in range(start, end)]
        text = tokenizer.decode(input_ids[start:end])
        for pattern, weight in compiled:
            for match in pattern.finditer(text):
                for k in range(start, end):
                    first, last = bounds[k - start], bounds[k - start + 1]
                    if first < match.end() and last > match.start():
                        emphasised[k] = max(weight, emphasised[k] or weight)
    return [
        (weight if weight is not None else 1.0) if trained else 0.0
        for trained, weight in zip(loss_mask, emphasised, strict=True)
    ]


def _trained_runs(loss_mask: list[bool]) -> list[tuple[int, int]]:
    """`[start, end)` of each maximal run of trained tokens."""
    runs, start = [], None
    for i, trained in enumerate([*loss_mask, False]):
        if trained and start is None:
            start = i
        elif not trained and start is not None:
            runs.append((start, i))
            start = None
    return runs
