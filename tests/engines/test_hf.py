"""HFEngine contract: exact logprobs, padding independence, HF parity, seeds, stops, bookkeeping."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace

import pytest
import torch

from selftaught.data.chat import encode_text, render_prompt
from selftaught.engines.base import CancellableEngine, Engine, SamplingParams
from selftaught.engines.hf import CANCEL_POLL_STEPS, HFEngine, eos_token_ids
from selftaught.engines.sampling import nucleus_probs, sample_from_probs, sample_next_tokens
from selftaught.types import Completion, Prompt

GREEDY = SamplingParams(temperature=0, max_new_tokens=16)


def chat_prompt(pid: str, content: str) -> Prompt:
    return Prompt(id=pid, messages=[{"role": "user", "content": content}])


@pytest.fixture
def prompts() -> list[Prompt]:
    """Chat and raw-text prompts of clearly different lengths."""
    return [
        chat_prompt("short", "Hi"),
        chat_prompt("long", "Tell a story about the sea, with a whale and a storm and a boat."),
        Prompt(id="raw", messages=[], text="What is 12 + 35? Let us add:"),
        chat_prompt("mid", "Name an animal."),
    ]


def add_eos_bias(model: torch.nn.Module, eos_id: int, value: float) -> None:
    """Add `value` to the EOS logit of every forward (a persistent hook on the LM head)."""
    bias = torch.zeros(model.config.vocab_size)
    bias[eos_id] = value
    model.lm_head.register_forward_hook(lambda module, args, output: output + bias)


def teacher_forced_logps(
    model: torch.nn.Module, prompt_ids: list[int], completion_ids: list[int]
) -> torch.Tensor:
    """Logprobs [T] of `completion_ids` from one unpadded forward over prompt + completion."""
    input_ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits[0].float()  # [P + T, V]
    logps = logits[len(prompt_ids) - 1 : -1].log_softmax(-1)  # [T, V]
    return logps.gather(-1, torch.tensor(completion_ids)[:, None]).squeeze(-1)


def flat(results: list[list[Completion]]) -> Iterator[Completion]:
    return (completion for completions in results for completion in completions)


def test_is_an_engine(model, tokenizer):
    assert isinstance(HFEngine(model, tokenizer), Engine)
    assert isinstance(HFEngine(model, tokenizer), CancellableEngine)


def test_a_cancelled_prompt_stops_at_the_next_poll_and_the_others_are_unchanged(model, tokenizer, prompts):
    add_eos_bias(model, tokenizer.eos_token_id, -100.0)  # every row runs to its budget unless cancelled
    sampling = SamplingParams(temperature=0, max_new_tokens=3 * CANCEL_POLL_STEPS, n=2)
    engine = HFEngine(model, tokenizer, batch_size=3)  # prompt 1's rows share micro-batches with others
    expected = engine.generate(prompts, sampling)
    got = engine.generate_cancellable(prompts, sampling, lambda i: i == 1)
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        if i != 1:
            assert [c.token_ids for c in have] == [c.token_ids for c in want]
            assert {c.finish_reason for c in have} == {"length"}
            continue
        for cut, full in zip(have, want, strict=True):
            assert cut.finish_reason == "abort"
            assert cut.token_ids == full.token_ids[:CANCEL_POLL_STEPS]
            assert cut.logprobs == pytest.approx(full.logprobs[:CANCEL_POLL_STEPS])


def test_micro_batches_nobody_waits_for_are_not_decoded(model, tokenizer, prompts):
    forwards = []
    model.register_forward_hook(lambda module, args, output: forwards.append(1))
    results = HFEngine(model, tokenizer).generate_cancellable(prompts, GREEDY, lambda i: True)
    assert forwards == []
    assert [[c.finish_reason for c in cs] for cs in results] == [["abort"]] * len(prompts)
    assert all(c.text == "" and c.token_ids == [] for c in flat(results))


@pytest.mark.parametrize(
    "sampling",
    [
        SamplingParams(temperature=0, max_new_tokens=24, n=2),
        SamplingParams(temperature=1.0, max_new_tokens=24, n=3, seed=1),
        SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=24, n=3, seed=2),
    ],
    ids=["greedy", "t1", "t0.7-top_p0.9"],
)
def test_logprobs_equal_teacher_forced(any_model, tokenizer, prompts, sampling):
    model = any_model
    # An EOS bias makes rows finish at different steps, so dropping finished rows is exercised.
    add_eos_bias(model, tokenizer.eos_token_id, 3.0)
    engine = HFEngine(model, tokenizer, batch_size=4)
    results = engine.generate(prompts, sampling)
    if sampling.temperature > 0:
        assert {c.finish_reason for c in flat(results)} == {"stop", "length"}
    for prompt, completions in zip(prompts, results, strict=True):
        assert len(completions) == sampling.n
        for completion in completions:
            assert completion.prompt_id == prompt.id
            expected = teacher_forced_logps(model, engine.encode_prompt(prompt), completion.token_ids)
            torch.testing.assert_close(torch.tensor(completion.logprobs), expected, atol=1e-4, rtol=0)


def test_top_logprobs_are_the_teacher_forced_top_k(model, tokenizer, prompts):
    """The k alternatives per step are the top k of the teacher-forced log-softmax, most likely first;
    the sampled token's own logprob is unchanged by asking for them."""
    add_eos_bias(model, tokenizer.eos_token_id, 3.0)  # rows finish at different steps
    engine = HFEngine(model, tokenizer, batch_size=3)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=8, n=2, seed=5)
    plain = engine.generate(prompts, sampling)
    results = engine.generate(prompts, SamplingParams(**{**sampling.__dict__, "top_logprobs": 3}))
    for prompt, completions, plain_completions in zip(prompts, results, plain, strict=True):
        for completion, plain_completion in zip(completions, plain_completions, strict=True):
            assert completion.token_ids == plain_completion.token_ids
            assert completion.logprobs == plain_completion.logprobs
            prompt_ids = engine.encode_prompt(prompt)
            input_ids = torch.tensor([prompt_ids + completion.token_ids])
            with torch.no_grad():
                logits = model(input_ids=input_ids).logits[0].float()
            expected = logits[len(prompt_ids) - 1 : -1].log_softmax(-1).topk(3, dim=-1)  # [T, 3]
            top = completion.meta["top_logprobs"]
            assert len(top) == len(completion.token_ids)
            assert [[i for i, _ in step] for step in top] == expected.indices.tolist()
            got = torch.tensor([[lp for _, lp in step] for step in top])
            torch.testing.assert_close(got, expected.values, atol=1e-4, rtol=0)
            assert completion.meta["sample_index"] in (0, 1)
    assert "top_logprobs" not in plain[0][0].meta


