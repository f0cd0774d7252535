# The two commands of the README. Everything else is reachable from them.
.PHONY: demo test test-fast model

demo:
	bash deploy/local/demo.sh

# The default model is built before pytest starts (a no-op when models/default holds one): the build
# takes ~17 min on 2 cores, longer than pytest's per-test timeout, so building it inside the first
# model test's fixture failed every model test on a fresh clone.
test: model
	bash tests/run.sh

# Pure unit tier only: no broker, no torch model (seconds).
test-fast:
	bash tests/run.sh -m "not integration and not model and not training"

model:
	bash deploy/local/setup.sh && . deploy/local/env.sh && .venv/bin/python -m training.build_default_model
