"""The inspector's workbench: ``qa-audio serve --db qa.db`` (see ``docs/workbench.md``).

A Flask app over the batch's store: the review queue, the call page with its pre-filled sheet,
reviews kept with their history, calibration and agreement, accounts. ``create_app`` builds it;
the CLI serves it with waitress.
"""

from qa_audio.workbench.app import create_app

__all__ = ["create_app"]
