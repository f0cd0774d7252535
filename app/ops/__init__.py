"""Operations: Prometheus metrics, the liveness and readiness probes, log redaction."""
