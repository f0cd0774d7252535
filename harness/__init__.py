"""Real services for the tests and the benchmarks: the local Kafka broker, Prometheus, and the worker as a
child process. Not shipped (pyproject packages app, model, training and schemas only)."""
