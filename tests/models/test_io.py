from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from selftaught.models import gguf, io
from selftaught.models.io import cache_dir, load_model, resolve_model_source, save_model
from selftaught.models.tiny import build_tiny_llama

WORDS = ["<pad>", "<s>", "</s>", "<unk>", "the", "cat", "sat", "on", "mat", "a", "dog"]


def word_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer built in memory, with BOS and EOS but no pad token."""
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def tiny_model():
    return build_tiny_llama("xs", len(WORDS), bos_token_id=1, eos_token_id=2, pad_token_id=0, seed=3)


def test_cache_dir_from_env_or_home(monkeypatch, tmp_path):
    monkeypatch.setenv("SELFTAUGHT_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SELFTAUGHT_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "selftaught"


def test_save_load_round_trip(tmp_path):
    model, tokenizer = tiny_model().eval(), word_tokenizer()
    out = save_model(model, tokenizer, tmp_path / "ckpt")
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors" in names and "config.json" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl", ".pickle"))], names

    loaded, loaded_tokenizer = load_model(str(out))
    ids = torch.tensor([tokenizer("the cat sat on a mat")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)
    assert not loaded.training
    assert loaded_tokenizer("the dog sat")["input_ids"] == tokenizer("the dog sat")["input_ids"]
    assert loaded_tokenizer.pad_token == "</s>" and loaded_tokenizer.padding_side == "left"

    plain = AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, model(ids).logits)
    assert AutoTokenizer.from_pretrained(out)("a cat")["input_ids"] == tokenizer("a cat")["input_ids"]


def test_load_in_bfloat16(tmp_path):
    save_model(tiny_model(), word_tokenizer(), tmp_path)
    model, _ = load_model(str(tmp_path), dtype="bfloat16")
    assert model.dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("./no/such/dir", "is not a model directory or .gguf file; pass an alias"),
        ("/no/such/model.gguf", "no such .gguf file"),
        ("owner/name/extra", "is not a model directory or .gguf file; pass an alias"),
        ("~missing", "is not a model directory or .gguf file"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        load_model(spec)


def test_directory_without_config_and_plain_file(tmp_path):
    with pytest.raises(ValueError, match="has no config.json"):
        load_model(str(tmp_path))
    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match="is not a model directory or .gguf file"):
        load_model(str(weights))


def test_tokenizer_without_pad_or_eos(tmp_path):
    tokenizer = word_tokenizer()
    tokenizer.eos_token = None
    save_model(tiny_model(), tokenizer, tmp_path)
    with pytest.raises(ValueError, match="neither a pad token nor an EOS token; set tokenizer.pad_token"):
        load_model(str(tmp_path))


def test_unknown_dtype(tmp_path):
    with pytest.raises(ValueError, match=r"dtype must be one of \['bfloat16', 'float16', 'float32'\]"):
        load_model(str(tmp_path), dtype="fp8")


def test_hub_id_is_passed_through_and_its_failure_lists_aliases(monkeypatch):
    assert resolve_model_source("owner/name") == "owner/name"
    assert resolve_model_source("gpt2") == "gpt2"

    def offline(source, **kwargs):
        raise OSError(f"cannot reach the hub for {source}")

    monkeypatch.setattr(io.AutoModelForCausalLM, "from_pretrained", offline)
    with pytest.raises(
        ValueError, match=r"not an alias \(gemma-3-270m[^)]*\).*cannot reach the hub for gemma-9"
    ):
        load_model("gemma-9")


def fake_convert(calls: list[Path]):
    def convert(gguf_path: Path, out_dir: Path) -> None:
        calls.append(gguf_path)
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text("{}")

    return convert


def test_gguf_conversion_is_cached_by_sha256(monkeypatch, tmp_path):
    calls: list[Path] = []
    monkeypatch.setattr(gguf, "convert_gguf", fake_convert(calls))
    source = tmp_path / "m.gguf"
    source.write_bytes(b"weights v1")
    first = gguf.convert_gguf_cached(source, tmp_path / "models")
    assert first == gguf.gguf_cache_dir(tmp_path / "models", "m.gguf", gguf.file_sha256(source))
    assert (first / "config.json").is_file()
    assert gguf.convert_gguf_cached(source, tmp_path / "models") == first
    assert len(calls) == 1

    source.write_bytes(b"weights v2")
    second = gguf.convert_gguf_cached(source, tmp_path / "models")
    assert second != first and len(calls) == 2
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == sorted([first.name, second.name])


def test_interrupted_gguf_conversion_leaves_no_cache_entry(monkeypatch, tmp_path):
    def crash(gguf_path: Path, out_dir: Path) -> None:
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf, "convert_gguf", crash)
    source = tmp_path / "m.gguf"
    source.write_bytes(b"weights")
    with pytest.raises(KeyboardInterrupt):
        gguf.convert_gguf_cached(source, tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []

    calls: list[Path] = []
    monkeypatch.setattr(gguf, "convert_gguf", fake_convert(calls))
    assert (gguf.convert_gguf_cached(source, tmp_path / "models") / "config.json").is_file()
    assert calls == [source]


def test_a_registered_alias_is_built_on_first_use(monkeypatch, tmp_path, tiny_model_dir):
    builds = []
    monkeypatch.setattr(io, "_ALIAS_BUILDERS", {})
    monkeypatch.setattr(io, "MODEL_ALIASES", dict(io.MODEL_ALIASES))
    io.register_model_alias("my-model", "a test alias", lambda: builds.append(1) or Path(tiny_model_dir))
    assert resolve_model_source("my-model") == Path(tiny_model_dir) and builds == [1]
    assert "my-model" in io.MODEL_ALIASES


def test_scratch_spec_builds_a_seeded_tiny_model_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFTAUGHT_CACHE", str(tmp_path / "cache"))
    model, tokenizer = load_model("scratch:xs")
    again, _ = load_model("scratch:xs:0")
    other, _ = load_model("scratch:xs:1")
    assert model.config.num_hidden_layers == 2 and len(tokenizer) == model.config.vocab_size
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters(), strict=True))
    assert not torch.equal(model.model.embed_tokens.weight, other.model.embed_tokens.weight)
    assert sorted(p.name for p in (tmp_path / "cache" / "models").iterdir()) == [
        "scratch-xs-0",
        "scratch-xs-1",
    ]
    for bad in ("scratch:xxl", "scratch:xs:one"):
        with pytest.raises(ValueError, match=r"scratch:<size>\[:<seed>\]"):
            load_model(bad)


def test_a_cached_fp32_model_loads_in_bf16_from_a_bf16_sibling_written_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFTAUGHT_CACHE", str(tmp_path / "cache"))
    fp32, fp32_tokenizer = load_model("scratch:xs")
    bf16, tokenizer = load_model("scratch:xs", dtype="bfloat16")
    models = tmp_path / "cache" / "models"
    assert sorted(p.name for p in models.iterdir()) == ["scratch-xs-0", "scratch-xs-0.bfloat16"]
    assert io._safetensors_dtypes(models / "scratch-xs-0.bfloat16") == {"BF16"}
    expected = {name: p.to(torch.bfloat16) for name, p in fp32.named_parameters()}
    assert all(p.dtype == torch.bfloat16 and torch.equal(p, expected[n]) for n, p in bf16.named_parameters())
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None
    stamp = (models / "scratch-xs-0.bfloat16" / "model.safetensors").stat().st_mtime_ns
    load_model("scratch:xs", dtype="bfloat16")  # read back, not rewritten
    assert (models / "scratch-xs-0.bfloat16" / "model.safetensors").stat().st_mtime_ns == stamp
    outside = tmp_path / "mine"
    save_model(fp32, fp32_tokenizer, outside)
    load_model(str(outside), dtype="bfloat16")  # a user's directory is loaded as it is, no sibling
    assert not (tmp_path / "mine.bfloat16").exists()
