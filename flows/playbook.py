"""The playbook: stages, fields and exit checklists, loaded from TOML and validated.

Every user-facing string is a table of translations (``{ zh = "…", en = "…" }``); the playbook
names its languages and each string must carry all of them. Field and checklist ids are the keys
answers are stored under, so they are unique across the whole playbook and never shown to users.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from flows.reading import fold

Id = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
LocalText = dict[str, str]
FieldType = Literal[
    "text",
    "number",
    "money",
    "percent",
    "date",
    "milestone",
    "choice",
    "multichoice",
    "yesno",
    "list",
    "stakeholder",
]
CHOICE_TYPES = ("choice", "multichoice")
DEAL_ATTRIBUTES = ("amount", "expected_close")
# Stakeholder roles (the options of flows.stakeholder's "role" part, which builds on this module).
StakeholderRole = Literal[
    "decision_maker", "project_manager", "team_member", "outside_expert", "other"
]
# The tests a risk flag can hold; each flag holds exactly one.
RISK_TESTS = ("missing", "no_supporter", "past_date")
DEFAULT_PLAYBOOK = "default.toml"
# Options and a stage's questions become buttons; Telegram shows at most 100 per message.
MAX_OPTIONS = 40
MAX_STAGE_QUESTIONS = 80


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Option(_Strict):
    """One answer of a choice or multiple-choice field."""

    id: Id
    label: LocalText
    # Other words reps use for it, in any language (typed answers and visit notes match them).
    aliases: list[str] = []
    # In a qualifying stage: picking this option puts the customer outside the target group.
    qualifies: bool = True


class Condition(_Strict):
    """Ask a field only when an earlier answer matches (all given tests must hold)."""

    field: Id
    equals: str | int | float | bool | None = None
    not_equals: str | int | float | bool | None = None
    any_of: list[str | int | float | bool] | None = Field(default=None, alias="in")
    answered: bool | None = None


class FieldSpec(_Strict):
    """A piece of information the rep is asked for."""

    id: Id
    type: FieldType
    question: LocalText
    help: LocalText | None = None
    example: LocalText | None = None
    required: bool = True
    options: list[Option] = []
    min: float | None = None
    max: float | None = None
    max_items: int | None = Field(default=None, ge=1)
    ask_if: list[Condition] = []
    # Mirror the answer onto a column of the deal (for digests and sorting).
    deal_attribute: Literal["amount", "expected_close"] | None = None
    # Date fields whose approach should trigger reminders (used by nudges).
    remind: bool = False
    # Days before the date to remind; empty: the configured default ([nudges] reminder_days).
    remind_days: list[Annotated[int, Field(ge=0, le=90)]] = []
    # yes/no fields of a qualifying stage: the answer a target customer gives.
    expect: bool | None = None
    # Words, in any language, that point to this field: a visit note's sentence holding one is
    # read for its value (flows.extract), and /update finds the field by them.
    cues: list[Annotated[str, StringConstraints(min_length=1, max_length=40)]] = []


class ChecklistItem(_Strict):
    """An exit criterion, answered yes/no with an optional note as evidence."""

    id: Id
    text: LocalText


class CoachingTopic(_Strict):
    title: LocalText
    questions: list[LocalText]


class Stage(_Strict):
    id: Id
    name: LocalText
    definition: LocalText
    win_probability: int = Field(ge=0, le=100)
    stale_after_days: int = Field(ge=1)
    owners: list[LocalText]
    # A qualifying stage is answered once, when a deal is opened, to check the target group.
    qualifying: bool = False
    fields: list[FieldSpec] = []
    checklist: list[ChecklistItem] = []
    coaching: list[CoachingTopic] = []
    actions: list[LocalText] = []


class SupporterTest(_Strict):
    """Raised when no person in a stakeholder field (of ``role``, if given) has the attitude."""

    field: Id
    role: StakeholderRole | None = None
    min_attitude: int = Field(default=1, ge=-3, le=3)


class RiskFlag(_Strict):
    """A coaching prompt raised on open deals at ``from_stage`` (through ``until_stage``).

    Exactly one test: ``missing`` (a field has no answer), ``no_supporter`` (nobody on a
    stakeholder field has attitude >= min_attitude) or ``past_date`` ("expected_close", the deal's
    expected close date, or a date field id: the date is before today).
    """

    id: Id
    text: LocalText
    coaching: LocalText
    from_stage: Id
    until_stage: Id | None = None
    missing: Id | None = None
    no_supporter: SupporterTest | None = None
    past_date: Id | None = None

    @property
    def tests(self) -> list[str]:
        """The names of the tests this flag holds (valid flags hold exactly one)."""
        return [name for name in RISK_TESTS if getattr(self, name) is not None]


class Playbook(_Strict):
    id: Id
    version: int = Field(ge=1)
    name: LocalText
    languages: list[str] = Field(min_length=1)
    default_language: str
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    stages: list[Stage] = Field(min_length=2)
    risk_flags: list[RiskFlag] = []

    # -- lookups ------------------------------------------------------------------------------
    def stage(self, stage_id: str) -> Stage:
        for stage in self.stages:
            if stage.id == stage_id:
                return stage
        raise KeyError(stage_id)

    def stage_index(self, stage_id: str) -> int:
        return [s.id for s in self.stages].index(stage_id)

    def field(self, field_id: str) -> FieldSpec:
        for stage in self.stages:
            for spec in stage.fields:
                if spec.id == field_id:
                    return spec
        raise KeyError(field_id)

    def fields_named(self, words: str) -> list[FieldSpec]:
        """Fields a rep may mean by ``words`` (``预算``, ``budget``, ``竞争对手``): the one with
        that id or cue, else those whose question holds the words; in the playbook's order."""
        wanted = fold(words)
        every = [spec for stage in self.stages for spec in stage.fields]
        exact = [s for s in every if wanted in (s.id, *(fold(c) for c in s.cues))]
        if exact or len(wanted) < 2:
            return exact
        return [s for s in every if any(wanted in fold(q) for q in s.question.values())]

    def checklist_item(self, item_id: str) -> ChecklistItem:
        for stage in self.stages:
            for item in stage.checklist:
                if item.id == item_id:
                    return item
        raise KeyError(item_id)

    def stage_of(self, key: str) -> Stage:
        """The stage that defines a field or checklist item."""
        for stage in self.stages:
            if any(f.id == key for f in stage.fields) or any(i.id == key for i in stage.checklist):
                return stage
        raise KeyError(key)

    @property
    def first_open_stage(self) -> Stage:
        """Where a new deal lands once qualified: the first stage that is not qualifying."""
        return next(s for s in self.stages if not s.qualifying)

    @property
    def qualifying_stage(self) -> Stage | None:
        return next((s for s in self.stages if s.qualifying), None)

    @property
    def won_stage(self) -> Stage:
        return self.stages[-1]


