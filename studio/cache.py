"""A small least-recently-used cache, safe across threads: the datasets and tokenizers the UI reads again and
again. Callers key it by everything that changes the answer (the token that fetched a private file included)."""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Callable


def secret_digest(secret: str | None) -> str:
    """A key part for a token: tells tokens apart without keeping them in the key."""
    return hashlib.sha256((secret or "").encode()).hexdigest()[:16]


class LRU:
    def __init__(self, size: int):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get_or_make(self, key, make: Callable):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = make()  # outside the lock: loading may take seconds, and other keys need not wait
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value
