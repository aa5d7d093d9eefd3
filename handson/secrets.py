"""The DB credentials in AWS Secrets Manager (chapter 5).

The secret holds the JSON the series' tasks read (``username``, ``password``, ``engine``,
``host``, ``port``, ``dbname``); ECS injects single keys of it into the container. The
password is never returned, logged or shown: the Lab's call log redacts ``SecretString``.
"""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from botocore.exceptions import ClientError

from handson import pricing
from handson.aws_errors import step
from handson.connection import Lab
from handson.exceptions import ConfigurationError
from handson.i18n import _

__all__ = [
    "PASSWORD_SYMBOLS",
    "delete_db_secret",
    "ensure_db_secret",
    "find_db_secret",
    "generate_password",
]

# Printable ASCII that RDS accepts in a master password: anything but '/', '@', '"' and
# space. These symbols are the ones the series' Terraform allows for its random password.
PASSWORD_SYMBOLS = "!#$%&*()-_=+[]{}<>:?"
_PASSWORD_ALPHABET = string.ascii_letters + string.digits + PASSWORD_SYMBOLS
# RDS for PostgreSQL: master passwords of 8 to 128 characters.
_PASSWORD_LENGTHS = range(8, 129)
# The fields compared to decide whether the secret needs a new version.
_CONNECTION_FIELDS = ("username", "engine", "host", "port", "dbname")


def _secret_name(lab: Lab) -> str:
    return lab.name("db-credentials")


def generate_password(length: int = 32) -> str:
    """A random password RDS accepts: letters, digits and a few symbols, with at least
    one of each kind (drawn with the ``secrets`` module, like Terraform's random_password).

    Makes no API call. Chapter 5.
    """
    if length not in _PASSWORD_LENGTHS:
        raise ConfigurationError(
            _(
                "length={length}: RDS master passwords have 8 to 128 characters "
                "(the series uses 32)."
            ).format(length=length)
        )
    while True:
        password = "".join(secrets.choice(_PASSWORD_ALPHABET) for _i in range(length))
        if (
            any(c.islower() for c in password)
            and any(c.isupper() for c in password)
            and any(c.isdigit() for c in password)
            and any(c in PASSWORD_SYMBOLS for c in password)
        ):
            return password


def _describe(lab: Lab) -> dict[str, Any] | None:
    try:
        return lab.client("secretsmanager").describe_secret(SecretId=_secret_name(lab))
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise


@step("Look up the DB secret")
def find_db_secret(lab: Lab) -> str | None:
    """The DB secret's ARN, or None when there is no such secret.

    Calls DescribeSecret (read only; the value is not read). Chapter 5.
    """
    secret = _describe(lab)
    return None if secret is None else str(secret["ARN"])


def _check_secret_input(host: str, port: int, dbname: str, username: str, password: str) -> None:
    for label, value in (("host", host), ("dbname", dbname), ("username", username)):
        if not isinstance(value, str) or not value:
            raise ConfigurationError(
                _("{label}={value!r}: give the DB instance's {label}.").format(
                    label=label, value=value
                )
            )
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigurationError(
            _("port={port!r}: give the DB instance's port, e.g. 5432.").format(port=port)
        )
    # Never echo the password itself, not even in an error.
    if not isinstance(password, str) or not password:
        raise ConfigurationError(_("password is empty: give the DB master password."))


@step("Store the DB credentials in Secrets Manager")
def ensure_db_secret(
    lab: Lab,
    *,
    host: str,
    port: int,
    dbname: str,
    username: str,
    password: str,
    replace_password: bool = False,
) -> str:
    """Store the DB connection details and password as one JSON secret, which ECS reads
    for the tasks.

    Calls DescribeSecret; CreateSecret when missing. When the secret exists, GetSecretValue,
    then PutSecretValue only if a connection field differs; the stored password is kept
    (it is the one the DB has) unless ``replace_password`` is set (after the DB's master
    password was just set to ``password``). A secret scheduled for deletion is restored
    first (RestoreSecret). Idempotent. Chapter 5. Returns the secret's ARN.
    """
    _check_secret_input(host, port, dbname, username, password)
    client = lab.client("secretsmanager")
    name = _secret_name(lab)
    wanted = {
        "username": username,
        "password": password,
        "engine": "postgres",
        "host": host,
        "port": port,
        "dbname": dbname,
    }
    secret = _describe(lab)
    if secret is None:
        return str(
            client.create_secret(
                Name=name,
                Description=f"Master credentials of the RDS instance {lab.name('db')}",
                SecretString=json.dumps(wanted),
                Tags=lab.tag_list(name),
            )["ARN"]
        )
    if "DeletedDate" in secret:
        # Deleted with a recovery window (e.g. from the console): its name stays taken
        # until the window ends, and the password it holds is still the DB's.
        client.restore_secret(SecretId=name)
    current = _stored_value(client, name)
    if not replace_password and "password" in current:
        wanted["password"] = current["password"]
    if any(current.get(key) != wanted[key] for key in (*_CONNECTION_FIELDS, "password")):
        client.put_secret_value(SecretId=name, SecretString=json.dumps(wanted))
    return str(secret["ARN"])


def _stored_value(client: Any, name: str) -> dict[str, Any]:
    """The secret's current JSON object; an empty one when it holds something else."""
    text = client.get_secret_value(SecretId=name).get("SecretString") or ""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


@step("Delete the DB secret")
def delete_db_secret(lab: Lab) -> None:
    """Delete the DB secret at once, without a recovery window (the series' recovery
    window 0), so the name can be used again right away.

    Calls DescribeSecret, then DeleteSecret (ForceDeleteWithoutRecovery). Idempotent.
    Teardown.
    """
    if _describe(lab) is not None:
        lab.client("secretsmanager").delete_secret(
            SecretId=_secret_name(lab), ForceDeleteWithoutRecovery=True
        )


def hourly_cost(lab: Lab) -> pricing.Estimate:
    """What the student's secrets cost per hour (each bills per month). Calls
    ListSecrets. Read-only."""
    return pricing.secrets(lab.region, len(leftovers(lab)))


def leftovers(lab: Lab) -> list[tuple[str, str, str]]:
    """What of this module is still tagged for the student: the Secrets Manager secrets, as
    (service, kind, id) rows for teardown.leftovers."""
    listed = lab.client("secretsmanager").list_secrets()["SecretList"]
    return [("secretsmanager", "secret", s["Name"]) for s in listed if lab.owns(s.get("Tags"))]
