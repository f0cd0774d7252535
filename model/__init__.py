"""The model stage: loading, prompting, batched generation and parsing. Never imports Kafka."""
