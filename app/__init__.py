"""The streaming service: Kafka in and out, the Faust agent, settings and the CLI."""
