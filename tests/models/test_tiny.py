import pytest
import torch

from selftaught.models.tiny import TINY_SIZES, build_tiny_llama

TOKEN_IDS = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}

# Parameter counts with vocabulary 320, from TINYWORLD.md section 1 (measured before this code existed).
TABLE_PARAMS = {"xs": 143_680, "s": 1_025_152, "m": 3_307_968, "l": 7_950_592}


@pytest.mark.parametrize("size", sorted(TABLE_PARAMS))
def test_parameter_count_matches_table(size):
    model = build_tiny_llama(size, 320, **TOKEN_IDS)
    assert sum(p.numel() for p in model.parameters()) == TABLE_PARAMS[size]


def test_shapes_tied_embeddings_and_token_ids():
    model = build_tiny_llama("s", 100, **TOKEN_IDS, max_position_embeddings=64)
    config, shape = model.config, TINY_SIZES["s"]
    assert (config.hidden_size, config.num_hidden_layers) == (shape.hidden_size, shape.num_layers)
    assert (config.num_attention_heads, config.num_key_value_heads) == (shape.num_heads, shape.num_kv_heads)
    assert config.intermediate_size == shape.ffn_size
    assert config.max_position_embeddings == 64
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (1, 2, 0)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert all(p.dtype == torch.float32 for p in model.parameters())
    logits = model(torch.tensor([[1, 5, 7]])).logits
    assert logits.shape == (1, 3, 100)


def test_init_depends_only_on_seed():
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    a = build_tiny_llama("xs", 64, **TOKEN_IDS, seed=7)
    assert torch.equal(torch.get_rng_state(), rng_before), "building a model must not touch the global RNG"
    b = build_tiny_llama("xs", 64, **TOKEN_IDS, seed=7)
    c = build_tiny_llama("xs", 64, **TOKEN_IDS, seed=8)
    a_state, b_state, c_state = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(a_state[k], b_state[k]) for k in a_state)
    assert not torch.equal(a_state["model.embed_tokens.weight"], c_state["model.embed_tokens.weight"])


def test_unknown_size_lists_sizes():
    with pytest.raises(ValueError, match=r"size must be one of \['l', 'm', 's', 'xs'\], got 'xxl'"):
        build_tiny_llama("xxl", 64, **TOKEN_IDS)
