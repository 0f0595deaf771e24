# Shortcuts; the README's two commands are scripts/run and scripts/test.
.PHONY: run test lint bench

run:
	scripts/run

test:
	scripts/test

lint:
	.venv/bin/ruff check .

bench:
	.venv/bin/python bench/queue_bench.py
