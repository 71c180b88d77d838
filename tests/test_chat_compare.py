"""Two models answer one message side by side, drawing with the same sampling seed."""
import pytest

from studio.ui import chat_tab


@pytest.mark.slow
def test_two_panes_answer_the_same_message_with_the_same_seed():
    steps = list(chat_tab.respond("Tell me about towers.", [], "base:assets/tiny-qwen3", 24, 0.9, "qwen-3",
                                  compare="base:assets/tiny-qwen3", seed=7))
    a, _, speed_a, b, speed_b = steps[-1]
    assert a[-1]["role"] == b[-1]["role"] == "assistant" and a[0]["content"] == b[0]["content"]
    assert a[-1]["content"] == b[-1]["content"]  # same weights, same seed: the same draw
    assert "tokens/s" in speed_a and "tokens/s" in speed_b
    again = list(chat_tab.respond("Tell me about towers.", [], "base:assets/tiny-qwen3", 24, 0.9, "qwen-3",
                                  seed=8))[-1]
    assert again[3] == [] and again[4] == ""  # no comparison chosen: one pane


@pytest.mark.slow
def test_stop_ends_the_answer_early():
    """The Stop button: the answer ends after the current token, long before max_new_tokens."""
    replies = chat_tab.respond("Write a very long story.", [], "base:assets/tiny-qwen3", 400, 1.0, "qwen-3", seed=3)
    next(replies)  # the first piece of the answer
    chat_tab.stop_generation(None)
    last = list(replies)[-1]
    assert last[0][-1]["role"] == "assistant"
    assert 0 < chat_tab.ENGINE.last_stats["tokens"] < 400
