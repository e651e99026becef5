"""The checks stage: the rulebook (``rules/*.yaml``) applied to one call, findings with evidence out.

``rulebook`` reads and validates the rule files (phrases are heard on pinyin by
:mod:`qa_audio.phrase_match`, which the vocabulary correction shares), ``script`` runs the script
and timing checks (greeting, closing, 服务忌语, dead air, talk-over, ...) and ``acoustic`` judges the
acoustic figures against their bands. Every check returns :class:`qa_audio.schema.Finding`.
"""
