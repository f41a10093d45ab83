"""Which rows speak about the same prompt (replay leaves the superseded ones out)."""

from __future__ import annotations

from ct_llm.curate.stages import prompt_key


def _row(*turns: tuple[str, str]) -> dict:
    return {"prompt": [{"role": r, "content": c} for r, c in turns]}


def test_same_question_same_key_whatever_the_system_prompt_case_and_spacing() -> None:
    a = _row(("system", "You are a shop bot."), ("user", "How long is the return window?"))
    b = _row(("user", "  how long is   the return WINDOW? "))
    assert prompt_key(a) == prompt_key(b)


def test_other_question_or_other_turns_differ() -> None:
    base = prompt_key(_row(("user", "How long is the return window?")))
    assert prompt_key(_row(("user", "How long is shipping?"))) != base
    two_turns = _row(
        ("user", "Hi"), ("assistant", "Hello!"), ("user", "How long is the return window?")
    )
    assert prompt_key(two_turns) != base
    # Turn boundaries count: the same words split differently are another conversation.
    assert prompt_key(_row(("user", "a b"), ("user", "c"))) != prompt_key(
        _row(("user", "a"), ("user", "b c"))
    )