class PlaybookError(Exception):
    """A playbook file that cannot be used; ``problems`` name the stage and field of each."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def shipped_playbook_path() -> Path:
    return Path(str(resources.files("flows") / "playbooks" / DEFAULT_PLAYBOOK))


def load_playbook(path: Path | str | None = None) -> Playbook:
    """Read and validate a playbook file.

    Args:
        path: a TOML playbook; None loads the shipped default.
    Returns:
        The validated playbook.
    Raises:
        PlaybookError: listing every problem, each naming the file, stage and field.
    """
    path = Path(path) if path else shipped_playbook_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlaybookError(path, [f"cannot read the file: {exc.strerror}"]) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PlaybookError(path, [f"not valid TOML: {exc}"]) from exc
    try:
        playbook = Playbook.model_validate(raw)
    except ValidationError as exc:
        raise PlaybookError(path, [_describe(raw, e) for e in exc.errors()]) from exc
    problems = _semantic_problems(playbook)
    if problems:
        raise PlaybookError(path, problems)
    return playbook


def _describe(raw: dict[str, Any], error: Any) -> str:
    """Turn a pydantic error location into 'stage X › field Y › key: message'."""
    parts: list[str] = []
    node: Any = raw
    for step in error["loc"]:
        child = node[step] if isinstance(node, (dict, list)) and _has(node, step) else None
        if isinstance(step, int):
            ident = child.get("id") if isinstance(child, dict) else None
            parts[-1] = f"{_singular(parts[-1])} {ident!r}" if ident else f"{parts[-1]}[{step + 1}]"
        else:
            parts.append(str(step))
        node = child
    where = " › ".join(parts) or "top level"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    return f"{where}: {message}"


def _has(node: dict | list, step: Any) -> bool:
    if isinstance(node, dict):
        return step in node
    return isinstance(step, int) and 0 <= step < len(node)


def _singular(word: str) -> str:
    return {
        "stages": "stage",
        "fields": "field",
        "checklist": "checklist item",
        "risk_flags": "risk flag",
    }.get(word, word.rstrip("s"))


def _semantic_problems(playbook: Playbook) -> list[str]:
    problems: list[str] = []
    if playbook.default_language not in playbook.languages:
        problems.append(f"default_language {playbook.default_language!r} is not in languages")
    problems += _translation_problems(playbook)
    problems += _id_problems(playbook)
    problems += _field_problems(playbook)
    problems += _risk_flag_problems(playbook)
    return problems


def _translation_problems(playbook: Playbook) -> list[str]:
    wanted = set(playbook.languages)
    problems = []
    for where, text in _texts(playbook):
        missing = sorted(lang for lang in wanted if not text.get(lang, "").strip())
        extra = sorted(set(text) - wanted)
        if missing:
            problems.append(f"{where}: missing translation {', '.join(missing)}")
        if extra:
            problems.append(f"{where}: language {', '.join(extra)} is not in languages")
    return problems


def _texts(playbook: Playbook):
    """Every translated string with a readable location."""
    yield "name", playbook.name
    for stage in playbook.stages:
        at = f"stage {stage.id!r}"
        yield f"{at} › name", stage.name
        yield f"{at} › definition", stage.definition
        for n, owner in enumerate(stage.owners, 1):
            yield f"{at} › owners[{n}]", owner
        for spec in stage.fields:
            here = f"{at} › field {spec.id!r}"
            yield f"{here} › question", spec.question
            if spec.help:
                yield f"{here} › help", spec.help
            if spec.example:
                yield f"{here} › example", spec.example
            for option in spec.options:
                yield f"{here} › option {option.id!r}", option.label
        for item in stage.checklist:
            yield f"{at} › checklist item {item.id!r}", item.text
        for n, topic in enumerate(stage.coaching, 1):
            yield f"{at} › coaching[{n}] › title", topic.title
            for m, question in enumerate(topic.questions, 1):
                yield f"{at} › coaching[{n}] › questions[{m}]", question
        for n, action in enumerate(stage.actions, 1):
            yield f"{at} › actions[{n}]", action
    for flag in playbook.risk_flags:
        yield f"risk flag {flag.id!r} › text", flag.text
        yield f"risk flag {flag.id!r} › coaching", flag.coaching


def _id_problems(playbook: Playbook) -> list[str]:
    problems = []
    seen_stages: set[str] = set()
    seen_keys: dict[str, str] = {}
    for stage in playbook.stages:
        if len(stage.fields) + len(stage.checklist) > MAX_STAGE_QUESTIONS:
            problems.append(
                f"stage {stage.id!r}: at most {MAX_STAGE_QUESTIONS} fields and checklist items"
            )
    for stage in playbook.stages:
        if stage.id in seen_stages:
            problems.append(f"stage {stage.id!r}: duplicate stage id")
        seen_stages.add(stage.id)
        keys = [("field", f.id) for f in stage.fields] + [
            ("checklist item", i.id) for i in stage.checklist
        ]
        for kind, key in keys:
            if key in seen_keys:
                problems.append(
                    f"stage {stage.id!r} › {kind} {key!r}: duplicate id "
                    f"(already used in stage {seen_keys[key]!r})"
                )
            seen_keys.setdefault(key, stage.id)
    return problems


def _field_problems(playbook: Playbook) -> list[str]:
    problems = []
    earlier: dict[str, FieldSpec] = {}
    for stage in playbook.stages:
        for spec in stage.fields:
            where = f"stage {stage.id!r} › field {spec.id!r}"
            problems += [f"{where} › {p}" for p in _options_problems(spec)]
            for cond in spec.ask_if:
                problems += [f"{where} › ask_if: {p}" for p in _condition_problems(cond, earlier)]
            if spec.deal_attribute == "amount" and spec.type != "money":
                problems.append(f"{where} › deal_attribute 'amount' needs type 'money'")
            if spec.deal_attribute == "expected_close" and spec.type != "date":
                problems.append(f"{where} › deal_attribute 'expected_close' needs type 'date'")
            if spec.remind and spec.type not in ("date", "milestone"):
                problems.append(f"{where} › remind works only on date and milestone fields")
            if spec.expect is not None and spec.type != "yesno":
                problems.append(f"{where} › expect works only on yesno fields")
            if spec.cues and spec.type in ("yesno", "stakeholder", "percent"):
                problems.append(f"{where} › cues are not read for {spec.type} fields")
            earlier[spec.id] = spec
        problems += _shared_cues(stage)
    return problems


def _shared_cues(stage: Stage) -> list[str]:
    """A cue two fields of one stage share leaves a note's words to either: a mistake."""
    owners: dict[str, list[str]] = {}
    for spec in stage.fields:
        for cue in dict.fromkeys(fold(c) for c in spec.cues):
            owners.setdefault(cue, []).append(spec.id)
    return [
        f"stage {stage.id!r} › cue {cue!r} is given to several fields ({', '.join(ids)})"
        for cue, ids in owners.items()
        if len(ids) > 1
    ]