def test_prompt_logprobs_of_prompt_plus_completion_end_with_the_completions(model, tokenizer, prompts):
    """A forward over prompt + sampled completion scores the completion's tokens as decoding did."""
    engine = HFEngine(model, tokenizer)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=6, seed=2, top_logprobs=2)
    for prompt, (completion,) in zip(prompts, engine.generate(prompts, sampling), strict=True):
        prompt_ids = engine.encode_prompt(prompt)
        logps, tops = engine.prompt_logprobs(prompt_ids + completion.token_ids, top_logprobs=2)
        assert logps[0] is None and tops is not None and tops[0] == []
        assert len(logps) == len(tops) == len(prompt_ids) + len(completion.token_ids)
        tail = torch.tensor(logps[len(prompt_ids) :])
        torch.testing.assert_close(tail, torch.tensor(completion.logprobs), atol=1e-4, rtol=0)
        got_top = tops[len(prompt_ids) :]
        assert [[i for i, _ in step] for step in got_top] == [
            [i for i, _ in step] for step in completion.meta["top_logprobs"]
        ]
    assert engine.prompt_logprobs([5, 6])[1] is None


def test_on_token_reports_every_token_of_every_sample_in_order(model, tokenizer, prompts):
    add_eos_bias(model, tokenizer.eos_token_id, 3.0)  # rows finish at different steps
    engine = HFEngine(model, tokenizer, batch_size=3)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=8, n=2, seed=4, stop=["e"], top_logprobs=2)
    reported: dict[tuple[int, int], list[tuple[int, float, list]]] = {}
    results = engine.generate_cancellable(
        prompts,
        sampling,
        None,
        lambda i, j, token, lp, alts: reported.setdefault((i, j), []).append((token, lp, alts)),
    )
    assert results == engine.generate(prompts, sampling)
    for i, completions in enumerate(results):
        for j, completion in enumerate(completions):
            assert [t for t, _, _ in reported[(i, j)]] == completion.token_ids
            assert [lp for _, lp, _ in reported[(i, j)]] == completion.logprobs
            assert [alts for _, _, alts in reported[(i, j)]] == completion.meta["top_logprobs"]


