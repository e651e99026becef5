"""qa-audio: offline speech-analytics auto-QA for Mandarin call centres."""

__version__ = "0.1.0"
