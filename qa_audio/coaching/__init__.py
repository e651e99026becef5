"""Who needs coaching on what: per-agent and per-team reports over the batch store.

``figures.build_report`` computes the figures in SQL (inspector scores where reviewed, pre-scores
elsewhere), ``categories`` reads ``rules/categories.yaml`` (problem types, severity, frequency),
``html`` and ``table`` write the page (inline SVG charts from ``charts``) and the CSV.
"""
