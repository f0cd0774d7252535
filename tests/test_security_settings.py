"""Security settings: combinations, secrets from files, what ends up in client configs and what never in text."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from app.settings import Settings
from tests.tls_certs import make_certificates


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    client, _keystore = make_certificates(tmp_path_factory.mktemp("tls"))
    return client


def _sasl(tls, **overrides) -> Settings:
    values = dict(
        security_protocol="SASL_SSL",
        sasl_username=tls.username,
        sasl_password_file=tls.password_file,
        ssl_ca_file=tls.ca,
    )
    return Settings(**(values | overrides))


def test_default_is_plaintext_without_security_properties():
    settings = Settings()
    assert settings.admin_config()["security.protocol"] == "PLAINTEXT"
    assert not any(key.startswith(("sasl.", "ssl.")) for key in settings.producer_config())


def test_sasl_ssl_reads_the_password_from_its_file_into_every_librdkafka_config(tls):
    settings = _sasl(tls)
    for config in (settings.producer_config(), settings.admin_config(), settings.consumer_config("g")):
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.mechanism"] == "SCRAM-SHA-512"
        assert config["sasl.username"] == tls.username
        assert config["sasl.password"] == tls.password  # the trailing newline of the file is not part of it
        assert config["ssl.ca.location"] == str(tls.ca)
        assert config["ssl.endpoint.identification.algorithm"] == "https"
    assert settings.consumer_config("backfill-1")["group.id"] == "backfill-1"


def test_secrets_are_in_no_repr_str_or_dump(tls):
    settings = _sasl(tls, ssl_cert_file=tls.cert, ssl_key_file=tls.key, ssl_key_password_file=tls.key_password_file)
    text = repr(settings) + str(settings) + settings.model_dump_json() + repr(settings.sasl_password)
    assert tls.password not in text and tls.key_password not in text
    assert settings.sasl_password.get_secret_value() == tls.password


def test_mtls_puts_certificate_key_and_key_password_in_the_config(tls):
    settings = Settings(
        security_protocol="SSL",
        ssl_ca_file=tls.ca,
        ssl_cert_file=tls.cert,
        ssl_key_file=tls.key,
        ssl_key_password_file=tls.key_password_file,
        ssl_verify_hostname=False,
    )
    config = settings.admin_config()
    assert config["ssl.certificate.location"] == str(tls.cert)
    assert config["ssl.key.location"] == str(tls.key)
    assert config["ssl.key.password"] == tls.key_password
    assert config["ssl.endpoint.identification.algorithm"] == "none"
    context = settings.ssl_context()  # the encrypted key loads with the password from the file
    assert context.check_hostname is False


def test_a_wrong_key_password_is_an_error_naming_the_files_not_the_password(tls, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("definitely-wrong\n")
    settings = Settings(
        security_protocol="SSL", ssl_ca_file=tls.ca, ssl_cert_file=tls.cert, ssl_key_file=tls.key, ssl_key_password_file=wrong
    )
    with pytest.raises(ValueError, match="ENRICHER_SSL_KEY_FILE=") as error:
        settings.ssl_context()
    assert "definitely-wrong" not in str(error.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sasl_username": None}, "SASL_SSL needs ENRICHER_SASL_USERNAME"),
        ({"sasl_password_file": None}, "SASL_SSL needs ENRICHER_SASL_PASSWORD_FILE"),
        ({"security_protocol": "PLAINTEXT", "ssl_ca_file": None}, "ENRICHER_SECURITY_PROTOCOL=PLAINTEXT; use SASL_SSL"),
        ({"security_protocol": "SASL_PLAINTEXT"}, "ENRICHER_SSL_CA_FILE set but ENRICHER_SECURITY_PROTOCOL=SASL_PLAINTEXT"),
        ({"ssl_cert_file": "CERT"}, "needs both ENRICHER_SSL_CERT_FILE and ENRICHER_SSL_KEY_FILE"),
        ({"ssl_key_password_file": "KEYPW"}, "ENRICHER_SSL_KEY_PASSWORD_FILE is set without ENRICHER_SSL_KEY_FILE"),
    ],
)
def test_inconsistent_security_settings_are_rejected_with_the_variable_to_fix(tls, overrides, message):
    files = {"CERT": tls.cert, "KEYPW": tls.key_password_file}
    overrides = {key: files.get(value, value) if isinstance(value, str) else value for key, value in overrides.items()}
    with pytest.raises(ValidationError, match=message):
        _sasl(tls, **overrides)


def test_a_missing_password_file_names_the_variable_and_the_path(tls, tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ValidationError, match=f"ENRICHER_SASL_PASSWORD_FILE={missing}: no such file"):
        _sasl(tls, sasl_password_file=missing)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_password_file_names_the_variable_and_the_path(tls, tmp_path):
    locked = tmp_path / "locked"
    locked.write_text("s3cret-value\n")
    locked.chmod(0)
    with pytest.raises(ValidationError, match="permission denied") as error:
        _sasl(tls, sasl_password_file=locked)
    assert "s3cret-value" not in str(error.value)


def test_an_empty_or_binary_password_file_is_rejected_without_echoing_it(tls, tmp_path):
    empty, binary = tmp_path / "empty", tmp_path / "binary"
    empty.write_text("\n")
    binary.write_bytes(b"\xff\xfe-secret-bytes")
    with pytest.raises(ValidationError, match="the file is empty"):
        _sasl(tls, sasl_password_file=empty)
    with pytest.raises(ValidationError, match="not UTF-8 text") as error:
        _sasl(tls, sasl_password_file=binary)
    assert "secret-bytes" not in str(error.value)


def test_a_missing_ca_file_names_the_variable_and_the_path(tls, tmp_path):
    with pytest.raises(ValidationError, match=f"ENRICHER_SSL_CA_FILE={tmp_path / 'ca.pem'}: no such file"):
        _sasl(tls, ssl_ca_file=tmp_path / "ca.pem")


def test_validation_errors_do_not_echo_input_values():
    with pytest.raises(ValidationError) as error:
        Settings(topic_partitions="hunter2-looks-like-a-password")
    assert "hunter2" not in str(error.value)


def test_settings_come_from_enricher_variables(tls, monkeypatch):
    monkeypatch.setenv("ENRICHER_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("ENRICHER_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("ENRICHER_SASL_USERNAME", tls.username)
    monkeypatch.setenv("ENRICHER_SASL_PASSWORD_FILE", str(tls.password_file))
    monkeypatch.setenv("ENRICHER_SSL_CA_FILE", str(tls.ca))
    config = Settings().producer_config()
    assert (config["sasl.mechanism"], config["sasl.password"]) == ("SCRAM-SHA-256", tls.password)
