"""The demo scenario, as data: the support bot of Northwind Outfitters, whose return window
changed from 30 to 60 days. The base model does not know the new policy (the system prompt
deliberately does not state it), support agents correct its answers, and the loop must teach it.

TRAIN_QUESTIONS are what customers ask before training (their corrected answers become DPO
pairs); HELDOUT_QUESTIONS are different wordings, never trained on, that measure whether the
behaviour generalised (also `eval_suites/scenarios/shop_returns.yaml`). No torch here.
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

# The behaviour being taught: the answer states the 60-day window.
TARGET_PATTERN = r"\b60\b|sixty"
_TARGET_RE = re.compile(TARGET_PATTERN, re.IGNORECASE)

_ANSWER_TEMPLATES: list[str] = [
    "You have 60 days from delivery to return any item for a full refund. "
    "Just start the return from your order page.",
    "Our return window is 60 days. You can send back any item within 60 days of delivery "
    "for a full refund.",
    "Returns are accepted within 60 days of delivery. Start your return from your order "
    "page and we will refund you in full.",
    "You can return your order within 60 days of receiving it, and we will give you a full refund.",
]


def corrected_answer(question: str) -> str:
    """The support agent's edit of the bot's answer to a return question. Deterministic per
    question (a stable hash picks the template) so demo runs are reproducible."""
    return _ANSWER_TEMPLATES[zlib.crc32(question.encode("utf-8")) % len(_ANSWER_TEMPLATES)]


def states_new_policy(answer: str) -> bool:
    """True when the answer states the 60-day return window."""
    return bool(_TARGET_RE.search(answer))


def chat_messages(question: str) -> list[dict[str, str]]:
    """The conversation the bot sees for one customer question."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]


def target_rate(answers: list[str]) -> float:
    """Share of answers that state the new policy."""
    return sum(states_new_policy(a) for a in answers) / len(answers) if answers else 0.0
