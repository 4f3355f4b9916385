"""Turning generated tokens into text as they come: incremental detokenization and stop
strings.

Decoding one token at a time is wrong for most tokenizers: a character may span several
byte-level tokens (decoding the first alone gives U+FFFD), and some tokenizers drop or
add a space depending on what precedes a token. So each step decodes a short window of
recent tokens and keeps the text it adds beyond the window's already-read part, and holds
back text ending in an incomplete character until the next token completes it.

Stop strings may span tokens, so text that could be the start of a stop string is held
back too, until it either completes the stop (the text ends before it) or cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

REPLACEMENT = "\ufffd"


class IncrementalText:
    """The text of a growing token sequence, delivered in pieces whose concatenation is
    what decoding the whole sequence gives."""

    def __init__(self, decode: Callable[[Sequence[int]], str]) -> None:
        self._decode = decode
        self.tokens: list[int] = []
        self._prefix = 0
        """Start of the window decoded for context."""
        self._read = 0
        """End of the part of the window already turned into text."""

    def add(self, token: int) -> str:
        """The new text ``token`` completes (often empty)."""
        self.tokens.append(token)
        return self._advance(final=False)

    def flush(self) -> str:
        """Whatever is still held back (at the end of a generation)."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        window = self.tokens[self._prefix :]
        before = self._decode(window[: self._read - self._prefix])
        after = self._decode(window)
        if len(after) <= len(before) or (after.endswith(REPLACEMENT) and not final):
            return ""
        self._prefix, self._read = self._read, len(self.tokens)
        return after[len(before) :]


class StopStrings:
    """Finds the first stop string in a text that arrives in pieces, and says how much of
    it is safe to deliver: only text that cannot be the start of a stop string. What is
    held back is shorter than the longest stop string, so each piece costs little."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._pending = ""

    def push(self, piece: str, final: bool = False) -> tuple[str, bool]:
        """Take the next ``piece``; the text now safe to deliver, and whether a stop string
        was found (the text then ends right before it, the stop string excluded).
        ``final`` delivers whatever is held back."""
        text = self._pending + piece
        found = [at for at in (text.find(stop) for stop in self._stops) if at >= 0]
        if found:
            self._pending = ""
            return text[: min(found)], True
        held = 0 if final else self._held_back(text)
        self._pending = text[len(text) - held :] if held else ""
        return text[: len(text) - held], False

    def _held_back(self, text: str) -> int:
        """Length of the longest end of ``text`` that begins some stop string."""
        if not text:
            return 0
        last = text[-1]
        longest = 0
        for stop in self._stops:
            # Only ends that finish with ``last`` can match: try where ``last`` occurs.
            at = stop.rfind(last, 0, len(stop) - 1)
            while at + 1 > longest:
                if text.endswith(stop[: at + 1]):
                    longest = at + 1
                    break
                at = stop.rfind(last, 0, at)
        return longest
