"""Recipes (layer L6): one module per recipe, each a `<Name>Config` dataclass and `run(cfg)`.

`RECIPES` maps the CLI name to `(module, config class, one-line summary)`; modules are imported
only when their recipe runs, so `selftaught list` stays fast.
"""

RECIPES: dict[str, tuple[str, str, str]] = {
    "world-pretrain": (
        "selftaught.recipes.world_pretrain",
        "WorldPretrainConfig",
        "train the tiny-world base student from scratch (buggy teacher, accuracy-based stop)",
    ),
    "sft": (
        "selftaught.recipes.sft",
        "SFTConfig",
        "supervised fine-tuning on conversations (loss on assistant tokens), LoRA optional",
    ),
    "dpo": (
        "selftaught.recipes.dpo",
        "DPOConfig",
        "offline DPO (+ NLL) on pairs sampled from the policy or a TRL preference file",
    ),
    "reward-model": (
        "selftaught.recipes.reward_model",
        "RewardModelConfig",
        "Bradley-Terry reward model on preference pairs (tiny-world or prompt/chosen/rejected); held-out pairwise accuracy",
    ),
    "online-rl": (
        "selftaught.recipes.online_rl",
        "OnlineRLConfig",
        "offline / semi-online / online DPO or GRPO with one generator sync interval s (verifiable + reward-model rewards)",
    ),
}
