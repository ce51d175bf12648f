"""Finds which rules can match a line by looking for their keywords, in one regex scan.

Python has no multi-string search in the standard library. An alternation of literals in
`re` is fast only when few positions of a line can start a match (the engine skips the
others in C) and few alternatives are tried at each of those. So each keyword is cut to
start at its least common character (a part of a required literal is still required),
and the alternation is written as a trie: one branch per first character.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import groupby

# Characters of kernel messages from most to least common (English text, hex numbers,
# function names); anything not listed counts as rarer than all of these.
_COMMON = " e0tfsraodcin_1l:x2mu4b8p/k3gh6-5.79vwy,()[]=#+q"
_RARITY = {char: len(_COMMON) - i for i, char in enumerate(_COMMON)}
# A cut keyword keeps at least this much of the original, to stay selective.
_KEEP = 8


def _cut(keyword: str) -> str:
    """`keyword` from its least common character on, keeping at least _KEEP characters."""
    last_start = max(len(keyword) - _KEEP, 0)
    start = min(range(last_start + 1), key=lambda i: _RARITY.get(keyword[i], 0))
    return keyword[start:]


def _trie(words: list[str]) -> str:
    """Regex matching the longest of `words` at a position (sorted, distinct input)."""
    branches = []
    ends = False
    first: str
    for first, group in groupby(words, key=lambda word: word[:1]):
        rests = [word[1:] for word in group]
        if first:
            branches.append(re.escape(first) + _trie(rests))
        else:
            ends = True
    if len(branches) == 1 and not ends:
        return branches[0]
    # Longer continuations first, the empty one last: the longest keyword wins.
    return "(?:" + "|".join(branches) + ("|" if ends else "") + ")" if branches else ""


class KeywordIndex:
    """Maps a line to the rules (by index) whose keywords it contains."""

    def __init__(self, keywords: Mapping[str, Sequence[int]], always: Iterable[int]) -> None:
        self._always = tuple(sorted(set(always)))
        cut: dict[str, set[int]] = {}
        for keyword, rules in keywords.items():
            cut.setdefault(_cut(keyword), set()).update(rules)
        # The scan reports only the longest keyword at a position, so a keyword's rules
        # include those of every keyword that is a prefix of it. Sorted once here: most
        # lines that hold a keyword hold just one.
        self._rules_of = {
            found: tuple(
                sorted(
                    set(self._always).union(
                        *(rules for other, rules in cut.items() if found.startswith(other))
                    )
                )
            )
            for found in cut
        }
        self._search = re.compile(_trie(sorted(cut)) or "(?!)").search

    def candidates(self, text: str) -> Sequence[int]:
        """Indexes of the rules that may match `text`, ascending."""
        search = self._search
        found = search(text)
        if found is None:
            return self._always
        first = self._rules_of[found.group()]
        # Restart just after the start, not the end: keywords may overlap.
        found = search(text, found.start() + 1)
        if found is None:
            return first
        hits = set(first)
        while found is not None:
            hits.update(self._rules_of[found.group()])
            found = search(text, found.start() + 1)
        return sorted(hits)
