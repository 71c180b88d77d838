"""Data checks: what is wrong with the rows a run will train on, found before Start.

The rows checked are the run's own: studio.data.run_split picks them as the worker does (the eval holdout, the
max_steps sample). Each check gives a Finding: the rows it finds (row indices of the dataset) and a note on each.
The same functions decide which rows a run leaves out when its config.yaml names checks under data.drop: the
worker runs `text_drops` before it prepares the rows, and studio/prepare.py applies the token checks while it
tokenizes (tokenize_rows, the one path both take), so what the Dataset tab counts is what the run drops.

The checks, in the order that attributes a row left out to one of them:
  unreadable         the row can't be read or standardized (studio.data's DataError says why)
  empty              no message has any text
  one_sided          text on one side only: no user text, or no assistant reply
  duplicate          the same conversation (roles and text) as an earlier row of the run
  near_duplicate     the same text as an earlier row once case, spacing, punctuation and symbols are ignored
                     (after Unicode NFKC), and not an exact copy
  eval_overlap       a training row whose text, compared as near_duplicate does, is also an eval row's
  render_error       the chat template refuses the row
  no_trained_tokens  no token is trained after masking (train_on_responses_only) and the cut at max_length; the
                     trainer always leaves these out
  truncated          longer than max_length, so cut (with the share of trained tokens the cut loses)
The first of several copies stays; the later ones are found, and dropped.

Text checks read every row. Token checks tokenize, ~0.7 ms a FineTome row on one core: above TOKEN_SAMPLE rows
they look at a seeded sample and say so (bench/cpu_data_checks.py). A run never samples: the worker reads and
tokenizes every row it uses anyway.
"""
from __future__ import annotations

import hashlib
import random
import re
import time
import unicodedata
from dataclasses import dataclass, field

from studio import data as data_mod, prepare

TEXT_CHECKS = ("unreadable", "empty", "one_sided", "duplicate", "near_duplicate", "eval_overlap")
CHECKS = TEXT_CHECKS + prepare.TOKEN_CHECKS
TOKEN_SAMPLE = 4000  # rows the token checks tokenize at most (bench/cpu_data_checks.py: 100k rows within 10 s)
DROPPED_ROWS_FILE = "dropped_rows.json"  # in a run folder: {check: [rows]}, what the exported script leaves out

_ASCII_DROP = bytes(c for c in range(128) if not chr(c).isalnum() and c not in (0x1E, 0x1F))
_NOT_WORD = re.compile(r"[^\w\x1e\x1f]+|_+")


def unknown_checks(codes) -> list[str]:
    """The names in data.drop that are not checks (a hand-edited config.yaml)."""
    return [code for code in codes if code not in CHECKS]


# ---------------------------------------------------------------- one row

def _joined(messages: list[dict]) -> str:
    return "\x1f".join(f"{m['role']}\x1e{m['content']}" for m in messages)


def normalized(text: str) -> bytes:
    """What near_duplicate compares: letters and digits only, case-folded (Unicode NFKC first). ASCII text, most
    rows, takes a bytes path that gives the same result 3x faster."""
    if text.isascii():
        return text.encode().lower().translate(None, _ASCII_DROP)
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).casefold()).encode("utf-8")


def _digest(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=16).digest()  # the same in every process: the UI and the worker agree


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def read_row(ds: data_mod.Dataset, i: int):
    """(messages or None, the check that finds the row or None, the DataError that stopped it or None)."""
    try:
        messages = ds.standardized(i)
    except data_mod.DataError as exc:
        return None, _error_check(ds, i, exc), exc
    said = {m["role"] for m in messages if m["content"].strip()}
    if not said:
        return messages, "empty", None
    if not {"user", "assistant"} <= said:
        return messages, "one_sided", None
    return messages, None, None


def _error_check(ds: data_mod.Dataset, i: int, exc: data_mod.DataError) -> str:
    """Standardizing refuses some empty and one-sided rows; they are found as such, the rest as unreadable."""
    if exc.code == "data_conv_empty" or (exc.code == "data_conv_not_list" and exc.params.get("kind") == "data_kind_null"):
        return "empty"
    if exc.code == "data_no_assistant":
        return "one_sided"
    if exc.code in ("data_empty_text", "data_not_nonempty_text") and exc.column in ("instruction", "output"):
        row = ds.rows[i]  # Alpaca: a blank instruction or output
        if _blank(row.get(exc.column)):
            return "empty" if all(_blank(row.get(k)) for k in ("instruction", "input", "output")) else "one_sided"
    return "unreadable"


