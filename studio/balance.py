"""Several GPUs: each optimizer step's rows dealt to the ranks so that every rank has the same work.

With rows of different lengths, a rank that draws the longest micro-batch makes every other rank wait at the
gradient all-reduce: with 8 rows of 128-1536 tokens per micro-batch, 4 ranks lose ~15% that way.
transformers' BatchRebalanceSampler already deals each step's rows (the same rows one GPU takes at that step)
to ranks and accumulation slots. Its groups are runs of similar length priced as padded batches, with an
attention term sized for small models, and with as many rows as that evens them (5 to 14 where the run
asked for 8: new shapes, and a micro-batch larger than Fit to this GPU planned). Under torchrun, Unsloth
batches without padding, so here a micro-batch costs its tokens plus the attention's share, sized from the
model's shape, and keeps the run's row count: the rows are dealt longest first, each to the cheapest group
that still has room. With 8 rows of 128-1536 tokens the slowest of 4 ranks has 0.7% more work than the
mean (17% when dealt as drawn); tests/test_distributed.py checks it.
"""
from __future__ import annotations

from transformers.trainer_pt_utils import BatchRebalanceSampler


def attention_share(model_config, n_params: int) -> float:
    """Per token and per token of context, attention's FLOPs over the weights' FLOPs: 2·L·q_dim / 2·N."""
    try:
        layers = model_config.num_hidden_layers
        q_dim = model_config.num_attention_heads * (getattr(model_config, "head_dim", None) or
                                                    model_config.hidden_size // model_config.num_attention_heads)
        return layers * q_dim / max(1, n_params)
    except (AttributeError, TypeError):
        return 0.0


class TokenBalancedSampler(BatchRebalanceSampler):
    """BatchRebalanceSampler with padding-free costs and longest-first dealing (see the module's text)."""

    def __init__(self, base: BatchRebalanceSampler, seed: int, attention: float):
        self.__dict__.update(base.__dict__)
        self.seed, self.attention = seed, attention  # transformers passes no seed (42): the run's, as one GPU's

    def _row_cost(self, length: int) -> float:
        return length * (1.0 + self.attention * length)

    def _cost(self, bs: int, max_len: int) -> float:
        return bs * self._row_cost(max_len)  # an upper bound; used by the parent only

    def _group_cost(self, group) -> float:
        return sum(self._row_cost(length) for _, length in group)

    def _balance_groups(self, sorted_pairs):
        k = self.dp_size * self.grad_accum
        if len(sorted_pairs) < k:
            raise ValueError(f"Not enough samples ({len(sorted_pairs)}) to fill {k} groups")
        room = [len(sorted_pairs) // k + (i < len(sorted_pairs) % k) for i in range(k)]  # the run's micro-batch
        groups, costs = [[] for _ in range(k)], [0.0] * k
        for pair in sorted_pairs:  # longest first, to the cheapest group with room
            i = min((i for i in range(k) if len(groups[i]) < room[i]), key=costs.__getitem__)
            groups[i].append(pair)
            costs[i] += self._row_cost(pair[1])
        return groups


def install(trainer, seed: int, attention: float) -> None:
    """Where the trainer builds transformers' balanced sampler (train_sampling_strategy="batch_rebalance"),
    use ours: the same rows at each step, dealt by tokens. Without padding-free batches, theirs is the right
    price (padded micro-batches), only with the run's seed."""
    make = trainer._get_train_sampler

    def train_sampler(*args, **kwargs):
        sampler = make(*args, **kwargs)
        if isinstance(sampler, BatchRebalanceSampler):
            if getattr(trainer.args, "padding_free", False):
                return TokenBalancedSampler(sampler, seed, attention)
            sampler.seed = seed
        return sampler
    trainer._get_train_sampler = train_sampler