def test_greedy_is_independent_of_padding_and_batching(any_model, tokenizer, prompts):
    model = any_model
    engine = HFEngine(model, tokenizer)
    for alone_index, prompt in enumerate(prompts):
        [[alone]] = engine.generate([prompt], GREEDY)
        for batch_size in (2, 256):  # split into micro-batches, and one padded batch
            engine = HFEngine(model, tokenizer, batch_size=batch_size)
            batched = engine.generate(prompts, GREEDY)[alone_index][0]
            assert batched.token_ids == alone.token_ids
            torch.testing.assert_close(
                torch.tensor(batched.logprobs), torch.tensor(alone.logprobs), atol=1e-5, rtol=0
            )


def test_greedy_equals_hf_generate(model, tokenizer, prompts):
    engine = HFEngine(model, tokenizer)
    for prompt in prompts:
        prompt_ids = engine.encode_prompt(prompt)
        [[completion]] = engine.generate([prompt], GREEDY)
        hf_output = model.generate(
            input_ids=torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            do_sample=False,
            max_new_tokens=GREEDY.max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
        )
        assert completion.token_ids == hf_output[0, len(prompt_ids) :].tolist()


def test_same_seed_same_samples_different_seed_differs(model, tokenizer, prompts):
    engine = HFEngine(model, tokenizer, batch_size=8)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=12, n=4, seed=7)
    first = [c.token_ids for c in flat(engine.generate(prompts, sampling))]
    again = [c.token_ids for c in flat(engine.generate(prompts, sampling))]
    other = SamplingParams(temperature=1.0, max_new_tokens=12, n=4, seed=8)
    reseeded = [c.token_ids for c in flat(engine.generate(prompts, other))]
    assert first == again
    assert first != reseeded


def test_n_samples_per_prompt_in_order(model, tokenizer, prompts):
    sampling = SamplingParams(temperature=1.0, max_new_tokens=8, n=5, seed=3)
    results = HFEngine(model, tokenizer, batch_size=3).generate(prompts, sampling)
    for prompt, completions in zip(prompts, results, strict=True):
        assert [c.prompt_id for c in completions] == [prompt.id] * 5
        assert [c.meta for c in completions] == [{"sample_index": j, "seed": 3} for j in range(5)]
        assert len({tuple(c.token_ids) for c in completions}) > 1


def test_stop_string_cuts_text_and_keeps_completing_token(model, tokenizer, prompts):
    engine = HFEngine(model, tokenizer)
    for completion in flat(engine.generate(prompts, GREEDY)):
        stop = next((ch for ch in completion.text[1:] if ch.isascii() and ch.isprintable()), None)
        if stop is None:
            continue
        [[stopped]] = engine.generate_ids(
            [completion_prompt_ids(engine, prompts, completion)],
            SamplingParams(temperature=0, max_new_tokens=16, stop=["@@", stop]),
        )
        assert stopped.finish_reason == "stop"
        assert stopped.text == completion.text[: completion.text.index(stop)]
        assert stopped.token_ids == completion.token_ids[: len(stopped.token_ids)]
        assert stop in tokenizer.decode(stopped.token_ids)
        assert stop not in tokenizer.decode(stopped.token_ids[:-1])


def completion_prompt_ids(engine: HFEngine, prompts: list[Prompt], completion: Completion) -> list[int]:
    return engine.encode_prompt(next(p for p in prompts if p.id == completion.prompt_id))


def test_length_finish_at_max_new_tokens(model, tokenizer, prompts):
    sampling = SamplingParams(temperature=1.0, max_new_tokens=5, n=2)
    for completion in flat(HFEngine(model, tokenizer).generate(prompts, sampling)):
        assert completion.finish_reason == "length"
        assert len(completion.token_ids) == len(completion.logprobs) == 5


def test_stop_at_eos_keeps_eos_token_and_drops_it_from_text(model, tokenizer, prompts):
    add_eos_bias(model, tokenizer.eos_token_id, 100.0)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=5)
    for completion in flat(HFEngine(model, tokenizer).generate(prompts, sampling)):
        assert completion.finish_reason == "stop"
        assert completion.token_ids == [tokenizer.eos_token_id]
        assert completion.text == ""
        assert completion.logprobs == pytest.approx([0.0], abs=1e-6)


def test_tiny_top_p_is_greedy(model, tokenizer, prompts):
    engine = HFEngine(model, tokenizer)
    greedy = engine.generate(prompts, GREEDY)
    nucleus = engine.generate(prompts, SamplingParams(temperature=1.0, top_p=1e-6, max_new_tokens=16, n=2))
    for greedy_completions, nucleus_completions in zip(greedy, nucleus, strict=True):
        for completion in nucleus_completions:
            assert completion.token_ids == greedy_completions[0].token_ids


