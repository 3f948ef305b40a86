"""Presets (layer L7): Python functions returning a recipe config, by recipe and preset name.

`tiny` presets run on the embedded tiny world on a laptop CPU; `gemma3-270m` presets use the real
Gemma 3 270M model from PyPI.
"""

from collections.abc import Callable
from typing import Any

from selftaught.presets import gemma3_270m, tiny

PRESETS: dict[str, dict[str, Callable[[], Any]]] = {
    "world-pretrain": {"tiny": tiny.world_pretrain, "tiny-smoke": tiny.world_pretrain_smoke},
    "sft": {"tiny": tiny.sft, "tiny-smoke": tiny.sft_smoke, "gemma3-270m": gemma3_270m.sft},
    "dpo": {"tiny": tiny.dpo, "tiny-smoke": tiny.dpo_smoke, "gemma3-270m": gemma3_270m.dpo},
    "reward-model": {"tiny": tiny.reward_model, "tiny-smoke": tiny.reward_model_smoke},
    "online-rl": {
        "tiny": tiny.online_rl,
        "tiny-online-dpo": tiny.online_rl_online_dpo,
        "tiny-offline-dpo": tiny.online_rl_offline_dpo,
        "tiny-grpo": tiny.online_rl_grpo,
        "tiny-mixed": tiny.online_rl_mixed,
        "tiny-smoke": tiny.online_rl_smoke,
    },
}


def get_preset(recipe: str, name: str) -> Any:
    """The config of preset `name` of `recipe`; a ValueError lists the valid names."""
    presets = PRESETS.get(recipe, {})
    if name not in presets:
        raise ValueError(f"recipe {recipe!r} has no preset {name!r}; presets: {', '.join(presets) or 'none'}")
    return presets[name]()
