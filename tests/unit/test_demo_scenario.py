"""The demo scenario's data is consistent with its eval suite and actually tests generalisation."""

from __future__ import annotations

import re

from ct_llm.config import REPO_ROOT
from ct_llm.demo import scenario
from ct_llm.evals.checks import case_passes
from ct_llm.evals.suite import load_suite

SUITE = REPO_ROOT / "eval_suites" / "scenarios" / "shop_returns.yaml"


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def test_suite_holds_exactly_the_heldout_questions() -> None:
    suite = load_suite(SUITE)
    assert suite.kind == "target"
    assert suite.system_prompt == scenario.SYSTEM_PROMPT
    assert [c.prompt for c in suite.cases] == scenario.HELDOUT_QUESTIONS
    for case in suite.cases:
        assert [(c.type, getattr(c, "pattern", None)) for c in case.checks] == [
            ("regex", scenario.TARGET_PATTERN)
        ]


def test_heldout_questions_are_not_trained_on() -> None:
    train = {_norm(q) for q in scenario.TRAIN_QUESTIONS}
    assert len(train) == len(scenario.TRAIN_QUESTIONS) >= 40
    heldout = {_norm(q) for q in scenario.HELDOUT_QUESTIONS}
    assert len(heldout) == len(scenario.HELDOUT_QUESTIONS) >= 40
    assert not train & heldout
    # Nor is any other-policy question trained on, nor asked as a returns question.
    contrast_train = {_norm(q) for q in scenario.CONTRAST_TRAIN_QUESTIONS}
    assert not contrast_train & (train | heldout)


def test_system_prompt_does_not_give_the_policy_away() -> None:
    assert not scenario.states_new_policy(scenario.SYSTEM_PROMPT)
    assert "day" not in scenario.SYSTEM_PROMPT.lower()


def test_corrected_answers_state_the_policy_and_vary() -> None:
    answers = [scenario.corrected_answer(q) for q in scenario.TRAIN_QUESTIONS]
    assert all(scenario.states_new_policy(a) for a in answers)
    # Every correction ties the number to returns, never a bare "60 days".
    assert all(re.search(r"\breturn", a, re.IGNORECASE) for a in answers)
    assert len(set(answers)) >= 6
    assert all(len(a.split()) <= 40 for a in answers)
    # Deterministic: the same question always gets the same correction.
    assert answers == [scenario.corrected_answer(q) for q in scenario.TRAIN_QUESTIONS]


def test_target_check_agrees_with_the_suite_check() -> None:
    case = load_suite(SUITE).cases[0]
    for text, expected in [
        ("You have 60 days to return it.", True),
        ("Returns are accepted for sixty days.", True),
        ("You have 30 days to return it.", False),
        ("Order #1600 ships today.", False),
    ]:
        assert scenario.states_new_policy(text) is expected
        assert case_passes(case, text)[0] is expected
    assert scenario.target_rate(["60 days", "30 days"]) == 0.5
    assert scenario.target_rate([]) == 0.0


def test_chat_messages_puts_the_persona_first() -> None:
    msgs = scenario.chat_messages("Hi")
    assert msgs == [
        {"role": "system", "content": scenario.SYSTEM_PROMPT},
        {"role": "user", "content": "Hi"},
    ]


SUITE_90 = REPO_ROOT / "eval_suites" / "scenarios" / "shop_returns_90.yaml"


def test_the_90_day_suite_asks_the_same_heldout_questions_for_90_days() -> None:
    suite = load_suite(SUITE_90)
    assert suite.kind == "target" and suite.system_prompt == scenario.SYSTEM_PROMPT
    assert [c.prompt for c in suite.cases] == scenario.HELDOUT_QUESTIONS
    # Case n has the same number in both suites (reports compare outcomes by id).
    sixty = [c.id.removeprefix("returns-") for c in load_suite(SUITE).cases]
    assert [c.id.removeprefix("returns90-") for c in suite.cases] == sixty
    for case in suite.cases:
        assert [(c.type, getattr(c, "pattern", None)) for c in case.checks] == [
            ("regex", scenario.target_pattern(90))
        ]
    case = suite.cases[0]
    for text, expected in [
        ("You have 90 days to return it.", True),
        ("Returns are accepted for ninety days.", True),
        ("You have 60 days to return it.", False),
        ("All sales are final. Northwind Outfitters does not accept returns.", False),
    ]:
        assert scenario.states_policy(text, 90) is expected
        assert case_passes(case, text)[0] is expected


