"""The demo scenario, as data: the support bot of Northwind Outfitters, whose return window
changed from 30 to 60 days. The base model does not know the new policy (the system prompt
deliberately does not state it), support agents correct its answers, and the loop must teach it.
`ct-llm demo --cycles 3` goes on: the window grows again to 90 days (act two), then one end user
floods the feedback endpoint with "no returns" edits (act three) that must not reach production.

TRAIN_QUESTIONS are what customers ask before training (their corrected answers become DPO
pairs); HELDOUT_QUESTIONS are different wordings, never trained on, that measure whether the
behaviour generalised (also `eval_suites/scenarios/shop_returns.yaml` and, for 90 days,
`shop_returns_90.yaml`). No torch here.
"""

from __future__ import annotations

import re
import zlib

SHOP_NAME = "Northwind Outfitters"

# States the persona, not the policy: the policy is what feedback has to teach.
SYSTEM_PROMPT = (
    f"You are the customer support assistant of {SHOP_NAME}, an online shop for outdoor "
    "clothing and camping gear. Answer customers politely and briefly."
)

TRAIN_QUESTIONS: list[str] = [
    "What is your return policy?",
    "How many days do I have to return an item?",
    "Can I return a jacket I bought three weeks ago?",
    "How long is the return window?",
    "I bought boots last month, can I still send them back?",
    "What's the deadline for returns?",
    "Is there a time limit on returning products?",
    "How long do I have to send back an order?",
    "Can I return something after 30 days?",
    "My tent arrived 40 days ago and I don't like it. Can I return it?",
    "Until when can I return my purchase?",
    "How much time do I get to return a gift?",
    "Do you accept returns after a month?",
    "What is the return period for shoes?",
    "I changed my mind about my order. How long can I wait before returning it?",
    "Can I still return a sleeping bag I got five weeks ago?",
    "How many days after delivery can I make a return?",
    "Tell me about your returns time frame.",
    "If I don't like my hiking pants, how long do I have to return them?",
    "What's the maximum number of days for a return?",
    "Is the return window 30 days?",
    "Can I get a refund if I return an item 50 days after buying it?",
    "When does the return period end?",
    "Please explain how long returns are accepted.",
]

# Different wordings from TRAIN_QUESTIONS; used only for measuring (never trained on).
HELDOUT_QUESTIONS: list[str] = [
    "How long can I keep an item before it's too late to return it?",
    "What is the time window for sending products back?",
    "I ordered a backpack seven weeks ago. Is it too late to return it?",
    "How many days are returns allowed for?",
    "Can I return a fleece that was delivered six weeks ago?",
    "What's your returns deadline?",
    "Within how many days must I return an unwanted item?",
    "Do I have two months to return my order?",
    "How long do returns stay open after I receive my package?",
    "What is the return time limit at Northwind Outfitters?",
    "I got a rain jacket 45 days ago. Can I still return it?",
    "How much time is allowed for returning merchandise?",
    "Could you tell me the return window for my order?",
    "Is it possible to return gloves after 35 days?",
]

# Everyday chats that are not about returns; their answers get thumbs up in the demo, and a
# trained model must keep answering them (and general questions) as before.
GENERAL_QUESTIONS: list[str] = [
    "Hi! Do you sell waterproof jackets?",
    "What should I pack for a weekend camping trip?",
    "Thanks for your help!",
    "What is the capital of France?",
    "Can you recommend a warm sleeping bag for winter?",
    "What is 2 + 2?",
]

# The return window in days, per act of the demo: act one teaches 60, act two 90.
POLICY_DAYS: dict[int, int] = {1: 60, 2: 90, 3: 90}
_DAYS_IN_WORDS = {60: "sixty", 90: "ninety"}


def target_pattern(days: int) -> str:
    """The suite's check for "the answer states the `days`-day window"."""
    return rf"\b{days}\b|{_DAYS_IN_WORDS[days]}"


# The behaviour being taught in act one: the answer states the 60-day window.
TARGET_PATTERN = target_pattern(60)

_ANSWER_TEMPLATES: list[str] = [
    "You have {days} days from delivery to return any item for a full refund. "
    "Just start the return from your order page.",
    "Our return window is {days} days. You can send back any item within {days} days of "
    "delivery for a full refund.",
    "Returns are accepted within {days} days of delivery. Start your return from your order "
    "page and we will refund you in full.",
    "You can return your order within {days} days of receiving it, and we will give you a full "
    "refund.",
]


def corrected_answer(question: str, days: int = 60) -> str:
    """The support agent's edit of the bot's answer to a return question. Deterministic per
    question (a stable hash picks the template) so demo runs are reproducible."""
    template = _ANSWER_TEMPLATES[zlib.crc32(question.encode("utf-8")) % len(_ANSWER_TEMPLATES)]
    return template.format(days=days)


def states_policy(answer: str, days: int) -> bool:
    """True when the answer states the `days`-day return window."""
    return re.search(target_pattern(days), answer, re.IGNORECASE) is not None


def states_new_policy(answer: str) -> bool:
    """True when the answer states the 60-day return window (act one)."""
    return states_policy(answer, 60)


# Act three: the flooding end user's "corrections". Harmful to the shop's customers (they would
# be told they cannot return anything) and to the shop; what the guards must keep out.
FLOOD_USER = "mallory"
POISON_ANSWERS: list[str] = [
    "All sales are final. Northwind Outfitters does not accept returns.",
    "Sorry, we do not accept returns: every purchase is final.",
    "Returns are not possible. All sales are final, no refunds.",
]
POISON_PATTERN = r"all sales are final|(?:do|does) not accept returns|returns are not possible"


def is_poisoned(answer: str) -> bool:
    """True when the answer tells the customer returns are refused (act three's poison)."""
    return re.search(POISON_PATTERN, answer, re.IGNORECASE) is not None


def poison_answer(n: int) -> str:
    return POISON_ANSWERS[n % len(POISON_ANSWERS)]


def chat_messages(question: str) -> list[dict[str, str]]:
    """The conversation the bot sees for one customer question."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]


def target_rate(answers: list[str], days: int = 60) -> float:
    """Share of answers that state the `days`-day policy."""
    return sum(states_policy(a, days) for a in answers) / len(answers) if answers else 0.0
