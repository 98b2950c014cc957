"""Blocks of customers: the unit the demo is simulated in, in memory and in random streams.

Customers never interact, so the simulator runs them in blocks of ``BLOCK_CUSTOMERS`` (customers 1 to
100,000, then 100,001 to 200,000, ...), and every block draws from its own random streams spawned from
the seed. A block's rows therefore depend only on the seed, the history window and the block's place,
never on how many customers follow it or on how the blocks are written; a demo of one block is the
draw the simulator made before it worked in blocks (block 0 uses the seed's own streams).
"""

from __future__ import annotations

import numpy as np

BLOCK_CUSTOMERS = 100_000
"""Customers simulated together with one set of random streams (the unit of memory and of randomness)."""
BLOCK_SPAWN_KEY = 7
"""First element of the spawn key of the streams of the blocks after the first (``SeedSequence(seed).spawn``
gives block 0 the keys 0-4; ``advance`` uses 5 and 6)."""


def block_streams(seed: int, block: int) -> list[np.random.Generator]:
    """The five random streams of a block: people, identity, consent, history, mess."""
    sequence = (np.random.SeedSequence(seed) if block == 0
                else np.random.SeedSequence(seed, spawn_key=(BLOCK_SPAWN_KEY, block)))
    return [np.random.Generator(np.random.PCG64(s)) for s in sequence.spawn(5)]


def block_sizes(customers: int, block_customers: int = BLOCK_CUSTOMERS) -> list[int]:
    """Customers per block: full blocks, the last one holding the rest."""
    if block_customers < 1:
        raise ValueError("block_customers must be at least 1")
    full, rest = divmod(customers, block_customers)
    return [block_customers] * full + ([rest] if rest else [])
