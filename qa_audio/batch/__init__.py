"""The nightly batch: ``run`` analyses an archive with worker processes, ``store`` keeps every result in
SQLite, and ``export`` hands the QA queue its pre-scores and reads the inspectors' scores back.
"""
