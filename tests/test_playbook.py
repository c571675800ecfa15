"""The shipped playbook, and the errors a broken playbook file produces."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from flows.playbook import PlaybookError, load_playbook, shipped_playbook_path

STAGE_IDS = ["target", "potential", "intent", "approved", "preliminary", "commercial", "won"]
WIN_PROBABILITIES = {
    "target": 0,
    "potential": 10,
    "intent": 20,
    "approved": 30,
    "preliminary": 50,
    "commercial": 75,
    "won": 100,
}


# -- the shipped playbook -------------------------------------------------------------------------


def test_shipped_playbook_loads():
    playbook = load_playbook()
    assert playbook.id == "stagecoach_default"
    assert playbook.version == 1
    assert playbook.languages == ["zh", "en"]
    assert playbook.default_language == "zh"
    assert playbook.currency == "CNY"


def test_stage_ids_in_order():
    assert [s.id for s in load_playbook().stages] == STAGE_IDS


def test_win_probabilities():
    assert {s.id: s.win_probability for s in load_playbook().stages} == WIN_PROBABILITIES


def test_every_field_and_checklist_text_has_zh_and_en():
    texts = []
    for stage in load_playbook().stages:
        texts += [stage.name, stage.definition, *stage.owners, *stage.actions]
        for spec in stage.fields:
            texts += [spec.question, *[o.label for o in spec.options]]
            texts += [t for t in (spec.help, spec.example) if t is not None]
        texts += [item.text for item in stage.checklist]
        for topic in stage.coaching:
            texts += [topic.title, *topic.questions]
    assert texts
    for text in texts:
        assert set(text) == {"zh", "en"}, text
        assert text["zh"].strip() and text["en"].strip(), text


def test_every_stage_has_coaching_or_actions():
    for stage in load_playbook().stages:
        assert stage.coaching or stage.actions, stage.id


def test_only_the_first_stage_is_qualifying():
    playbook = load_playbook()
    assert [s.id for s in playbook.stages if s.qualifying] == ["target"]
    assert playbook.qualifying_stage.id == "target"
    assert playbook.first_open_stage.id == "potential"
    assert playbook.won_stage.id == "won"


def test_target_criteria():
    target = load_playbook().stage("target")
    assert [f.id for f in target.fields] == ["industry", "needs_training_it", "fits_profile"]
    assert all(f.required for f in target.fields)
    industry = target.fields[0]
    outside = [o.id for o in industry.options if not o.qualifies]
    assert outside == ["other"]
    assert {o.id for o in industry.options} == {
        "gov",
        "telecom",
        "power",
        "finance",
        "retail",
        "university",
        "other",
    }
    assert target.fields[1].expect is True and target.fields[2].expect is True


def test_deal_attributes():
    playbook = load_playbook()
    amounts = [f for s in playbook.stages for f in s.fields if f.deal_attribute == "amount"]
    assert [f.id for f in amounts] == [
        "budget",
        "project_budget",
        "preliminary_quote",
        "commercial_quote",
        "contract_amount",
    ]
    assert all(f.type == "money" for f in amounts)
    assert playbook.field("expected_close").deal_attribute == "expected_close"


def test_conditional_field_follows_its_condition():
    playbook = load_playbook()
    notes = playbook.field("current_system_notes")
    assert not notes.required
    [cond] = notes.ask_if
    assert cond.field == "current_system"
    assert set(cond.any_of) == {"incomplete", "works_badly", "works_well"}
    options = {o.id for o in playbook.field("current_system").options}
    assert set(cond.any_of) < options


def test_procurement_timeline():
    approved = load_playbook().stage("approved")
    milestones = [f for f in approved.fields if f.type == "milestone"]
    assert len(milestones) == 7
    assert [f.id for f in milestones if f.required] == ["procure_rfp_issued"]
    assert approved.fields[[f.id for f in approved.fields].index("procure_rfp_issued")].remind


def test_ids_are_unique_across_the_playbook():
    keys = [
        key
        for stage in load_playbook().stages
        for key in [f.id for f in stage.fields] + [i.id for i in stage.checklist]
    ]
    assert len(keys) == len(set(keys))


def test_remind_only_on_dates():
    for stage in load_playbook().stages:
        for spec in stage.fields:
            if spec.remind:
                assert spec.type in ("date", "milestone"), spec.id


# -- broken playbooks ----------------------------------------------------------------------------


def _shipped() -> dict[str, Any]:
    return copy.deepcopy(tomllib.loads(shipped_playbook_path().read_text(encoding="utf-8")))


def _stage(raw: dict[str, Any], stage_id: str) -> dict[str, Any]:
    return next(s for s in raw["stages"] if s["id"] == stage_id)


def _field(raw: dict[str, Any], stage_id: str, field_id: str) -> dict[str, Any]:
    return next(f for f in _stage(raw, stage_id)["fields"] if f["id"] == field_id)


def _write(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "broken.toml"
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    err = caught.value
    assert err.path == str(path)
    assert str(err).startswith(str(path))
    assert err.problems
    return err.problems


def _one_problem_with(problems: list[str], *parts: str) -> str:
    matching = [p for p in problems if all(part in p for part in parts)]
    assert matching, f"no problem mentions {parts}: {problems}"
    return matching[0]


def test_writer_round_trips_the_shipped_playbook(tmp_path):
    assert load_playbook(_write(tmp_path, _shipped())) == load_playbook()


def test_unknown_key(tmp_path):
    raw = _shipped()
    _field(raw, "potential", "budget")["questoin"] = {"zh": "预算？", "en": "Budget?"}
    problem = _one_problem_with(
        _problems(_write(tmp_path, raw)), "stage 'potential'", "field 'budget'", "questoin"
    )
    assert "unknown key" in problem


def test_missing_english_translation(tmp_path):
    raw = _shipped()
    del _field(raw, "potential", "budget")["question"]["en"]
    problem = _one_problem_with(
        _problems(_write(tmp_path, raw)), "stage 'potential'", "field 'budget'", "question"
    )
    assert "missing translation en" in problem


def test_duplicate_field_id_across_stages(tmp_path):
    raw = _shipped()
    budget = copy.deepcopy(_field(raw, "potential", "budget"))
    _stage(raw, "intent")["fields"].append(budget)
    problem = _one_problem_with(
        _problems(_write(tmp_path, raw)), "stage 'intent'", "field 'budget'"
    )
    assert "duplicate id" in problem
    assert "'potential'" in problem


def test_duplicate_id_between_field_and_checklist_item(tmp_path):
    raw = _shipped()
    _stage(raw, "won")["checklist"][0]["id"] = "budget"
    problem = _one_problem_with(
        _problems(_write(tmp_path, raw)), "stage 'won'", "checklist item 'budget'"
    )
    assert "duplicate id" in problem


def test_ask_if_names_unknown_field(tmp_path):
    raw = _shipped()
    _field(raw, "potential", "current_system_notes")["ask_if"][0]["field"] = "current_sytem"
    problem = _one_problem_with(
        _problems(_write(tmp_path, raw)), "stage 'potential'", "field 'current_system_notes'"
    )
    assert "ask_if" in problem
    assert "'current_sytem'" in problem


def test_ask_if_names_a_later_field(tmp_path):
    raw = _shipped()
    _field(raw, "potential", "current_system_notes")["ask_if"][0]["field"] = "signing_date"
    _one_problem_with(
        _problems(_write(tmp_path, raw)),
        "stage 'potential'",
        "field 'current_system_notes'",
        "'signing_date'",
    )


def test_ask_if_names_a_value_that_is_not_an_option(tmp_path):
    raw = _shipped()
    _field(raw, "potential", "current_system_notes")["ask_if"][0]["in"] = ["works_bady"]
    _one_problem_with(
        _problems(_write(tmp_path, raw)),
        "field 'current_system_notes' › ask_if",
        "works_bady is not an option of field 'current_system'",
    )


def test_bad_field_type(tmp_path):
    raw = _shipped()
    _field(raw, "potential", "budget")["type"] = "currency"
    problem = _one_problem_with(
        _problems(_write(tmp_path, raw)), "stage 'potential'", "field 'budget'", "type"
    )
    assert "'money'" in problem


def test_choice_field_with_one_option(tmp_path):
    raw = _shipped()
    size = _field(raw, "potential", "company_size")
    size["options"] = size["options"][:1]
    problem = _one_problem_with(
        _problems(_write(tmp_path, raw)), "stage 'potential'", "field 'company_size'"
    )
    assert "at least two options" in problem


def test_every_problem_is_reported(tmp_path):
    raw = _shipped()
    del _field(raw, "intent", "sponsor")["question"]["en"]
    size = _field(raw, "potential", "company_size")
    size["options"] = size["options"][:1]
    problems = _problems(_write(tmp_path, raw))
    _one_problem_with(problems, "stage 'intent'", "field 'sponsor'", "missing translation en")
    _one_problem_with(problems, "stage 'potential'", "field 'company_size'", "two options")


SMALL = """
id = "small"
version = 1
name = { zh = "小", en = "Small" }
languages = ["zh", "en"]
default_language = "zh"

