"""Finding rule phrases in ASR text in a way that survives Whisper's errors on telephone audio.

Base Whisper writes "星河" as "心和", "工号" as "功耗", "可以" as "可疑": the characters are wrong
but the sounds are right or nearly right. So phrases are compared by toneless pinyin, syllable by
syllable, with partial credit for near-homophones (z/zh, n/l, in/ing, ...), inside a local
alignment that tolerates one inserted or dropped character. Plain substring search on the ASR
text is the baseline this improves on (see ``bench/rules.py``).

Scoring (all weights come from ``rules/matching.yaml``):

- per character: 1.0 for the same syllable (or the same character, which also covers polyphones),
  ``1 - near_part_penalty`` per confusable part (initial or final), ``half_match`` when only one
  part is alike, 0 otherwise; a numeral matches any of its readings (1 = yi/yao, 2 = er/liang);
- per phrase: (sum of character scores - penalties for inserted and dropped characters) divided by
  the phrase length, so 1.0 is a perfect match. An inserted character that Whisper itself gave
  less than ``unsure_below`` probability costs ``unsure_insertion_penalty`` instead: the 也 of
  您也好 (p 0.18 and 0.26 on h03 and h12, where 您好 was said) is more likely noise than speech.

Some characters carry the meaning and must be heard exactly (same syllable, never dropped):
negation words ("我不知道" must not match "我知道") and any character a QA lead puts in square
brackets ("请问[还]有什么可以帮您" so that the opening offer "请问有什么可以帮您" does not count as
the closing question). A phrase without a negation does not match right after a negation word.
Short phrases (``boundary_max_len`` characters or fewer) must also start where a jieba word
starts, so "请" is not found inside "申请" (but "谢谢" is found in "谢谢您").
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from pypinyin import lazy_pinyin

# Digit readings, so that "1024", "一零二四", "幺洞两四"-style homophones line up. 幺 and 两 are the
# telephone readings of 1 and 2; 〇 is the numeral zero.
NUMERAL_DIGITS: dict[str, str] = {
    "零": "0", "〇": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3",
    "四": "4", "五": "5", "六": "6", "七": "7", "八": "8", "九": "9",
}
DIGIT_READINGS: dict[str, tuple[str, ...]] = {
    "0": ("ling",), "1": ("yi", "yao"), "2": ("er", "liang"), "3": ("san",), "4": ("si",),
    "5": ("wu",), "6": ("liu",), "7": ("qi",), "8": ("ba",), "9": ("jiu",),
}
READING_DIGITS: dict[str, str] = {syl: d for d, syls in DIGIT_READINGS.items() for syl in syls}

# Longest first so "zh" wins over "z". y and w count as initials (pypinyin's non-strict style).
_INITIALS = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x",
             "r", "z", "c", "s", "y", "w")


def split_syllable(syl: str) -> tuple[str, str]:
    for ini in _INITIALS:
        if syl.startswith(ini) and len(syl) > len(ini):
            return ini, syl[len(ini):]
    return "", syl


def is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


@functools.cache
def _opencc_t2s():
    import opencc

    return opencc.OpenCC("t2s")


def _to_simplified(text: str) -> str:
    # The transcript is already simplified, but phrase lists typed by a QA lead may not be;
    # OpenCC is loaded once, on first use.
    return _opencc_t2s().convert(text)


def normalise(text: str) -> str:
    """Simplified Chinese, half-width, lower case, no punctuation or spaces.

    Digits stay as written; numerals and digits are made equal at the syllable level (see
    :func:`char_readings`) so that times stay attached to the characters actually heard.
    """
    text = unicodedata.normalize("NFKC", text)
    text = _to_simplified(text)
    return "".join(ch.lower() for ch in text if is_han(ch) or ch.isascii() and ch.isalnum())


def char_readings(chars: str) -> list[tuple[str, ...]]:
    """The toneless pinyin reading(s) of each character, using context for polyphones."""
    if not chars:
        return []
    syls = lazy_pinyin(chars, errors=lambda s: list(s))
    if len(syls) != len(chars):  # never seen, but keep the alignment to characters safe
        syls = [lazy_pinyin(ch, errors=lambda s: list(s))[0] for ch in chars]
    out: list[tuple[str, ...]] = []
    for ch, syl in zip(chars, syls, strict=True):
        digit = ch if ch.isdigit() else NUMERAL_DIGITS.get(ch)
        out.append(DIGIT_READINGS[digit] if digit is not None else (syl,))
    return out


def digit_of(ch: str) -> str | None:
    return ch if ch.isascii() and ch.isdigit() else NUMERAL_DIGITS.get(ch)


@dataclass(frozen=True)
class MatchSettings:
    """How fuzzy the pinyin match is; loaded from ``rules/matching.yaml``."""

    min_score: float = 0.8
    insertion_penalty: float = 0.5
    unsure_insertion_penalty: float = 0.5
    unsure_below: float = 0.0
    deletion_penalty: float = 0.25
    near_part_penalty: float = 0.15
    half_match: float = 0.3
    boundary_max_len: int = 2
    negations: tuple[str, ...] = ("不", "没", "别", "未", "非", "无", "莫")
    confusable_initials: tuple[tuple[str, ...], ...] = (
        ("z", "zh"), ("c", "ch"), ("s", "sh"), ("n", "l"), ("f", "h"), ("l", "r"))
    confusable_finals: tuple[tuple[str, ...], ...] = (
        ("in", "ing"), ("en", "eng"), ("an", "ang"), ("ian", "iang"), ("uan", "uang"))


class SyllableScorer:
    """Similarity of two syllables in [0, 1]; cached because a call has few distinct pairs."""

    def __init__(self, settings: MatchSettings):
        self.settings = settings
        self._ini = _classes(settings.confusable_initials)
        self._fin = _classes(settings.confusable_finals)
        self.score = lru_cache(maxsize=65536)(self._score)
        self.coarse = lru_cache(maxsize=8192)(self._coarse)

    def _part(self, a: str, b: str, classes: dict[str, int]) -> float:
        if a == b:
            return 1.0
        ca, cb = classes.get(a), classes.get(b)
        if ca is not None and ca == cb:
            return 1.0 - self.settings.near_part_penalty
        return 0.0

    def _score(self, a: str, b: str) -> float:
        if a == b:
            return 1.0
        ia, fa = split_syllable(a)
        ib, fb = split_syllable(b)
        si = self._part(ia, ib, self._ini)
        sf = self._part(fa, fb, self._fin)
        if si > 0 and sf > 0:
            return si + sf - 1.0  # 1 minus the penalties of the confusable parts
        if si > 0 or sf > 0:
            return self.settings.half_match
        return 0.0

    def _coarse(self, syl: str) -> str:
        """A key equal for all syllables that can score above ``half_match`` against each other."""
        ini, fin = split_syllable(syl)
        return f"{self._ini.get(ini, ini)}|{self._fin.get(fin, fin)}"


def _classes(groups: Iterable[Sequence[str]]) -> dict:
    # Each confusable group maps to one representative; groups sharing a member are merged so the
    # coarse key stays an equivalence (l is confusable with both n and r).
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for group in groups:
        for other in group[1:]:
            parent[find(other)] = find(group[0])
    return {x: find(x) for x in parent}


@dataclass(frozen=True)
class Phrase:
    """One phrase of one rule, compiled for matching."""

    rule: str
    text: str
    """The phrase as written in the YAML, brackets removed."""
    group: str = ""
    """Which part / severity / list it belongs to (``offer_help``, ``0-2``, ...)."""
    min_score: float = 0.8
    method: str = "pinyin"
    """``pinyin`` (fuzzy, the default) or ``text`` (exact characters, for short fillers like 啥)."""
    required: frozenset[int] = frozenset()
    """Positions that must be heard exactly: negations and [bracketed] characters."""
    chars: str = ""
    readings: tuple[tuple[str, ...], ...] = ()
    has_negation: bool = False
    source: str = ""
    """``file:line`` of the phrase, so a QA lead can find the entry behind a hit."""


def compile_phrase(raw: str, rule: str, settings: MatchSettings, *, group: str = "",
                   min_score: float | None = None, method: str = "pinyin", source: str = "") -> Phrase:
    """Parse ``[x]`` markers, normalise and read the phrase. Raises ValueError on an empty phrase."""
    required: set[int] = set()
    plain: list[str] = []
    inside = False
    for ch in raw:
        if ch == "[":
            if inside:
                raise ValueError("nested '['")
            inside = True
            continue
        if ch == "]":
            if not inside:
                raise ValueError("']' without '['")
            inside = False
            continue
        for n in normalise(ch):
            if inside:
                required.add(len(plain))
            plain.append(n)
    if inside:
        raise ValueError("'[' is never closed")
    chars = "".join(plain)
    if not chars:
        raise ValueError("the phrase has no characters left after removing punctuation")
    negs = {i for i, ch in enumerate(chars) if ch in settings.negations}
    return Phrase(
        rule=rule, text=raw.replace("[", "").replace("]", ""), group=group,
        min_score=settings.min_score if min_score is None else min_score, method=method,
        required=frozenset(required | negs), chars=chars, readings=tuple(char_readings(chars)),
        has_negation=bool(negs), source=source,
    )


Piece = tuple[str, float, float] | tuple[str, float, float, float]
"""What ``Heard.from_pieces`` reads: (text, start, end), or (text, start, end, probability) for a word."""


@dataclass
class HeardChar:
    ch: str
    readings: tuple[str, ...]
    start: float
    end: float
    probability: float = 1.0
    """Whisper's probability of the word the character came from (1.0 where none is known)"""


