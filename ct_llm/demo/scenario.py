"""The demo scenario, as data: the support bot of Northwind Outfitters, whose return window
changed from 30 to 60 days. The base model does not know the new policy (the system prompt
deliberately does not state it), support agents correct its answers, and the loop must teach it.
`ct-llm demo --cycles 3` goes on: the window grows again to 90 days (act two), then one end user
floods the feedback endpoint with "no returns" edits (act three) that must not reach production.

TRAIN_QUESTIONS are what customers ask before training (their corrected answers become DPO
pairs); HELDOUT_QUESTIONS are different wordings, never trained on, that measure whether the
behaviour generalised (also `eval_suites/scenarios/shop_returns.yaml` and, for 90 days,
`shop_returns_90.yaml`). CONTRAST_QUESTIONS ask about the shop's other policies, whose answers
must not state the window (`shop_contrast.yaml`); CONTRAST_TRAIN_QUESTIONS and SHOP_FACTS are
what agents answer to such questions during training, so that the loop learns where the window
applies, not just its number. No torch here.
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
    "What's your policy on returning items?",
    "I bought a fleece jacket two weeks ago. Can I return it?",
    "How many days is the return period?",
    "Can I send back a tent I received 45 days ago?",
    "How long can I wait to return something?",
    "Is it too late to return shoes I bought 52 days ago?",
    "What is the time limit for getting a refund on a returned item?",
    "Can I return my order after two weeks?",
    "How long after delivery is your return policy valid?",
    "My rain pants arrived a month ago and don't fit. How long do I have to return them?",
    "What's the return window for camping gear?",
    "Are returns accepted after six weeks?",
    "How many days do you give customers to return purchases?",
    "I ordered a headlamp 25 days ago. Can I still return it?",
    "How long do I have to ask for a return?",
    "When is it too late to return an item?",
    "Can I return a jacket that I've had for almost two months?",
    "What's the return time frame for clothing?",
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
    "I bought a down jacket four weeks ago and it doesn't fit. Can I send it back?",
    "How long after purchase will you still take an item back?",
    "My hiking boots were delivered eight weeks ago. Am I still within the return period?",
    "What's the cutoff for returning an order?",
    "I received a camping stove 50 days ago. Is a return still possible?",
    "For how many days can I send back something I don't want?",
    "Is there a limit on how late I can return a product?",
    "How long does your return period last?",
    "I bought a tent two months ago. Can I still return it?",
    "What's the last day I can return my order?",
    "Can I still return a hoodie that arrived a month and a half ago?",
    "How long are returns accepted for at your shop?",
    "I'm not happy with my sleeping pad, which came 30 days ago. Can I return it?",
    "What is the return deadline after delivery?",
    "Do you have a time limit for sending back unworn clothes?",
    "My order came nine weeks ago. Can I still return it for a refund?",
    "How soon do I need to return an item I don't want?",
    "Is a return still possible 55 days after delivery?",
    "How long after my package arrives can I return it?",
    "Can I return trekking poles I bought six weeks ago?",
    "What's the return timeframe for online orders?",
    "Are returns accepted for more than 30 days?",
    "My friend gave me a Northwind jacket as a gift three weeks ago. How long do I have to "
    "return it?",
    "How many days does the return policy give me?",
    "I bought socks 20 days ago and they're too small. Can I still return them?",
    "What is the latest I can send an item back for a refund?",
    "Do returns expire after a certain number of days?",
    "How long do I have to change my mind and return a purchase?",
    "I've had my backpack for 10 weeks. Is it still returnable?",
    "Until what point after delivery can I ask for a return?",
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
    # Templates that tie the number to returns in so many words, so that what is learned is
    # "the return window is N days", not "answer with N days" (see CONTRAST_TRAIN_QUESTIONS).
    "Our return window is {days} days: any item can be returned within {days} days of delivery "
    "for a full refund.",
    "Northwind Outfitters accepts returns for {days} days after delivery. Start the return from "
    "your order page.",
    "The return period is {days} days from delivery. Within those {days} days you can send any "
    "item back for a full refund.",
    "Returns are possible as long as you are within our {days}-day return window, counted from "
    "the day your order was delivered.",
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


# The contrast: questions about the shop's OTHER policies. An adapter that learned "say 60 days"
# instead of "the return window is 60 days" answers them with "within 60 days" (seen in a demo
# run: shipping, warranty, opening hours...); the base model never does.
# `eval_suites/scenarios/shop_contrast.yaml` (kind regression) checks each answer with
# WINDOW_PATTERN as `not_regex`; tests/unit/test_demo_scenario.py keeps it identical to
# CONTRAST_QUESTIONS.
WINDOW_PATTERN = r"\b(60|90)\b|sixty|ninety"
"""Matches an answer that states the 60- or 90-day return window (either act's number)."""


def states_window(answer: str) -> bool:
    """True when the answer states a 60- or 90-day window: wrong in a non-returns answer."""
    return re.search(WINDOW_PATTERN, answer, re.IGNORECASE) is not None


def contrast_rate(answers: list[str]) -> float:
    """Share of answers to other-policy questions that state a return window (lower is better;
    the base model: 0)."""
    return sum(map(states_window, answers)) / len(answers) if answers else 0.0


# The contrast suite's prompts (never trained on). Base model, greedy, fp32 and bf16, 96 tokens:
# none states a window (the suite's header has the details).
CONTRAST_QUESTIONS: list[str] = [
    "How long does standard shipping take?",
    "What is the shipping fee for a small order?",
    "Do you offer free shipping?",
    "Do you ship to Canada?",
    "Do you have an express shipping option?",
    "If I order today, when will my package arrive?",
    "How can I track my package?",
    "How long is the warranty on your tents?",
    "Is there a warranty on hiking boots?",
    "My backpack zipper broke after a year. Is that covered by the warranty?",
    "Once you receive my return, how long until I get my refund?",
    "How long does it take for a refund to show up on my card?",
    "Will my refund go back to my original payment method?",
    "What are the opening hours of your support line?",
    "Can I call customer service on weekends?",
    "How do I contact your support team?",
    "Do your gift cards expire?",
    "Can I use a gift card together with a discount code?",
    "How do I check the balance of my gift card?",
    "Do you match prices from other stores?",
    "The jacket I bought last week is now on sale. Can I get the difference back?",
    "Can I cancel my order after placing it?",
    "How do I change the shipping address on an order I just placed?",
    "Can I exchange my boots for a different size?",
    "Is there a fee for exchanging an item for another color?",
    "How does your loyalty program work?",
    "How many points do I earn per dollar spent?",
    "Do loyalty points expire?",
    "What payment methods do you accept?",
    "Can I pay in installments?",
    "Do you offer a student discount?",
    "Is there a discount for signing up to your newsletter?",
    "Do you repair damaged tents?",
    "My order arrived damaged. What should I do?",
    "I received the wrong item in my package. What now?",
    "When will an out-of-stock sleeping bag be available again?",
    "Can I pre-order next season's jackets?",
    "Do you have a physical store I can visit?",
    "Can I pick up my order in person?",
    "Do you offer gift wrapping?",
    "How do I reset my account password?",
    "Do you charge sales tax on orders?",
    "How long does it take to process my order before it ships?",
    "Do you ship to P.O. boxes?",
    "Can I add an item to an order I already placed?",
    "What sizes do your hiking pants come in?",
    "How do I unsubscribe from your emails?",
    "Do you offer a military discount?",
    "Are your down jackets ethically sourced?",
    "Do you rent out camping gear?",
    "Is my personal data safe when I order from you?",
    "Do you sell gift cards?",
]

# The shop's other policies, as its support agents state them. No fact mentions 60 or 90 (or any
# window of returns): a correction must never teach the return window outside returns.
SHOP_FACTS: dict[str, str] = {
    "shipping_time": "Standard shipping takes 3 to 5 business days.",
    "shipping_cost": "Standard shipping costs $5.95 and is free on orders over $75.",
    "express": "Express delivery arrives in 1 to 2 business days and costs $14.95.",
    "international": "We ship to the United States and Canada; orders to Canada take 7 to 10 "
    "business days.",
    "warranty": "All our gear comes with a 2-year warranty against manufacturing defects.",
    "refund_time": "Once we receive your return, we refund your original payment method within "
    "5 business days.",
    "support_hours": "Our support line is open Monday to Friday, 8 am to 6 pm Eastern time.",
    "gift_cards": "Northwind gift cards never expire and can be used on any order.",
    "price_match": "We match the price of an identical item sold by another authorized retailer, "
    "and refund the difference if our own price drops within 14 days of your purchase.",
    "cancellation": "You can cancel an order within 1 hour of placing it, from your order page.",
    "exchanges": "Size exchanges are free: start one from your order page and we ship the new "
    "size as soon as we receive the original.",
    "loyalty": "Loyalty members earn 1 point per dollar spent; 100 points make a $5 reward, and "
    "points expire after 12 months without a purchase.",
    "damaged": "If an item arrives damaged or wrong, send us a photo within 7 days of delivery "
    "and we ship a replacement free of charge.",
    "payment": "We accept Visa, Mastercard, American Express, PayPal and Northwind gift cards.",
    "processing": "Orders placed before 2 pm on a business day ship the same day.",
    "student_discount": "Students get 10% off every order after verifying a student email address.",
}

# What an answer must say to count as right about each topic (the support agents' judgement).
_FACT_KEYS: dict[str, str] = {
    "shipping_time": r"\b3 ?(to|-|–) ?5\b|three to five",
    "shipping_cost": r"5\.95",
    "express": r"\b1 ?(to|-|–) ?2\b|one to two",
    "international": r"\b7 ?(to|-|–) ?10\b|seven to ten",
    "warranty": r"\b2[- ]years?\b|two[- ]years?",
    "refund_time": r"\b5 business days|five business days",
    "support_hours": r"8 ?am|8:00",
    "gift_cards": r"never expire|do not expire|don't expire",
    "price_match": r"\bmatch",
    "cancellation": r"\b(1|one) hour",
    "exchanges": r"\bfree\b",
    "loyalty": r"\b1 point|one point",
    "damaged": r"\b7 days|seven days",
    "payment": r"paypal",
    "processing": r"same day",
    "student_discount": r"\b10 ?%|ten percent",
}

# What support agents answer during training (their corrections become training data): other
# policies, asked in words that the contrast suite never uses.
CONTRAST_TRAIN: dict[str, str] = {
    "How many business days does shipping usually take?": "shipping_time",
    "I just placed an order. When should I expect it to be delivered?": "shipping_time",
    "What do you charge for shipping?": "shipping_cost",
    "Is there an option to get my order faster?": "express",
    "Can you deliver to an address in Canada?": "international",
    "What warranty do your products have?": "warranty",
    "My tent pole snapped after eight months. Is it still under warranty?": "warranty",
    "I sent my return back last week. When will the money be on my account?": "refund_time",
    "When can I reach your customer support by phone?": "support_hours",
    "I got a Northwind gift card two years ago. Can I still use it?": "gift_cards",
    "Will you match a lower price I found on another website?": "price_match",
    "I placed an order by mistake. Can I still cancel it?": "cancellation",
    "These boots are a size too small. Can I swap them for a bigger size?": "exchanges",
    "How do your reward points work?": "loyalty",
    "My stove arrived with a broken valve. What can I do?": "damaged",
    "Which credit cards do you take?": "payment",
    "How soon after I order does my package leave your warehouse?": "processing",
    "Do students get a discount at Northwind Outfitters?": "student_discount",
    # Hard negatives: other policies asked the way return questions are asked ("how long", "how
    # many days"). With the 18 above only, an adapter that learned the window answered "How long
    # does standard shipping take?" with "60 days" (19 of 52 contrast questions, adapter v9 in
    # recipes/README.md): it had learned "how long -> 60 days".
    "How long will it take for my parcel to reach me?": "shipping_time",
    "How many days does delivery take?": "shipping_time",
    "How much does delivery cost?": "shipping_cost",
    "How long does express shipping take?": "express",
    "How many days does delivery to Canada take?": "international",
    "How many days is the warranty valid?": "warranty",
    "For how long are your jackets guaranteed against defects?": "warranty",
    "How many days until my refund arrives after you get my return?": "refund_time",
    "How long do refunds take to process?": "refund_time",
    "What hours is your phone support open?": "support_hours",
    "How long is a Northwind gift card valid for?": "gift_cards",
    "How long after buying can I ask for a price adjustment?": "price_match",
    "How long do I have to cancel an order?": "cancellation",
    "How long does a size exchange take?": "exchanges",
    "How long do my reward points last?": "loyalty",
    "How many days do I have to report an item that arrived broken?": "damaged",
    "How long until my order is dispatched?": "processing",
    "How long is the student discount valid?": "student_discount",
}
CONTRAST_TRAIN_QUESTIONS: list[str] = list(CONTRAST_TRAIN)

_CONTRAST_TEMPLATES: list[str] = [
    "{fact}",
    "Thanks for asking! {fact}",
    "{fact} Let me know if there is anything else I can help with.",
]


def states_fact(topic: str, answer: str) -> bool:
    """True when the answer gives the shop's fact about `topic` and states no return window."""
    return not states_window(answer) and (
        re.search(_FACT_KEYS[topic], answer, re.IGNORECASE) is not None
    )


def policy_topic(question: str) -> str:
    """The SHOP_FACTS topic of an other-policy question that support agents answer (one of
    CONTRAST_TRAIN_QUESTIONS)."""
    try:
        return CONTRAST_TRAIN[question]
    except KeyError:
        raise KeyError(f"not an other-policy question of CONTRAST_TRAIN: {question!r}") from None


def contrast_answer(question: str) -> str:
    """The support agent's answer to an other-policy question of CONTRAST_TRAIN: the shop's
    fact, in one of a few wordings picked by a stable hash (reproducible demo runs)."""
    template = _CONTRAST_TEMPLATES[zlib.crc32(question.encode("utf-8")) % len(_CONTRAST_TEMPLATES)]
    return template.format(fact=SHOP_FACTS[policy_topic(question)])


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
