"""handson.registry against the sandbox: the ECR repository, its policy, and the image push.

The Docker path runs a stand-in ``docker`` (tests/library/fake_docker/docker) first on PATH,
with ``Lab.uses_docker`` patched to True for the test only. The stand-in's ``push`` uploads
nothing, so each Docker test first puts the image ECR would then hold (``_put_sandbox_image``):
push_image's final DescribeImages finds it, and the library keeps its strict digest look-up.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

from handson.connection import Lab
from handson.exceptions import ConfigurationError, DockerError, NotFoundError
from handson.image_format import (
    OCI_MANIFEST_MEDIA_TYPE,
    build_manifest,
    context_layer,
    image_digest,
    parse_dockerfile,
)
from handson.registry import (
    APP_DIR,
    PULL_ACTIONS,
    PushedImage,
    Repository,
    delete_repository,
    ensure_repository,
    ensure_repository_policy,
    get_repository,
    push_commands,
    push_image,
    readable_size,
    show_images,
)

FAKE_DOCKER_DIR = Path(__file__).parent / "fake_docker"


def _app_digest(context: Path = APP_DIR) -> str:
    return image_digest(build_manifest(context, parse_dockerfile(context / "Dockerfile")))


def _tags(lab: Lab, arn: str) -> dict[str, str]:
    tags = lab.client("ecr").list_tags_for_resource(resourceArn=arn)["tags"]
    return {t["Key"]: t["Value"] for t in tags}


# ------------------------------------------------------------------ repository


def test_ensure_repository_creates_it_with_the_series_settings(lab: Lab) -> None:
    repo = ensure_repository(lab)

    name = f"{lab.prefix}-app"
    assert repo == Repository(
        name=name,
        uri=f"{lab.account_id}.dkr.ecr.{lab.region}.amazonaws.com/{name}",
        arn=f"arn:aws:ecr:{lab.region}:{lab.account_id}:repository/{name}",
    )
    found = lab.client("ecr").describe_repositories(repositoryNames=[name])["repositories"][0]
    assert found["imageTagMutability"] == "MUTABLE"
    assert found["imageScanningConfiguration"] == {"scanOnPush": True}
    assert _tags(lab, repo.arn) == {**lab.tags, "Name": name}


def test_ensure_repository_twice_changes_nothing(lab: Lab) -> None:
    first = ensure_repository(lab)
    lab.log.calls.clear()

    assert ensure_repository(lab) == first
    assert lab.log.mutating() == []


def test_ensure_repository_fixes_an_existing_repositorys_settings(lab: Lab) -> None:
    ecr = lab.client("ecr")
    ecr.create_repository(
        repositoryName=lab.name("app"),
        imageTagMutability="IMMUTABLE",
        imageScanningConfiguration={"scanOnPush": False},
    )
    lab.log.calls.clear()

    ensure_repository(lab)

    found = ecr.describe_repositories(repositoryNames=[lab.name("app")])["repositories"][0]
    assert found["imageTagMutability"] == "MUTABLE"
    assert found["imageScanningConfiguration"] == {"scanOnPush": True}
    assert {c.operation for c in lab.log.mutating()} == {
        "PutImageTagMutability",
        "PutImageScanningConfiguration",
    }


def test_get_repository_only_looks_up(lab: Lab) -> None:
    with pytest.raises(NotFoundError, match="run notebook 00 first"):
        get_repository(lab)
    assert lab.log.mutating() == []

    created = ensure_repository(lab)
    assert get_repository(lab) == created


def test_delete_repository_removes_it_with_its_images_and_is_idempotent(lab: Lab) -> None:
    ensure_repository(lab)
    push_image(lab)

    delete_repository(lab)

    with pytest.raises(NotFoundError):
        get_repository(lab)
    lab.log.calls.clear()
    delete_repository(lab)
    assert [c.operation for c in lab.log.calls] == ["DeleteRepository"]


# ---------------------------------------------------------- repository policy


def _execution_role(lab: Lab, name: str = "ecs-execution-role") -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = lab.client("iam").create_role(
        RoleName=lab.name(name), AssumeRolePolicyDocument=json.dumps(trust)
    )
    return str(role["Role"]["Arn"])


def test_repository_policy_lets_the_execution_role_pull(lab: Lab) -> None:
    ensure_repository(lab)
    role_arn = _execution_role(lab)

    returned = ensure_repository_policy(lab, execution_role_arn=role_arn)

    text = lab.client("ecr").get_repository_policy(repositoryName=lab.name("app"))["policyText"]
    policy = json.loads(text)
    assert policy == returned
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"AWS": role_arn}
    assert statement["Action"] == list(PULL_ACTIONS)
    assert sorted(PULL_ACTIONS) == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ]


def test_repository_policy_is_set_only_when_it_differs(lab: Lab) -> None:
    ensure_repository(lab)
    role_arn = _execution_role(lab)
    other = _execution_role(lab, "other-role")
    ensure_repository_policy(lab, execution_role_arn=role_arn)
    lab.log.calls.clear()

    ensure_repository_policy(lab, execution_role_arn=role_arn)
    assert lab.log.mutating() == []

    ensure_repository_policy(lab, execution_role_arn=other)
    assert [c.operation for c in lab.log.mutating()] == ["SetRepositoryPolicy"]
    text = lab.client("ecr").get_repository_policy(repositoryName=lab.name("app"))["policyText"]
    assert json.loads(text)["Statement"][0]["Principal"] == {"AWS": other}


def test_repository_policy_rejects_a_non_role_arn_before_any_call(lab: Lab) -> None:
    with pytest.raises(ConfigurationError, match="not an IAM role ARN"):
        ensure_repository_policy(lab, execution_role_arn="my-project-dev-ecs-execution-role")
    assert lab.log.calls == []


# ------------------------------------------------------------ sandbox push


def test_sandbox_push_puts_the_manifest_of_the_build_context(lab: Lab) -> None:
    repo = ensure_repository(lab)

    image = push_image(lab)

    assert image == PushedImage(uri=f"{repo.uri}:latest", tag="latest", digest=_app_digest())
    [detail] = lab.client("ecr").describe_images(repositoryName=repo.name)["imageDetails"]
    assert detail["imageDigest"] == image.digest
    assert detail["imageTags"] == ["latest"]
    assert detail["imageManifestMediaType"] == OCI_MANIFEST_MEDIA_TYPE


def test_sandbox_push_twice_changes_nothing(lab: Lab) -> None:
    ensure_repository(lab)
    first = push_image(lab)
    lab.log.calls.clear()

    assert push_image(lab) == first
    assert lab.log.mutating() == []


def test_sandbox_push_moves_the_tag_when_the_dockerfile_changes(lab: Lab, tmp_path: Path) -> None:
    ensure_repository(lab)
    first = push_image(lab)
    context = tmp_path / "app"
    shutil.copytree(APP_DIR, context)
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("ENV PORT=3000", "ENV PORT=3000 V=2"))

    second = push_image(lab, context=context)

    assert second.digest == _app_digest(context) != first.digest
    table = show_images(lab)
    assert table.loc[table["tags"] == "latest", "digest"].tolist() == [second.digest[:19]]


def test_sandbox_push_accepts_an_image_ecr_already_holds(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ImageAlreadyExistsException from PutImage means the same image is there already."""
    repo = ensure_repository(lab)
    _put_sandbox_image(lab, repo, "v1")
    ecr = lab.client("ecr")

    # Make the pre-check miss, as when another push of the same image lands in between.
    def miss(**params: object) -> dict[str, object]:
        raise ecr.exceptions.ImageNotFoundException(
            {"Error": {"Code": "ImageNotFoundException", "Message": "not yet"}}, "DescribeImages"
        )

    monkeypatch.setattr(ecr, "describe_images", miss)
    lab.log.calls.clear()
    image = push_image(lab, tag="v1")
    assert image.digest == _app_digest()
    assert [c.operation for c in lab.log.mutating()] == ["PutImage"]


