"""Recipes (layer L6): one module per recipe, each a `<Name>Config` dataclass and `run(cfg)`.

A recipe module imports only layers below it, never another recipe; the table of recipes (names,
presets, reproductions) lives in `selftaught.presets` (L7). Importing this package registers the
`tiny-world` model alias: the student that the world-pretrain recipe trains on first use and caches.
"""

from pathlib import Path

from selftaught.models.io import register_model_alias

TINY_WORLD = "tiny-world"


def _tiny_world_student() -> Path:
    from selftaught.recipes.world_pretrain import pretrained_student

    return pretrained_student()


register_model_alias(
    TINY_WORLD,
    "the tiny-world student: an xs Llama trained by `selftaught world pretrain` on first use, then cached",
    _tiny_world_student,
)
