"""Module-name patterns in PEFT configs, restricted to a subset whose matching cost is bounded.

PEFT matches ``target_modules`` (a string), ``exclude_modules``, ``feedforward_modules``,
``layers_pattern`` and the keys of ``rank_pattern`` / ``alpha_pattern`` with Python's ``re``: a
backtracking matcher that holds the GIL and cannot be interrupted. One published pattern such as
``([a-z0-9.]|[a-z0-9.])*QQ`` would freeze every thread of a process that loads it (PEFT's own
loader as much as our runtime). Evaluating patterns under a timeout would guard our own matching
only, and publish may have no backbone to match against; so a pattern must instead be in this
subset, checked by parsing it (never by running it):

- characters: letters, digits, ``_`` and ``-``; ``.`` (any character); ``\\.``, ``\\-``,
  ``\\_``; ``\\d`` and ``\\w``; classes ``[...]`` of those, with ranges such as ``[0-9]``
- repeats: ``*`` or ``+`` after ONE character or class, never after a group (``(...)*`` is how
  catastrophic patterns are built), never lazy or counted (``*?``, ``{2}``)
- groups: ``(...)`` and ``(?:...)`` of ``|`` alternatives that start with distinct plain
  characters (``(key|value)``), so at most one alternative can match at any position
- optional parts: ``?`` after a plain character or a group, or an empty alternative; at most
  :data:`MAX_OPTIONAL` in a pattern (each is a saved state, the costly kind of backtracking)
- anchors: ``^`` first and ``$`` last

Within it a backtracking matcher tries at most ``paths`` ways to match a name of n characters:
a repeat contributes ``n + 1``, an optional part 2, an alternation its costliest branch and a
sequence the product of its items (n is taken as :data:`NAME_LENGTH`). PEFT wraps a pattern key
as ``(.*\\.)?(KEY)$`` and a layers pattern as ``(?:^|.*?\\.)P\\.(\\d+)\\.``, which multiply it
further. The patterns of one config together may need at most :data:`BUDGET` paths per module
name. Measured with ``re`` (Python 3.11), the costliest patterns within the budget (three
repeats and an optional part, ``.*.*.*Q``-like) take under 2 ms per module name; real ones (plain
names, ``.*layer\\.\\d+\\.(key|value)$``) take microseconds.
"""

from __future__ import annotations

import string
from collections.abc import Iterable

from adapterhub.errors import AdapterHubError

NAME_LENGTH = 64
"""Module-name length the cost is computed for (BERT's longest, with its prefix, is ~45)."""
BUDGET = 1_000_000
"""Most backtracking paths per module name the patterns of one config may need together."""
MAX_LENGTH = 256
MAX_OPTIONAL = 4
MAX_PATTERNS = 1024
"""Most patterns (keys included) one config may hold: PEFT tries every key on every module."""

FULL = "full"  # re.fullmatch(pattern, name): target_modules, exclude_modules, feedforward_modules
KEY = "key"  # re.match(rf"(.*\.)?({pattern})$", name): rank_pattern / alpha_pattern keys
LAYERS = "layers"  # re.match(rf"(?:^|.*?\.){pattern}\.(?P<idx>\d+)\.", name): layers_pattern

_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_-")
_ESCAPES = frozenset(".-_dw")
SUBSET = (
    "module-name characters, '.', '\\.', '\\d', '\\w', [classes]; '*' or '+' after one "
    "character; '(...)' or '(?:...)' groups of '|' alternatives starting with distinct plain "
    f"characters; at most {MAX_OPTIONAL} optional parts ('?' after a plain character or a "
    "group); '^' first, '$' last"
)


