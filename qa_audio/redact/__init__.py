"""Customers' personal data: found in the transcript, masked before any check or output sees it.

Between ``speech`` and ``acoustic``: :func:`redact_call` takes the transcript (and the texts the
ASR dropped), finds the numbers, e-mails, names and addresses of ``rules/personal_data.yaml`` and
returns them masked, with one :class:`~qa_audio.schema.PersonalDataSpan` per thing found. Every
later stage (checks, rubric evidence, reports, the store) only ever sees the masked words, so no
output can leak what it never had; the original characters are kept only where the deployment
says so (``keep_originals``), and then only in the spans. ``redact.audio`` puts a tone over the
spans' times for the player and ``qa-audio redact-audio``.
"""

from qa_audio.redact.mask import redact_call, redact_text
from qa_audio.redact.rules import PersonalDataRules, load_personal_data_rules

__all__ = ["PersonalDataRules", "load_personal_data_rules", "redact_call", "redact_text"]
