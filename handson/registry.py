"""The ECR repository of chapter 4 and the image push of chapter 7.

On real AWS the image is built and pushed with Docker, as the ECR console's "View push
commands" shows (login, build, tag, push). The sandbox has no Docker: there the same step
records the build context as an OCI manifest with ``ecr.put_image`` and the sandbox runs
the context in place (see ``handson.image_format``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import sh

from handson.aws_errors import step
from handson.connection import Lab
from handson.exceptions import ConfigurationError, DockerError, HandsonError
from handson.home import kit_home
from handson.i18n import N_, _
from handson.image_format import (
    OCI_MANIFEST_MEDIA_TYPE,
    ImageConfig,
    build_manifest,
    image_digest,
    parse_dockerfile,
    parse_image_uri,
)

__all__ = [
    "APP_DIR",
    "PULL_ACTIONS",
    "PushedImage",
    "Repository",
    "app_version",
    "apps_dir",
    "copy_app",
    "delete_repository",
    "ensure_repository",
    "ensure_repository_policy",
    "get_repository",
    "push_commands",
    "push_image",
    "set_app_version",
    "image_config",
    "show_image_config",
    "show_images",
]

# The kit's API (chapter 6's image): <repository root>/app, holding its Dockerfile.
APP_DIR = Path(__file__).resolve().parents[1] / "app"
# What a task's execution role needs to pull an image (chapter 4's repository policy).
PULL_ACTIONS = (
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
)
POLICY_SID = "AllowExecutionRolePull"

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")
# The seed's ISSUE: the buildx plugin is missing or broken. Docker then says so on stderr
# ("BuildKit is enabled but the buildx component is missing or broken", or a warning that
# it fell back to the legacy builder), and DOCKER_BUILDKIT=0 forces the legacy builder.
_BUILDX = re.compile(r"buildx|buildkit", re.IGNORECASE)
# stderr text of a Docker CLI that can't reach its daemon -> what the learner does about it.
_DAEMON_PROBLEMS = [
    (
        "permission denied while trying to connect to the docker daemon",
        N_(
            "Docker is running but this user may not use it: add the user to the 'docker' group "
            "(sudo usermod -aG docker $USER, then log in again)"
        ),
    ),
    (
        "cannot connect to the docker daemon",
        N_("Start Docker (Docker Desktop, or the docker service)"),
    ),
    ("error during connect", N_("Start Docker (Docker Desktop, or the docker service)")),
]
# What to check when a docker command fails for another reason, by subcommand.
_DOCKER_ADVICE = {
    "login": N_(
        "Check that these AWS credentials may call ecr:GetAuthorizationToken and that "
        "the machine reaches the registry."
    ),
    "build": N_(
        "Fix the Dockerfile or the files it copies (see docker's output above), then run "
        "the cell again."
    ),
    "tag": N_("The image built above should exist locally: run the cell again."),
    "push": N_(
        "ECR's login lasts 12 hours and the repository must exist: run the cell again, or "
        "notebook 00 if the repository is missing."
    ),
}
_TAIL_LINES = 12
# The app's version line in main.py, which GET / answers as "version".
_VERSION_LINE = re.compile(r'^VERSION = "(?P<version>[^"\n]*)"$', re.MULTILINE)
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}$")
_COPY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Repository:
    """An ECR repository: name, URI (``<account>.dkr.ecr.<region>.amazonaws.com/<name>``), ARN."""

    name: str
    uri: str
    arn: str

    @property
    def registry(self) -> str:
        """The registry host that ``docker login`` signs in to."""
        return self.uri.split("/", 1)[0]


@dataclass(frozen=True)
class PushedImage:
    """An image in ECR: ``uri`` is the tagged reference a task definition uses
    (``<repository uri>:<tag>``), ``digest`` the ``sha256:...`` ECR reports."""

    uri: str
    tag: str
    digest: str


# ------------------------------------------------------------------ repository


@step("create the ECR repository")
def ensure_repository(lab: Lab) -> Repository:
    """ECR stores the app's images in a private repository, ``<project>-<env>-app``: tags
    may be overwritten (MUTABLE, so ``latest`` can move) and each push is scanned.

    Calls DescribeRepositories, then CreateRepository (with the kit's tags) when missing,
    or PutImageTagMutability / PutImageScanningConfiguration when an existing repository's
    settings differ. Idempotent. Chapter 4.
    """
    ecr = lab.client("ecr")
    name = lab.name("app")
    try:
        found = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except ecr.exceptions.RepositoryNotFoundException:
        created = ecr.create_repository(
            repositoryName=name,
            imageTagMutability="MUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
            tags=lab.tag_list(name),
        )["repository"]
        return _repository(created)
    if found.get("imageTagMutability") != "MUTABLE":
        # An IMMUTABLE repository refuses the second push of "latest" (chapter 7 re-pushes it).
        ecr.put_image_tag_mutability(repositoryName=name, imageTagMutability="MUTABLE")
    if not found.get("imageScanningConfiguration", {}).get("scanOnPush"):
        ecr.put_image_scanning_configuration(
            repositoryName=name, imageScanningConfiguration={"scanOnPush": True}
        )
    return _repository(found)


@step("look up the ECR repository")
def get_repository(lab: Lab) -> Repository:
    """The student's ECR repository, ``<project>-<env>-app``, without creating it.

    Calls DescribeRepositories; raises NotFoundError (with "run notebook 00 first") when
    it is missing. Read-only. Chapter 4.
    """
    return _describe_repository(lab)


@step("let the execution role pull from ECR")
def ensure_repository_policy(lab: Lab, *, execution_role_arn: str) -> dict[str, Any]:
    """A repository policy lets the task execution role pull the app's image (BatchGetImage,
    GetDownloadUrlForLayer, BatchCheckLayerAvailability). Returns the policy document.

    Calls GetRepositoryPolicy, then SetRepositoryPolicy only when the policy in place differs
    (compared as parsed JSON). Idempotent. Chapter 4.
    """
    if not _ROLE_ARN.match(execution_role_arn):
        raise ConfigurationError(
            _(
                "execution_role_arn={execution_role_arn!r} is not an IAM role ARN "
                "(arn:aws:iam::<account>:role/<name>). Pass the ARN of the execution role "
                "{role!r} created in chapter 4."
            ).format(execution_role_arn=execution_role_arn, role=lab.name("ecs-execution-role"))
        )
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": POLICY_SID,
                "Effect": "Allow",
                "Principal": {"AWS": execution_role_arn},
                "Action": list(PULL_ACTIONS),
            }
        ],
    }
    ecr = lab.client("ecr")
    name = lab.name("app")
    try:
        current = json.loads(ecr.get_repository_policy(repositoryName=name)["policyText"])
    except ecr.exceptions.RepositoryPolicyNotFoundException:
        current = None
    # AWS may return the text re-formatted, so only the parsed documents are compared.
    if current != policy:
        ecr.set_repository_policy(repositoryName=name, policyText=json.dumps(policy))
    return policy


@step("delete the ECR repository")
def delete_repository(lab: Lab) -> None:
    """Deletes the repository with every image in it (the series' ``force_delete``).

    Calls DeleteRepository with force. Idempotent: a missing repository is nothing to do.
    Chapter 4 (teardown).
    """
    ecr = lab.client("ecr")
    try:
        ecr.delete_repository(repositoryName=lab.name("app"), force=True)
    except ecr.exceptions.RepositoryNotFoundException:
        pass  # already gone


# ---------------------------------------------------------------------- images


@step("push the app image")
def push_image(
    lab: Lab,
    *,
    context: Path = APP_DIR,
    tag: str = "latest",
    platform: str = "linux/amd64",
) -> PushedImage:
    """Puts the app's image into ECR under ``tag`` and returns its digest.

    On real AWS with Docker: GetAuthorizationToken, then ``docker login`` (password on stdin),
    ``docker build --platform <platform>`` (once more with DOCKER_BUILDKIT=0 if the buildx
    plugin is missing, as in the seed's ISSUE), ``docker tag``, ``docker push``, then
    DescribeImages for the digest. On the sandbox: DescribeImages, then PutImage with the
    build context's manifest only when the tag points elsewhere. Idempotent. Chapter 7.
    """
    context = Path(context).resolve()
    _check_push_options(lab, context=context, tag=tag, platform=platform)
    if lab.uses_docker:
        return _docker_push(lab, context=context, tag=tag, platform=platform)
    return _manifest_push(lab, context=context, tag=tag)


@step("show the push commands")
def push_commands(lab: Lab, *, tag: str = "latest") -> list[str]:
    """The four commands the ECR console's "View push commands" shows (login, build, tag,
    push), to run by hand from the app directory.

    Calls DescribeRepositories. Read-only. Chapter 7.
    """
    _check_tag(lab, tag)
    return _typed_push(lab, _describe_repository(lab), tag, "linux/amd64", ".")


def _typed_push(lab: Lab, repo: Repository, tag: str, platform: str, context: str) -> list[str]:
    """The ECR console's push commands, as a learner types them."""
    login = f"aws ecr get-login-password --region {lab.region} | " + shlex.join(
        ["docker", *_login_args(repo)]
    )
    return [
        login,
        shlex.join(["docker", *_build_args(repo, tag, platform, context)]),
        shlex.join(["docker", *_tag_args(repo, tag)]),
        shlex.join(["docker", *_push_args(repo, tag)]),
    ]


def _shown_context(context: Path) -> str:
    """The build context as typed in a terminal at the kit's folder (``app``), or absolute."""
    root = APP_DIR.parent
    return str(context.relative_to(root)) if context.is_relative_to(root) else str(context)


def image_config(context: Path = APP_DIR) -> ImageConfig:
    """What the Dockerfile in ``context`` gives the image when it runs (read locally)."""
    try:
        return parse_dockerfile(context)
    except ValueError as error:
        raise ConfigurationError(str(error)) from None


@step("read the image's Dockerfile")
def show_image_config(lab: Lab, context: Path = APP_DIR) -> pd.DataFrame:
    """How a container of the image runs, as its Dockerfile sets it: base image settings
    the task definition relies on (the user, the port, the health check, the command).

    Reads the Dockerfile only: no AWS call, no Docker. Chapter 6.
    """
    config = image_config(context)
    health = config.healthcheck
    none = _("(none)")
    rows = [
        (_("user"), config.user or _("root (no USER)")),
        (_("working directory"), config.workdir),
        (_("exposed ports"), ", ".join(str(p) for p in config.exposed_ports) or none),
        (_("environment"), ", ".join(f"{k}={v}" for k, v in config.env.items()) or none),
        (_("health check"), shlex.join(health["test"]) if health else none),
        (_("command"), shlex.join([*config.entrypoint, *config.cmd])),
    ]
    return pd.DataFrame(rows, columns=["setting", "value"])


def readable_size(size: int) -> str:
    """A size in bytes as people read it: ``8.3 kB``, ``48.5 MB`` (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


@step("list the ECR images")
def show_images(lab: Lab) -> pd.DataFrame:
    """The images in the repository, newest first: tags, short digest, push time, size
    (of the compressed layers, as ECR counts it: smaller than ``docker images`` shows).

    Calls DescribeImages (all pages). Read-only. Chapter 7.
    """
    pages = (
        lab.client("ecr").get_paginator("describe_images").paginate(repositoryName=lab.name("app"))
    )
    rows = [
        {
            "tags": ", ".join(sorted(detail.get("imageTags", []))) or _("<untagged>"),
            # Docker's short form: the first 12 hex digits.
            "digest": detail["imageDigest"][: len("sha256:") + 12],
            "pushed_at": detail.get("imagePushedAt"),
            "size": readable_size(detail.get("imageSizeInBytes", 0)),
        }
        for page in pages
        for detail in page["imageDetails"]
    ]
    frame = pd.DataFrame(rows, columns=["tags", "digest", "pushed_at", "size"])
    return frame.sort_values("pushed_at", ascending=False, ignore_index=True)


# ------------------------------------------------------------ the app's working copy


def apps_dir(lab: Lab) -> Path:
    """Where the learner's copies of the app live: ``$HANDSON_HOME/apps/<student>/<P-E>``
    (``~/.handson`` by default), outside the kit's git repository."""
    return kit_home() / "apps" / lab.student / lab.prefix


def copy_app(lab: Lab, name: str = "v2") -> Path:
    """A working copy of the app (``app/``: main.py, requirements.txt, Dockerfile) to change
    and push, like a checkout of the series' API repository. No AWS call.

    The copy is ``$HANDSON_HOME/apps/<student>/<P-E>/<name>``. An existing copy is kept as
    it is (your changes stay), so running the cell again is safe. Returns its path.
    """
    if not isinstance(name, str) or not _COPY_NAME.match(name):
        raise ConfigurationError(
            _(
                "name={name!r}: name the copy with letters, digits, '.', '_' or '-' "
                "(up to 64), e.g. 'v2'."
            ).format(name=name)
        )
    target = apps_dir(lab) / name
    if (target / "Dockerfile").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Copy next to the target, then rename: an interrupted copy never looks finished.
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        shutil.copytree(
            APP_DIR,
            staging / "app",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints"),
        )
        if target.exists():
            shutil.rmtree(target)  # a half-made copy without a Dockerfile
        (staging / "app").rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def app_version(context: Path) -> str:
    """The ``VERSION`` an app's main.py declares (what ``GET /`` answers). No AWS call."""
    main = _main_file(Path(context))
    found = _VERSION_LINE.search(main.read_text(encoding="utf-8"))
    if found is None:
        raise ConfigurationError(
            _(
                '{main} has no line VERSION = "...". Make a fresh copy with '
                "copy_app(lab, name=...) and change that line."
            ).format(main=main)
        )
    return found.group("version")


def set_app_version(context: Path, version: str) -> str:
    """Change the ``VERSION`` line of a copy's main.py, the change ``GET /`` will show once
    the new image runs. No AWS call; returns the version it replaced.

    The kit's own ``app/`` is never edited: change a copy made by :func:`copy_app`. Setting
    the version it already has changes nothing, so running the cell again is safe.
    """
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ConfigurationError(
            _(
                "version={version!r}: use up to 32 letters, digits, '.', '+', '_' or '-', "
                "e.g. '2.0.0'."
            ).format(version=version)
        )
    context = Path(context).resolve()
    if context == APP_DIR:
        raise ConfigurationError(
            _(
                "{context} is the kit's own app, which the other exercises deploy as 1.0.0. "
                "Change a copy instead: app_dir = handson.registry.copy_app(lab)."
            ).format(context=context)
        )
    previous = app_version(context)
    if previous != version:
        main = _main_file(context)
        text = main.read_text(encoding="utf-8")
        main.write_text(
            _VERSION_LINE.sub(f'VERSION = "{version}"', text, count=1), encoding="utf-8"
        )
    return previous


def _main_file(context: Path) -> Path:
    main = context / "main.py"
    if not main.is_file():
        raise ConfigurationError(
            _("{context} has no main.py. Pass the directory copy_app(lab) returned.").format(
                context=context
            )
        )
    return main


# --------------------------------------------------------------------- helpers


def _repository(data: dict[str, Any]) -> Repository:
    return Repository(
        name=data["repositoryName"], uri=data["repositoryUri"], arn=data["repositoryArn"]
    )


def _describe_repository(lab: Lab) -> Repository:
    # RepositoryNotFoundException becomes NotFoundError, "run notebook 00 first" (aws_errors).
    found = lab.client("ecr").describe_repositories(repositoryNames=[lab.name("app")])
    return _repository(found["repositories"][0])


def _check_push_options(lab: Lab, *, context: Path, tag: str, platform: str) -> None:
    if not (context / "Dockerfile").is_file():
        raise ConfigurationError(
            _(
                "context={context!r} has no Dockerfile. Pass the directory that holds the "
                "app's Dockerfile (the default is {default!r})."
            ).format(context=str(context), default=str(APP_DIR))
        )
    _check_tag(lab, tag)
    if not _PLATFORM.match(platform):
        raise ConfigurationError(
            _(
                "platform={platform!r} is not an <os>/<architecture> pair: use 'linux/amd64' "
                "(Fargate's default X86_64 platform), also on Apple Silicon."
            ).format(platform=platform)
        )


def _check_tag(lab: Lab, tag: str) -> None:
    try:
        parse_image_uri(f"{lab.name('app')}:{tag}")
    except ValueError:
        raise ConfigurationError(
            _(
                "tag={tag!r} is not a valid image tag: use up to 128 letters, digits, '_', '.' "
                "or '-', starting with a letter, digit or '_' (e.g. 'latest' or 'v2')."
            ).format(tag=tag)
        ) from None


def _manifest_push(lab: Lab, *, context: Path, tag: str) -> PushedImage:
    try:
        manifest = build_manifest(context, parse_dockerfile(context / "Dockerfile"))
    except ValueError as error:
        raise ConfigurationError(
            _("The Dockerfile can't be used: {error}").format(error=error)
        ) from error
    digest = image_digest(manifest)
    repo = _describe_repository(lab)
    image = PushedImage(uri=f"{repo.uri}:{tag}", tag=tag, digest=digest)
    if _tagged_digest(lab, repo, tag) == digest:
        return image
    ecr = lab.client("ecr")
    # What a learner types on AWS for this push (the sandbox's PutImage stands in for it).
    with lab.log.typed_as(_typed_push(lab, repo, tag, "linux/amd64", _shown_context(context))):
        try:
            ecr.put_image(
                repositoryName=repo.name,
                imageTag=tag,
                imageManifest=manifest,
                imageManifestMediaType=OCI_MANIFEST_MEDIA_TYPE,
                imageDigest=digest,
            )
        except ecr.exceptions.ImageAlreadyExistsException:
            pass  # ECR's answer when this tag already names this digest: the image is there
    return image


def _tagged_digest(lab: Lab, repo: Repository, tag: str) -> str | None:
    ecr = lab.client("ecr")
    try:
        details = ecr.describe_images(repositoryName=repo.name, imageIds=[{"imageTag": tag}])
    except ecr.exceptions.ImageNotFoundException:
        return None
    return str(details["imageDetails"][0]["imageDigest"])


def _login_args(repo: Repository) -> list[str]:
    return ["login", "--username", "AWS", "--password-stdin", repo.registry]


def _build_args(repo: Repository, tag: str, platform: str, context: str) -> list[str]:
    return ["build", "--platform", platform, "-t", f"{repo.name}:{tag}", context]


def _tag_args(repo: Repository, tag: str) -> list[str]:
    return ["tag", f"{repo.name}:{tag}", f"{repo.uri}:{tag}"]


def _push_args(repo: Repository, tag: str) -> list[str]:
    return ["push", f"{repo.uri}:{tag}"]


def _docker_push(lab: Lab, *, context: Path, tag: str, platform: str) -> PushedImage:
    docker = _docker_cli()
    repo = _describe_repository(lab)
    token = lab.client("ecr").get_authorization_token()["authorizationData"][0]
    # The token is base64 "AWS:<password>"; the password goes to docker on stdin only.
    password = base64.b64decode(token["authorizationToken"]).decode().partition(":")[2]
    _run(docker, _login_args(repo), secret=password, _in=password)
    build = _build_args(repo, tag, platform, str(context))
    try:
        docker(*build, _tty_out=False)
    except sh.ErrorReturnCode as error:
        stderr = _output(error)
        if _daemon_problem(stderr) or not _BUILDX.search(stderr):
            raise _docker_error(build, error) from error
        _run(docker, build, _env={**os.environ, "DOCKER_BUILDKIT": "0"})
    _run(docker, _tag_args(repo, tag))
    _run(docker, _push_args(repo, tag))
    # docker push calls ECR itself, past the Lab's clients: record it for the CLI view.
    with lab.log.typed_as(_typed_push(lab, repo, tag, platform, _shown_context(context))):
        lab.log.record("ecr", "PutImage", {"repositoryName": repo.name, "imageTag": tag})
    digest = _tagged_digest(lab, repo, tag)
    if digest is None:
        raise DockerError(
            _(
                "docker push reported success but ECR has no image tagged {tag!r} in "
                "{repository}. Run the cell again; if it persists, look at the repository in "
                "the ECR console."
            ).format(tag=tag, repository=repo.name)
        )
    return PushedImage(uri=f"{repo.uri}:{tag}", tag=tag, digest=digest)


def _docker_cli() -> sh.Command:
    """The docker command, checked to reach its daemon (before any AWS call)."""
    try:
        docker = sh.Command("docker")
    except sh.CommandNotFound:
        raise ConfigurationError(
            _(
                "Docker is not installed (no 'docker' command on PATH). Install Docker Desktop "
                "(or Docker Engine) and run the cell again, or use the sandbox: connect()."
            )
        ) from None
    try:
        docker("info", "--format", "{{.ServerVersion}}", _tty_out=False, _timeout=60)
    except sh.TimeoutException:
        raise ConfigurationError(
            _(
                "Docker did not answer within 60 seconds. Restart Docker and run the cell "
                "again, or use the sandbox: connect()."
            )
        ) from None
    except sh.ErrorReturnCode as error:
        raise _docker_error(["info"], error) from error
    return docker


def _run(docker: sh.Command, args: list[str], *, secret: str = "", **options: Any) -> None:
    try:
        docker(*args, _tty_out=False, **options)
    except sh.ErrorReturnCode as error:
        raise _docker_error(args, error, secret=secret) from error


def _output(error: sh.ErrorReturnCode) -> str:
    # The legacy builder prints a failing step's output on stdout, BuildKit on stderr.
    raw: bytes = error.stderr or error.stdout or b""
    return raw.decode(errors="replace")


def _daemon_problem(text: str) -> str:
    lowered = text.lower()
    return next((_(advice) for needle, advice in _DAEMON_PROBLEMS if needle in lowered), "")


def _docker_error(args: list[str], error: sh.ErrorReturnCode, *, secret: str = "") -> HandsonError:
    """ConfigurationError when Docker itself isn't usable, else DockerError."""
    output = _output(error)
    if secret:
        output = output.replace(secret, "****")
    advice = _daemon_problem(output)
    if advice:
        return ConfigurationError(
            _(
                "Docker is installed but can't be used: {said}\n"
                "{advice} and run the cell again, or use the sandbox: connect()."
            ).format(said=output.strip().splitlines()[-1], advice=advice)
        )
    tail = "\n".join(line for line in output.splitlines() if line.strip())
    tail = "\n".join(tail.splitlines()[-_TAIL_LINES:])
    next_step = _DOCKER_ADVICE.get(args[0])
    return DockerError(
        _("`docker {command}` failed (exit code {code}). Docker said:\n{tail}\n").format(
            command=args[0], code=error.exit_code, tail=tail
        )
        + (_(next_step) if next_step else _("Run the cell again."))
    )


def leftovers(lab: Lab) -> list[tuple[str, str, str]]:
    """What of this module is still tagged for the student: the ECR repository, as
    (service, kind, id) rows for teardown.leftovers."""
    ecr = lab.client("ecr")
    found: list[tuple[str, str, str]] = []
    for repo in ecr.describe_repositories()["repositories"]:
        tags = ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
        if lab.owns(tags):
            found.append(("ecr", "repository", repo["repositoryName"]))
    return found
