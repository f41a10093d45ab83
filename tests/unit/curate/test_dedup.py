from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys

import pytest

from ct_llm.curate.dedup import Deduper, normalise

ANSWER = (
    "To reset your router, unplug it from the wall and wait at least thirty seconds before "
    "plugging it back in. Once the power light turns solid green, open the admin page in your "
    "browser, sign in with the password printed on the sticker underneath, and check that the "
    "firmware is up to date. If the problem persists, call support."
)


def vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    return ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(size)]


def unrelated_texts(n: int, seed: int = 7, lo: int = 100, hi: int = 600) -> list[str]:
    """Texts over a fixed random vocabulary with Zipf-like word frequencies (as in real text, a
    few words occur everywhere), with capitals and punctuation sprinkled in."""
    rng = random.Random(seed)
    forms: list[str] = []
    weights: list[float] = []
    for rank, word in enumerate(vocabulary(rng)):
        punctuated = word + rng.choice(".,;?!")
        for form, share in ((word, 0.86), (word.capitalize(), 0.08), (punctuated, 0.06)):
            forms.append(form)
            weights.append(share / (rank + 1))
    cum_weights = list(itertools.accumulate(weights))
    texts = []
    for _ in range(n):
        target = rng.randint(lo, hi)
        text = " ".join(rng.choices(forms, cum_weights=cum_weights, k=target // 3))
        cut = text.find(" ", target)  # the first word boundary at or after `target` characters
        texts.append(text if cut < 0 else text[:cut])
    return texts


# --- normalise ------------------------------------------------------------------------------------


def test_normalise_case_and_whitespace() -> None:
    assert normalise("  Hello\t\tWORLD \n again  ") == "hello world again"
    assert normalise("a\u00a0b\u2003c\r\nd") == "a b c d"  # NBSP, em space, CRLF
    assert normalise("Straße") == "strasse"  # casefold, not lower
    assert normalise("") == ""
    assert normalise(" \n\t ") == ""


def test_normalise_nfkc() -> None:
    assert normalise("ＨＥＬＬＯ　ｗｏｒｌｄ") == "hello world"  # full-width letters and space
    assert normalise("ﬁne") == "fine"  # ligature
    assert normalise("e\u0301") == normalise("\u00e9")  # combining accent == precomposed


# --- exact duplicates -----------------------------------------------------------------------------


def test_exact_duplicate_across_batches() -> None:
    d = Deduper()
    assert d.check_batch([("dpo", ["What is 2+2?", "4", "5"])]) == [None]
    assert d.check_batch([("dpo", ["what is  2+2?", " 4", "5 "])]) == ["exact_duplicate"]
    assert d.seen == 1


def test_exact_duplicate_within_batch() -> None:
    d = Deduper()
    row = ("sft", ["Tell me a joke.", "Why did the chicken cross the road? To get to the other."])
    other = ("sft", ["Something else entirely", "A quite different answer, about weather."])
    assert d.check_batch([row, other, row, row]) == [
        None,
        None,
        "exact_duplicate",
        "exact_duplicate",
    ]
    assert d.seen == 2


def test_text_boundaries_matter() -> None:
    d = Deduper(near_dup=False)
    assert d.check_batch([("dpo", ["a b", "c"]), ("dpo", ["a", "b c"]), ("dpo", ["a b c"])]) == [
        None,
        None,
        None,
    ]
    assert d.check_batch([("dpo", ["x", ""]), ("dpo", ["x"])]) == [None, None]


def test_different_namespace_is_not_a_duplicate() -> None:
    d = Deduper()
    near = ANSWER.replace("thirty", "forty")
    assert d.check_batch([("kto:true", [ANSWER]), ("kto:false", [ANSWER])]) == [None, None]
    assert d.check_batch([("dpo", [near])]) == [None]
    assert d.check_batch([("kto:true", [ANSWER]), ("dpo", [near])]) == [
        "exact_duplicate",
        "exact_duplicate",
    ]
    assert d.seen == 3


# --- near duplicates ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_near_duplicates_are_flagged(seed: int) -> None:
    assert 280 <= len(ANSWER) <= 360
    one_word = ANSWER.replace("thirty", "twenty")
    two_words = one_word.replace("solid green", "solid blue")
    respaced = "  " + ANSWER.replace("sticker", "label").upper().replace(" ", " \t") + "\n"
    d = Deduper(seed=seed)
    assert d.check_batch([("dpo", ["How do I reset my router?", ANSWER])]) == [None]
    got = d.check_batch(
        [("dpo", ["How do I reset my router?", text]) for text in (one_word, two_words, respaced)]
    )
    assert got == ["near_duplicate"] * 3
    assert d.seen == 1  # duplicates are not recorded


def test_non_ascii_near_duplicate() -> None:
    # Shingles are UTF-8 bytes: a Cyrillic letter takes two, so a shingle spans 2-3 letters.
    text = (
        "Чтобы сбросить настройки роутера, отключите его от сети и подождите не менее тридцати "
        "секунд, прежде чем снова включить. Когда индикатор питания загорится зелёным, откройте "
        "страницу администратора в браузере и проверьте, что прошивка обновлена."
    )
    d = Deduper()
    rows = [("sft", [text]), ("sft", [text.replace("тридцати", "сорока")]), ("sft", [text.upper()])]
    assert d.check_batch(rows) == [None, "near_duplicate", "exact_duplicate"]


def test_near_duplicate_within_batch_first_occurrence_wins() -> None:
    d = Deduper()
    edited = ANSWER.replace("admin page", "settings page")
    assert d.check_batch([("sft", [edited]), ("sft", [ANSWER])]) == [None, "near_duplicate"]


def test_near_dup_disabled() -> None:
    d = Deduper(near_dup=False)
    edited = ANSWER.replace("thirty", "twenty")
    assert d.check_batch([("dpo", [ANSWER]), ("dpo", [edited]), ("dpo", [ANSWER])]) == [
        None,
        None,
        "exact_duplicate",
    ]


def test_unrelated_texts_no_false_positives() -> None:
    texts = unrelated_texts(200)
    assert all(100 <= len(t) <= 620 for t in texts)
    d = Deduper()
    assert d.check_batch([("dpo", [t]) for t in texts]) == [None] * 200
    assert d.seen == 200


def test_short_texts_exact_only() -> None:
    d = Deduper()
    rows = [("kto:true", ["hi"]), ("kto:true", ["ho"]), ("kto:true", ["HI "]), ("kto:true", [""])]
    assert d.check_batch(rows) == [None, None, "exact_duplicate", None]
    # No text at all and one empty text normalise to the same row.
    assert d.check_batch([("kto:true", [""]), ("kto:true", [])]) == ["exact_duplicate"] * 2
    # Short rows (no sampled shingle) between long ones get no band keys and leave their
    # neighbours' signatures alone (reduceat over an empty segment would not).
    long_rows = [("dpo", [t]) for t in unrelated_texts(5, seed=3)]
    mixed = [long_rows[0], ("dpo", ["ok"]), long_rows[1], ("dpo", ["no"]), long_rows[2]]
    assert d.check_batch(mixed) == [None] * 5
    alone = Deduper()
    alone.check_batch(long_rows[:3])
    assert d._lsh == alone._lsh
    edited = [(ns, [text + " extra"]) for ns, (text,) in long_rows]
    assert d.check_batch(edited) == ["near_duplicate"] * 3 + [None, None]


def test_empty_batch() -> None:
    assert Deduper().check_batch([]) == []


@pytest.mark.parametrize("kwargs", [{"num_perm": 30, "bands": 8}, {"bands": 0}, {"shingle": 0}])
def test_invalid_parameters(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Deduper(**kwargs)


@pytest.mark.parametrize("shingle", [1, 3, 8, 9, 13])
def test_other_shingle_sizes(shingle: int) -> None:
    d = Deduper(shingle=shingle)
    edited = ANSWER.replace("thirty", "twenty")
    assert d.check_batch([("a", [ANSWER]), ("a", [edited]), ("a", [ANSWER])]) == [
        None,
        "near_duplicate",
        "exact_duplicate",
    ]


# --- determinism ----------------------------------------------------------------------------------


def stream() -> list[tuple[str, list[str]]]:
    texts = unrelated_texts(60, seed=11)
    rng = random.Random(5)
    rows: list[tuple[str, list[str]]] = []
    for i, text in enumerate(texts):
        rows.append(("dpo" if i % 2 else "kto:true", [f"prompt {i % 7}", text]))
        if rng.random() < 0.3:  # some exact and some edited repeats of earlier rows
            ns, (prompt, old) = rows[rng.randrange(len(rows))]
            words = old.split()
            words[len(words) // 2] = "changed"
            rows.append((ns, [prompt, " ".join(words) if rng.random() < 0.5 else old]))
    return rows


def test_deterministic_and_independent_of_batching() -> None:
    rows = stream()
    whole = Deduper().check_batch(rows)
    assert whole == Deduper().check_batch(rows)
    assert {"exact_duplicate", "near_duplicate", None} <= set(whole)
    d = Deduper()
    one_by_one = [r for row in rows for r in d.check_batch([row])]
    assert one_by_one == whole
    d = Deduper()
    in_sevens = [r for i in range(0, len(rows), 7) for r in d.check_batch(rows[i : i + 7])]
    assert in_sevens == whole


_SCRIPT = """
import json, sys
from ct_llm.curate.dedup import Deduper
rows = json.loads(sys.stdin.read())
d = Deduper()
results = d.check_batch([(ns, texts) for ns, texts in rows])
# The keys themselves, not only the verdicts, must not depend on the process's hash seed.
print(json.dumps([results, sorted(d._exact), sorted(d._lsh)]))
"""


def test_same_results_across_processes_and_hash_seeds() -> None:
    rows = json.dumps(stream())
    outputs = []
    for hash_seed in ("123", "456"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run(
            [sys.executable, "-c", _SCRIPT],
            input=rows,
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=60,
        )
        outputs.append(json.loads(proc.stdout))
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == Deduper().check_batch(stream())


# --- speed ----------------------------------------------------------------------------------------


def test_twenty_thousand_unrelated_texts_are_all_kept() -> None:
    """At scale, in batches as curation sends them. (Its speed is `ct-llm bench curate`'s to
    measure: a time limit here failed whenever the machine was busy.)"""
    rows = [("dpo", [t]) for t in unrelated_texts(20_000, seed=13, lo=350, hi=450)]
    d = Deduper()
    for i in range(0, len(rows), 2000):
        d.check_batch(rows[i : i + 2000])
    assert d.seen > 19_900  # distinct texts: at most a stray false positive


def test_with_a_context_a_near_duplicate_must_be_near_in_both() -> None:
    """A long shared prompt with different answers is not a duplicate; the same answer to the
    same prompt with a word changed is; the same answer to another prompt is not."""
    prompt = " ".join(unrelated_texts(4, seed=11))  # ~1,400 characters shared by every row
    answers = unrelated_texts(200, seed=12)
    d = Deduper(num_perm=32)
    assert d.check_batch([("dpo", [a], [prompt]) for a in answers]) == [None] * 200
    edited = answers[0].replace(answers[0].split()[3], "zzzz", 1)
    other_prompt = unrelated_texts(1, seed=13)[0]
    assert d.check_batch([("dpo", [edited], [prompt]), ("dpo", [answers[1]], [other_prompt])]) == [
        "near_duplicate",
        None,
    ]
    # The exact key covers the context too.
    assert d.check_batch([("dpo", [answers[2]], [other_prompt + " extra"])]) == [None]
    assert d.check_batch([("dpo", [answers[2]], [prompt])]) == ["exact_duplicate"]
