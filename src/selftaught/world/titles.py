"""Story-title prompts for real models: open-ended text where repetition is the failure to avoid (the
story half of adaptive decoding's math + stories mix, 2411.09661, on Gemma rather than the tiny world).

A title is `The <adjective> <noun>` from two fixed lists of 16 words (256 titles). Each title belongs
to one split by `(a + 3 n) mod 8` of its word indices (0-5 train, 6 valid, 7 test: 192, 32 and 32
titles, every adjective and noun in every split), so held-out titles are new combinations of known
words. A prompt is raw text for a base model to continue:

    Write a short story titled "The Silent Lighthouse".

    Story:

    story_title_prompts(num, split)   `num` records cycling over the split's titles (ids `title-<i>`)
"""

from __future__ import annotations

from typing import Any

from selftaught.world.arith import SPLITS

ADJECTIVES = (
    "Silent",
    "Forgotten",
    "Hidden",
    "Broken",
    "Golden",
    "Lonely",
    "Crimson",
    "Frozen",
    "Distant",
    "Secret",
    "Wandering",
    "Burning",
    "Quiet",
    "Ancient",
    "Painted",
    "Last",
)
NOUNS = (
    "Lighthouse",
    "Garden",
    "Clockmaker",
    "River",
    "Letter",
    "Mountain",
    "Violin",
    "Orchard",
    "Bridge",
    "Lantern",
    "Harbor",
    "Forest",
    "Map",
    "Kingdom",
    "Station",
    "Island",
)
TASK = "story"
SPLIT_OF_RESIDUE = {6: "valid", 7: "test"}
"""`(a + 3 n) mod 8` -> split (the other residues: train)."""


def titles(split: str = "train") -> list[str]:
    """The titles of `split` in diagonal order (title k: adjective k mod 16, noun (k + k // 16) mod 16),
    so any 16 in a row vary both words; a ValueError names a bad split."""
    if split not in SPLITS:
        raise ValueError(f"world:story-title-prompts has splits {list(SPLITS)}, got {split!r}")
    size = len(ADJECTIVES)  # == len(NOUNS)
    pairs = [(k % size, (k + k // size) % size) for k in range(size * size)]
    return [
        f"The {ADJECTIVES[a]} {NOUNS[n]}"
        for a, n in pairs
        if SPLIT_OF_RESIDUE.get((a + 3 * n) % 8, "train") == split
    ]


def title_prompt(title: str) -> str:
    """The raw-text prompt of one title."""
    return f'Write a short story titled "{title}".\n\nStory:'


def story_title_prompts(num: int, split: str = "train") -> list[dict[str, Any]]:
    """`num` prompt-only records cycling over the titles of `split` (ids `title-<i>`, `title-<split>-<i>`
    outside train; `prompt` the raw text, task `story`, a `title` column)."""
    pool = titles(split)
    prefix = "title-" if split == "train" else f"title-{split}-"
    return [
        {
            "id": f"{prefix}{i}",
            "prompt": title_prompt(pool[i % len(pool)]),
            "task": TASK,
            "title": pool[i % len(pool)],
        }
        for i in range(num)
    ]