def test_nucleus_keeps_smallest_set_reaching_top_p():
    logits = torch.tensor([[0.5, 0.3, 0.2]]).log()
    torch.testing.assert_close(nucleus_probs(logits, 0.6), torch.tensor([[0.5, 0.3, 0.0]]))
    torch.testing.assert_close(nucleus_probs(logits, 0.5), torch.tensor([[0.5, 0.0, 0.0]]))
    torch.testing.assert_close(nucleus_probs(logits, 1.0), torch.tensor([[0.5, 0.3, 0.2]]))


def test_sample_from_probs_matches_distribution():
    probs = torch.tensor([[0.5, 0.3, 0.0, 0.2, 0.0]]).expand(200_000, 5)
    draws = sample_from_probs(probs * 3.0, torch.Generator().manual_seed(0))  # unnormalised is fine
    frequencies = torch.bincount(draws, minlength=5).float() / len(draws)
    torch.testing.assert_close(frequencies, probs[0], atol=5e-3, rtol=0)
    assert frequencies[2] == frequencies[4] == 0


def test_sampled_tokens_follow_tempered_nucleus_and_logps_do_not():
    """Draws follow nucleus(softmax(logits / T)); the returned logprob is log_softmax(logits).

    softmax(logits / 0.7) = [.700, .168, .082, .040, .010]: the mass before token 2 is .868 < 0.9
    and before token 3 is .950, so the 0.9-nucleus is tokens 0, 1, 2.
    """
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
    tempered = (logits / 0.7).softmax(-1)
    expected = torch.cat([tempered[:3], torch.zeros(2)])
    expected = expected / expected.sum()
    sampling = SamplingParams(temperature=0.7, top_p=0.9)
    tokens, logps = sample_next_tokens(logits.expand(200_000, 5), sampling, torch.Generator().manual_seed(1))
    frequencies = torch.bincount(tokens, minlength=5).float() / len(tokens)
    torch.testing.assert_close(frequencies, expected, atol=5e-3, rtol=0)
    torch.testing.assert_close(logps, logits.log_softmax(-1)[tokens])


def test_prompt_ids_from_text_or_messages(model, tokenizer, prompts):
    engine = HFEngine(model, tokenizer)
    assert engine.encode_prompt(prompts[2]) == encode_text(tokenizer, prompts[2].text, add_bos=True)
    assert engine.encode_prompt(prompts[0]) == render_prompt(tokenizer, prompts[0].messages)
    [[from_prompt]] = engine.generate([prompts[2]], GREEDY)
    [[from_ids]] = engine.generate_ids([engine.encode_prompt(prompts[2])], GREEDY)
    assert from_prompt.token_ids == from_ids.token_ids
    assert from_ids.prompt_id == ""


def test_empty_prompt_list_and_bad_prompts(model, tokenizer):
    engine = HFEngine(model, tokenizer)
    assert engine.generate([], GREEDY) == []
    with pytest.raises(ValueError, match="no tokens"):
        engine.generate_ids([[5, 6], []], GREEDY)
    too_long = [5] * model.config.max_position_embeddings
    with pytest.raises(ValueError, match="max_position_embeddings"):
        engine.generate_ids([too_long], GREEDY)


def test_budget_is_cut_at_max_positions(model, tokenizer):
    prompt_ids = [5] * (model.config.max_position_embeddings - 3)
    [[completion]] = HFEngine(model, tokenizer).generate_ids([prompt_ids], GREEDY)
    assert completion.finish_reason == "length"
    assert len(completion.token_ids) == 3


def test_restores_train_mode(model, tokenizer, prompts):
    model.train()
    HFEngine(model, tokenizer).generate(prompts[:1], GREEDY)
    assert model.training
    model.eval()
    HFEngine(model, tokenizer).generate(prompts[:1], GREEDY)
    assert not model.training


def test_sync_weights_copies_policy_and_stamps_version(model, tokenizer, prompts):
    generator_model = copy.deepcopy(model)
    with torch.no_grad():
        for param in generator_model.parameters():
            param.add_(torch.randn_like(param))
    engine = HFEngine(generator_model, tokenizer, policy_version=0)
    expected = [c.token_ids for c in flat(HFEngine(model, tokenizer).generate(prompts, GREEDY))]
    assert [c.token_ids for c in flat(engine.generate(prompts, GREEDY))] != expected
    engine.sync_weights(model, policy_version=3)
    completions = list(flat(engine.generate(prompts, GREEDY)))
    assert [c.token_ids for c in completions] == expected
    assert {c.policy_version for c in completions} == {3}


def test_sync_weights_with_itself_only_bumps_version(model, tokenizer, prompts):
    engine = HFEngine(model, tokenizer)
    engine.sync_weights(model, policy_version=5)
    assert engine.generate(prompts[:1], GREEDY)[0][0].policy_version == 5


