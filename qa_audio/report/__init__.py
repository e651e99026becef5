"""The report stage: one analysed call as the versioned JSON, Markdown and a self-contained HTML page.

Reports only serialise and show: nothing here decides a score (that is :mod:`qa_audio.rubric`).
"""
