"""The numbers seen so far in a recipients file, and the first row each was on (dedup).

``FirstRows`` maps E.164 digits, as an integer, to the first row that had them: an
open-addressing table over two flat arrays (12 bytes a slot, at most half full), not a dict of
strings, so memory stays flat at a million rows.
"""

from __future__ import annotations

from array import array
from typing import Final

GOLDEN: Final = 0x9E3779B97F4A7C15  # 2**64 / golden ratio, for Fibonacci hashing


class FirstRows:
    """E.164 digits -> the first row that had them: open addressing over two flat arrays.

    A dict of int to int costs ~110 bytes a number; this costs 12 a slot and stays at most half
    full, which matters at a million rows. The hot loop in ``RecipientStream._rows``
    (``runner.recipients``) probes the arrays itself (a method call per row costs as much as the
    probe); ``first_row`` is the same probe for everyone else.
    """

    __slots__ = ("keys", "mask", "rows", "size")

    def __init__(self, capacity: int = 1 << 14) -> None:
        self.mask = capacity - 1
        self.keys = array("q", bytes(8 * capacity))  # 0 marks an empty slot
        self.rows = array("i", bytes(4 * capacity))
        self.size = 0

    def first_row(self, key: int, row: int) -> int:
        """The row ``key`` was first seen on; records ``row`` (and returns it) when new."""
        mask, keys = self.mask, self.keys
        slot = ((key * GOLDEN) >> 20) & mask  # Fibonacci hashing spreads runs of numbers
        while True:
            found = keys[slot]
            if found == key:
                return self.rows[slot]
            if not found:
                keys[slot] = key
                self.rows[slot] = row
                self.size += 1
                if self.size * 2 > mask:
                    self.grow(self.size)
                return row
            slot = (slot + 1) & mask

    def grow(self, expected: int) -> None:
        """Rehash into a table at most half full with ``expected`` numbers (or twice as big)."""
        capacity = max((self.mask + 1) * 2, 1 << (2 * expected).bit_length())
        old_keys, old_rows = self.keys, self.rows
        self.mask = mask = capacity - 1
        self.keys = keys = array("q", bytes(8 * capacity))
        self.rows = rows = array("i", bytes(4 * capacity))
        for key, row in zip(old_keys, old_rows, strict=True):
            if key:
                slot = ((key * GOLDEN) >> 20) & mask
                while keys[slot]:
                    slot = (slot + 1) & mask
                keys[slot], rows[slot] = key, row
