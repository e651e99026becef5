"""Finding customers' personal data in the words the ASR wrote, and the mask for each character.

Whisper base writes a phone number read on the line in many ways: ``13712345678``, ``一三七一二三四五六
七八``, ``幺三七``, ``139-127-583`` (digits lost), ``一三七散四…`` (a digit heard as a character), one
number over several words, or over two turns when the customer pauses and the agent says 嗯. So a
number is found as a *chain*: digits in any written form, joined across separators (spaces,
commas, dashes: a customer reads in groups), across at most a few misheard characters between
digits, and across a pause into the same speaker's next turn. A chain is then cut into the types
of ``rules/personal_data.yaml`` (longest first: a mobile number and a 身份证 number read in one
breath are two numbers), and whatever is left that is long enough is masked as a long number all
the same: no number of 7 or more digits is let through because it fits no type.

Masks keep every character's place (``一三七一二三四五六七八`` → ``137****5678``): turn text, word
texts and the evidence quotes cut from them stay aligned, and word times stay true, so the tone in
the player lands on the right words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qa_audio.redact.rules import NumberType, PersonalDataRules
from qa_audio.schema import PersonalDataPart, PersonalDataSpan, Turn

JOIN = "\u2029"
"""Stands between two turns joined into one text (a paragraph separator: never in ASR output)."""


@dataclass(frozen=True)
class Piece:
    """One text the detector reads: a turn (with its words) or a dropped text (with its times)."""

    where: str
    index: int
    speaker: str
    role: str
    text: str
    start: float
    end: float
    word_spans: tuple[tuple[int, int, float, float], ...] = ()
    """(char_start, char_end, start, end) of each word in ``text``, when the words make the text"""

    def time_of(self, char_start: int, char_end: int) -> tuple[float, float]:
        """The times of the words holding these characters (proportional where there are no words)."""
        hit = [(s, e) for a, b, s, e in self.word_spans if a < char_end and b > char_start]
        if hit:
            return hit[0][0], hit[-1][1]
        length = max(1, len(self.text))
        span = self.end - self.start
        return (self.start + span * char_start / length, self.start + span * char_end / length)


def pieces_of_turns(turns: Sequence[Turn]) -> list[Piece]:
    out = []
    for index, turn in enumerate(turns):
        spans: list[tuple[int, int, float, float]] = []
        if "".join(w.text for w in turn.words) == turn.text:
            offset = 0
            for word in turn.words:
                spans.append((offset, offset + len(word.text), word.start, word.end))
                offset += len(word.text)
        out.append(Piece("turns", index, turn.speaker, turn.role, turn.text, turn.start, turn.end, tuple(spans)))
    return out


@dataclass
class _Found:
    type: str
    confidence: float
    basis: str
    positions: list[int]
    """the joined text's indices of every character that is masked or kept"""
    shown: dict[int, str]
    """index -> the character shown there (a kept digit, or the mask character)"""


class _Joined:
    """Several pieces of one speaker read as one text, so a number may run from one into the next."""

    def __init__(self, pieces: list[Piece]):
        self.pieces = pieces
        self.offsets: list[int] = []
        parts, offset = [], 0
        for piece in pieces:
            self.offsets.append(offset)
            parts.append(piece.text)
            offset += len(piece.text) + 1
        self.text = JOIN.join(parts)

    def locate(self, position: int) -> tuple[int, int]:
        """(piece number, character index in that piece) of a joined-text index."""
        for number in range(len(self.pieces) - 1, -1, -1):
            if position >= self.offsets[number]:
                return number, position - self.offsets[number]
        return 0, position