@dataclass
class Heard:
    """What one role said in a stretch of consecutive turns, one entry per normalised character.

    Consecutive turns of the same speaker are joined because ASR segments may cut a phrase in two;
    each character keeps the time of the word it came from (spread evenly inside the word).
    """

    role: str
    chars: list[HeardChar]
    text: str = ""
    _bounds: tuple[frozenset[int], frozenset[int]] | None = field(default=None, repr=False)

    @classmethod
    def from_pieces(cls, role: str, pieces: Iterable[Piece]) -> Heard:
        chars: list[HeardChar] = []
        texts: list[str] = []
        spans: list[tuple[float, float, float]] = []
        for raw, start, end, *known in pieces:
            norm = normalise(raw)
            if not norm:
                continue
            step = max(end - start, 0.0) / len(norm)
            probability = known[0] if known else 1.0
            for k, ch in enumerate(norm):
                texts.append(ch)
                spans.append((start + k * step, start + (k + 1) * step, probability))
        text = "".join(texts)
        for ch, rd, (s, e, p) in zip(text, char_readings(text), spans, strict=True):
            chars.append(HeardChar(ch, rd, round(float(s), 3), round(float(e), 3), float(p)))  # numpy -> float
        return cls(role=role, chars=chars, text=text)

    def boundaries(self, tokenizer) -> tuple[frozenset[int], frozenset[int]]:
        """Indices where a jieba word starts, and where one ends (inclusive)."""
        if self._bounds is None:
            starts, ends, pos = set(), set(), 0
            for tok in tokenizer.lcut(self.text, HMM=False):
                starts.add(pos)
                pos += len(tok)
                ends.add(pos - 1)
            self._bounds = (frozenset(starts), frozenset(ends))
        return self._bounds


