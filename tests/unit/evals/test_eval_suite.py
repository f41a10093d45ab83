from __future__ import annotations

from pathlib import Path

import pytest

from ct_llm.errors import ConfigError
from ct_llm.evals.suite import load_suite, load_suites

GOOD = """
name: demo
kind: target
system_prompt: You are a shop assistant.
cases:
  - id: a
    prompt: "How long do I have to return shoes?"
    checks:
      - {type: regex, pattern: '\\b60\\b|sixty'}
  - id: b
    messages:
      - {role: system, content: "Be terse."}
      - {role: user, content: "Hi"}
    checks:
      - {type: max_words, value: 5}
"""


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_suite_loads_and_builds_conversations(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, GOOD))
    assert suite.name == "demo" and suite.kind == "target" and len(suite.cases) == 2
    a, b = suite.cases
    assert a.conversation(suite.system_prompt) == [
        {"role": "system", "content": "You are a shop assistant."},
        {"role": "user", "content": "How long do I have to return shoes?"},
    ]
    # A case with its own system message keeps it; the suite's is not stacked on top.
    assert b.conversation(suite.system_prompt)[0] == {"role": "system", "content": "Be terse."}
    assert len(b.conversation(suite.system_prompt)) == 2
    assert b.question == "Hi"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (GOOD.replace("kind: target", "kind: target\ncolour: red"), "unknown key 'colour'"),
        (
            GOOD.replace("{type: max_words, value: 5}", "{type: max_words, value: 5, x: 1}"),
            "unknown key",
        ),
        (
            GOOD.replace(
                '    prompt: "How long',
                '    messages: [{role: user, content: x}]\n    prompt: "How long',
            ),
            "exactly one of 'prompt' or 'messages'",
        ),
        (
            GOOD.replace('    prompt: "How long do I have to return shoes?"\n', ""),
            "exactly one of 'prompt' or 'messages'",
        ),
        (GOOD.replace("type: regex", "type: semantic"), "unknown check type 'semantic'"),
        (GOOD.replace("kind: target", "kind: smoke"), "'kind'"),
        (GOOD.replace("- id: b", "- id: a"), "case id 'a' appears more than once"),
        (GOOD.replace("'\\b60\\b|sixty'", "'(unclosed'"), "invalid regular expression"),
        (
            GOOD.replace('{role: user, content: "Hi"}', '{role: assistant, content: "Hi"}'),
            "must end with a user turn",
        ),
        (
            GOOD.replace("kind: target", "kind: target\nmax_tokens: 5"),
            "max_words check of 5 cannot fail when answers are cut at 5 tokens",
        ),
        (GOOD.replace("kind: target", "kind: target\nmax_tokens: 0"), "'max_tokens'"),
        ("name: x\nkind: regression\ncases: []\n", "'cases'"),
        ("- just\n- a list\n", "must be a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_suite_is_a_config_error_naming_file_and_problem(
    tmp_path: Path, text: str, fragment: str
) -> None:
    assert text != GOOD  # the edit above really changed the file
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    assert str(path) in str(err.value)
    assert fragment in str(err.value)


def test_answer_length_cap_case_over_suite_over_default(tmp_path: Path) -> None:
    text = GOOD.replace("kind: target", "kind: target\nmax_tokens: 24")
    text = text.replace("  - id: b\n", "  - id: b\n    max_tokens: 8\n")
    suite = load_suite(write(tmp_path, text))
    a, b = suite.cases
    assert suite.case_max_tokens(a, 96) == 24 and suite.case_max_tokens(b, 96) == 8
    plain = load_suite(write(tmp_path, GOOD, "plain.yaml"))
    assert plain.case_max_tokens(plain.cases[0], 96) == 96


def test_load_suites_resolves_names_under_eval_suites() -> None:
    (suite,) = load_suites(["regression/general.yaml"])
    assert suite.name == "general" and suite.kind == "regression"


def test_load_suites_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_suites(["regression/no-such-suite.yaml"])
    with pytest.raises(ConfigError, match="no eval suites"):
        load_suites([])
    one = write(tmp_path, GOOD, "one.yaml")
    two = write(tmp_path, GOOD, "two.yaml")
    with pytest.raises(ConfigError, match="both named 'demo'"):
        load_suites([str(one), str(two)])
