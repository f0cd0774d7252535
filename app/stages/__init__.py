"""The pure stages of a take and the delivery order they keep.

No Kafka, Faust, Redis or torch client is imported here (tests/test_architecture.py checks it): the
producer comes in through ``delivery.RecordSink``, the model through a plain function, the shared
cache through ``cache.AnswerStore``. Tested with plain calls.
"""
