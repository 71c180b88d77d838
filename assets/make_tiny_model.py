"""Build the bundled tiny base model ``assets/tiny-qwen3/`` (deterministically).

What it does:

1. Trains a byte-level BPE tokenizer (HF ``tokenizers``) with exactly the Qwen2/Qwen3
   pipeline (NFC normalizer, Qwen's split regex, byte-level pre-tokenizer/decoder)
   on the sample data (``assets/sample_data``) plus generated plain English/Korean
   text, then appends Qwen3's 26 added tokens in Qwen3's order and with Qwen3's
   ``special`` flags (``<|endoftext|>`` first = pad and base eos, ``<|im_start|>``,
   ``<|im_end|>``, ..., ``<think>``, ``</think>`` last).  No chat template: it is a
   *base* model (the studio applies Unsloth's ``get_chat_template(tok, "qwen-3")``).
2. Builds a tiny ``Qwen3ForCausalLM`` (fixed seed) and pretrains it briefly on CPU on
   PLAIN TEXT only (no chat markup, no chat special tokens): documents separated by
   ``<|endoftext|>``.  The base model therefore knows the words and facts of the
   sample data but not the chat format -- fine-tuning teaches that.
3. Saves safetensors (bfloat16) + config + generation config + tokenizer, checks that
   the folder loads with ``AutoTokenizer``/``AutoModelForCausalLM`` and prints a
   short generation check.

Run:  HF_HUB_OFFLINE=1 python assets/make_tiny_model.py
Same torch version + same thread count (fixed to 2 below) => same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers  # noqa: E402
from tokenizers import pre_tokenizers, processors, trainers  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # no assets/__pycache__ from importing the sibling script
sys.path.insert(0, str(HERE))
import make_sample_data  # noqa: E402

OUT_DIR = HERE / "tiny-qwen3"
SEED = 1234
NUM_THREADS = 2  # fixed: CPU matmul results may depend on the thread count

# ---- tokenizer
BPE_VOCAB = 3000  # upper bound; the small corpus stops BPE earlier (min_frequency=2)
QWEN_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# Qwen3's added tokens, in Qwen3's order (ids 151643..151668 there), with its flags.
QWEN3_ADDED_TOKENS = [
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
]

# ---- model
MODEL_DIMS = dict(
    hidden_size=128,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    intermediate_size=384,
    max_position_embeddings=2048,
)
# ---- pretraining
FILLER_DOCS = 1500
QA_DOCS = 1500
BLOCK = 128
BATCH = 16
STEPS = 800
LR = 3e-3
WARMUP = 50


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s] {msg}", flush=True)


# =============================================================================== data
def sample_texts() -> list[str]:
    """All turn texts of the sample dataset (as generated, no file needed)."""
    out = []
    for row in make_sample_data.build_rows():
        for turn in row["conversations"]:
            out.append(turn["value"])
    return out


# Small word lists for generated filler text, so the tokenizer sees a broader
# (still tiny) English/Korean vocabulary and the base model some general text.
EN_NOUNS = (
    "boy girl man woman child teacher student doctor farmer driver friend mother father sister "
    "brother baby king queen cook artist writer singer player pilot nurse baker soldier family "
    "neighbor user assistant robot dog cat bird fish horse rabbit tiger lion bear monkey mouse "
    "elephant turtle whale"
).split()
EN_VERBS = (
    "likes sees finds reads writes draws buys sells makes carries opens closes washes cleans "
    "watches paints builds fixes brings takes holds loves needs wants counts visits"
).split()
EN_OBJECTS = (
    "a book|a letter|a picture|an apple|a cake|a ball|a box|a chair|a table|a window|a door|"
    "a cup|a bowl|a map|a song|a story|a flower|a tree|a house|a car|a bike|a boat|a train|"
    "a hat|a coat|a shoe|a bag|a key|a pen|a phone|a clock|a lamp|a bottle|a basket|a kite|"
    "an egg|an umbrella|a question|an answer|a message"
).split("|")
EN_PLACES = (
    "at home|at school|in the park|in the garden|in the kitchen|at the market|by the river|"
    "near the sea|in the city|in the village|on the hill|in the forest|at the station|"
    "in the library|at the office|in the morning|in the evening|at night|every day|on Sunday"
).split("|")
EN_ADJS = (
    "big small old young happy sad quick slow tall short warm cold bright dark clean quiet "
    "loud kind busy calm brave gentle clever funny strong"
).split()
KO_NOUNS = (
    "소년 소녀 남자 여자 아이 선생님 학생 의사 농부 운전사 친구 어머니 아버지 누나 형 동생 "
    "아기 왕 여왕 요리사 화가 작가 가수 선수 조종사 간호사 제빵사 군인 가족 이웃 강아지 "
    "고양이 새 물고기 말 토끼 호랑이 사자 곰 원숭이 쥐 코끼리 거북이 고래 사용자 도우미 로봇"
).split()
KO_OBJECTS = (
    "책 편지 그림 사과 케이크 공 상자 의자 탁자 창문 문 컵 그릇 지도 노래 이야기 꽃 나무 "
    "집 자동차 자전거 배 기차 모자 코트 신발 가방 열쇠 펜 전화 시계 램프 병 바구니 연"
).split()
KO_VERBS = (
    "좋아합니다|봅니다|찾습니다|읽습니다|씁니다|그립니다|삽니다|팝니다|만듭니다|듭니다|"
    "엽니다|닫습니다|씻습니다|청소합니다|가져옵니다|가집니다|사랑합니다|필요로 합니다|"
    "원합니다|셉니다|고칩니다|칠합니다"
).split("|")
KO_PLACES = (
    "집에서 학교에서 공원에서 정원에서 부엌에서 시장에서 강가에서 바닷가에서 도시에서 "
    "마을에서 언덕에서 숲에서 역에서 도서관에서 사무실에서 아침에 저녁에 밤에 매일 일요일에"
).split()
KO_ADJS = (
    "큰|작은|오래된|젊은|행복한|슬픈|빠른|느린|키가 큰|따뜻한|차가운|밝은|어두운|깨끗한|"
    "조용한|친절한|바쁜|용감한|똑똑한|재미있는|힘센"
).split("|")


def _object_particle(word: str) -> str:
    last = word[-1]
    if "가" <= last <= "힣" and (ord(last) - 0xAC00) % 28:
        return word + "을"
    return word + "를"


def filler_docs(n: int, seed: int) -> list[str]:
    """Generated simple English/Korean sentences, grouped into small paragraphs."""
    import random
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        sents = []
        for _ in range(rng.randint(2, 5)):
            if i % 2 == 0:
                obj = rng.choice(EN_OBJECTS)
                s = (f"The {rng.choice(EN_ADJS)} {rng.choice(EN_NOUNS)} {rng.choice(EN_VERBS)} "
                     f"{obj} {rng.choice(EN_PLACES)}.")
            else:
                adj = rng.choice(KO_ADJS)
                s = (f"{adj} {make_sample_data.topic(rng.choice(KO_NOUNS))} {rng.choice(KO_PLACES)} "
                     f"{_object_particle(rng.choice(KO_OBJECTS))} {rng.choice(KO_VERBS)}.")
            sents.append(s)
        docs.append(" ".join(sents))
    return docs


QA_LAYOUTS_EN = ["Question: {q}\nAnswer: {a}", "Q: {q}\nA: {a}", "{q}\n{a}", "{q}\n\n{a}"]
QA_LAYOUTS_KO = ["질문: {q}\n답: {a}", "Q: {q}\nA: {a}", "{q}\n{a}", "{q}\n\n{a}"]


def qa_docs(n: int, seed: int) -> list[str]:
    """Small plain-text Q&A documents (a question, a line break, its answer), like FAQ pages.
    They teach the base model to answer a question that is a few tokens back, in a plain
    layout -- still no chat markup."""
    import random
    rng = random.Random(seed)
    gens = list(make_sample_data.GENERATORS.values())
    docs = []
    for i in range(n):
        ko = i % 2 == 1
        layout = rng.choice(QA_LAYOUTS_KO if ko else QA_LAYOUTS_EN)
        items = []
        for _ in range(rng.randint(1, 3)):
            q, a, _ = rng.choice(gens)(rng, ko)
            items.append(layout.format(q=q, a=a))
        docs.append("\n\n".join(items))
    return docs


def pretrain_docs() -> list[str]:
    """Plain-text documents for pretraining: facts as sentences, questions followed by
    their answers as running text, filler.  No chat markup anywhere."""
    docs = make_sample_data.plain_text_corpus()
    # the sample data's own turns, written as a plain paragraph (question answer ...)
    rows = make_sample_data.build_rows()
    for row in rows:
        docs.append(" ".join(t["value"] for t in row["conversations"] if t["from"] != "system"))
    docs += filler_docs(FILLER_DOCS, SEED)
    docs += qa_docs(QA_DOCS, SEED + 2)
    # deterministic interleave so filler is spread through the stream
    import random
    random.Random(SEED).shuffle(docs)
    return docs


# ========================================================================== tokenizer
def build_tokenizer(corpus: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE(
        dropout=None, unk_token=None, continuing_subword_prefix="", end_of_word_suffix="",
        fuse_unk=False, byte_fallback=False,
    ))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB,
        min_frequency=2,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer=trainer, length=len(corpus))
    # Qwen3's added tokens go after the BPE vocab, like in Qwen3.
    tok.add_tokens([
        AddedToken(t, single_word=False, lstrip=False, rstrip=False, normalized=False, special=s)
        for t, s in QWEN3_ADDED_TOKENS
    ])
    return tok


def write_tokenizer(tok: Tokenizer, out: Path) -> None:
    tok.save(str(out / "tokenizer.json"), pretty=True)
    base = tok.get_vocab_size(with_added_tokens=False)
    added = {
        str(base + i): {
            "content": t, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": s,
        }
        for i, (t, s) in enumerate(QWEN3_ADDED_TOKENS)
    }
    # Same fields as Qwen3-*-Base's tokenizer_config.json, minus the chat template.
    cfg = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": [t for t, s in QWEN3_ADDED_TOKENS[1:] if s],
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": MODEL_DIMS["max_position_embeddings"],
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    with open(out / "tokenizer_config.json", "w", encoding="utf-8", newline="\n") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")


def _contains(seq: list[int], sub: list[int]) -> int:
    return sum(seq[i:i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


def check_chat_markers(tok) -> None:
    """``train_on_responses_only(instruction_part="<|im_start|>user\\n",
    response_part="<|im_start|>assistant\\n")`` looks for the standalone encodings of the
    two markers inside the encoded text: they must encode identically in context.
    The texts below are rendered like Unsloth's "qwen-3" template does (ChatML, empty
    think block in the last assistant turn)."""
    rendered = [
        "<|im_start|>user\nWhat is 7 + 5?<|im_end|>\n<|im_start|>assistant\n"
        "<think>\n\n</think>\n\n7 + 5 = 12.<|im_end|>\n",
        "<|im_start|>system\n당신은 친절한 도우미입니다.<|im_end|>\n<|im_start|>user\n7 더하기 5는?"
        "<|im_end|>\n<|im_start|>assistant\n7 + 5 = 12입니다.<|im_end|>\n<|im_start|>user\n"
        "수열을 이어 가세요: 2, 4, 6, 8,<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
        "10, 12, 14<|im_end|>\n",
    ]
    for marker, n in (("<|im_start|>user\n", (1, 2)), ("<|im_start|>assistant\n", (1, 2))):
        sub = tok(marker, add_special_tokens=False).input_ids
        for text, want in zip(rendered, n):
            got = _contains(tok(text, add_special_tokens=False).input_ids, sub)
            assert got == want, (marker, text, got)
    print("  chat markers encode the same standalone and in context:",
          {m: tok.convert_ids_to_tokens(tok(m).input_ids)
           for m in ("<|im_start|>user\n", "<|im_start|>assistant\n")})


# ============================================================================== model
def lr_at(step: int) -> float:
    import math
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    p = (step - WARMUP) / max(1, STEPS - WARMUP)
    return LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def pretrain(model, ids: torch.Tensor) -> None:
    n_blocks = (len(ids) - 1) // BLOCK
    g = torch.Generator().manual_seed(SEED)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.95), weight_decay=0.01,
                            foreach=False)
    model.train()
    log(f"pretraining: {len(ids)} tokens, {n_blocks} blocks of {BLOCK}, {STEPS} steps x {BATCH}")
    ema = None
    for step in range(STEPS):
        # random windows (offsets) over the token stream
        starts = torch.randint(0, len(ids) - BLOCK - 1, (BATCH,), generator=g)
        x = torch.stack([ids[s: s + BLOCK] for s in starts.tolist()])
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % 100 == 0 or step == STEPS - 1:
            log(f"  step {step:5d}  loss {loss.item():.3f}  (ema {ema:.3f})  lr {lr_at(step):.2e}")
    model.eval()


@torch.no_grad()
def greedy(model, tok, prompt: str, max_new_tokens: int = 24) -> str:
    ids = tok(prompt, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=tok.pad_token_id,
                         eos_token_id=[tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id])
    return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=False)


def main() -> None:
    torch.set_num_threads(NUM_THREADS)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)

    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers import Qwen3Config, Qwen3ForCausalLM
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()

    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)

    # ---------------------------------------------------------------- tokenizer
    docs = pretrain_docs()
    corpus = sample_texts() + docs
    raw_tok = build_tokenizer(corpus)
    write_tokenizer(raw_tok, OUT_DIR)
    tok = AutoTokenizer.from_pretrained(OUT_DIR)
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    ids_of = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                                        "<think>", "</think>")}
    log(f"tokenizer: {type(tok).__name__}, {len(tok)} tokens "
        f"(BPE {raw_tok.get_vocab_size(with_added_tokens=False)}), ids {ids_of}")
    # the transformers wrapper must encode exactly like the raw tokenizer
    for text in corpus[:200] + ["<|im_start|>user\n7 더하기 5는?<|im_end|>\n<|im_start|>assistant\n"]:
        assert tok(text).input_ids == raw_tok.encode(text).ids, text
    for t in ids_of:
        assert tok(t).input_ids == [ids_of[t]], t
    check_chat_markers(tok)

    # ---------------------------------------------------------------- model
    config = Qwen3Config(
        vocab_size=len(tok),
        **MODEL_DIMS,
        hidden_act="silu",
        rms_norm_eps=1e-6,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        attention_bias=False,
        attention_dropout=0.0,
        use_cache=True,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_window_layers=MODEL_DIMS["num_hidden_layers"],
        use_sliding_window=False,
        initializer_range=0.02,
    )
    config.architectures = ["Qwen3ForCausalLM"]
    torch.manual_seed(SEED)
    model = Qwen3ForCausalLM(config).float()
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: Qwen3ForCausalLM {MODEL_DIMS}, vocab {len(tok)}, {n_params:,} params")

    # plain text stream: doc <|endoftext|> doc <|endoftext|> ...
    stream: list[int] = []
    for d in docs:
        stream += tok(d).input_ids + [eot]
    ids = torch.tensor(stream, dtype=torch.long)
    t_train = time.perf_counter()
    pretrain(model, ids)
    log(f"pretraining took {time.perf_counter() - t_train:.1f}s")

    # The chat/tool tokens never occur in the plain-text pretraining data, so pretraining only
    # pushed their (tied) embedding rows away from every hidden state.  Give them a fresh
    # random init at the scale of the trained rows, as if they had just been added: the base
    # model still knows nothing about them, but a LoRA fine-tune can learn to emit them.
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        g = torch.Generator().manual_seed(SEED + 7)
        std = emb[:eot].std()
        fresh = torch.randn(emb[eot + 1:].shape, generator=g) * std
        emb[eot + 1:] = fresh

    # ---------------------------------------------------------------- save
    model = model.to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    model.generation_config = GenerationConfig(
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, do_sample=False, max_new_tokens=64,
    )
    model.save_pretrained(OUT_DIR, safe_serialization=True)
    for p in OUT_DIR.iterdir():
        p.chmod(0o644)  # safetensors writes 0600
    size = sum(p.stat().st_size for p in OUT_DIR.iterdir())
    log(f"saved to {OUT_DIR} ({size / 1e6:.2f} MB): {sorted(p.name for p in OUT_DIR.iterdir())}")
    assert size < 5_000_000, size

    # ---------------------------------------------------------------- check
    tok = AutoTokenizer.from_pretrained(OUT_DIR)
    model = AutoModelForCausalLM.from_pretrained(OUT_DIR, dtype=torch.float32)
    assert tok.chat_template is None
    print("--- base model, plain text prompts (knows the facts):")
    for p in ["What is 7 + 5?", "The capital of France is", "7 더하기 5는?",
              "Continue the fibonacci sequence: 1, 1, 2, 3, 5, 8,"]:
        print(f"  {p!r} -> {greedy(model, tok, p)!r}")
    print("--- base model, qwen-3 chat prompt (never saw the format):")
    for q in ["What is 7 + 5?", "Continue the sequence: 2, 4, 6, 8,"]:
        p = f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
        print(f"  {p!r} -> {greedy(model, tok, p)!r}")
    log("done")


if __name__ == "__main__":
    T0 = time.perf_counter()
    main()