def _condition_problems(cond: Condition, earlier: dict[str, FieldSpec]) -> list[str]:
    target = earlier.get(cond.field)
    if target is None:
        return [f"names unknown field {cond.field!r} (it must be defined earlier in the playbook)"]
    if target.type not in CHOICE_TYPES:
        return []
    options = {o.id for o in target.options}
    values = [cond.equals, cond.not_equals, *(cond.any_of or [])]
    unknown = sorted(str(v) for v in values if v is not None and v not in options)
    return [f"{', '.join(unknown)} is not an option of field {cond.field!r}"] if unknown else []


def _options_problems(spec: FieldSpec) -> list[str]:
    if spec.type not in CHOICE_TYPES:
        return ["options are only allowed on choice and multichoice fields"] if spec.options else []
    if len(spec.options) < 2:
        return [f"a {spec.type} field needs at least two options"]
    if len(spec.options) > MAX_OPTIONS:
        return [f"at most {MAX_OPTIONS} options (each is a button; Telegram allows 100)"]
    ids = [o.id for o in spec.options]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        return [f"duplicate option id {', '.join(dupes)}"]
    return _name_clashes(spec.options)


def _name_clashes(options: list[Option]) -> list[str]:
    """A label or alias that names two options would make typed answers guess between them."""
    owners: dict[str, set[str]] = {}
    for option in options:
        for name in (option.id, *option.label.values(), *option.aliases):
            owners.setdefault(fold(name), set()).add(option.id)
    return [
        f"{name!r} names several options ({', '.join(sorted(ids))})"
        for name, ids in sorted(owners.items())
        if len(ids) > 1
    ]


