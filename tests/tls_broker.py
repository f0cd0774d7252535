"""A locked-down local broker for the security tests: TLS, SASL_SSL with SCRAM-SHA-512, and mTLS.

Certificates come from tests/tls_certs.py; the SCRAM user is written into the cluster metadata at format
time (``kafka-storage format --add-scram``). The PLAINTEXT listener kafka.sh always opens stays for its
readiness check; the clients under test get only the secure addresses.
"""

from __future__ import annotations

from pathlib import Path

from harness.kafka_broker import LocalKafka, free_port
from tests.tls_certs import make_certificates, scram_sha512_credential


class SecureKafka(LocalKafka):
    """LocalKafka plus a SASL_SSL listener (SCRAM-SHA-512, and PLAIN for the log checks) and an SSL listener
    that requires client certificates."""

    def __init__(self, data_dir: Path) -> None:
        data_dir = Path(data_dir)
        self.client, keystore = make_certificates(data_dir / "tls")
        self.sasl_port = free_port()
        self.mtls_port = free_port()
        extra = data_dir / "secure.properties"
        scram = data_dir / "scram.credentials"
        scram.write_text(scram_sha512_credential(self.client.username, self.client.password) + "\n")
        super().__init__(data_dir / "broker", env={"KAFKA_EXTRA_CONFIG": str(extra), "KAFKA_SCRAM_CREDENTIALS": str(scram)})
        while len({self.port, self.controller_port, self.sasl_port, self.mtls_port}) < 4:
            self.sasl_port, self.mtls_port = free_port(), free_port()
        extra.write_text(
            f"""listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port},\
SASL_SSL://127.0.0.1:{self.sasl_port},SSL://127.0.0.1:{self.mtls_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{self.port},SASL_SSL://127.0.0.1:{self.sasl_port},\
SSL://127.0.0.1:{self.mtls_port}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \
  user_{self.client.username}="{self.client.password}";
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
ssl.truststore.type=PEM
ssl.truststore.location={self.client.ca}
listener.name.ssl.ssl.client.auth=required
listener.name.sasl_ssl.ssl.client.auth=none
"""
        )

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def mtls_bootstrap(self) -> str:
        return f"127.0.0.1:{self.mtls_port}"

    def sasl_env(self) -> dict[str, str]:
        """ENRICHER_* variables of a SASL_SSL/SCRAM-SHA-512 client: secrets only as files."""
        return {
            "ENRICHER_BOOTSTRAP_SERVERS": self.sasl_bootstrap,
            "ENRICHER_SECURITY_PROTOCOL": "SASL_SSL",
            "ENRICHER_SASL_MECHANISM": "SCRAM-SHA-512",
            "ENRICHER_SASL_USERNAME": self.client.username,
            "ENRICHER_SASL_PASSWORD_FILE": str(self.client.password_file),
            "ENRICHER_SSL_CA_FILE": str(self.client.ca),
        }

    def plain_env(self) -> dict[str, str]:
        """SASL_SSL with PLAIN: the mechanism whose token is the password in clear (the log-hygiene worst case)."""
        return {**self.sasl_env(), "ENRICHER_SASL_MECHANISM": "PLAIN"}

    def mtls_env(self) -> dict[str, str]:
        """ENRICHER_* variables of an SSL client authenticated by its certificate (key encrypted)."""
        return {
            "ENRICHER_BOOTSTRAP_SERVERS": self.mtls_bootstrap,
            "ENRICHER_SECURITY_PROTOCOL": "SSL",
            "ENRICHER_SSL_CA_FILE": str(self.client.ca),
            "ENRICHER_SSL_CERT_FILE": str(self.client.cert),
            "ENRICHER_SSL_KEY_FILE": str(self.client.key),
            "ENRICHER_SSL_KEY_PASSWORD_FILE": str(self.client.key_password_file),
        }
