"""The config dataclasses of the recipes and of the pieces they share, importable without torch.

Presets build these, and `selftaught <recipe> --print-config` / `--describe` read them, so these
modules import no torch, transformers or engine: a config's checks (`__post_init__`) use only
`selftaught.config` and torch-free data modules. The modules that use a config re-export it
(`selftaught.train.loop.RunConfig`, `selftaught.recipes.online_rl.OnlineRLConfig`, ...), so either
import path works.

    selftaught.configs.losses    the loss variants (DPO loss type, NLL and GRPO normalisation, advantages)
    selftaught.configs.train     run, eval, optimizer, parallelism, LoRA, generator, rollouts, tasks
    selftaught.configs.recipes   one config per recipe (`selftaught.presets.RECIPES` names them)
"""