[[stages]]
id = "open"
name = { zh = "开始", en = "Open" }
definition = { zh = "开始。", en = "Open." }
win_probability = 10
stale_after_days = 7
owners = [{ zh = "销售", en = "Sales" }]

[[stages.fields]]
id = "amount"
type = "money"
deal_attribute = "amount"
question = { zh = "金额？", en = "Amount?" }
EXTRA

[[stages]]
id = "done"
name = { zh = "完成", en = "Done" }
definition = { zh = "完成。", en = "Done." }
win_probability = 100
stale_after_days = 7
owners = [{ zh = "销售", en = "OWNER_EN" }]
"""


def _small(tmp_path: Path, extra: str = "", owner_en: str = "Sales") -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL.replace("EXTRA", extra).replace("OWNER_EN", owner_en), encoding="utf-8")
    return path


def test_small_hand_made_playbook_loads(tmp_path):
    assert [s.id for s in load_playbook(_small(tmp_path)).stages] == ["open", "done"]


def test_small_playbook_unknown_key(tmp_path):
    path = _small(tmp_path, extra='questoin = { zh = "金额？", en = "Amount?" }')
    _one_problem_with(_problems(path), "stage 'open'", "field 'amount'", "questoin", "unknown key")


def test_small_playbook_missing_english_owner(tmp_path):
    path = _small(tmp_path, owner_en="")
    _one_problem_with(_problems(path), "stage 'done'", "owners[1]", "missing translation en")