def covers(codes, ds: data_mod.Dataset, i: int, exc: data_mod.DataError) -> bool:
    """Whether a run that drops `codes` leaves out row i, which standardizing refused with `exc`."""
    return _error_check(ds, i, exc) in codes


# ---------------------------------------------------------------- the text checks

@dataclass
class TextPass:
    found: dict[str, list[int]]  # check -> the rows it finds, ascending
    notes: dict[int, dict]       # row -> what to say about it: same_as (row), eval_row (row), error (DataError)
    readable: list[int]          # rows with messages: what the token checks can look at


def text_pass(ds: data_mod.Dataset, rows, eval_ds: data_mod.Dataset | None = None, eval_rows=()) -> TextPass:
    """Every text check over `rows` (ascending, so the first copy is the earliest row)."""
    found: dict[str, list[int]] = {code: [] for code in TEXT_CHECKS}
    notes: dict[int, dict] = {}
    in_eval: dict[bytes, int] = {}
    for j in eval_rows if eval_ds is not None else ():
        messages, problem, _ = read_row(eval_ds, j)
        if messages is not None and problem is None:
            in_eval.setdefault(_digest(normalized(_joined(messages))), j)
    exact: dict[bytes, int] = {}
    near: dict[bytes, int] = {}
    readable = []
    for i in rows:
        messages, problem, error = read_row(ds, i)
        if messages is not None:
            readable.append(i)
        if problem:  # an empty or broken row is said as that, not also as a copy of another
            found[problem].append(i)
            if error is not None:
                notes[i] = {"error": error}
            continue
        text = _joined(messages)
        exact_key, near_key = _digest(text.encode("utf-8")), _digest(normalized(text))
        if exact_key in exact:
            found["duplicate"].append(i)
            notes[i] = {"same_as": exact[exact_key]}
        elif near_key in near:
            found["near_duplicate"].append(i)
            notes[i] = {"same_as": near[near_key]}
        exact.setdefault(exact_key, i)
        near.setdefault(near_key, i)
        if near_key in in_eval:
            found["eval_overlap"].append(i)
            notes.setdefault(i, {})["eval_row"] = in_eval[near_key]
    return TextPass(found, notes, readable)


def attribute(found: dict[str, list[int]], wanted) -> dict[str, list[int]]:
    """Each row under the first of the `wanted` checks (in CHECKS order) that finds it."""
    taken: set[int] = set()
    out = {}
    for code in CHECKS:
        if code in wanted and code in found:
            out[code] = [i for i in found[code] if i not in taken]
            taken.update(out[code])
    return out


def text_drops(ds: data_mod.Dataset, rows, eval_ds, eval_rows, drop) -> dict[str, list[int]]:
    """The rows a run leaves out for the text checks that `drop` (config.yaml data.drop) names: the worker's call.
    rows: the run's training rows (None: every row)."""
    wanted = [code for code in TEXT_CHECKS if code in drop]
    if not wanted:
        return {}
    rows = range(len(ds)) if rows is None else rows
    found = text_pass(ds, rows, eval_ds if "eval_overlap" in wanted else None, eval_rows).found
    return attribute(found, wanted)


# ---------------------------------------------------------------- the token checks

@dataclass
class TokenPass:
    found: dict[str, list[int]]
    notes: dict[int, dict]  # row -> tokens and lost (truncated), error (render_error)
    lengths: list[int]      # each rendered row's token count (template + EOS) before the cut
    trained: int            # tokens trained were nothing cut
    lost: int               # of those, the ones the cut loses


