"""Which speaker is the agent: the channel map for stereo, agent cues in the words for mono.

The cue list is data (``rules/roles.yaml``) so a call centre with other scripts edits YAML, not
Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from qa_audio.rule_files import LineList, RuleFileError, load_rule_file, only_keys, require, rule_file
from qa_audio.schema import Role

ROLES_FILE = "roles.yaml"
ROLES_KEYS = {"cues", "customer_cues", "first_speaker_weight", "saturation", "low_confidence"}
CUE_KEYS = {"phrase", "weight", "heard_as"}


@dataclass(frozen=True)
class RoleCue:
    phrase: str
    weight: float
    heard_as: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoleCues:
    cues: tuple[RoleCue, ...]
    customer_cues: tuple[RoleCue, ...]
    first_speaker_weight: float
    saturation: float
    low_confidence: float


@dataclass
class RoleAssignment:
    roles: dict[str, Role]
    confidence: float
    method: str
    evidence: dict[str, list[str]] = field(default_factory=dict)
    """speaker -> the cues heard in their words"""

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "confidence": round(self.confidence, 3),
            "speakers": {s: {"role": r, "cues": self.evidence.get(s, [])} for s, r in self.roles.items()},
        }


def load_role_cues(rules_dir: Path | None = None) -> RoleCues:
    path = rule_file(rules_dir, ROLES_FILE)
    data = load_rule_file(path)
    only_keys(data, ROLES_KEYS, path, "roles.yaml")
    cues = _read_cues(data, "cues", path)
    customer_cues = _read_cues(data, "customer_cues", path) if "customer_cues" in data else []
    first = require(data, "first_speaker_weight", (int, float), path)
    saturation = require(data, "saturation", (int, float), path)
    if saturation <= 0:
        raise RuleFileError(path, data.line_of("saturation"), f"saturation must be positive, not {saturation}")
    low = require(data, "low_confidence", (int, float), path)
    if not 0 <= low <= 1:
        raise RuleFileError(path, data.line_of("low_confidence"), f"low_confidence must be 0-1, not {low}")
    return RoleCues(tuple(cues), tuple(customer_cues), float(first), float(saturation), float(low))


def _read_cues(data, key: str, path: Path) -> list[RoleCue]:
    items = require(data, key, list, path)
    cues = []
    for index, item in enumerate(items):
        line = items.item_lines[index] if isinstance(items, LineList) else None
        if not isinstance(item, dict):
            raise RuleFileError(path, line, "each cue must be a mapping with 'phrase' and 'weight'")
        only_keys(item, CUE_KEYS, path, "a cue")
        phrase = require(item, "phrase", str, path)
        weight = require(item, "weight", (int, float), path)
        if weight <= 0:
            raise RuleFileError(path, item.line_of("weight"), f"weight must be positive, not {weight}")
        heard_as = item.get("heard_as", [])
        if not isinstance(heard_as, list) or not all(isinstance(h, str) for h in heard_as):
            raise RuleFileError(path, item.line_of("heard_as"), "'heard_as' must be a list of phrases")
        cues.append(RoleCue(phrase, float(weight), tuple(heard_as)))
    return cues


def assign_by_channel(speakers: list[str], agent_speaker: str) -> RoleAssignment:
    roles: dict[str, Role] = {s: ("agent" if s == agent_speaker else "customer") for s in speakers}
    return RoleAssignment(roles=roles, confidence=1.0, method="channel_map")


def assign_by_cues(
    text_by_speaker: dict[str, str], first_speaker: str | None, cues: RoleCues
) -> RoleAssignment:
    """The speaker with the most agent evidence is the agent; everyone else is a customer.

    A third voice (a transfer, a supervisor) is labelled customer unless it out-scores the agent:
    the rubric scores one agent per call.
    """
    scores: dict[str, float] = {}
    evidence: dict[str, list[str]] = {}
    for speaker, text in text_by_speaker.items():
        plain = _plain(text)
        heard = []
        score = 0.0
        for cue in cues.cues:
            count = sum(plain.count(_plain(form)) for form in (cue.phrase, *cue.heard_as))
            if count:
                heard.append(cue.phrase)
                score += cue.weight * count
        for cue in cues.customer_cues:
            count = sum(plain.count(_plain(form)) for form in (cue.phrase, *cue.heard_as))
            if count:
                heard.append(f"-{cue.phrase}")
                score -= cue.weight * count
        if speaker == first_speaker:
            score += cues.first_speaker_weight
            heard.append("(spoke first)")
        scores[speaker] = score
        evidence[speaker] = heard
    if not scores:
        return RoleAssignment(roles={}, confidence=0.0, method="cues")
    agent = max(scores, key=lambda s: (scores[s], s == first_speaker))
    roles: dict[str, Role] = {s: ("agent" if s == agent else "customer") for s in scores}
    total = sum(abs(v) for v in scores.values())  # customer cues make scores negative
    if len(scores) == 1:
        confidence = 0.5  # one voice: nothing to compare against
    elif total == 0:
        confidence = 0.5
    else:
        # Weak evidence (only "spoke first") must not look certain: below `saturation` total cue
        # weight the margin is scaled down.
        runner_up = max(v for s, v in scores.items() if s != agent)
        confidence = min(1.0, 0.5 + 0.5 * (scores[agent] - runner_up) / max(total, cues.saturation))
    return RoleAssignment(roles=roles, confidence=confidence, method="cues", evidence=evidence)


def _plain(text: str) -> str:
    return re.sub(r"[^\w]", "", text)
