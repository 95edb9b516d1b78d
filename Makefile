# The two commands a fresh machine needs (see README.md).
.PHONY: setup demo test test-fast

setup:      ## create .venv and install mlx-persona (+ test tools)
	bash scripts/setup.sh

demo:       ## set up, then run the main job (the quickstart recipe; re-running resumes)
	bash scripts/demo.sh $(ARGS)

test:       ## set up, then run every test (end-to-end ones included)
	bash scripts/test.sh

test-fast:  ## set up, then run the unit tests only (tiny models, seconds)
	bash scripts/test.sh -m "not e2e"
