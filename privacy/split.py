"""The attacker's video split (documented in docs/privacy.md): inside every identity, NTU videos of
odd replication (R001, R003, ...) train the attacker and videos of even replication (R002, ...)
test it; P3AR-PKU videos of setup 1 train it and those of setup 2 test it (every person is
recorded in both). No video is in both halves and the same people appear in both."""
from __future__ import annotations

from dataclasses import dataclass

from datasets.names import parse_name


@dataclass
class Split:
    """The attacker's video split.

    Args:
        train: names of the attacker's training videos.
        test: names of the held-out videos.
        identities: sorted identity labels (P - 1) present in both halves.
        dropped: identities left out because one half has none of their videos.
    """

    train: list[str]
    test: list[str]
    identities: list[int]
    dropped: list[int]


def _spread(items: list[str], limit: int) -> list[str]:
    """At most ``limit`` items, evenly spaced over the sorted list (0 = all)."""
    if limit <= 0 or len(items) <= limit:
        return items
    return [items[int(i * len(items) / limit)] for i in range(limit)]


def split_for_attacker(names: list[str], max_per_identity: int = 0) -> Split:
    """Each name's ``attacker_train`` half (NTU: odd replications train; P3AR-PKU: setup 1
    trains), inside every identity (see module doc).

    Args:
        names: sample names.
        max_per_identity: keep at most this many videos per identity in each half, evenly spaced
            over the sorted names so setups, cameras and actions stay covered (0 = all).

    Returns:
        The split, restricted to identities that have videos in both halves.
    """
    halves: dict[int, tuple[list[str], list[str]]] = {}
    for name in sorted(set(names)):
        parsed = parse_name(name)
        train, test = halves.setdefault(parsed.identity, ([], []))
        (train if parsed.attacker_train else test).append(parsed.name)
    kept = sorted(i for i, (a, b) in halves.items() if a and b)
    dropped = sorted(set(halves) - set(kept))
    return Split(train=[n for i in kept for n in _spread(halves[i][0], max_per_identity)],
                 test=[n for i in kept for n in _spread(halves[i][1], max_per_identity)],
                 identities=kept, dropped=dropped)