def test_eos_ids_include_generation_config_list(model, tokenizer):
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, 7]
    assert eos_token_ids(model, tokenizer) == sorted({tokenizer.eos_token_id, 7})
    add_eos_bias(model, 7, 100.0)
    [[completion]] = HFEngine(model, tokenizer).generate_ids([[5, 6]], GREEDY)
    assert completion.token_ids == [7]
    assert completion.finish_reason == "stop"


def forced_head(model, index: int, level: str = "sequence"):
    """An adaptive head whose choice is always temperature `index` of the default grid."""
    from selftaught.models.adaptive import AdaptiveDecoder

    head = AdaptiveDecoder(model.config.hidden_size, level=level)
    with torch.no_grad():
        head.mlp[-1].bias[index] = 50.0
    return head


@pytest.mark.parametrize("level", ["sequence", "token"])
def test_a_head_that_always_picks_tau_0_decodes_greedily_and_tau_1_samples_at_1(
    model, tokenizer, prompts, level
):
    engine = HFEngine(model, tokenizer)
    greedy = engine.generate(prompts, replace(GREEDY, n=2))
    hot = engine.generate(prompts, SamplingParams(temperature=1.0, max_new_tokens=16, n=2, seed=3))
    at_0 = HFEngine(model, tokenizer, temperature_head=forced_head(model, 0, level)).generate(
        prompts, replace(GREEDY, n=2)
    )
    at_1 = HFEngine(model, tokenizer, temperature_head=forced_head(model, 5, level)).generate(
        prompts,
        SamplingParams(temperature=0.3, max_new_tokens=16, n=2, seed=3),  # the head's 1.0 overrides 0.3
    )
    assert [c.token_ids for c in flat(at_0)] == [c.token_ids for c in flat(greedy)]
    assert [c.token_ids for c in flat(at_1)] == [c.token_ids for c in flat(hot)]
    assert [c.logprobs for c in flat(at_1)] == [c.logprobs for c in flat(hot)]
    for completion in flat(at_1):
        expected = len(completion.token_ids) if level == "token" else 1
        assert (
            completion.meta["tau_index"] == [5] * expected
            and completion.meta["temperatures"] == [1.0] * expected
        )


def test_a_sampling_head_records_its_per_token_choices_and_is_seeded(model, tokenizer, prompts):
    from selftaught.models.adaptive import AdaptiveDecoder, Level

    head = AdaptiveDecoder(model.config.hidden_size, level=Level.TOKEN)  # uniform over 6 temperatures
    sampling = SamplingParams(max_new_tokens=12, n=3, seed=5)
    first = HFEngine(model, tokenizer, temperature_head=head).generate(prompts, sampling)
    again = HFEngine(model, tokenizer, temperature_head=head).generate(prompts, sampling)
    traces = [c.meta["tau_index"] for c in flat(first)]
    assert traces == [c.meta["tau_index"] for c in flat(again)]
    assert [c.token_ids for c in flat(first)] == [c.token_ids for c in flat(again)]
    assert all(len(t) == len(c.token_ids) for t, c in zip(traces, flat(first), strict=True))
    assert len({i for t in traces for i in t}) == 6  # a uniform head visits every temperature
    argmax = HFEngine(model, tokenizer, temperature_head=head, head_sample=False).generate(prompts, sampling)
    assert {i for c in flat(argmax) for i in c.meta["tau_index"]} == {0}  # ties: the lowest temperature


def test_a_sampling_head_draws_anew_in_every_micro_batch(model, tokenizer):
    """The head's stream runs across the micro-batches of one call: two batches of the same prompt
    do not repeat the first batch's temperatures (each batch once reseeded the head's generator)."""
    from selftaught.models.adaptive import AdaptiveDecoder

    head = AdaptiveDecoder(model.config.hidden_size)  # sequence level, uniform over 6 temperatures
    same = [Prompt(f"p{i}", [{"role": "user", "content": "12+7"}]) for i in range(16)]
    engine = HFEngine(model, tokenizer, temperature_head=head, batch_size=8)
    taus = [
        cs[0].meta["tau_index"][0] for cs in engine.generate(same, SamplingParams(max_new_tokens=2, seed=1))
    ]
    assert taus[:8] != taus[8:]
    one_batch = HFEngine(model, tokenizer, temperature_head=head, batch_size=16)
    assert taus == [
        cs[0].meta["tau_index"][0]
        for cs in one_batch.generate(same, SamplingParams(max_new_tokens=2, seed=1))
    ]
