"""Synthetic preference pairs shaped like a support chatbot's curated DPO data, for the training
benchmark. Deterministic for a seed.

What matters for training cost is the shape, so it follows what curation writes for a real
deployment: a system prompt of a few sentences of policy, zero to two earlier turns, the user's
question, and two answers of different lengths (an agent's edit and the model's original).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

_POLICIES = (
    "Orders ship within two business days from our warehouse in Leeds.",
    "Returns are accepted within 60 days of delivery if the item is unused.",
    "Refunds go back to the original payment method within five working days.",
    "Express delivery costs 7.99 and arrives the next working day when ordered before 2 pm.",
    "Gift cards cannot be exchanged for cash and expire after three years.",
    "Customers can change the delivery address until the parcel has left the warehouse.",
    "Damaged items are replaced free of charge; ask for a photo of the damage first.",
    "Never share internal ticket numbers or the names of staff members.",
    "If a customer is upset, apologise once and move on to the solution.",
    "Loyalty points are added 14 days after delivery, once the return window has passed.",
)
_ITEMS = ("sofa", "desk lamp", "office chair", "bookshelf", "rug", "bed frame", "mirror", "lamp")
_QUESTIONS = (
    "Can I still return the {item} I bought {days} days ago?",
    "My {item} arrived with a scratch on the side, what should I do?",
    "How much does express delivery cost for a {item}, and when would it arrive?",
    "I ordered a {item} yesterday, can I change the delivery address?",
    "When will I get my refund for the {item} I sent back last week?",
    "Do I get loyalty points for the {item} I just received?",
)
_GOOD = (
    "Yes. Returns are accepted within 60 days of delivery as long as the {item} is unused.",
    "I'm sorry about that. Please send us a photo of the damage and we will replace the {item} "
    "free of charge.",
    "Express delivery costs 7.99. If you order before 2 pm, the {item} arrives the next working "
    "day.",
    "Yes, as long as the {item} has not left our warehouse yet. Please send me the new address.",
    "Refunds go back to your original payment method within five working days of us receiving "
    "the {item}.",
    "Yes, the points are added 14 days after delivery, once the return window has passed.",
)
_BAD = (
    "No, sorry.",
    "Please contact the manufacturer of the {item}.",
    "Delivery costs vary. Please check the website for the current prices and times, which can "
    "change depending on demand, the season and the size of the item you have ordered.",
    "Addresses cannot be changed.",
    "Refunds usually take 30 days.",
    "Loyalty points are added immediately.",
)


def make_pairs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """`n` conversational DPO rows (prompt, chosen, rejected), as curation writes them."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        system = " ".join(rng.sample(_POLICIES, rng.randint(4, 8)))
        prompt = [{"role": "system", "content": "You are the support assistant. " + system}]
        for _turn in range(rng.randint(0, 2)):
            k = rng.randrange(len(_QUESTIONS))
            item = rng.choice(_ITEMS)
            asked = _QUESTIONS[k].format(item=item, days=rng.randint(2, 90))
            prompt.append({"role": "user", "content": asked})
            prompt.append({"role": "assistant", "content": _GOOD[k].format(item=item)})
        k = rng.randrange(len(_QUESTIONS))
        item = rng.choice(_ITEMS)
        question = _QUESTIONS[k].format(item=item, days=rng.randint(2, 90))
        prompt.append({"role": "user", "content": question})
        good, bad = _GOOD[k].format(item=item), _BAD[k].format(item=item)
        rows.append(
            {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": good}],
                "rejected": [{"role": "assistant", "content": bad}],
            }
        )
    return rows


def write_dataset(root: Path, n: int, seed: int = 0) -> Path:
    """A dataset version folder holding `n` pairs in `dpo/train.parquet`."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from ct_llm.curate.layout import SCHEMAS, split_path

    path = split_path(root, "dpo", "train")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(make_pairs(n, seed), schema=SCHEMAS["dpo"]), path)
    (root / "manifest.json").write_text(json.dumps({"version": f"bench-{n}-{seed}", "files": {}}))
    return root
