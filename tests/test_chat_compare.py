"""Two models answer one message side by side, drawing with the same sampling seed."""
import pytest

from studio.auth import LOCAL
from studio.chat import SERVICE
from studio.ui import chat_tab

TINY = "assets/tiny-qwen3"


@pytest.mark.slow
def test_two_panes_answer_the_same_message_with_the_same_seed():
    steps = list(chat_tab.respond("Tell me about towers.", [], chat_tab.BASE, 24, 0.9, "qwen-3",
                                  compare=chat_tab.BASE, seed=7, base_name=TINY))
    a, _, speed_a, b, speed_b = steps[-1]
    assert a[-1]["role"] == b[-1]["role"] == "assistant" and a[0]["content"] == b[0]["content"]
    assert a[-1]["content"] == b[-1]["content"]  # same weights, same seed: the same draw
    assert "tokens/s" in speed_a and "tokens/s" in speed_b
    again = list(chat_tab.respond("Tell me about towers.", [], chat_tab.BASE, 24, 0.9, "qwen-3", seed=8,
                                  base_name=TINY))[-1]
    assert again[3] == [] and again[4] == ""  # no comparison chosen: one pane


@pytest.mark.slow
def test_stop_ends_the_answer_early():
    """The Stop button: the answer ends after the current token, long before max_new_tokens."""
    replies = chat_tab.respond("Write a very long story.", [], chat_tab.BASE, 400, 1.0, "qwen-3", seed=3,
                               base_name=TINY)
    next(replies)  # the first piece of the answer
    chat_tab.stop_generation(None)
    last = list(replies)[-1]
    assert last[0][-1]["role"] == "assistant"
    assert 0 < SERVICE.last_stats(chat_tab.session_of(LOCAL, None))["tokens"] < 400
