"""Recipes (layer L6): one module per recipe, each a `<Name>Config` dataclass and `run(cfg)`.

A recipe module imports only layers below it, never another recipe; the table of recipes (names,
presets, reproductions) lives in `selftaught.presets` (L7). Importing this package registers the
`tiny-world` model alias, the student that the world-pretrain recipe trains on first use and caches,
`tiny-world-persona` / `tiny-world-keywords`, DivPO's persona and keywords seed models, and
`tiny-world-lpo`, adaptive decoding's MATH + STORY base model, and `tiny-world-lpo-cstory`, the same
with constrained stories, trained and cached the same way.
"""

from pathlib import Path

from selftaught.models.io import register_model_alias

TINY_WORLD = "tiny-world"
TINY_WORLD_PERSONA = "tiny-world-persona"
TINY_WORLD_KEYWORDS = "tiny-world-keywords"
TINY_WORLD_LPO = "tiny-world-lpo"
TINY_WORLD_LPO_CSTORY = "tiny-world-lpo-cstory"
TINY_WORLD_FACTS = "tiny-world-facts"
TINY_WORLD_JUDGE = "tiny-world-judge"


def _tiny_world_student() -> Path:
    from selftaught.recipes.world_pretrain import pretrained_student

    return pretrained_student()


register_model_alias(
    TINY_WORLD,
    "the tiny-world student: an xs Llama trained by `selftaught world pretrain` on first use, then cached",
    _tiny_world_student,
)


def _tiny_world_persona_student() -> Path:
    from selftaught.recipes.world_pretrain import pretrained_persona_student

    return pretrained_persona_student()


register_model_alias(
    TINY_WORLD_PERSONA,
    "DivPO's persona seed model: an xs Llama trained on `Make a persona.` -> `name city job` "
    "(`selftaught world pretrain --preset tiny-persona`) on first use, then cached",
    _tiny_world_persona_student,
)


def _tiny_world_keywords_student() -> Path:
    from selftaught.recipes.world_pretrain import pretrained_keywords_student

    return pretrained_keywords_student()


register_model_alias(
    TINY_WORLD_KEYWORDS,
    "DivPO's graded keywords seed model: an xs Llama trained on `Keywords for a story about the <topic>.` "
    "-> five words (`selftaught world pretrain --preset tiny-keywords`) on first use, then cached",
    _tiny_world_keywords_student,
)


def _tiny_world_lpo_student() -> Path:
    from selftaught.recipes.world_pretrain import pretrained_lpo_student

    return pretrained_lpo_student()


register_model_alias(
    TINY_WORLD_LPO,
    "adaptive decoding's frozen base model: an xs Llama trained on a 50/50 mix of arithmetic with clean "
    "chain of thought and `Tell a story about the <place>.` -> six words (`selftaught world pretrain "
    "--preset tiny-lpo`) on first use, then cached",
    _tiny_world_lpo_student,
)


def _tiny_world_lpo_cstory_student() -> Path:
    from selftaught.recipes.world_pretrain import pretrained_lpo_cstory_student

    return pretrained_lpo_cstory_student()


register_model_alias(
    TINY_WORLD_LPO_CSTORY,
    "the token-level temperature head's frozen base model: an xs Llama trained on a third each of "
    "arithmetic, six-word stories and constrained stories (a designated digit opens each part; "
    "`selftaught world pretrain --preset tiny-lpo-cstory`) on first use, then cached",
    _tiny_world_lpo_cstory_student,
)


def _tiny_world_facts_student() -> Path:
    from selftaught.recipes.world_pretrain import pretrained_facts_student

    return pretrained_facts_student()


register_model_alias(
    TINY_WORLD_FACTS,
    "the RAG self-demos' base model: an s Llama trained on closed-book QA over 60% of a knowledge base "
    "and QA over passages, with and without a refuse rule (`selftaught world pretrain --preset "
    "tiny-facts`) on first use, then cached",
    _tiny_world_facts_student,
)


def _tiny_world_judge() -> Path:
    from selftaught.recipes.sft import pretrained_judge

    return pretrained_judge()


register_model_alias(
    TINY_WORLD_JUDGE,
    "J1's seed judge: the tiny-world student SFT-ed on a position-biased teacher's judgments of world "
    "judge pairs (`selftaught sft --preset tiny-judge`) on first use, then cached",
    _tiny_world_judge,
)


TINY_WORLD_LIST_JUDGE = "tiny-world-list-judge"


def _tiny_world_list_judge() -> Path:
    from selftaught.configs.judge import list_judge_seed_config
    from selftaught.recipes.sft import pretrained_judge

    return pretrained_judge(list_judge_seed_config())


register_model_alias(
    TINY_WORLD_LIST_JUDGE,
    "the Self-Taught Evaluator's list-task seed judge: an xs Llama from scratch SFT-ed on list tasks and "
    "check traces of random-corruption pairs (`world:list-judge-sft`) on first use, then cached",
    _tiny_world_list_judge,
)


def _tiny_world_list_judge_nothink() -> Path:
    from selftaught.configs.judge import list_judge_seed_config
    from selftaught.recipes.sft import pretrained_judge

    return pretrained_judge(list_judge_seed_config(thinking=False))


register_model_alias(
    "tiny-world-list-judge-nothink",
    "J1's judge without thinking: the list seed judge's recipe on verdict-only judgments "
    "(`world:list-judge-nothink-sft`) on first use, then cached",
    _tiny_world_list_judge_nothink,
)


TINY_WORLD_SYSTEM2 = "tiny-world-system2"


def _tiny_world_system2_student() -> Path:
    from selftaught.recipes.world_pretrain import pretrained_system2_student

    return pretrained_system2_student()


register_model_alias(
    TINY_WORLD_SYSTEM2,
    "System 2 distillation's base model: an xs Llama trained on every question as `<s1>` (direct) and "
    "`<s2>` (scratchpad) (`selftaught world pretrain --preset tiny-system2`) on first use, then cached",
    _tiny_world_system2_student,
)