def token_pass(ds: data_mod.Dataset, rows: list[int], tokenizer, template: str, max_length: int,
               responses_only: bool) -> TokenPass:
    """The token checks over readable rows, through studio/prepare.py's own tokenize-mask-cut."""
    mask = prepare.masker(tokenizer, template, responses_only)
    found: dict[str, list[int]] = {code: [] for code in prepare.TOKEN_CHECKS}
    notes: dict[int, dict] = {}
    lengths, trained, lost = [], 0, 0
    for start in range(0, len(rows), prepare.CHUNK_ROWS):
        chunk = rows[start:start + prepare.CHUNK_ROWS]
        rendered, full, _, labels, refused = prepare.tokenize_rows(ds, chunk, tokenizer, mask, max_length,
                                                                   skip_render_errors=True)
        for i, why in refused.items():
            found[prepare.RENDER_ERROR].append(i)
            notes[i] = {"error": why}
        cut = [n for n, ids in enumerate(full) if len(ids) > max_length]
        uncut_labels = dict(zip(cut, mask({"input_ids": [full[n] for n in cut]})["labels"])) if mask and cut else {}
        for n, i in enumerate(rendered):
            kept = sum(1 for x in labels[n] if x != -100)
            whole = sum(1 for x in uncut_labels[n] if x != -100) if n in uncut_labels else \
                (len(full[n]) if mask is None else kept)
            lengths.append(len(full[n]))
            trained += whole
            lost += whole - kept
            if not kept:
                found[prepare.NO_TRAINED_TOKENS].append(i)
            if len(full[n]) > max_length:
                found[prepare.TRUNCATED].append(i)
                notes.setdefault(i, {}).update(tokens=len(full[n]), lost=whole - kept)
    for code in found:
        found[code].sort()
    return TokenPass(found, notes, lengths, trained, lost)


# ---------------------------------------------------------------- the report the UI shows

@dataclass
class Finding:
    code: str
    rows: list[int]                 # every row found among the rows looked at
    notes: dict[int, dict] = field(default_factory=dict)  # about the first EXAMPLES rows
    sampled: bool = False           # found among the token checks' sample
    applies: bool = True            # False: nothing to look for in this run (no eval rows; every token trained)

    @property
    def count(self) -> int:
        return len(self.rows)


EXAMPLES = 20  # the rows a finding shows


@dataclass
class Report:
    rows: int               # the rows the run trains on: what the text checks read
    eval_rows: int          # the eval rows compared with them
    readable: int           # of `rows`, those the token checks can tokenize
    token_rows: int         # the rows the token checks tokenized: all readable ones, or a seeded sample
    findings: dict[str, Finding]
    lengths: list[int]      # token counts (template + EOS) of the tokenized rows, before the cut
    max_length: int
    trained_tokens: int
    lost_tokens: int
    seconds: float

    @property
    def sampled(self) -> bool:
        return self.token_rows < self.readable

    @property
    def lost_share(self) -> float:
        return self.lost_tokens / self.trained_tokens if self.trained_tokens else 0.0

    def estimate(self, finding: Finding) -> int:
        """A sampled token finding's count scaled to every readable row."""
        return round(finding.count * self.readable / self.token_rows) if finding.sampled and self.token_rows \
            else finding.count