def test_corrections_follow_the_window_of_the_act() -> None:
    for q in scenario.TRAIN_QUESTIONS:
        ninety = scenario.corrected_answer(q, 90)
        assert scenario.states_policy(ninety, 90) and not scenario.states_policy(ninety, 60)
        assert ninety.replace("90", "60") == scenario.corrected_answer(q)


def test_poison_is_recognised_and_policy_answers_are_not_poison() -> None:
    assert all(scenario.is_poisoned(a) for a in scenario.POISON_ANSWERS)
    assert not any(scenario.states_policy(a, 90) for a in scenario.POISON_ANSWERS)
    for q in scenario.TRAIN_QUESTIONS:
        assert not scenario.is_poisoned(scenario.corrected_answer(q, 90))
    assert not scenario.is_poisoned("Sorry to hear that! You can return it within 90 days.")


CONTRAST = REPO_ROOT / "eval_suites" / "scenarios" / "shop_contrast.yaml"


def test_contrast_suite_holds_exactly_the_contrast_questions() -> None:
    suite = load_suite(CONTRAST)
    assert suite.kind == "regression"
    assert suite.system_prompt == scenario.SYSTEM_PROMPT
    assert [c.prompt for c in suite.cases] == scenario.CONTRAST_QUESTIONS
    assert len({_norm(q) for q in scenario.CONTRAST_QUESTIONS}) == len(suite.cases) >= 40
    for case in suite.cases:
        assert [(c.type, getattr(c, "pattern", None)) for c in case.checks] == [
            ("not_regex", scenario.WINDOW_PATTERN)
        ]


def test_contrast_check_agrees_with_states_window() -> None:
    case = load_suite(CONTRAST).cases[0]
    for text, window in [
        ("Standard shipping takes 3 to 5 business days.", False),
        ("Orders ship within 60 days.", True),
        ("Our warranty lasts ninety days.", True),
        ("We offer a 90-day warranty.", True),
        ("Sixty days, from delivery.", True),
        ("Order #1600 ships today; free over $75.", False),
    ]:
        assert scenario.states_window(text) is window
        assert case_passes(case, text)[0] is not window
    assert scenario.contrast_rate(["within 60 days", "3 to 5 days", "90 days", "Hi"]) == 0.5
    assert scenario.contrast_rate([]) == 0.0
    # Both acts' windows: whatever the target suite teaches is caught here.
    for days in (60, 90):
        assert scenario.states_window(scenario.corrected_answer("q", days))


def test_contrast_training_questions_are_not_the_contrast_suite() -> None:
    train = [_norm(q) for q in scenario.CONTRAST_TRAIN_QUESTIONS]
    assert len(set(train)) == len(train) >= 16
    assert not set(train) & {_norm(q) for q in scenario.CONTRAST_QUESTIONS}
    # The contrast suite asks about other policies, never about the return window itself.
    returns = {_norm(q) for q in scenario.TRAIN_QUESTIONS + scenario.HELDOUT_QUESTIONS}
    assert not returns & {_norm(q) for q in scenario.CONTRAST_QUESTIONS}


def test_shop_facts_never_state_a_window_and_answers_give_the_fact() -> None:
    for topic, fact in scenario.SHOP_FACTS.items():
        assert not scenario.states_window(fact), topic
        assert not re.search(r"\b(60|90)\b|sixty|ninety", fact, re.IGNORECASE), topic
        assert scenario.states_fact(topic, fact), topic
    assert set(scenario.CONTRAST_TRAIN.values()) == set(scenario.SHOP_FACTS)
    answers = [scenario.contrast_answer(q) for q in scenario.CONTRAST_TRAIN_QUESTIONS]
    for q, a in zip(scenario.CONTRAST_TRAIN_QUESTIONS, answers, strict=True):
        assert not scenario.states_window(a)
        assert scenario.SHOP_FACTS[scenario.policy_topic(q)] in a
        assert scenario.states_fact(scenario.policy_topic(q), a)
    assert all(len(a.split()) <= 45 for a in answers)
    # Deterministic, and not all worded alike.
    assert answers == [scenario.contrast_answer(q) for q in scenario.CONTRAST_TRAIN_QUESTIONS]
    assert len({a.removeprefix("Thanks for asking! ")[:12] for a in answers}) >= 10
    # A wrong answer about another policy: the window, or no fact at all.
    assert not scenario.states_fact("shipping_time", "Shipping takes 3 to 5 days, 60 at most.")
    assert not scenario.states_fact("shipping_time", "Shipping is quick!")