def test_show_images_lists_tags_digest_time_and_size(lab: Lab) -> None:
    ensure_repository(lab)
    assert show_images(lab).empty

    image = push_image(lab, tag="v1")

    table = show_images(lab)
    assert list(table.columns) == ["tags", "digest", "pushed_at", "size"]
    [row] = table.to_dict("records")
    assert row["tags"] == "v1"
    assert row["digest"] == image.digest[: len("sha256:") + 12]
    assert row["pushed_at"] is not None
    # ECR counts the compressed layers: here the app's build context, gzipped.
    [detail] = lab.client("ecr").describe_images(repositoryName=lab.name("app"))["imageDetails"]
    assert detail["imageSizeInBytes"] == len(context_layer(APP_DIR)[1])
    assert 1_000 < detail["imageSizeInBytes"] < 1_000_000
    assert row["size"] == readable_size(detail["imageSizeInBytes"])


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 B"), (999, "999 B"), (8_281, "8.3 kB"), (48_520_000, "48.5 MB"), (2 * 10**9, "2.0 GB")],
)
def test_sizes_read_as_people_read_them(size: int, shown: str) -> None:
    assert readable_size(size) == shown


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"context": Path("/nonexistent")}, "has no Dockerfile"),
        ({"tag": "-bad"}, "not a valid image tag"),
        ({"tag": "a" * 129}, "not a valid image tag"),
        ({"platform": "amd64"}, "not an <os>/<architecture> pair"),
    ],
)
def test_push_rejects_bad_options_before_any_call(
    lab: Lab, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        push_image(lab, **options)  # type: ignore[arg-type]
    assert lab.log.calls == []


def test_push_commands_are_the_consoles_four_steps(lab: Lab) -> None:
    repo = ensure_repository(lab)

    commands = push_commands(lab, tag="v1")

    with pytest.raises(ConfigurationError, match="not a valid image tag"):
        push_commands(lab, tag="-bad")
    assert commands == [
        f"aws ecr get-login-password --region {lab.region} | docker login --username AWS "
        f"--password-stdin {repo.uri.split('/')[0]}",
        f"docker build --platform linux/amd64 -t {repo.name}:v1 .",
        f"docker tag {repo.name}:v1 {repo.uri}:v1",
        f"docker push {repo.uri}:v1",
    ]


def _console_commands(lab: Lab, repo: Repository, context: str) -> list[str]:
    return [
        f"aws ecr get-login-password --region {lab.region} | docker login --username AWS "
        f"--password-stdin {repo.uri.split('/')[0]}",
        f"docker build --platform linux/amd64 -t {repo.name}:latest {context}",
        f"docker tag {repo.name}:latest {repo.uri}:latest",
        f"docker push {repo.uri}:latest",
    ]


def test_sandbox_push_is_shown_as_the_docker_commands_a_learner_types(
    lab: Lab, tmp_path: Path
) -> None:
    repo = ensure_repository(lab)
    lab.log.calls.clear()

    push_image(lab)
    # No learner types `aws ecr put-image` with a manifest: the view shows Docker's push.
    assert lab.cli_commands("push the app image") == _console_commands(lab, repo, "app")
    assert [c.operation for c in lab.log.mutating()] == ["PutImage"]

    # A context outside the kit's folder is typed with its whole path.
    lab.log.calls.clear()
    context = tmp_path / "v2"
    shutil.copytree(APP_DIR, context)
    (context / "main.py").write_text((APP_DIR / "main.py").read_text() + "# v2\n")
    push_image(lab, context=context)
    assert lab.cli_commands() == _console_commands(lab, repo, str(context))


# ------------------------------------------------------------- Docker push


def _put_sandbox_image(lab: Lab, repo: Repository, tag: str) -> str:
    manifest = build_manifest(APP_DIR, parse_dockerfile(APP_DIR / "Dockerfile"))
    lab.client("ecr").put_image(
        repositoryName=repo.name,
        imageTag=tag,
        imageManifest=manifest,
        imageManifestMediaType=OCI_MANIFEST_MEDIA_TYPE,
        imageDigest=image_digest(manifest),
    )
    return image_digest(manifest)


def _ecr_password(lab: Lab) -> str:
    token = lab.client("ecr").get_authorization_token()["authorizationData"][0]
    return base64.b64decode(token["authorizationToken"]).decode().partition(":")[2]


@pytest.fixture
def docker_lab(lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Lab:
    """The sandbox account, pushed to as on real AWS through the stand-in docker."""
    monkeypatch.setattr(Lab, "uses_docker", property(lambda self: True))
    monkeypatch.setenv("PATH", f"{FAKE_DOCKER_DIR}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(tmp_path / "docker.jsonl"))
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    return lab


def _docker_calls(tmp_path: Path) -> list[dict[str, object]]:
    log = tmp_path / "docker.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_docker_push_logs_in_builds_tags_and_pushes(
    docker_lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_MODE", "ok")
    repo = ensure_repository(docker_lab)
    digest = _put_sandbox_image(docker_lab, repo, "latest")
    password = _ecr_password(docker_lab)

    image = push_image(docker_lab)

    assert image == PushedImage(uri=f"{repo.uri}:latest", tag="latest", digest=digest)
    calls = _docker_calls(tmp_path)
    assert [c["argv"] for c in calls] == [
        ["info", "--format", "{{.ServerVersion}}"],
        ["login", "--username", "AWS", "--password-stdin", repo.uri.split("/")[0]],
        ["build", "--platform", "linux/amd64", "-t", f"{repo.name}:latest", str(APP_DIR)],
        ["tag", f"{repo.name}:latest", f"{repo.uri}:latest"],
        ["push", f"{repo.uri}:latest"],
    ]
    assert calls[1]["stdin"] == password
    assert all(password not in arg for c in calls for arg in c["argv"])  # type: ignore[attr-defined]
    assert calls[2]["DOCKER_BUILDKIT"] is None
    pushed = docker_lab.cli_commands("push the app image")
    assert pushed == _console_commands(docker_lab, repo, "app")


def test_docker_push_retries_with_the_legacy_builder_when_buildx_is_missing(
    docker_lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_MODE", "no-buildx")
    repo = ensure_repository(docker_lab)
    digest = _put_sandbox_image(docker_lab, repo, "latest")

    assert push_image(docker_lab).digest == digest

    builds = [c for c in _docker_calls(tmp_path) if c["argv"][0] == "build"]  # type: ignore[index]
    assert [b["DOCKER_BUILDKIT"] for b in builds] == [None, "0"]
    for build in builds:
        assert build["argv"][1:3] == ["--platform", "linux/amd64"]  # type: ignore[index]
    assert [c["argv"][0] for c in _docker_calls(tmp_path)][-2:] == ["tag", "push"]  # type: ignore[index]


def test_docker_push_without_a_daemon_is_a_configuration_error(
    docker_lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_MODE", "no-daemon")
    ensure_repository(docker_lab)
    password = _ecr_password(docker_lab)
    docker_lab.log.calls.clear()

    with pytest.raises(ConfigurationError, match="Start Docker") as caught:
        push_image(docker_lab)

    assert "use the sandbox" in str(caught.value)
    assert docker_lab.log.calls == []  # found before any AWS call
    assert password not in str(caught.value) and password not in str(caught.value.__cause__)
    assert [c["argv"][0] for c in _docker_calls(tmp_path)] == ["info"]  # type: ignore[index]


def test_docker_push_without_docker_is_a_configuration_error(
    docker_lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    ensure_repository(docker_lab)
    docker_lab.log.calls.clear()

    with pytest.raises(ConfigurationError, match="Docker is not installed"):
        push_image(docker_lab)
    assert docker_lab.log.calls == []


def test_docker_build_failure_reports_dockers_words_but_not_the_password(
    docker_lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_MODE", "broken-build")
    ensure_repository(docker_lab)
    password = _ecr_password(docker_lab)

    with pytest.raises(DockerError) as caught:
        push_image(docker_lab)

    error = caught.value
    assert not isinstance(error, ConfigurationError)
    assert "`docker build` failed (exit code 1)" in str(error)
    assert "flask==99" in str(error)
    assert "Fix the Dockerfile" in str(error)
    assert password not in str(error) and password not in str(error.__cause__)
    # One build (no buildx in the error, so no legacy retry) and nothing pushed.
    assert [c["argv"][0] for c in _docker_calls(tmp_path)] == ["info", "login", "build"]  # type: ignore[index]
