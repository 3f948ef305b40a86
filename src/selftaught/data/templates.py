"""Versioned prompt templates for generation stages: `name@N`, declared slots, chat or raw-text form.

A synthetic-data stage renders one template per record (a document, a question, a pair of
responses) and records the template's versioned name with what it generated. A change of wording
is a new version (`nr-question@2`), so results of two wordings never mix silently: registering a
different template under a name that is taken is an error.

    QUESTION = register_template(PromptTemplate(
        "nr-question", 1,
        user="Write one self-contained reasoning question grounded in this document:\n\n{document}",
        slots=("document",),
    ))
    prompt = get_template("nr-question@1").render("doc-17", {"document": text})

Slots are `str.format` fields (`{document}`); literal braces are doubled (`{{`). The slots a
template declares must be exactly the fields its texts use, checked when it is built, and a render
must give exactly the declared slots: a typo is an error naming the slot, never an unfilled
`{field}` in a prompt. Slot values are inserted as they are: braces inside them are not read as
fields.

Base models (Gemma 3 270M) are prompted with plain text rather than a chat template: `render(...,
raw=True)` also sets `Prompt.text`, from the template's `text` form when it has one (a few-shot
pattern, a `Question: ... Answer:` frame), else the system and user texts joined by a blank line.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from selftaught.types import Message, Prompt

T = TypeVar("T")


@dataclass(frozen=True)
class PromptTemplate:
    """A generation prompt: system and user turns with `{slots}`, and an optional raw-text form."""

    name: str
    """Family name without the version, e.g. `nr-question`."""
    version: int
    """Bumped whenever the wording changes; `versioned_name` is `name@version`."""
    user: str
    """The user turn, a `str.format` string over `slots`."""
    slots: tuple[str, ...]
    """The slot names every render must fill: exactly the fields used by `system`, `user` and `text`."""
    system: str | None = None
    """An optional system turn (a `str.format` string too)."""
    text: str | None = None
    """The raw-text form for base models; `None` = system and user joined by a blank line."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "slots", tuple(self.slots))
        if not self.name or "@" in self.name:
            raise ValueError(
                f"template name must be non-empty with no '@' (the version is a field): got {self.name!r}"
            )
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"template {self.name!r}: version must be an integer >= 1, got {self.version!r}")
        used = {field for form in self._forms() for field in format_fields(form, where=self.versioned_name)}
        if used != set(self.slots) or len(set(self.slots)) != len(self.slots):
            raise ValueError(
                f"template {self.versioned_name} declares slots {list(self.slots)} but its texts use "
                f"{sorted(used)}; declare each used slot once"
            )

    @property
    def versioned_name(self) -> str:
        """`name@version`, the key of the registry and the provenance that records carry."""
        return f"{self.name}@{self.version}"

    def render_messages(self, values: Mapping[str, Any]) -> list[Message]:
        """Chat messages (system turn when there is one, then the user turn) with the slots filled."""
        self.check_values(values)
        system = [] if self.system is None else [{"role": "system", "content": self.system.format(**values)}]
        return [*system, {"role": "user", "content": self.user.format(**values)}]

    def render_text(self, values: Mapping[str, Any]) -> str:
        """The raw-text prompt for models without a chat template (see `text`)."""
        if self.text is not None:
            self.check_values(values)
            return self.text.format(**values)
        return "\n\n".join(message["content"] for message in self.render_messages(values))

    def render(
        self,
        prompt_id: str,
        values: Mapping[str, Any],
        *,
        raw: bool = False,
        answer: str | None = None,
        task: str = "default",
        meta: Mapping[str, Any] | None = None,
    ) -> Prompt:
        """A `Prompt` with the chat messages, and with `text` too when `raw` (base models).

        `meta["template"]` is the versioned name, so whatever answers the prompt carries it along.
        """
        return Prompt(
            id=prompt_id,
            messages=self.render_messages(values),
            text=self.render_text(values) if raw else None,
            answer=answer,
            task=task,
            meta={**(meta or {}), "template": self.versioned_name},
        )

    def check_values(self, values: Mapping[str, Any]) -> None:
        """A ValueError naming the missing and the unexpected slots unless `values` fills exactly `slots`."""
        missing = [slot for slot in self.slots if slot not in values]
        extra = sorted(set(values) - set(self.slots))
        if missing or extra:
            raise ValueError(
                f"template {self.versioned_name} needs exactly the slots {list(self.slots)}: "
                f"missing {missing}, unexpected {extra}"
            )

    def _forms(self) -> list[str]:
        return [form for form in (self.system, self.user, self.text) if form is not None]


def format_fields(template: str, *, where: str = "template") -> list[str]:
    """The field names of a `str.format` string, in order; a ValueError for a field that is not a
    plain name (positional `{}`, `{0}`, `{a.b}`, `{a[0]}`) or for unbalanced braces."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(f"{where}: {err}; write literal braces as '{{{{' and '}}}}'") from err
    fields = [field for _, field, _, _ in parsed if field is not None]
    bad = [field for field in fields if not field.isidentifier()]
    if bad:
        raise ValueError(f"{where}: slots must be plain names like {{document}}, got {bad}")
    return fields


def escape_braces(text: str) -> str:
    """`text` as a `str.format` string that renders to itself (a fixed text with no slots)."""
    return text.replace("{", "{{").replace("}", "}}")


def split_versioned_name(versioned_name: str) -> tuple[str, int]:
    """`("nr-question", 1)` for `"nr-question@1"`; a ValueError for a name without `@<integer>`."""
    name, at, version = versioned_name.rpartition("@")
    if not at or not name or not version.isdigit() or int(version) < 1:
        raise ValueError(f"template names carry a version, `<name>@<N>` with N >= 1; got {versioned_name!r}")
    return name, int(version)


def lookup_template(registry: Mapping[str, T], versioned_name: str, what: str = "template") -> T:
    """`registry[versioned_name]`, or a ValueError that lists the known names and, for a name given
    without its version, suggests the newest version of it."""
    if versioned_name in registry:
        return registry[versioned_name]
    versions = sorted(
        (int(version), known)
        for known in registry
        for name, _, version in [known.rpartition("@")]
        if name == versioned_name and version.isdigit()
    )
    did_you_mean = f" (did you mean {versions[-1][1]!r}?)" if versions else ""
    raise ValueError(f"unknown {what} {versioned_name!r}{did_you_mean}; known: {', '.join(registry)}")


PROMPT_TEMPLATES: dict[str, PromptTemplate] = {}
"""Every registered generation template by versioned name (`register_template` adds to it)."""


def register_template(template: PromptTemplate) -> PromptTemplate:
    """Add `template` to `PROMPT_TEMPLATES` and return it (so a module can define and register at once).

    Registering an equal template again is a no-op (a module imported twice); a different template
    under a taken versioned name is a ValueError: a changed wording needs a new version.
    """
    known = PROMPT_TEMPLATES.get(template.versioned_name)
    if known is not None and known != template:
        raise ValueError(
            f"template {template.versioned_name} is already registered with other content; "
            f"give the new wording version {template.version + 1}"
        )
    PROMPT_TEMPLATES[template.versioned_name] = template
    return template


def get_template(versioned_name: str) -> PromptTemplate:
    """The registered template called `name@N`; a ValueError listing the known names otherwise."""
    return lookup_template(PROMPT_TEMPLATES, versioned_name, "prompt template")