class Detector:
    """Finds personal data in a call's pieces with one rules file; stateless between calls."""

    def __init__(self, rules: PersonalDataRules):
        self.rules = rules

    # ------------------------------------------------------------------ the whole call
    def find(self, pieces: Sequence[Piece], masked: dict[tuple[str, int], dict[int, str]]) -> list[PersonalDataSpan]:
        """Every span in ``pieces``; ``masked[(where, index)][char] = shown character`` is filled in."""
        spans: list[PersonalDataSpan] = []
        for group in self._joined_groups(pieces):
            joined = _Joined(group)
            for found in self._numbers(joined.text):
                spans.append(self._span(found, joined, masked))
        spans += self._continuations(pieces, masked, spans)
        for piece in pieces:
            joined = _Joined([piece])
            for found in self._patterns(piece.text) + self._cued(piece):
                done = masked.get((piece.where, piece.index), {})
                free = [p for p in found.positions if p not in done]  # a number inside an address stays its own
                if free:
                    spans.append(self._span(_Found(found.type, found.confidence, found.basis, free,
                                                   {p: found.shown[p] for p in free}), joined, masked))
        spans.sort(key=lambda s: (s.start, s.end))
        return spans

    def _continuations(self, pieces: Sequence[Piece], masked: dict[tuple[str, int], dict[int, str]],
                       spans: list[PersonalDataSpan]) -> list[PersonalDataSpan]:
        """Digits opening the next turn, by anyone, right after a turn that ended in a masked number."""
        rules = self.rules
        out: list[PersonalDataSpan] = []
        turns = sorted((p for p in pieces if p.where == "turns"), key=lambda p: (p.start, p.index))
        for before, after in zip(turns, turns[1:], strict=False):
            shown = masked.get(("turns", before.index), {})
            tail = len(before.text.rstrip("".join(rules.separators) + "？！?!"))
            # ends in the number, or in the number and a short acknowledgement of it (the agent's
            # 好的 after the customer's first half, both in the agent's turn: pd05)
            ends_in_number = any(i >= tail - 2 - rules.continuation_prefix_chars for i in shown)
            if not ends_in_number or after.start - before.end > rules.join_turns_within_s:
                continue
            chains = [c for c in self._chains(after.text)
                      if c[0][0][0] < rules.continuation_prefix_chars
                      and sum(len(g) for g in c) >= rules.join_min_digits]
            if not chains or ("turns", after.index) in masked and chains[0][0][0][0] in masked[("turns", after.index)]:
                continue
            chain = chains[0]
            first, end = chain[0][0][0], chain[-1][-1][0] + 1
            if self._ordinary(after.text, first, end, "".join(d for g in chain for _, d in g)):
                continue
            previous = next((s for s in reversed(spans) for p in s.parts
                             if p.where == "turns" and p.index == before.index), None)
            kind = previous.type if previous else rules.other_type
            found = self._masked(chain, kind, 0.5, "read with a number", 0, 0)
            out.append(self._span(found, _Joined([after]), masked))
        return out

    def _joined_groups(self, pieces: Sequence[Piece]) -> list[list[Piece]]:
        """Pieces grouped so that a number continued in the speaker's next turn is read as one."""
        groups: list[list[Piece]] = []
        last_of_speaker: dict[tuple[str, str], list[Piece]] = {}
        for piece in pieces:
            key = (piece.where, piece.speaker)
            group = last_of_speaker.get(key)
            if (group is not None and piece.where == "turns"
                    and piece.start - group[-1].end <= self.rules.join_turns_within_s
                    and self._ends_with_digit(group[-1].text) and self._starts_a_continuation(piece.text)):
                group.append(piece)
                continue
            group = [piece]
            groups.append(group)
            last_of_speaker[key] = group
        return groups

    def _ends_with_digit(self, text: str) -> bool:
        stripped = text.rstrip("".join(self.rules.separators) + "？！?!")
        return bool(stripped) and (stripped[-1] in self.rules.digits or stripped[-1] in self.rules.id_letters)

    def _starts_a_continuation(self, text: str) -> bool:
        stripped = text.lstrip("".join(self.rules.separators))
        leading = 0
        while leading < len(stripped) and stripped[leading] in self.rules.digits:
            leading += 1
        if leading >= self.rules.join_min_digits:
            return True
        return any(stripped.startswith(word) for word in self.rules.corrections)

    # ------------------------------------------------------------------ numbers
    def _numbers(self, text: str) -> list[_Found]:
        rules = self.rules
        out: list[_Found] = []
        last: _Found | None = None
        last_end = -1
        for chain in self._chains(text):
            first, end = chain[0][0][0], chain[-1][-1][0] + 1
            digits = "".join(d for g in chain for _, d in g)
            if self._ordinary(text, first, end, digits):
                continue
            if last is not None and self._corrects(text, last_end, first):
                out.append(self._masked(chain, last.type, last.confidence, "correction", 0, 0))
                last_end = end
                continue
            if self._after_partial_cue(text, first):
                number_type, _, _ = self._classify(digits, self._before(text, first), any_length=True)
                kind = number_type.type if number_type else rules.other_type
                if end < len(text) and text[end] in rules.id_letters:  # the X of a 身份证's last four
                    chain = [*chain[:-1], [*chain[-1], (end, "X")]]
                out.append(self._masked(chain, kind, 0.6, "partial", 0, 0))
                continue
            pieces = self._cut(text, chain)
            # one reading: in a chain that holds a number, the digits read with it go with it (the
            # last group of a mobile number whose other digit was lost, 136-712-0883)
            holds_number = any(number_type is not None for _, number_type, _, _ in pieces)
            for piece_groups, number_type, confidence, basis in pieces:
                flat = [p for g in piece_groups for p in g]
                digits = "".join(d for _, d in flat)
                if number_type is None and holds_number and len(digits) < rules.other_min_digits:
                    number_type, confidence, basis = None, 0.5, "read with a number"
                    kind, keep_first, keep_last = rules.other_type, 0, 0
                elif number_type is None:
                    if len(digits) < rules.other_min_digits:
                        continue
                    kind, keep_first, keep_last = rules.other_type, 0, rules.other_keep_last
                else:
                    kind, keep_first, keep_last = number_type.type, number_type.keep_first, number_type.keep_last
                if JOIN in text[flat[0][0]:flat[-1][0]]:
                    keep_first = keep_last = 0  # read over two turns: which digits are whose is a guess
                verified = basis == "pattern" and number_type is not None and number_type.check is not None
                if not verified and self._ordinary(text, flat[0][0], flat[-1][0] + 1, digits):
                    continue
                found = self._masked(piece_groups, kind, confidence, basis, keep_first, keep_last)
                out.append(found)
                last, last_end = found, flat[-1][0] + 1
        return out

    def _after_partial_cue(self, text: str, position: int) -> bool:
        before = text[max(0, position - 8):position].rstrip("".join(self.rules.separators) + "是为：:")
        return any(before.endswith(cue) for cue in self.rules.partial_cues)

    def _chains(self, text: str) -> list[list[list[tuple[int, str]]]]:
        """Digit chains: lists of groups (split at separators) of (index, digit) pairs."""
        rules = self.rules
        chains: list[list[list[tuple[int, str]]]] = []
        i, n = 0, len(text)
        while i < n:
            if text[i] not in rules.digits:
                i += 1
                continue
            groups: list[list[tuple[int, str]]] = [[]]
            misheard = count = 0
            j = i
            while j < n:
                ch = text[j]
                if ch in rules.digits:
                    groups[-1].append((j, rules.digits[ch]))
                    count += 1
                    j += 1
                elif (ch in rules.misheard and misheard < rules.max_misheard and groups[-1]
                      and j + 1 < n and text[j + 1] in rules.digits):
                    groups[-1].append((j, rules.misheard[ch]))
                    misheard += 1
                    count += 1
                    j += 1
                elif ch in rules.id_letters and count == 17:
                    groups[-1].append((j, "X"))
                    j += 1
                    break
                elif ch in rules.separators or ch == JOIN:
                    k, width = j, 0
                    while k < n and (text[k] in rules.separators or text[k] == JOIN):
                        width += text[k] != JOIN
                        k += 1
                    if width <= rules.max_separator_chars and k < n and text[k] in rules.digits:
                        groups.append([])
                        j = k
                    else:
                        break
                else:
                    break
            chains.append([g for g in groups if g])
            i = j if j > i else i + 1
        return chains

    def _cut(self, text: str, chain: list[list[tuple[int, str]]]):
        """The chain cut into numbers: the longest run of groups that fits a type, left to right;
        groups that fit none are joined with their neighbours that fit none either."""
        out: list[tuple[list[list[tuple[int, str]]], NumberType | None, float, str]] = []
        loose: list[list[tuple[int, str]]] = []

        def flush() -> None:
            if loose:
                cue_text = self._before(text, loose[0][0][0])
                number_type, confidence, basis = self._classify("".join(d for g in loose for _, d in g), cue_text)
                out.append((list(loose), number_type, confidence, basis))
                loose.clear()

        i = 0
        while i < len(chain):
            for j in range(len(chain), i, -1):
                digits = "".join(d for g in chain[i:j] for _, d in g)
                number_type = self._strong(digits)
                if number_type is not None:
                    flush()
                    out.append((chain[i:j], number_type, 1.0, "pattern"))
                    i = j
                    break
            else:
                loose.append(chain[i])
                i += 1
        flush()
        return out

    def _strong(self, digits: str) -> NumberType | None:
        for number_type in self.rules.numbers:
            if number_type.pattern.fullmatch(digits) and _check(number_type.check, digits):
                return number_type
        return None

    def _classify(self, digits: str, cue_text: str, any_length: bool = False) -> tuple[NumberType | None, float, str]:
        """A run no type took whole: a type whose pattern fits after its cue, or a run after a cue
        (``cue_min_digits`` or longer: digits lost), or only long."""
        rules = self.rules
        for number_type in rules.numbers:
            if number_type.pattern.fullmatch(digits) and _has_cue(number_type, cue_text):
                return number_type, 0.7, "cue"
        if any_length or len(digits) >= rules.cue_min_digits:
            for number_type in rules.numbers:
                if _has_cue(number_type, cue_text):
                    return number_type, 0.6, "cue+length"
        return None, 0.5, "length"

    def _before(self, text: str, position: int) -> str:
        return text[max(0, position - self.rules.cue_window):position]

    def _ordinary(self, text: str, start: int, end: int, digits: str) -> bool:
        """工号, amounts, dates, counts: never masked."""
        rules = self.rules
        if digits in rules.ordinary_keep:
            return True
        before = text[max(0, start - 4):start].rstrip("".join(rules.separators) + "是为")
        if any(before.endswith(word) for word in rules.ordinary_before):
            return True
        after = text[end:end + 4].lstrip(" ")
        return any(after.startswith(word) for word in rules.ordinary_after)

    def _corrects(self, text: str, last_end: int, start: int) -> bool:
        """Only a correction word (and separators, 是) stands between a masked number and this chain."""
        between = text[last_end:start]
        if len(between) > self.rules.correction_window or JOIN in between.strip(JOIN):
            return False
        return any(word in between for word in self.rules.corrections)

    def _masked(self, groups, kind: str, confidence: float, basis: str, keep_first: int,
                keep_last: int) -> _Found:
        flat = [p for g in groups for p in g]
        count = len(flat)
        shown = {}
        for rank, (position, digit) in enumerate(flat):
            keep = rank < keep_first or rank >= count - keep_last
            shown[position] = digit if keep and keep_first + keep_last < count else self.rules.mask_char
        return _Found(kind, confidence, basis, [p for p, _ in flat], shown)

    # ------------------------------------------------------------------ written forms and cues
    def _patterns(self, text: str) -> list[_Found]:
        out = []
        for pattern in self.rules.patterns:
            for match in pattern.pattern.finditer(text):
                start, end = match.span()
                keep_from = end
                if pattern.keep_from is not None:
                    inner = pattern.keep_from.search(text, start, end)
                    keep_from = inner.start() if inner else end
                shown = {}
                for position in range(start, end):
                    if text[position].isspace():
                        continue
                    keep = position < start + pattern.keep_first or position >= keep_from
                    shown[position] = text[position] if keep else self.rules.mask_char
                out.append(_Found(pattern.type, 0.9, "pattern", sorted(shown), shown))
        return out

    def _cued(self, piece: Piece) -> list[_Found]:
        out = []
        text = piece.text
        for cued in self.rules.cued:
            if piece.role not in cued.roles:
                continue
            cue_chars: set[int] = set()
            for cue in cued.cues:  # longest first: 免贵姓 before 免贵
                start = text.find(cue)
                while start >= 0:
                    if start in cue_chars:  # inside a longer cue already taken (免贵 of 免贵姓)
                        start = text.find(cue, start + 1)
                        continue
                    cue_chars.update(range(start, start + len(cue)))
                    first = start + len(cue)
                    while first < len(text) and text[first] in cued.skip:
                        first += 1
                    last = first
                    while last < len(text) and last - first < cued.max_chars and text[last] not in cued.stop:
                        last += 1
                    if last - first >= cued.min_chars:
                        positions = list(range(first, last)) + self._spelled_out(text, first, last, cued)
                        shown = {p: self.rules.mask_char for p in positions}
                        out.append(_Found(cued.type, 0.6, "cue word", positions, shown))
                    start = text.find(cue, max(first, start + 1))
        return out

    @staticmethod
    def _spelled_out(text: str, first: int, last: int, cued) -> list[int]:
        """The clause after a name that spells it out and ends with its last character (耳东陈)."""
        if not cued.spelled_out_chars or last >= len(text) or text[last] not in "，,、 ":
            return []
        end = last + 1
        while end < len(text) and end - last <= cued.spelled_out_chars and text[end] not in cued.stop:
            end += 1
        clause = range(last + 1, end)
        return list(clause) if len(clause) > 1 and text[end - 1] == text[last - 1] else []

    # ------------------------------------------------------------------ a found thing as a span
    def _span(self, found: _Found, joined: _Joined, masked: dict[tuple[str, int], dict[int, str]]) -> PersonalDataSpan:
        by_piece: dict[int, list[int]] = {}
        for position in found.positions:
            number, char = joined.locate(position)
            by_piece.setdefault(number, []).append(char)
            piece = joined.pieces[number]
            masked.setdefault((piece.where, piece.index), {})[char] = found.shown[position]
        parts = []
        for number, chars in sorted(by_piece.items()):
            piece = joined.pieces[number]
            first, last = min(chars), max(chars) + 1
            start, end = piece.time_of(first, last)
            original = piece.text[first:last] if self.rules.keep_originals else None
            parts.append(PersonalDataPart(where=piece.where, index=piece.index, char_start=first, char_end=last,
                                          start=round(start, 3), end=round(end, 3), text=original))
        head = joined.pieces[min(by_piece)]
        mask = "".join(found.shown[p] for p in sorted(found.positions))
        return PersonalDataSpan(type=found.type, role=head.role, speaker=head.speaker, start=parts[0].start,
                                end=parts[-1].end, mask=mask, confidence=found.confidence, basis=found.basis,
                                parts=tuple(parts))


def _has_cue(number_type: NumberType, text: str) -> bool:
    return any(cue in text for cue in number_type.cues)


def _check(name: str | None, digits: str) -> bool:
    if name is None:
        return True
    if name == "luhn":
        return luhn_valid(digits)
    if name == "gb11643":
        return id_card_valid(digits)
    raise ValueError(f"unknown check {name!r}")


ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


def id_card_valid(number: str) -> bool:
    """The GB 11643-1999 check character of an 18-character 身份证 number."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11] == number[17].upper()


def luhn_valid(number: str) -> bool:
    """The Luhn check of a bank card number."""
    if not number.isdigit():
        return False
    total = 0
    for index, digit in enumerate(reversed(number)):
        value = int(digit)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0
