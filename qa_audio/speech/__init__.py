"""The speech stage: who speaks when and what they say.

``vad`` (stereo speech intervals), ``diarize`` and ``embedding`` (mono: pyannote.audio
segmentation and CAM++ speaker embeddings), ``asr`` (faster-whisper), ``attribution`` (words to
speakers and turns) and ``roles`` (which speaker is the agent). Out: a :class:`qa_audio.schema.Transcript`.
"""