def _risk_flag_problems(playbook: Playbook) -> list[str]:
    problems = []
    stage_index = {stage.id: n for n, stage in enumerate(playbook.stages)}
    fields = {spec.id: (spec, stage.id) for stage in playbook.stages for spec in stage.fields}
    seen: set[str] = set()
    for flag in playbook.risk_flags:
        where = f"risk flag {flag.id!r}"
        if flag.id in seen:
            problems.append(f"{where}: duplicate risk flag id")
        seen.add(flag.id)
        for key in ("from_stage", "until_stage"):
            stage_id = getattr(flag, key)
            if stage_id is not None and stage_id not in stage_index:
                problems.append(f"{where} › {key}: unknown stage {stage_id!r}")
        start = stage_index.get(flag.from_stage)
        end = stage_index.get(flag.until_stage) if flag.until_stage else None
        if start is not None and end is not None and end < start:
            problems.append(
                f"{where} › until_stage: {flag.until_stage!r} comes before "
                f"from_stage {flag.from_stage!r}"
            )
        if len(flag.tests) != 1:
            found = ", ".join(flag.tests) or "none"
            problems.append(
                f"{where}: needs exactly one test of {', '.join(RISK_TESTS)} (found {found})"
            )
        for test, field_id, wanted in _flag_fields(flag):
            if test == "past_date" and field_id == "expected_close":
                continue  # the deal's expected close date, not a field
            found_field = fields.get(field_id)
            if found_field is None:
                problems.append(f"{where} › {test}: unknown field {field_id!r}")
                continue
            spec, field_stage = found_field
            if wanted and spec.type != wanted:
                hint = ' or "expected_close"' if test == "past_date" else ""
                problems.append(
                    f"{where} › {test}: field {field_id!r} is a {spec.type} field; "
                    f"{test} needs a {wanted} field{hint}"
                )
            if start is not None and stage_index[field_stage] > start:
                problems.append(
                    f"{where} › {test}: field {field_id!r} is asked only from stage "
                    f"{field_stage!r}, after from_stage {flag.from_stage!r}"
                )
    return problems


def _flag_fields(flag: RiskFlag) -> list[tuple[str, str, str | None]]:
    """(test, field id, the field type it needs or None for any) of each test a flag holds."""
    found = []
    if flag.missing is not None:
        found.append(("missing", flag.missing, None))
    if flag.no_supporter is not None:
        found.append(("no_supporter", flag.no_supporter.field, "stakeholder"))
    if flag.past_date is not None:
        found.append(("past_date", flag.past_date, "date"))
    return found
