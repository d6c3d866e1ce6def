"""Which keywords a mistyped word could be, and whether the slip is one a thumb makes. Pure.

One edit (optimal string alignment: a letter wrong, missing, extra, or two neighbours
swapped) is computed by rapidfuzz. Whether that edit is plausible is decided here: a
short keyword (STOP, BAJA, SAIR) is one edit from many ordinary words and names
("Jaja", "Stopa", "Topp"), so for those only slips that phone keyboards produce count:
swapped neighbours, a key next to the right one, a letter doubled, never a lost or
added first letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from rapidfuzz import process
from rapidfuzz.distance import OSA

# Below this length a keyword needs a keyboard slip, not just any one edit.
LOOSE_LENGTH = 6
# Phone keyboards of the shipped languages: QWERTY (en, es, pt), QWERTZ (de), AZERTY (fr).
# Each row's horizontal offset is the stagger of a real keyboard.
LAYOUTS = (
    ("qwertyuiop", "asdfghjkl", "zxcvbnm"),
    ("qwertzuiop", "asdfghjkl", "yxcvbnm"),
    ("azertyuiop", "qsdfghjklm", "wxcvbn"),
)
ROW_OFFSETS = (0.0, 0.25, 0.75)


@lru_cache(maxsize=1)
def keyboard_neighbours() -> dict[str, frozenset[str]]:
    """Letters whose keys touch, on any of the layouts."""
    near: dict[str, set[str]] = {}
    for rows in LAYOUTS:
        where = {ch: (r, c + ROW_OFFSETS[r]) for r, row in enumerate(rows) for c, ch in enumerate(row)}
        for a, (row_a, x_a) in where.items():
            for b, (row_b, x_b) in where.items():
                if a != b and abs(row_a - row_b) <= 1 and abs(x_a - x_b) <= 1:
                    near.setdefault(a, set()).add(b)
    return {ch: frozenset(others) for ch, others in near.items()}


def _touching(a: str, b: str) -> bool:
    return b in keyboard_neighbours().get(a, frozenset())


def plausible_edit(word: str, keyword: str) -> bool:
    """True when ``word`` is ``keyword`` with one slip a person makes typing it.

    Long keywords accept any one edit except a letter lost or added before the first;
    short ones only swapped neighbours, a touching key, or a letter repeated or added
    next to a touching key.
    """
    loose = len(keyword) >= LOOSE_LENGTH
    if len(word) == len(keyword):
        diff = [i for i, (a, b) in enumerate(zip(word, keyword, strict=True)) if a != b]
        if len(diff) == 1:
            return loose or _touching(word[diff[0]], keyword[diff[0]])
        i = diff[0] if diff else 0
        return len(diff) == 2 and diff[1] == i + 1 and word[i] == keyword[i + 1] and word[i + 1] == keyword[i]
    if len(word) == len(keyword) + 1:
        return any(_added_plausibly(word, i, loose) for i in range(len(word)) if word[:i] + word[i + 1:] == keyword)
    if len(word) == len(keyword) - 1:
        return any(keyword[:i] + keyword[i + 1:] == word for i in range(1, len(keyword)))
    return False


def _added_plausibly(word: str, i: int, loose: bool) -> bool:
    extra, beside = word[i], word[max(i - 1, 0):i] + word[i + 1:i + 2]
    if i == 0 and beside[:1] != extra:
        return False  # a letter before the first: "Topp" is not a slip of STOPP
    return loose or extra in beside or any(_touching(extra, ch) for ch in beside)


@dataclass(frozen=True)
class Near:
    """A keyword close to a word: how many edits, and whether a slip explains it."""

    keyword: str
    distance: int
    plausible: bool
    order: int  # position among the targets (configuration order)


def near_keywords(word: str, targets: Sequence[str]) -> list[Near]:
    """Keywords within two edits of ``word``, in configuration order."""
    found = process.extract(word, targets, scorer=OSA.distance, score_cutoff=2, limit=None)
    near = [Near(key, int(distance), int(distance) == 1 and plausible_edit(word, key), order) for key, distance, order in found]
    return sorted(near, key=lambda n: n.order)
