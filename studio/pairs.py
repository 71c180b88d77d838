"""Preference pairs: the rows DPO and ORPO learn from, read into one shape whatever file or Hub set they come from.

Two formats are recognised (a dataset with 'chosen' and 'rejected' columns):
  pairs_text  prompt, chosen, rejected as text; the prompt's column may also be named question, instruction or
              input (Intel/orca_dpo_pairs, argilla's distilabel sets); an optional system column
  pairs_chat  chosen and rejected as lists of messages ({role, content} or {from, value}), either
                - the answer alone, after a prompt column of messages or text (TRL's conversational pairs), or
                - the whole conversation, the prompt being the messages both share before their answers
                  (HuggingFaceH4/ultrafeedback_binarized, mlabonne/orpo-dpo-mix-40k, trl-lib sets)
Each row becomes a Pair: the prompt's messages, then the chosen and the rejected answer (assistant messages). That
is TRL's conversational preference example, which DPOTrainer and ORPOTrainer take as it is.

A bad pair (a missing field, an empty or non-text answer, two identical answers) is a studio.data.DataError naming
the file, the row and the field, in English or Korean, as for SFT rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from studio.data import PAIR_FORMATS, DataError, _check_encodable, _head, _kind, read_messages

FORMATS = PAIR_FORMATS
PROMPT_COLUMNS = ("prompt", "question", "instruction", "input")  # the first one present is the prompt


@dataclass
class Pair:
    prompt: list[dict]    # messages, the last one the user's
    chosen: list[dict]    # the preferred answer: assistant messages
    rejected: list[dict]  # the other answer

    def example(self) -> dict:
        """TRL's conversational preference example."""
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}


def detect(rows: Sequence[dict], columns: list[str], name: str = "") -> tuple[str, str | None] | None:
    """(format, the prompt's column or None) for a preference dataset; None for any other."""
    present = [key for key in ("chosen", "rejected") if key in columns]
    if not present:
        return None
    if len(present) == 1:
        missing = "rejected" if present == ["chosen"] else "chosen"
        raise DataError("data_pair_column", file=name, key=missing)
    prompt = next((c for c in PROMPT_COLUMNS if c in columns), None)
    at, sample = next(((n, r["chosen"]) for n, r in enumerate(_head(rows), 1) if r.get("chosen")), (1, None))
    if isinstance(sample, str):
        if prompt is None:
            raise DataError("data_pair_no_prompt_column", file=name, found=str(columns[:8]))
        return "pairs_text", prompt
    if isinstance(sample, list):
        return "pairs_chat", prompt
    raise DataError("data_pair_kind", file=name, row=at, column="chosen", kind=_kind(sample))


def standardize(row: dict, ds, index: int) -> Pair:
    """One row of a preference dataset (ds: studio.data.Dataset) as a Pair, or the DataError that says what is wrong."""
    where = dict(file=ds.name, row=index + 1)
    for key in ("chosen", "rejected"):
        if key not in row:
            raise DataError("data_pair_missing", column=key, key=key, **where)
    chosen, rejected = (_side(row[key], key, where) for key in ("chosen", "rejected"))
    if chosen[0]["role"] != "assistant" and rejected[0]["role"] != "assistant":  # whole conversations: the prompt is
        # what they share before their answers
        shared = 0
        while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
            shared += 1
        if shared == len(chosen) == len(rejected):
            raise DataError("data_pair_identical", column="rejected", **where)
        if shared == 0:
            raise DataError("data_pair_no_prompt", column="chosen", **where)
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
        offset = shared
    else:
        prompt, offset = _prompt(row, ds.conversation_column, where), 0
    if not any(m["role"] == "user" for m in prompt):
        raise DataError("data_pair_no_user", column=ds.conversation_column or "chosen", **where)
    for key, answer in (("chosen", chosen), ("rejected", rejected)):
        for n, message in enumerate(answer):
            column = key if isinstance(row[key], str) else f"{key}[{n + offset}]"
            if message["role"] != "assistant":
                raise DataError("data_pair_not_answer", column=column, role=message["role"], **where)
            if not message["content"].strip():
                raise DataError("data_empty_text", column=column if isinstance(row[key], str) else f"{column}.content",
                                **where)
    if chosen == rejected:
        raise DataError("data_pair_identical", column="rejected", **where)
    return Pair(prompt, chosen, rejected)


def _side(value, key: str, where: dict) -> list[dict]:
    """chosen or rejected as messages: a text is the assistant's answer."""
    if isinstance(value, str):
        if not value.strip():
            raise DataError("data_empty_text", column=key, **where)
        _check_encodable(value, key, where)
        return [{"role": "assistant", "content": value}]
    if isinstance(value, list):
        if not value:
            raise DataError("data_conv_empty", column=key, **where)
        return read_messages(value, key, where)
    raise DataError("data_pair_kind", column=key, kind=_kind(value), **where)


def _prompt(row: dict, column: str | None, where: dict) -> list[dict]:
    """The prompt column as messages (a text is the user's), after the system column's text if there is one."""
    column = column or "prompt"
    if column not in row:
        raise DataError("data_pair_missing", column=column, key=column, **where)
    value = row[column]
    if isinstance(value, str):
        if not value.strip():
            raise DataError("data_empty_text", column=column, **where)
        _check_encodable(value, column, where)
        messages = [{"role": "user", "content": value}]
    elif isinstance(value, list):
        if not value:
            raise DataError("data_conv_empty", column=column, **where)
        messages = read_messages(value, column, where)
    else:
        raise DataError("data_pair_kind", column=column, kind=_kind(value), **where)
    system = row.get("system")
    if isinstance(system, str) and system.strip() and messages[0]["role"] != "system":
        _check_encodable(system, "system", where)
        messages.insert(0, {"role": "system", "content": system})
    return messages
