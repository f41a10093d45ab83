"""How firmly does the base model decide each case of an eval suite?

    .venv/bin/python scripts/suite_margins.py regression/general.yaml [--model DIR] [--tokens 12]

For every case: the greedy answer in float32 and bfloat16, whether its checks pass, and the
decision gap: the smallest gap between the top two next-token log-probabilities over the tokens
generated until the answer first passes its checks. A gap near zero means the outcome is a coin
toss: any LoRA update (or bf16 serving) can flip it, and the case then measures noise, not
regression. Keep regression cases whose answers pass in both dtypes and
whose decisive tokens have a clear gap; rephrase the rest.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def _greedy_with_gaps(model, tokenizer, messages, n_tokens: int):  # type: ignore[no-untyped-def]
    """The greedy answer and, per generated token, the top-1 minus top-2 log-probability."""
    import torch

    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    if not torch.is_tensor(ids):
        ids = ids["input_ids"]
    out, gaps = ids, []
    with torch.no_grad():
        for _ in range(n_tokens):
            logprobs = model(out).logits[0, -1].float().log_softmax(-1)
            top = logprobs.topk(2)
            gaps.append(float(top.values[0] - top.values[1]))
            nxt = top.indices[:1].view(1, 1)
            out = torch.cat([out, nxt], dim=1)
            if int(nxt) == tokenizer.eos_token_id:
                break
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True), gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", help="suite path or name under eval_suites/")
    default_model = Path(os.environ.get("CT_LLM_CACHE", "~/.cache/ct-llm")).expanduser()
    parser.add_argument("--model", default=str(default_model / "models/smollm2-135m-instruct"))
    parser.add_argument("--tokens", type=int, default=64, help="tokens per answer (default 64)")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ct_llm.evals.checks import case_passes
    from ct_llm.evals.suite import load_suites

    suite = load_suites([args.suite])[0]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    models = {
        name: AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).eval()
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    }
    print(f"{'case':34} {'fp32':>5} {'bf16':>5} {'gap':>6}  answer (fp32)")
    for case in suite.cases:
        messages = case.conversation(suite.system_prompt)
        passed, gaps, answers = [], [], []
        for model in models.values():
            answer, token_gaps = _greedy_with_gaps(model, tokenizer, messages, args.tokens)
            passed.append(case_passes(case, answer)[0])
            gaps.append(_decision_gap(case, tokenizer, model, messages, token_gaps, answer))
            answers.append(answer)
        flags = ["pass" if p else "FAIL" for p in passed]
        gap = min(gaps)
        print(f"{case.id:34} {flags[0]:>5} {flags[1]:>5} {gap:6.2f}  {answers[0][:60]!r}")


def _decision_gap(case, tokenizer, model, messages, token_gaps, answer):  # type: ignore[no-untyped-def]
    """Smallest gap over the tokens up to the first prefix of the answer that passes."""
    from ct_llm.evals.checks import case_passes

    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    for n in range(1, len(ids) + 1):
        if case_passes(case, tokenizer.decode(ids[:n]))[0]:
            return min(token_gaps[:n])
    return min(token_gaps)


if __name__ == "__main__":
    main()