@dataclass
class Hit:
    phrase: Phrase
    role: str
    heard: str
    start: float
    end: float
    score: float
    first: int
    last: int

    @property
    def rule(self) -> str:
        return self.phrase.rule


def load_segmenter() -> None:
    """Build jieba's dictionary now (~1 s, once per process) rather than at the first match that
    needs it: the Analyzer does so before its first call's stages, so no stage's timing carries it."""
    _jieba()


@functools.cache
def _jieba():
    # jieba takes ~1 s to build its prefix dictionary: once per process, and only when a short
    # phrase first needs a word-boundary check. Our own Tokenizer, not jieba's global one, so the
    # words we add do not change other components' segmentation.
    # jieba caches its dictionary as a marshal file in $TMPDIR, shared by every user of the machine:
    # it would leave 9 MB behind after each run and load a cache another user planted there. Both
    # its tokenizers keep their cache in this process's private folder instead (gone at exit).
    with warnings.catch_warnings():
        # jieba 0.42 imports pkg_resources, whose deprecation warning is no news to a user
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import jieba

    from qa_audio.privacy import private_folder

    jieba.setLogLevel(logging.WARNING)
    jieba.dt.tmp_dir = private_folder()  # the global one, should anything call jieba.lcut
    tok = jieba.Tokenizer()
    tok.tmp_dir = private_folder()
    tok.initialize()
    return tok


