"""The edges: the Faust agent and consumer, the confluent-kafka producer, topics, consumer lag, the
broker access check, and the Redis answer store. Tested against the real services."""