def run_checks(cfg, ds: data_mod.Dataset, eval_file: data_mod.Dataset | None, tokenizer, world: int = 1,
               token_sample: int = TOKEN_SAMPLE) -> Report:
    """Every check on the rows the run `cfg` will use. eval_file: its separate eval rows (data.eval_path), loaded.
    tokenizer: the model's, with cfg.data.template applied (studio.templates.TOKENIZERS)."""
    t0 = time.perf_counter()
    d, t = cfg.data, cfg.train
    split = data_mod.run_split(ds, eval_file, d, t, t.per_device_train_batch_size * t.gradient_accumulation_steps
                               * world)
    rows = list(range(len(ds))) if split.train is None else split.train
    text = text_pass(ds, rows, split.eval_ds, split.eval)
    sample = text.readable
    if len(sample) > token_sample:
        sample = sorted(random.Random(t.seed).sample(text.readable, token_sample))
    tokens = token_pass(ds, sample, tokenizer, d.template, t.max_length, d.train_on_responses_only)
    sampled = len(sample) < len(text.readable)
    findings = {}
    for code in CHECKS:
        is_token = code in prepare.TOKEN_CHECKS
        found = (tokens if is_token else text).found[code]
        notes = tokens.notes if is_token else text.notes
        applies = not ((code == "eval_overlap" and not split.eval) or
                       (code == prepare.NO_TRAINED_TOKENS and not d.train_on_responses_only))
        findings[code] = Finding(code, found, {i: notes[i] for i in found[:EXAMPLES] if i in notes},
                                 sampled=is_token and sampled, applies=applies)
    return Report(rows=len(rows), eval_rows=len(split.eval), readable=len(text.readable), token_rows=len(sample),
                  findings=findings, lengths=tokens.lengths, max_length=t.max_length, trained_tokens=tokens.trained,
                  lost_tokens=tokens.lost, seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------- words (studio/ui/i18n.py merges them)

MESSAGES = {
    "check_unreadable": ("Unreadable rows", "읽을 수 없는 행"),
    "check_empty": ("Empty conversations", "빈 대화"),
    "check_one_sided": ("One-sided conversations", "한쪽뿐인 대화"),
    "check_duplicate": ("Exact duplicates", "완전 중복"),
    "check_near_duplicate": ("Near duplicates", "유사 중복"),
    "check_eval_overlap": ("Also in the eval split", "평가 분할과 겹침"),
    "check_render_error": ("Template can't render", "템플릿 렌더링 불가"),
    "check_no_trained_tokens": ("No trained tokens", "학습할 토큰 없음"),
    "check_truncated": ("Cut by max_length", "max_length에서 잘림"),
    "checkinfo_unreadable": ("The row can't be read or turned into role/content messages.",
                             "행을 읽거나 role/content 메시지로 바꿀 수 없습니다."),
    "checkinfo_empty": ("No message has any text.", "어느 메시지에도 글이 없습니다."),
    "checkinfo_one_sided": ("No user question or no assistant reply with text.",
                            "글이 있는 사용자 질문이나 assistant 응답이 없습니다."),
    "checkinfo_duplicate": ("The same messages as an earlier row; the first copy stays.",
                            "앞의 행과 메시지가 똑같습니다. 첫 행은 남깁니다."),
    "checkinfo_near_duplicate": ("The same text as an earlier row once case, spacing, punctuation and symbols are "
                                 "ignored; the first copy stays.",
                                 "대소문자·띄어쓰기·문장 부호·기호를 무시하면 앞의 행과 같은 글입니다. 첫 행은 남깁니다."),
    "checkinfo_eval_overlap": ("A training row whose text (compared as for near duplicates) is also an eval row's: the "
                               "eval loss would look better than it is.",
                               "훈련 행의 글이 평가 행에도 있습니다(유사 중복과 같은 기준). 평가 손실이 실제보다 좋아 "
                               "보입니다."),
    "checkinfo_render_error": ("The chat template refuses the row (roles that don't alternate, for one).",
                               "대화 템플릿이 이 행을 거부합니다(예: 역할이 번갈아 나오지 않음)."),
    "checkinfo_no_trained_tokens": ("With the prompt masked and the row cut at max_length, no reply token is left; "
                                    "the trainer always leaves these out.",
                                    "프롬프트를 가리고 max_length에서 자르면 응답 토큰이 남지 않습니다. 훈련기는 이런 "
                                    "행을 항상 뺍니다."),
    "checkinfo_truncated": ("Longer than max_length: the end of the row is cut off.",
                            "max_length보다 길어 행의 끝이 잘립니다."),
    "check_title": ("Data checks", "데이터 검사"),
    "check_hint": ("Checks the rows this run will use (the eval holdout and the max_steps sample, as training picks "
                   "them) with the model's chat template and max_length. 'Drop for this run' is saved in config.yaml "
                   "(data.drop): Resume and the exported script leave out the same rows.",
                   "이 실행이 쓸 행(훈련과 똑같이 고른 평가용 분리분과 max_steps 표본)을 모델의 대화 템플릿과 max_length로 "
                   "검사합니다. '이번 실행에서 빼기'는 config.yaml(data.drop)에 저장되어, 이어서 훈련과 내보낸 "
                   "스크립트도 같은 행을 뺍니다."),
    "check_run": ("Check data", "데이터 검사"),
    "check_show": ("Show rows", "행 보기"),
    "check_drop": ("Drop for this run", "이번 실행에서 빼기"),
    "check_always_out": ("Always left out", "항상 빠짐"),
    "check_drop_group": ("Data checks whose rows this run leaves out (data.drop)",
                         "이 실행에서 뺄 데이터 검사 항목 (data.drop)"),
    "check_not_run": ("not checked yet", "아직 검사하지 않음"),
    "check_none": ("✓ none", "✓ 없음"),
    "check_count": ("**{n:,}** rows", "**{n:,}**행"),
    "check_count_one": ("**1** row", "**1**행"),
    "check_count_sampled": ("**{n:,}** of {sample:,} sampled rows (≈ {estimate:,} of all {rows:,})",
                            "표본 {sample:,}행 중 **{n:,}**행 (전체 {rows:,}행이면 약 {estimate:,}행)"),
    "check_lost": ("{pct:.1f}% of the trained tokens are cut off", "학습할 토큰의 {pct:.1f}%가 잘려 나갑니다"),
    "check_no_eval": ("— this run has no eval rows", "— 이 실행에는 평가 행이 없습니다"),
    "check_all_trained": ("— every token is trained (train_on_responses_only is off)",
                          "— 모든 토큰을 학습합니다 (train_on_responses_only 꺼짐)"),
    "check_status": ("Checked the **{rows:,}** rows this run trains on{eval} in {s:.2f} s. {tokens}",
                     "이 실행이 훈련할 **{rows:,}**행{eval}을 {s:.2f}초 만에 검사했습니다. {tokens}"),
    "check_status_eval": (" against its {n:,} eval rows", "(평가 행 {n:,}개와 비교)"),
    "check_tokens_all": ("Token checks: every row.", "토큰 검사: 모든 행."),
    "check_tokens_sampled": ("Token checks: a seeded sample of {sample:,} of {rows:,} rows; ≈ marks estimates for "
                             "all rows. A run that drops them finds every one.",
                             "토큰 검사: {rows:,}행 중 시드 고정 표본 {sample:,}행. ≈ 표시는 전체 행에 대한 추정치이며, "
                             "빼기를 고른 실행은 모든 행에서 찾아 뺍니다."),
    "check_lengths": ("Tokens per row (template + EOS): median {median:,}, 95% up to {p95:,}, longest {longest:,}; "
                      "max_length {max_length:,}.",
                      "행당 토큰 수 (템플릿 + EOS): 중앙값 {median:,}, 95%가 {p95:,} 이하, 최대 {longest:,}; "
                      "max_length {max_length:,}."),
    "check_examples": ("{name} · {shown} of {n:,} rows shown", "{name} · {n:,}행 중 {shown}행 표시"),
    "check_examples_none": ("This check found no rows.", "이 검사에서 찾은 행이 없습니다."),
    "check_first": ("Press 'Check data' first.", "먼저 '데이터 검사'를 누르세요."),
    "check_template_hint": ("The token checks of the Dataset tab's data checks, with this template. Drop rows there "
                            "(Data checks).",
                            "데이터셋 탭 데이터 검사 중 이 템플릿으로 한 토큰 검사입니다. 행 빼기는 데이터셋 탭의 "
                            "데이터 검사에서 하세요."),
    "note_same_as": ("same as row {row}", "{row}행과 같음"),
    "note_eval_row": ("also eval row {row}", "평가 {row}행과 같음"),
    "note_cut": ("{tokens:,} tokens; {lost:,} trained tokens cut off", "{tokens:,}토큰, 학습할 토큰 {lost:,}개가 잘림"),
    "note_template": ("the template says: {error}", "템플릿 오류: {error}"),
    "check_lengths_plot": ("Tokens per row", "행당 토큰 수"),
    "plot_row_tokens": ("tokens per row (template + EOS)", "행당 토큰 수 (템플릿 + EOS)"),
    "plot_rows": ("rows", "행 수"),
    "plot_max_length": ("max_length", "max_length"),
    "sum_data_drop": ("Data checks left out {total:,} of {rows:,} rows: {what}.",
                      "데이터 검사로 {rows:,}행 중 {total:,}행을 뺐습니다: {what}."),
    "err_drop_code": ("data.drop: '{code}' is not a data check; the checks are {known}.",
                      "data.drop: '{code}'은(는) 데이터 검사 이름이 아닙니다. 검사 이름: {known}."),
}