class PhraseIndex:
    """The compiled phrases of a rulebook, with a coarse-syllable index to skip hopeless phrases.

    The index maps each coarse syllable key to the phrases containing it, so a stretch of speech
    is aligned (the costly part) only against phrases that share enough sounds with it.
    """

    def __init__(self, phrases: Iterable[Phrase], settings: MatchSettings, user_words: Iterable[str] = ()):
        self.settings = settings
        self.scorer = SyllableScorer(settings)
        self.phrases = list(phrases)
        self._keys: list[frozenset[str]] = [
            frozenset(self.scorer.coarse(s) for rd in p.readings for s in rd) for p in self.phrases
        ]
        self._char_keys = {id(p): [frozenset(self.scorer.coarse(x) for x in rd) for rd in p.readings]
                           for p in self.phrases}
        self._sim_cache: dict[tuple[tuple[str, ...], tuple[str, ...]], float] = {}
        self._user_words = sorted({p.chars for p in self.phrases} | set(user_words))
        self._tokenizer = None
        self._tok_lock = threading.Lock()

    @property
    def tokenizer(self):
        """jieba, with the phrases and company name as words, so they are not split apart."""
        if self._tokenizer is None:
            with self._tok_lock:
                if self._tokenizer is None:
                    tok = _jieba()
                    for w in self._user_words:
                        if len(w) > 1:
                            tok.add_word(w, freq=2000)
                    self._tokenizer = tok
        return self._tokenizer

    def find(self, heard: Heard, rules: Iterable[str] | None = None) -> list[Hit]:
        """Every phrase hit in ``heard`` (optionally only for some rules), in time order."""
        wanted = set(rules) if rules is not None else None
        if not heard.chars:
            return []
        keys = [frozenset(self.scorer.coarse(s) for s in c.readings) for c in heard.chars]
        key_pos: dict[str, list[int]] = {}
        for j, ks in enumerate(keys):
            for k in ks:
                key_pos.setdefault(k, []).append(j)
        hits: list[Hit] = []
        for phrase, pkeys in zip(self.phrases, self._keys, strict=True):
            if wanted is not None and phrase.rule not in wanted:
                continue
            if phrase.method == "text":
                hits.extend(self._find_text(phrase, heard))
            else:
                hits.extend(self._find_pinyin(phrase, pkeys, heard, keys, key_pos))
        hits.sort(key=lambda h: (h.start, h.end))
        return hits

    # -- exact ---------------------------------------------------------------------------------

    def _find_text(self, phrase: Phrase, heard: Heard) -> list[Hit]:
        out = []
        pos = heard.text.find(phrase.chars)
        while pos >= 0:
            last = pos + len(phrase.chars) - 1
            if self._boundary_ok(phrase, heard, pos, last):
                out.append(self._hit(phrase, heard, pos, last, 1.0))
            pos = heard.text.find(phrase.chars, pos + 1)
        return out

    # -- fuzzy ---------------------------------------------------------------------------------

    def _find_pinyin(self, phrase: Phrase, pkeys: frozenset[str], heard: Heard,
                     keys: list[frozenset[str]], key_pos: dict[str, list[int]]) -> list[Hit]:
        m = len(phrase.chars)
        # A character whose coarse key is not in the phrase scores at most half_match, so a match
        # reaching min_score needs at least this many characters with a shared key.
        hm = self.settings.half_match
        need = max(1, math.ceil(m * (phrase.min_score - hm) / (1.0 - hm) - 1e-9))
        char_keys = self._char_keys[id(phrase)]
        if sum(1 for ck in char_keys if any(k in key_pos for k in ck)) < need:
            return []  # too few of the phrase's sounds occur anywhere in this speech
        pos = sorted({j for k in pkeys for j in key_pos.get(k, ())})
        # Windows around the candidate positions, merged; each is aligned separately.
        reach = m + 2
        windows: list[list[int]] = []
        for j in pos:
            lo, hi = max(0, j - reach), min(len(keys), j + reach + 1)
            if windows and lo <= windows[-1][1]:
                windows[-1][1] = hi
                windows[-1][2] += 1
            else:
                windows.append([lo, hi, 1])
        out: list[Hit] = []
        for lo, hi, count in windows:
            if count < need:
                continue
            # Tighter: how many phrase characters could find a sound-alike in this window at all.
            present = set().union(*keys[lo:hi])
            if sum(1 for ck in char_keys if ck & present) >= need:
                self._align_range(phrase, heard, lo, hi, out)
        return out

    def _align_range(self, phrase: Phrase, heard: Heard, lo: int, hi: int, out: list[Hit]) -> None:
        """Best match inside heard[lo:hi], then the best in what is left on either side."""
        if hi - lo <= 0:
            return
        best = self._align(phrase, heard, lo, hi)
        if best is None:
            return
        score, first, last = best
        if score + 1e-9 < phrase.min_score:
            return  # the best alignment in the range fails, so every other one does too
        if self._context_ok(phrase, heard, first, last):
            out.append(self._hit(phrase, heard, first, last, score))
        # Look for further occurrences on both sides (also when this one was rejected by context).
        self._align_range(phrase, heard, lo, first, out)
        self._align_range(phrase, heard, last + 1, hi, out)

    def _align(self, phrase: Phrase, heard: Heard, lo: int, hi: int) -> tuple[float, int, int] | None:
        """Semi-global alignment: the whole phrase against any stretch of heard[lo:hi].

        Cells hold (score, first matched index, last matched index); -inf marks forbidden paths
        (a required character dropped or misheard).
        """
        s = self.settings
        score = self.scorer.score
        cache = self._sim_cache
        m, n = len(phrase.chars), hi - lo
        neg_inf = float("-inf")
        prev: list[tuple[float, int, int]] = [(0.0, -1, -1)] * (n + 1)
        # what an extra heard character costs depends on that character alone, not on the phrase's
        extra_cost = [s.unsure_insertion_penalty if hc.probability < s.unsure_below else s.insertion_penalty
                      for hc in heard.chars[lo:hi]]
        for i in range(1, m + 1):
            pch, prd, req = phrase.chars[i - 1], phrase.readings[i - 1], (i - 1) in phrase.required
            cur: list[tuple[float, int, int]] = [(neg_inf, -1, -1)] * (n + 1)
            # Dropping a phrase character before anything was heard.
            if not req and prev[0][0] > neg_inf:
                cur[0] = (prev[0][0] - s.deletion_penalty, -1, -1)
            for j in range(1, n + 1):
                hc = heard.chars[lo + j - 1]
                if hc.ch == pch:
                    sim = 1.0
                elif req and pch in s.negations and hc.ch in s.negations:
                    sim = 1.0 - s.near_part_penalty  # 没法 for 无法: still a negation
                elif req:
                    sim = 1.0 if any(a == b for a in prd for b in hc.readings) else 0.0
                else:
                    key = (prd, hc.readings)
                    sim = cache.get(key)
                    if sim is None:
                        sim = cache[key] = max(score(a, b) for a in prd for b in hc.readings)
                best = (neg_inf, -1, -1)
                p = prev[j - 1]
                # An unrelated character may stand in for a phrase character (scoring 0), but a
                # match never starts on one, so the span does not grow over unrelated speech.
                if p[0] > neg_inf and (sim > 0 or not req and p[1] >= 0):
                    idx = lo + j - 1
                    best = (p[0] + sim, p[1] if p[1] >= 0 else idx, idx)
                if not req:
                    p = prev[j]
                    if p[0] - s.deletion_penalty > best[0] and p[0] > neg_inf:
                        best = (p[0] - s.deletion_penalty, p[1], p[2])
                p = cur[j - 1]  # an extra heard character, after at least one matched one
                extra = extra_cost[j - 1]
                if p[0] > neg_inf and p[1] >= 0 and p[0] - extra > best[0]:
                    best = (p[0] - extra, p[1], p[2])
                cur[j] = best
            prev = cur
        cands = [c for c in prev if c[0] > neg_inf and c[1] >= 0]
        if not cands:
            return None
        top = max(cands, key=lambda c: (c[0], -(c[2] - c[1])))
        return top[0] / m, top[1], top[2]

    # -- context ---------------------------------------------------------------------------------

    def _context_ok(self, phrase: Phrase, heard: Heard, first: int, last: int) -> bool:
        if not phrase.has_negation and first > 0 and heard.chars[first - 1].ch in self.settings.negations:
            return False  # "不可以帮您" is not the offer "可以帮您"
        return self._boundary_ok(phrase, heard, first, last)

    def _boundary_ok(self, phrase: Phrase, heard: Heard, first: int, last: int) -> bool:
        if len(phrase.chars) > self.settings.boundary_max_len:
            return True
        # Starting on a word start is enough: 谢谢 in 谢谢您 is fine, 请 in 申请 is not.
        starts, _ = heard.boundaries(self.tokenizer)
        return first in starts

    def _hit(self, phrase: Phrase, heard: Heard, first: int, last: int, score: float) -> Hit:
        return Hit(phrase=phrase, role=heard.role, heard=heard.text[first:last + 1],
                   start=heard.chars[first].start, end=heard.chars[last].end,
                   score=round(min(score, 1.0), 3), first=first, last=last)


def best_per_span(hits: Iterable[Hit], prefer=None) -> list[Hit]:
    """Of overlapping hits (same role, overlapping characters), keep the best one.

    "我不知道" and "我也不知道" can both match the same words; one thing was said, so one hit.
    ``prefer`` adds a tie-breaker key (higher wins), e.g. severity.
    """
    ranked = sorted(hits, key=lambda h: (h.score, len(h.phrase.chars), prefer(h) if prefer else 0),
                    reverse=True)
    kept: list[Hit] = []
    for h in ranked:
        if any(k.role == h.role and h.start < k.end and k.start < h.end for k in kept):
            continue
        kept.append(h)
    kept.sort(key=lambda h: (h.start, h.end))
    return kept
