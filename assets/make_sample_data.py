"""Generate the bundled sample SFT dataset (``assets/sample_data/sample_chat.jsonl``).

The rows have the exact shape of ``mlabonne/FineTome-100k`` (ShareGPT style)::

    {"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}],
     "source": "studio-arith", "score": 4.87}

Everything is templated and driven by one fixed random seed, so the output is
byte-identical on every run.  The questions and answers are short and very regular
(arithmetic, number sequences, unit conversions, simple facts; half English, half
Korean) so that a ~1M-parameter model can visibly learn them in about a minute of
CPU LoRA training.

Run:  python assets/make_sample_data.py
The module also exposes ``build_rows()`` and ``plain_text_corpus()``, which
``assets/make_tiny_model.py`` uses for the tokenizer and for pretraining.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 20240607
N_ROWS = 600
OUT_DIR = Path(__file__).resolve().parent / "sample_data"
OUT_FILE = OUT_DIR / "sample_chat.jsonl"

# --------------------------------------------------------------------------- facts
# (English country, Korean country, English capital, Korean capital)
CAPITALS = [
    ("France", "프랑스", "Paris", "파리"),
    ("Germany", "독일", "Berlin", "베를린"),
    ("Italy", "이탈리아", "Rome", "로마"),
    ("Spain", "스페인", "Madrid", "마드리드"),
    ("Japan", "일본", "Tokyo", "도쿄"),
    ("Korea", "한국", "Seoul", "서울"),
    ("China", "중국", "Beijing", "베이징"),
    ("England", "영국", "London", "런던"),
    ("Egypt", "이집트", "Cairo", "카이로"),
    ("Russia", "러시아", "Moscow", "모스크바"),
    ("Canada", "캐나다", "Ottawa", "오타와"),
    ("Greece", "그리스", "Athens", "아테네"),
    ("Austria", "오스트리아", "Vienna", "빈"),
    ("Portugal", "포르투갈", "Lisbon", "리스본"),
    ("Thailand", "태국", "Bangkok", "방콕"),
    ("Vietnam", "베트남", "Hanoi", "하노이"),
    ("Peru", "페루", "Lima", "리마"),
    ("Norway", "노르웨이", "Oslo", "오슬로"),
]

# (English country, Korean country, English landmark, Korean landmark)
TOWERS = [
    ("France", "프랑스", "the Eiffel Tower", "에펠탑"),
    ("Korea", "한국", "the Lotte World Tower", "롯데월드타워"),
    ("Japan", "일본", "the Tokyo Skytree", "도쿄 스카이트리"),
    ("Canada", "캐나다", "the CN Tower", "CN 타워"),
    ("China", "중국", "the Shanghai Tower", "상하이 타워"),
    ("England", "영국", "the Shard", "더 샤드"),
]

# (English thing, Korean thing, English color, Korean color)
COLORS = [
    ("the sky", "하늘", "blue", "파란색"),
    ("grass", "잔디", "green", "초록색"),
    ("snow", "눈", "white", "흰색"),
    ("a banana", "바나나", "yellow", "노란색"),
    ("a strawberry", "딸기", "red", "빨간색"),
    ("coal", "석탄", "black", "검은색"),
    ("an orange", "오렌지", "orange", "주황색"),
    ("a crow", "까마귀", "black", "검은색"),
    ("a lemon", "레몬", "yellow", "노란색"),
    ("a tomato", "토마토", "red", "빨간색"),
]

# (English animal, Korean animal, English sound, Korean sound, legs)
ANIMALS = [
    ("dog", "개", "woof", "멍멍", 4),
    ("cat", "고양이", "meow", "야옹", 4),
    ("cow", "소", "moo", "음매", 4),
    ("duck", "오리", "quack", "꽥꽥", 2),
    ("sheep", "양", "baa", "메에", 4),
    ("chicken", "닭", "cluck", "꼬꼬댁", 2),
    ("frog", "개구리", "ribbit", "개굴개굴", 4),
    ("pig", "돼지", "oink", "꿀꿀", 4),
]

# (English animal, Korean animal, legs) for the "how many legs" questions
LEGS = [(a[0], a[1], a[4]) for a in ANIMALS] + [
    ("spider", "거미", 8),
    ("ant", "개미", 6),
    ("bee", "벌", 6),
    ("snake", "뱀", 0),
    ("horse", "말", 4),
    ("bird", "새", 2),
]

SYSTEM_PROMPTS_EN = [
    "You are a helpful assistant.",
    "You are a helpful assistant. Answer briefly.",
    "Answer in one short sentence.",
]
SYSTEM_PROMPTS_KO = [
    "당신은 친절한 도우미입니다.",
    "당신은 친절한 도우미입니다. 짧게 답하세요.",
    "한 문장으로 짧게 답하세요.",
]

SOURCES = ["studio-arith", "studio-seq", "studio-unit", "studio-fact"]


def topic(word: str) -> str:
    """Korean topic particle: 은 after a final consonant (batchim), else 는."""
    last = word[-1]
    if "가" <= last <= "힣" and (ord(last) - 0xAC00) % 28:
        return word + "은"
    return word + "는"


def num_topic(n: int) -> str:
    """Korean topic particle after a number read in Sino-Korean (일, 이, 삼, ...):
    은 after 일/삼/육/칠/팔 and after 십/백/천/만 (multiples of 10), else 는."""
    return f"{n}은" if n % 10 in (0, 1, 3, 6, 7, 8) else f"{n}는"


# ------------------------------------------------------------------------ generators
# Each generator returns (question, answer, plain_statement).  The plain statement is
# the same fact written as an ordinary sentence (used for pretraining the base model).

def gen_arith(rng: random.Random, ko: bool):
    if rng.random() < 0.6:
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        fact = f"{a} + {b} = {a + b}"
        q = f"{a} 더하기 {num_topic(b)}?" if ko else f"What is {a} + {b}?"
    else:
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        fact = f"{a} × {b} = {a * b}"
        q = f"{a} 곱하기 {num_topic(b)}?" if ko else f"What is {a} × {b}?"
    ans = f"{fact}입니다." if ko else f"{fact}."
    return q, ans, ans


def _fib_like(a: int, b: int, n: int) -> list[int]:
    out = [a, b]
    while len(out) < n:
        out.append(out[-1] + out[-2])
    return out


def gen_seq(rng: random.Random, ko: bool):
    r = rng.random()
    if r < 0.3:
        # Fibonacci continuation, the textbook's example prompt is
        # "Continue the fibonacci sequence: 1, 1, 2, 3, 5, 8,"
        a, b = rng.choice([(1, 1), (1, 1), (1, 1), (0, 1), (1, 2), (2, 1), (2, 3), (3, 4)])
        shown = rng.randint(5, 7)
        seq = _fib_like(a, b, shown + 3)
        head, tail = seq[:shown], seq[shown:]
        q = (f"피보나치 수열을 이어 가세요: " if ko else "Continue the fibonacci sequence: ")
    else:
        start = rng.randint(0, 12)
        step = rng.choice([1, 2, 2, 3, 5, 10])
        seq = [start + i * step for i in range(7)]
        head, tail = seq[:4], seq[4:]
        q = ("수열을 이어 가세요: " if ko else "Continue the sequence: ")
    q += ", ".join(map(str, head)) + ","
    ans = ", ".join(map(str, tail))
    plain = ", ".join(map(str, head + tail))
    return q, ans, plain


def gen_unit(rng: random.Random, ko: bool):
    kind = rng.choice(["km", "kg", "h"])
    n = rng.randint(1, 12)
    if kind == "km":
        q = f"{n} km는 몇 m인가요?" if ko else f"How many meters are in {n} km?"
        fact = f"{n} km = {n * 1000} m"
        ans = f"{fact}입니다." if ko else f"{fact}."
    elif kind == "kg":
        q = f"{n} kg은 몇 g인가요?" if ko else f"How many grams are in {n} kg?"
        fact = f"{n} kg = {n * 1000} g"
        ans = f"{fact}입니다." if ko else f"{fact}."
    else:
        unit = "hour" if n == 1 else "hours"
        q = f"{n}시간은 몇 분인가요?" if ko else f"How many minutes are in {n} {unit}?"
        ans = f"{n}시간 = {n * 60}분입니다." if ko else f"{n} {unit} = {n * 60} minutes."
    return q, ans, ans


def gen_fact(rng: random.Random, ko: bool):
    kind = rng.choice(["capital", "capital", "tower", "color", "sound", "legs"])
    if kind == "capital":
        en, kr, cap_en, cap_kr = rng.choice(CAPITALS)
        if ko:
            q, ans = f"{kr}의 수도는 어디인가요?", f"{kr}의 수도는 {cap_kr}입니다."
        else:
            q, ans = f"What is the capital of {en}?", f"The capital of {en} is {cap_en}."
    elif kind == "tower":
        en, kr, t_en, t_kr = rng.choice(TOWERS)
        if ko:
            q, ans = f"{kr}에서 가장 높은 탑은 무엇인가요?", f"{kr}에서 가장 높은 탑은 {t_kr}입니다."
        else:
            q = f"What is the tallest tower of {en}?"
            ans = f"The tallest tower of {en} is {t_en}."
    elif kind == "color":
        en, kr, c_en, c_kr = rng.choice(COLORS)
        if ko:
            q, ans = f"{topic(kr)} 무슨 색인가요?", f"{topic(kr)} {c_kr}입니다."
        else:
            q, ans = f"What color is {en}?", f"{en[0].upper() + en[1:]} is {c_en}."
    elif kind == "sound":
        en, kr, s_en, s_kr, _ = rng.choice(ANIMALS)
        if ko:
            q, ans = f"{topic(kr)} 어떻게 울어요?", f"{topic(kr)} {s_kr} 하고 울어요."
        else:
            art = "An" if en[0] in "aeiou" else "A"
            q, ans = f"What sound does a {en} make?", f"{art} {en} says {s_en}."
    else:
        en, kr, legs = rng.choice(LEGS)
        if ko:
            q, ans = f"{topic(kr)} 다리가 몇 개인가요?", f"{topic(kr)} 다리가 {legs}개입니다."
        else:
            art = "An" if en[0] in "aeiou" else "A"
            q = f"How many legs does {'an' if art == 'An' else 'a'} {en} have?"
            ans = f"{art} {en} has {legs} legs."
    return q, ans, ans


GENERATORS = {
    "studio-arith": gen_arith,
    "studio-seq": gen_seq,
    "studio-unit": gen_unit,
    "studio-fact": gen_fact,
}


# ----------------------------------------------------------------------------- rows
# The canonical examples used in the docs/textbook; always present, at the top.
ANCHORS = [
    ("studio-arith", "What is 7 + 5?", "7 + 5 = 12."),
    ("studio-arith", "7 더하기 5는?", "7 + 5 = 12입니다."),
    ("studio-seq", "Continue the sequence: 2, 4, 6, 8,", "10, 12, 14"),
    ("studio-seq", "수열을 이어 가세요: 2, 4, 6, 8,", "10, 12, 14"),
    ("studio-seq", "Continue the fibonacci sequence: 1, 1, 2, 3, 5, 8,", "13, 21, 34"),
    ("studio-seq", "피보나치 수열을 이어 가세요: 1, 1, 2, 3, 5, 8,", "13, 21, 34"),
    ("studio-unit", "How many meters are in 3 km?", "3 km = 3000 m."),
    ("studio-unit", "2시간은 몇 분인가요?", "2시간 = 120분입니다."),
    ("studio-fact", "What is the capital of France?", "The capital of France is Paris."),
    ("studio-fact", "프랑스의 수도는 어디인가요?", "프랑스의 수도는 파리입니다."),
    ("studio-fact", "What is the tallest tower of France?",
     "The tallest tower of France is the Eiffel Tower."),
    ("studio-fact", "프랑스에서 가장 높은 탑은 무엇인가요?", "프랑스에서 가장 높은 탑은 에펠탑입니다."),
]


def build_rows(n_rows: int = N_ROWS, seed: int = SEED) -> list[dict]:
    """Return ``n_rows`` FineTome-shaped rows (deterministic for a given seed)."""
    rng = random.Random(seed)
    rows: list[dict] = []
    seen: set[str] = set()
    for source, q, a in ANCHORS:
        conv = [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
        seen.add(json.dumps(conv, ensure_ascii=False))
        rows.append({"conversations": conv, "source": source,
                     "score": round(rng.uniform(4.0, 5.5), 4)})
    i = 0
    while len(rows) < n_rows:
        ko = i % 2 == 1  # alternate: half English, half Korean
        source = SOURCES[(i // 2) % len(SOURCES)]
        i += 1
        gen = GENERATORS[source]
        conv: list[dict] = []
        style = rng.random()
        if style < 0.15:  # a system turn first
            sys_prompt = rng.choice(SYSTEM_PROMPTS_KO if ko else SYSTEM_PROMPTS_EN)
            conv.append({"from": "system", "value": sys_prompt})
        q, a, _ = gen(rng, ko)
        conv += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
        if 0.15 <= style < 0.35:  # multi-turn: a second user turn (same topic)
            q2, a2, _ = gen(rng, ko)
            conv += [{"from": "human", "value": q2}, {"from": "gpt", "value": a2}]
        key = json.dumps(conv, ensure_ascii=False)
        if key in seen:
            continue
        seen.add(key)
        score = round(rng.uniform(4.0, 5.5), 4)
        rows.append({"conversations": conv, "source": source, "score": score})
    return rows


def plain_text_corpus(seed: int = SEED + 1, n_facts: int = 6000) -> list[str]:
    """Plain-text paragraphs (no chat format) stating the same kind of facts.

    Used to pretrain the tiny base model: it learns the words, the facts and the
    question -> statement continuation, but never sees the chat markup.
    """
    rng = random.Random(seed)
    gens = list(GENERATORS.values())
    paras: list[str] = []
    while sum(len(p) for p in paras) < n_facts * 30:
        ko = rng.random() < 0.5
        parts = []
        for _ in range(rng.randint(3, 7)):
            q, a, plain = rng.choice(gens)(rng, ko)
            r = rng.random()
            if r < 0.45:
                parts.append(plain if plain.endswith(".") else plain + ".")
            elif r < 0.85:
                # question followed by its answer, as running text
                parts.append(f"{q} {a}" + ("" if a.endswith(".") else "."))
            else:
                parts.append(filler_sentence(rng, ko))
        paras.append(" ".join(parts))
    # deterministic "reference tables" so every fact appears at least once
    for a in range(1, 21):
        paras.append(" ".join(f"{a} + {b} = {a + b}." for b in range(1, 21)))
    for a in range(2, 10):
        paras.append(" ".join(f"{a} × {b} = {a * b}." for b in range(2, 10)))
    paras.append(" ".join(f"The capital of {c[0]} is {c[2]}." for c in CAPITALS))
    paras.append(" ".join(f"{c[1]}의 수도는 {c[3]}입니다." for c in CAPITALS))
    paras.append("The fibonacci sequence is 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89.")
    paras.append("피보나치 수열은 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89입니다.")
    return paras


_FILLER_EN = [
    "Numbers help us count things.",
    "A week has 7 days.",
    "A year has 12 months.",
    "One hour has 60 minutes.",
    "One kilometer is 1000 meters.",
    "One kilogram is 1000 grams.",
    "Many people like to travel.",
    "The sun rises in the east.",
    "Water is wet and cold.",
    "Paris is a big city in France.",
    "Seoul is a big city in Korea.",
    "Children learn to add numbers at school.",
    "Each number in the fibonacci sequence is the sum of the two before it.",
    "In a simple sequence the step between numbers stays the same.",
]
_FILLER_KO = [
    "숫자는 물건을 세는 데 도움이 됩니다.",
    "일주일은 7일입니다.",
    "일 년은 12달입니다.",
    "한 시간은 60분입니다.",
    "1 km는 1000 m입니다.",
    "1 kg은 1000 g입니다.",
    "많은 사람들이 여행을 좋아합니다.",
    "해는 동쪽에서 뜹니다.",
    "물은 차갑고 투명합니다.",
    "파리는 프랑스의 큰 도시입니다.",
    "서울은 한국의 큰 도시입니다.",
    "아이들은 학교에서 덧셈을 배웁니다.",
    "피보나치 수열의 각 수는 앞의 두 수의 합입니다.",
    "간단한 수열에서는 수 사이의 간격이 같습니다.",
]


def filler_sentence(rng: random.Random, ko: bool) -> str:
    return rng.choice(_FILLER_KO if ko else _FILLER_EN)


def main() -> None:
    rows = build_rows()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with open(OUT_FILE, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    by_src: dict[str, int] = {}
    for r in rows:
        by_src[r["source"]] = by_src.get(r["source"], 0) + 1
    n_sys = sum(r["conversations"][0]["from"] == "system" for r in rows)
    n_multi = sum(sum(t["from"] == "human" for t in r["conversations"]) > 1 for r in rows)
    print(f"wrote {len(rows)} rows to {OUT_FILE}")
    print(f"  by source: {by_src}; with system turn: {n_sys}; multi-turn: {n_multi}")


if __name__ == "__main__":
    main()
