"""The service against a locked-down broker: SASL_SSL with SCRAM-SHA-512, mTLS, secrets from files, clean logs.

One broker (tests/tls_broker.py) for the module. The worker, the backfill and the tools are real processes
configured only through ENRICHER_* variables and secret files, as in production. Bounded at about 3 minutes
here (broker start ~10 s, three worker starts and one backfill with the real model).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from app.kafka.topics import create_topics
from app.settings import Settings
from harness.worker_process import OFFLINE_ENV, REPO_ROOT, WorkerProcess
from schemas.events import DeadLetter, EnrichedTransaction, ReceiptEvent
from tests.delivery import committed_at_end, read_topic
from tests.tls_broker import SecureKafka
from tests.tls_certs import make_certificates

pytestmark = [pytest.mark.integration, pytest.mark.model]

PARTITIONS = 3
FIRST_BATCH, SECOND_BATCH, MALFORMED = 20, 10, 3


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory) -> SecureKafka:
    broker = SecureKafka(tmp_path_factory.mktemp("secure-kafka"))
    broker.start()
    yield broker
    broker.stop()


def _settings(env: dict[str, str]) -> Settings:
    return Settings(**{name.removeprefix("ENRICHER_").lower(): value for name, value in env.items()})


def _cli(env: dict[str, str], *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **OFFLINE_ENV, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def _run_worker(env: dict[str, str], log: Path, settings: Settings, topics: dict[str, str], receipts: int) -> tuple:
    worker = WorkerProcess(env, log).start()
    try:
        outputs = read_topic(settings.consumer_config("reader"), topics["output"], receipts, timeout_s=300)
        letters = read_topic(settings.consumer_config("reader"), topics["dlq"], MALFORMED, timeout_s=60)
        offsets = committed_at_end({**settings.admin_config()}, env["ENRICHER_GROUP_ID"], topics["input"], PARTITIONS, timeout_s=60)
    finally:
        exit_code = worker.stop(signal.SIGTERM)
    return outputs, letters, offsets, exit_code, worker.log_text()


def _log_in_and_stop(env: dict[str, str], tmp_path: Path) -> str:
    worker = WorkerProcess(env, tmp_path / "worker-plain-debug.log").start()
    deadline = time.monotonic() + 240
    try:
        while worker.running and time.monotonic() < deadline:
            if "Authenticated as" in worker.log_text() and "Fetch" in worker.log_text():
                break
            time.sleep(1)
    finally:
        exit_code = worker.stop(signal.SIGTERM)
    log = worker.log_text()
    assert "Authenticated as" in log and exit_code == 0, log[-3000:]
    return log


def test_worker_and_tools_work_over_sasl_ssl_and_mtls_and_their_logs_leak_nothing(secure_broker, default_model, tmp_path):
    run = uuid.uuid4().hex[:8]
    topics = {"input": f"receipts-{run}", "output": f"enriched-{run}", "dlq": f"dlq-{run}"}
    common = {
        "ENRICHER_INPUT_TOPIC": topics["input"],
        "ENRICHER_OUTPUT_TOPIC": topics["output"],
        "ENRICHER_DLQ_TOPIC": topics["dlq"],
        "ENRICHER_GROUP_ID": f"enricher-{run}",
        "ENRICHER_TOPIC_PARTITIONS": str(PARTITIONS),
        "ENRICHER_SESSION_TIMEOUT_S": "10",
        "ENRICHER_HEARTBEAT_INTERVAL_S": "1",
        "ENRICHER_MODEL_BASE_PATH": str(default_model.base),
        "ENRICHER_MODEL_ADAPTER_PATH": str(default_model.adapter),
    }
    sasl = {**common, **secure_broker.sasl_env()}
    mtls = {**common, **secure_broker.mtls_env()}
    sasl_settings, mtls_settings = _settings(sasl), _settings(mtls)
    info_logs: list[str] = []  # everything written at INFO: tools' stderr and the first worker's log
    all_logs: list[str] = []

    # Tools: topics over SASL_SSL, samples over mTLS (client certificate, encrypted key).
    created = _cli(sasl, "create-topics")
    assert created.returncode == 0, created.stderr[-3000:]
    produced = _cli(mtls, "produce-samples", "--count", str(FIRST_BATCH), "--seed", "7", "--malformed", str(MALFORMED))
    assert produced.returncode == 0, produced.stderr[-3000:]
    info_logs += [created.stderr, produced.stderr]

    # Worker 1: SASL_SSL / SCRAM-SHA-512 at INFO.
    outputs, letters, offsets, exit_code, log = _run_worker(
        sasl, tmp_path / "worker-info.log", sasl_settings, topics, FIRST_BATCH
    )
    info_logs.append(log)
    assert exit_code == 0, log[-3000:]
    assert len(outputs) == FIRST_BATCH, log[-3000:]
    assert sorted(DeadLetter.model_validate_json(m.value()).error.kind for m in letters) == sorted(
        ["invalid_json", "invalid_receipt", "invalid_json"]
    )
    assert all(c == h for c, h in offsets.values()), offsets

    # Worker 2: mTLS at DEBUG, same group: picks up after the committed offsets.
    produced = _cli(mtls, "produce-samples", "--count", str(SECOND_BATCH), "--seed", "8")
    assert produced.returncode == 0, produced.stderr[-3000:]
    info_logs.append(produced.stderr)
    outputs, letters, offsets, exit_code, debug_log = _run_worker(
        {**mtls, "ENRICHER_LOG_LEVEL": "DEBUG"}, tmp_path / "worker-debug.log", mtls_settings, topics,
        FIRST_BATCH + SECOND_BATCH,
    )
    assert exit_code == 0, debug_log[-3000:]
    assert all(c == h for c, h in offsets.values()), offsets
    assert len(letters) == MALFORMED  # the second worker re-published none of the first one's dead letters

    inputs = read_topic(sasl_settings.consumer_config("reader"), topics["input"], FIRST_BATCH + SECOND_BATCH + MALFORMED, timeout_s=60)
    receipts = {}
    for message in inputs:
        try:
            event = ReceiptEvent.model_validate_json(message.value())
        except ValueError:
            continue  # one of the malformed samples
        receipts[event.event_id] = event
    assert len(receipts) == FIRST_BATCH + SECOND_BATCH
    enriched = [EnrichedTransaction.model_validate_json(m.value()) for m in outputs]
    assert sorted(t.event_id for t in enriched) == sorted(receipts), "every receipt enriched exactly once"
    for transaction in enriched:
        assert [i.raw_name for i in transaction.items] == [i.name for i in receipts[transaction.event_id].receipt.items]

    tail = _cli(mtls, "tail", "--dlq", "--max", str(MALFORMED), "--timeout", "60")
    assert tail.returncode == 0 and f"-- {MALFORMED} message(s)" in tail.stdout, tail.stderr[-3000:]
    info_logs.append(tail.stderr)

    # Worker 3: SASL_SSL with PLAIN at DEBUG, whose token is the password in clear and which aiokafka logs
    # with every request at DEBUG. It only has to log in and start consuming.
    plain_log = _log_in_and_stop({**common, **secure_broker.plain_env(), "ENRICHER_LOG_LEVEL": "DEBUG"}, tmp_path)
    assert "<sasl exchange redacted>" in plain_log, "the SASL requests were logged and redacted"

    # The backfill replays the whole input over SASL_SSL into its own topics.
    backfill_topics = [f"backfill-{run}", f"backfill-dlq-{run}"]
    create_topics(sasl_settings.admin_config(), backfill_topics, PARTITIONS)
    offsets_from = ",".join(f"{p}:0" for p in range(PARTITIONS))
    backfill = _cli(
        sasl, "backfill", "--no-progress", "--from-offsets", offsets_from,
        "--output-topic", backfill_topics[0], "--dlq-topic", backfill_topics[1], timeout_s=400,
    )
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    assert f"receipts={FIRST_BATCH + SECOND_BATCH} " in backfill.stdout and f"dead_letters={MALFORMED} " in backfill.stdout
    replayed = read_topic(sasl_settings.consumer_config("reader"), backfill_topics[0], FIRST_BATCH + SECOND_BATCH, timeout_s=60)
    assert sorted(EnrichedTransaction.model_validate_json(m.value()).event_id for m in replayed) == sorted(receipts)
    info_logs.append(backfill.stderr)
    all_logs += info_logs + [debug_log, plain_log]

    # Secrets never appear, at any level.
    client = secure_broker.client
    secrets = {"SASL password": client.password, "key password": client.key_password}
    secrets |= {f"private key line {n}": line for n, line in enumerate(client.key_material())}
    for log_text in all_logs:
        for what, secret in secrets.items():
            assert secret not in log_text, f"{what} found in a log"
    # At INFO no payload text and no client ids of the produced receipts.
    names = {item.name for event in receipts.values() for item in event.receipt.items}
    client_ids = {event.client_id for event in receipts.values()}
    info = "\n".join(info_logs)
    assert [n for n in names if n in info] == []
    assert [c for c in client_ids if c in info] == []
    assert "this is not json" not in info and "take_done" in info
    # The DEBUG log is a real DEBUG log (otherwise the secret grep above proves nothing about it).
    assert "level=DEBUG" in debug_log


def test_wrong_password_fails_fast_with_an_error_naming_what_to_check(secure_broker, tmp_path):
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    env = {**secure_broker.sasl_env(), "ENRICHER_SASL_PASSWORD_FILE": str(wrong)}

    # A hang would end in TimeoutExpired; exit code 3 is the access check's refusal, not a later timeout.
    tool = _cli(env, "create-topics", timeout_s=90)
    worker = _cli(env, "worker", timeout_s=90)  # stops before loading the model or joining the group

    for result in (tool, worker):
        assert result.returncode == 3, result.stderr[-3000:]
        assert "SASL authentication with the broker at" in result.stderr
        assert f"ENRICHER_SASL_PASSWORD_FILE={wrong}" in result.stderr
        assert "not-the-password" not in result.stderr + result.stdout


def test_a_client_without_its_certificate_is_refused_by_the_mtls_listener(secure_broker):
    env = {
        name: value
        for name, value in secure_broker.mtls_env().items()
        if name not in ("ENRICHER_SSL_CERT_FILE", "ENRICHER_SSL_KEY_FILE", "ENRICHER_SSL_KEY_PASSWORD_FILE")
    }
    result = _cli(env, "create-topics", timeout_s=90)
    assert result.returncode == 3, result.stderr[-3000:]
    assert "TLS handshake with the broker at" in result.stderr


def test_a_broker_certificate_from_another_ca_is_refused(secure_broker, tmp_path):
    other_ca = make_certificates(tmp_path / "other")[0].ca
    env = {**secure_broker.sasl_env(), "ENRICHER_SSL_CA_FILE": str(other_ca)}
    result = _cli(env, "create-topics", timeout_s=90)
    assert result.returncode == 3, result.stderr[-3000:]
    assert "TLS handshake with the broker at" in result.stderr and "certificate verify failed" in result.stderr
