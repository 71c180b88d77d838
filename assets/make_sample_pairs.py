"""Generate the bundled sample preference dataset (``assets/sample_data/sample_pairs.jsonl``).

Rows in the shape of TRL's conversational preference sets (``trl-lib/ultrafeedback_binarized`` after prompt
extraction)::

    {"prompt": [{"role": "user", "content": "What is 7 + 5?"}],
     "chosen": [{"role": "assistant", "content": "7 + 5 = 12."}],
     "rejected": [{"role": "assistant", "content": "7 + 5 = 13."}], "source": "studio-arith"}

The questions and the chosen answers are the single-turn rows of the SFT sample (``make_sample_data.build_rows``,
half English, half Korean, some with a system turn). The rejected answer is the chosen one with its last
number (the result) changed, or, where it has none, the answer of another row most like it (a wrong capital, a
wrong tower): fluent, well formatted and wrong, so the preference is about the facts. One fixed seed: the file is
byte-identical on every run.

Run:  python assets/make_sample_pairs.py
"""
from __future__ import annotations

import json
import random
import re

from make_sample_data import OUT_DIR, build_rows

SEED = 20240611
N_PAIRS = 300
OUT_FILE = OUT_DIR / "sample_pairs.jsonl"
ROLES = {"system": "system", "human": "user", "gpt": "assistant"}


def bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)}


def wrong_answer(answer: str, others: list[str], rng: random.Random) -> str:
    """The answer with its last number (the result) moved by 1 to 3; without a number, one of the three answers of
    the same kind most like it (the capital of another country)."""
    numbers = list(re.finditer(r"\d+", answer))
    if numbers:
        last = numbers[-1]
        n = int(last.group())
        wrong = n + rng.choice([-3, -2, -1, 1, 2, 3]) if n > 3 else n + rng.randint(1, 3)
        return answer[:last.start()] + str(wrong) + answer[last.end():]
    mine = bigrams(answer)
    alike = sorted((o for o in set(others) if o != answer), key=lambda o: (-len(mine & bigrams(o)), o))
    return rng.choice(alike[:3])


def build_pairs(n_pairs: int = N_PAIRS, seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    singles = [r for r in build_rows() if sum(t["from"] == "gpt" for t in r["conversations"]) == 1]
    answers: dict[tuple[str, bool], list[str]] = {}
    for r in singles:
        answer = r["conversations"][-1]["value"]
        answers.setdefault((r["source"], answer.isascii()), []).append(answer)
    pairs = []
    for r in singles[:n_pairs]:
        turns = [{"role": ROLES[t["from"]], "content": t["value"]} for t in r["conversations"]]
        chosen = turns[-1]["content"]
        rejected = wrong_answer(chosen, answers[(r["source"], chosen.isascii())], rng)
        pairs.append({"prompt": turns[:-1], "chosen": [{"role": "assistant", "content": chosen}],
                      "rejected": [{"role": "assistant", "content": rejected}], "source": r["source"]})
    return pairs


def main() -> None:
    pairs = build_pairs()
    with open(OUT_FILE, "w", encoding="utf-8", newline="\n") as f:
        for row in pairs:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    with_system = sum(p["prompt"][0]["role"] == "system" for p in pairs)
    print(f"wrote {len(pairs)} pairs to {OUT_FILE} ({with_system} with a system turn)")


if __name__ == "__main__":
    main()
