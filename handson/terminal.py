"""A terminal that talks to the sandbox as a student: the AWS CLI, curl, any AWS SDK.

``handson sandbox env`` prints the shell lines, and ``eval "$(handson sandbox env)"`` is
all a learner types: then the article's ``aws ecs describe-services ...`` and ``curl
http://$ALB_DNS/health`` work as written.

- The AWS CLI reads a config file of the kit's own (never your ``~/.aws/config``), with a
  profile per student: the sandbox's endpoint (``endpoint_url``, which the AWS CLI and the
  SDKs read from a profile), the student's role, assumed from a source profile that holds
  the sandbox's fixed test keys, and the region. ``AWS_PROFILE`` picks the student.
- Variables that would win over a profile (``AWS_ACCESS_KEY_ID``, ``AWS_REGION``,
  ``AWS_ENDPOINT_URL``, ...) are unset or set to the sandbox's values.
- ``http_proxy`` sends plain-HTTP requests, such as ``curl http://<ALB DNS name>/``, to the
  sandbox's ALB proxy, which answers for the ALB's real DNS name; ``no_proxy`` keeps local
  addresses (the sandbox's own endpoint) away from it.
"""

from __future__ import annotations

import configparser
import json
import os
import shlex
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from handson.connection import DEFAULT_REGION, check_region, check_student, sandbox_access
from handson.exceptions import ConfigurationError
from handson.i18n import _

__all__ = [
    "SOURCE_PROFILE",
    "TerminalEnvironment",
    "jupyter_lab",
    "set_lab_defaults",
    "terminal_environment",
]

# The profile holding the sandbox's fixed test keys, from which a student's role is assumed.
SOURCE_PROFILE = "handson-sandbox"
# Variables that take precedence over a profile's settings in the AWS CLI and SDKs.
OVERRIDING = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
)
LOCAL_HOSTS = "127.0.0.1,localhost,::1"
# JupyterLab's defaults in the kit's own environment (its app settings: a language chosen in
# JupyterLab's Settings menu still wins). The Japanese language pack is a dependency.
LAB_OVERRIDES = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
TRANSLATION_PLUGIN = "@jupyterlab/translation-extension:plugin"
# JupyterLab asks on first start whether to fetch Jupyter's news: in a course the question
# covers the lesson, so the kit's default is not to (Settings > Notifications turns it on).
NEWS_PLUGIN = "@jupyterlab/apputils-extension:notification"
LAB_LOCALES = {"en": "en", "ja": "ja_JP"}


@dataclass(frozen=True)
class TerminalEnvironment:
    """What a terminal needs to talk to the sandbox as ``student``: the variables to set,
    those to unset, and the kit's AWS config file they point at."""

    student: str
    config_file: Path
    variables: dict[str, str]
    unset: tuple[str, ...]

    def shell(self) -> str:
        """The lines for ``eval`` in bash or zsh."""
        lines = [f"unset {' '.join(self.unset)}"]
        lines += [f"export {name}={shlex.quote(value)}" for name, value in self.variables.items()]
        return "\n".join(lines) + "\n"

    def apply(self, environ: Mapping[str, str]) -> dict[str, str]:
        """``environ`` as the shell lines would leave it (for subprocesses)."""
        applied = {k: v for k, v in environ.items() if k not in self.unset}
        applied.update(self.variables)
        return applied


def terminal_environment(
    student: str = "student01", *, region: str = DEFAULT_REGION
) -> TerminalEnvironment:
    """Start the sandbox if needed, write the student's profile into the kit's own AWS
    config file (other students' profiles there stay), and return the environment that
    points a terminal at it. Your own ``~/.aws`` files are never read or written."""
    check_student(student)
    check_region(region)
    if student == SOURCE_PROFILE:
        raise ConfigurationError(
            _(
                "student={student!r} is the name of the kit's own source profile: pick another "
                "name, e.g. 'student01'."
            ).format(student=student)
        )
    access = sandbox_access(student)
    directory = Path(access.home) / "aws"
    directory.mkdir(parents=True, exist_ok=True)
    config_file = directory / "config"
    credentials_file = directory / "credentials"  # empty: no profile of yours leaks in
    credentials_file.touch()
    config = configparser.ConfigParser(interpolation=None)
    config.read(config_file)
    config[f"profile {SOURCE_PROFILE}"] = {
        "aws_access_key_id": access.access_key,
        "aws_secret_access_key": access.secret_key,
        "region": region,
        "endpoint_url": access.endpoint_url,
    }
    config[f"profile {student}"] = {
        "source_profile": SOURCE_PROFILE,
        "role_arn": access.role_arn,
        # The AWS CLI keeps assumed-role keys in ~/.aws/cli/cache by role and session name:
        # a name of this sandbox run's own, so a restarted sandbox never gets old keys.
        "role_session_name": f"handson-{access.sandbox_id[:8]}-{student}"[:64],
        "region": region,
        "endpoint_url": access.endpoint_url,
    }
    written = config_file.with_suffix(".tmp")
    with written.open("w") as handle:
        config.write(handle)
    os.replace(written, config_file)
    endpoint_host = urllib.parse.urlsplit(access.endpoint_url).hostname or ""
    local = ",".join(dict.fromkeys([*LOCAL_HOSTS.split(","), endpoint_host]))
    variables = {
        "AWS_CONFIG_FILE": str(config_file),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials_file),
        "AWS_PROFILE": student,
        "HANDSON_STUDENT": student,  # `handson logs tail` and the kit's other commands
        "AWS_DEFAULT_REGION": region,
        "AWS_DEFAULT_OUTPUT": "json",
        "AWS_PAGER": "",
        "http_proxy": access.alb_proxy_url,
        "no_proxy": local,
        "NO_PROXY": local,
    }
    return TerminalEnvironment(
        student=student, config_file=config_file, variables=variables, unset=OVERRIDING
    )


def set_lab_defaults(lang: str, overrides: Path = LAB_OVERRIDES) -> None:
    """Make ``lang`` ("en" or "ja") JupyterLab's display language in the kit's environment,
    with no news question (unless a default there says otherwise), keeping any other default
    there."""
    settings = json.loads(overrides.read_text()) if overrides.is_file() else {}
    settings.setdefault(TRANSLATION_PLUGIN, {})["locale"] = LAB_LOCALES[lang]
    settings.setdefault(NEWS_PLUGIN, {}).setdefault("fetchNews", "false")
    overrides.parent.mkdir(parents=True, exist_ok=True)
    overrides.write_text(json.dumps(settings, indent=2) + "\n")


def jupyter_lab(
    terminal: TerminalEnvironment, environ: Mapping[str, str], *, root: bool
) -> tuple[list[str], dict[str, str]]:
    """The command and environment that start JupyterLab with ``terminal`` applied, so that
    its terminals talk to the sandbox: the kit's ``bin`` first on ``PATH`` (``aws``,
    ``handson``), the user's shell without ``-l`` (a login shell's /etc/profile would reset
    ``PATH``), and ``--allow-root`` when run as root (in a container), which JupyterLab
    otherwise refuses."""
    kit_bin = str(Path(sys.executable).parent)
    env = terminal.apply(environ)
    env["PATH"] = os.pathsep.join([kit_bin, env.get("PATH", "")])
    shell = env.get("SHELL") or "/bin/sh"
    argv = [
        str(Path(kit_bin) / "jupyter"),
        "lab",
        f"--ServerApp.terminado_settings={json.dumps({'shell_command': [shell]})}",
    ]
    if root:
        argv.append("--allow-root")
    return argv, env
