# The two commands of the README. Each sets up .venv first (idempotent, see setup.sh).
SAMPLE ?= sample_calls/call01_full_script_mono.wav

.PHONY: setup demo test bench lint

setup:
	./setup.sh

demo: setup
	.venv/bin/qa-audio analyze $(SAMPLE) --format md

test:
	./setup.sh --browser-tests
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python bench/run_all.py

lint: setup
	.venv/bin/ruff check qa_audio tests bench