class _Refused(Exception):
    """A pattern outside the subset (internal: :func:`pattern_paths` words the error)."""


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.at = 0
        self.repeat = NAME_LENGTH + 1
        self.optionals = 0

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def take(self) -> str:
        char = self.peek()
        self.at += 1
        return char

    def alternation(self, depth: int) -> int:
        branches = [self.branch(depth)]
        while self.peek() == "|":
            self.take()
            branches.append(self.branch(depth))
        if len(branches) == 1:
            return branches[0][2]
        # each alternative starts with its own literal character: at any position at most one
        # can match, so the alternation costs its costliest branch, not their sum
        firsts: set[str] = set()
        for first, start, _ in branches:
            if first is None:
                raise _Refused(
                    f"has an alternative at position {start} that does not start with a plain "
                    "character (alternatives must start with distinct characters)"
                )
            if first in firsts:
                raise _Refused(
                    f"has two alternatives starting with {first or 'nothing'!r} (position {start})"
                )
            firsts.add(first)
        if "" in firsts:
            return max(paths for _, _, paths in branches) * self.optional()
        return max(paths for _, _, paths in branches)

    def branch(self, depth: int) -> tuple[str | None, int, int]:
        """(its first literal character, "" when empty, None when it has none; start; paths)."""
        start = self.at
        char, after = self.peek(), start + 1
        if char == "\\" and self.text[start + 1 : start + 2] in ("-", "_", "."):
            char, after = self.text[start + 1], start + 2
        first: str | None = char if char in _NAME_CHARS or char in ("-", "_", ".") else None
        if char in ("|", ")", ""):
            first = ""
        elif self.text[start] == "." or self.text[after : after + 1] in ("*", "+", "?"):
            first = None  # a wildcard, or a first character that may be skipped
        return first, start, self.sequence(depth)

    def sequence(self, depth: int) -> int:
        paths = 1
        while self.peek() not in ("", "|", ")"):
            paths *= self.item(depth)
        return paths

    def item(self, depth: int) -> int:
        char = self.peek()
        if char == "(":
            inner = self.group(depth)
            if self.peek() == "?":
                self.take()
                inner += self.optional() - 1
            if self.peek() in ("*", "+", "?", "{"):
                raise _Refused(f"repeats a group at position {self.at}")
            return inner
        literal = self.atom()
        paths = 1
        if self.peek() in ("*", "+"):
            self.take()
            paths = self.repeat
        elif self.peek() == "?":
            if not literal:
                raise _Refused(f"makes a wildcard or class optional at position {self.at}")
            self.take()
            paths = self.optional()
        if self.peek() in ("*", "+", "?", "{"):
            raise _Refused(f"has a lazy, counted or doubled repeat at position {self.at}")
        return paths

    def group(self, depth: int) -> int:
        if depth >= 8:
            raise _Refused("nests groups more than 8 deep")
        self.take()
        if self.text.startswith("?:", self.at):
            self.at += 2
        elif self.peek() == "?":
            raise _Refused(f"uses a '(?' construct other than '(?:' at position {self.at}")
        paths = self.alternation(depth + 1)
        if self.take() != ")":
            raise _Refused("has an unclosed group")
        return paths

    def optional(self) -> int:
        """An item that may be skipped: two ways. Optional items cost far more per path than
        repeats do in ``re`` (each is a saved state), so a pattern gets only a few."""
        self.optionals += 1
        if self.optionals > MAX_OPTIONAL:
            raise _Refused(f"has more than {MAX_OPTIONAL} optional parts")
        return 2

    def atom(self) -> bool:
        """Consume one character, escape or class; True when it matches one character only."""
        char = self.take()
        if char in _NAME_CHARS:
            return True
        if char == ".":
            return False
        if char == "\\":
            escaped = self.take()
            if escaped not in _ESCAPES:
                raise _Refused(f"has an escape other than \\. \\- \\_ \\d \\w at {self.at - 2}")
            return escaped in ".-_"
        if char == "[":
            self.char_class()
            return False
        raise _Refused(f"has {char!r} at position {self.at - 1}")

    def char_class(self) -> None:
        members = 0
        while self.peek() not in ("]", ""):
            char = self.take()
            if char == "\\":
                if self.take() not in _ESCAPES:
                    raise _Refused(f"has an escape other than \\. \\- \\_ \\d \\w at {self.at - 2}")
            elif char not in _NAME_CHARS and char != ".":
                raise _Refused(f"has {char!r} in a class at position {self.at - 1}")
            members += 1
        if self.take() != "]" or not members:
            raise _Refused("has an unclosed or empty class")


def pattern_paths(pattern: str, use: str) -> int:
    """Upper bound on a backtracking matcher's paths for ``pattern`` used as ``use`` (:data:`FULL`,
    :data:`KEY` or :data:`LAYERS`); raises ``ValueError`` saying why a pattern is outside the
    subset."""
    if len(pattern) > MAX_LENGTH:
        raise ValueError(f"is longer than {MAX_LENGTH} characters")
    body = pattern[1:] if pattern.startswith("^") else pattern
    if body.endswith("$") and not body.endswith("\\$"):
        body = body[:-1]
    parser = _Parser(body)
    try:
        paths = parser.alternation(0)
        if parser.at != len(body):
            raise _Refused(f"has an unmatched ')' at position {parser.at}")
    except _Refused as refused:
        raise ValueError(str(refused)) from None
    wrapper = 1 + parser.repeat  # PEFT's optional (.*\.)? or (?:^|.*?\.) in front
    if use == KEY:
        return wrapper * paths
    if use == LAYERS:
        return wrapper * paths * parser.repeat
    return paths


def check_patterns(
    patterns: Iterable[tuple[str, str, str]], where: str, error: type[AdapterHubError]
) -> int:
    """Refuse any ``(field, pattern, use)`` outside the subset (``field`` names where it sits,
    e.g. "alpha_pattern key"), or a config whose patterns
    together could take more than :data:`BUDGET` paths per name; returns their total."""
    total = 0
    for count, (field, pattern, use) in enumerate(patterns, 1):
        if count > MAX_PATTERNS:
            raise error(
                f"{where}: the config holds more than {MAX_PATTERNS} module patterns "
                f"({field} and others); name fewer modules or use one pattern for many"
            )
        try:
            total += pattern_paths(pattern, use)
        except ValueError as exc:
            raise error(
                f"{where}: {field} {pattern!r} {exc}; adapterhub accepts only patterns "
                f"it can match in bounded time: {SUBSET}"
            ) from None
        if total > BUDGET:
            raise error(
                f"{where}: {field} {pattern!r} brings the config's patterns to {total:.3g} "
                f"matching paths per module name (limit {BUDGET:.0e}); use fewer repeats "
                "('*', '+') or alternatives, or list the module names"
            )
    return total
