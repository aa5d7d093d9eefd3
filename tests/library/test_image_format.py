"""Docker-free images: Dockerfile parsing, OCI manifests, image URIs, container argv."""

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from handson.image_format import (
    ANNOTATION_CONFIG,
    ANNOTATION_CONTEXT,
    OCI_MANIFEST_MEDIA_TYPE,
    ImageConfig,
    ImageRef,
    LocalImage,
    build_manifest,
    container_command,
    context_layer,
    image_digest,
    parse_dockerfile,
    parse_image_uri,
    read_manifest,
)


def write(tmp_path: Path, text: str, name: str = "Dockerfile") -> Path:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


# --------------------------------------------------------------------------- Dockerfile


def test_exec_form_cmd_and_defaults(tmp_path):
    config = parse_dockerfile(write(tmp_path, 'FROM python:3.11-slim\nCMD ["python", "main.py"]\n'))
    assert config == ImageConfig(cmd=["python", "main.py"])
    assert config.workdir == "/"
    assert config.healthcheck is None and config.user is None


def test_shell_form_runs_under_sh(tmp_path):
    config = parse_dockerfile(
        write(tmp_path, "FROM node:20\nCMD node server.js \\\n    --port 3000\n")
    )
    assert config.cmd[:2] == ["/bin/sh", "-c"]
    assert config.cmd[2].split() == ["node", "server.js", "--port", "3000"]


def test_invalid_json_falls_back_to_shell_form(tmp_path):
    config = parse_dockerfile(write(tmp_path, "FROM alpine\nCMD ['echo', 'hi']\n"))
    assert config.cmd == ["/bin/sh", "-c", "['echo', 'hi']"]


def test_shell_instruction_changes_shell_form(tmp_path):
    text = 'FROM debian\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\nENTRYPOINT exec ./run\n'
    config = parse_dockerfile(write(tmp_path, text))
    assert config.entrypoint == ["/bin/bash", "-o", "pipefail", "-c", "exec ./run"]


def test_entrypoint_and_cmd_together(tmp_path):
    text = 'FROM python:3.11\nENTRYPOINT ["python"]\nCMD ["main.py"]\n'
    config = parse_dockerfile(write(tmp_path, text))
    assert (config.entrypoint, config.cmd) == (["python"], ["main.py"])


def test_env_both_syntaxes_with_substitution(tmp_path):
    text = """FROM python:3.11
ARG APP_PORT=8000
ENV APP_HOME=/srv/app PORT=$APP_PORT
ENV GREETING "hello  world"
ENV URL=http://localhost:${PORT}/health NAME=${UNSET:-anonymous} FLAG=${PORT:+on} \\
    EMPTY=${UNSET:+x} LITERAL='$PORT' ESCAPED=\\$PORT
ENV LEGACY some words here
CMD ["python", "main.py"]
"""
    config = parse_dockerfile(write(tmp_path, text), {"APP_PORT": "3000"})
    assert config.env == {
        "APP_HOME": "/srv/app",
        "PORT": "3000",
        "GREETING": "hello  world",
        "URL": "http://localhost:3000/health",
        "NAME": "anonymous",
        "FLAG": "on",
        "EMPTY": "",
        "LITERAL": "$PORT",
        "ESCAPED": "$PORT",
        "LEGACY": "some words here",
    }


def test_env_values_in_one_instruction_see_earlier_state(tmp_path):
    # Docker: all substitutions of one ENV use the values from before that instruction.
    text = "FROM alpine\nENV A=1\nENV A=2 B=$A\nCMD sh\n"
    assert parse_dockerfile(write(tmp_path, text)).env == {"A": "2", "B": "1"}


def test_base_env_stands_in_for_the_base_image(tmp_path):
    text = "FROM python:3.11\nENV PATH=/app/.venv/bin:$PATH\nCMD python\n"
    assert parse_dockerfile(write(tmp_path, text)).env["PATH"] == "/app/.venv/bin:"
    config = parse_dockerfile(write(tmp_path, text), base_env={"PATH": "/usr/bin:/bin"})
    assert config.env["PATH"] == "/app/.venv/bin:/usr/bin:/bin"


def test_workdir_relative_to_previous_and_expanded(tmp_path):
    text = "FROM alpine\nWORKDIR /srv\nENV SUB=api\nWORKDIR app/$SUB\nWORKDIR ..\nCMD sh\n"
    assert parse_dockerfile(write(tmp_path, text)).workdir == "/srv/app"


def test_expose_forms(tmp_path):
    text = "FROM alpine\nARG P=8080\nEXPOSE 3000/tcp $P 9000-9002 53/udp\nCMD sh\n"
    assert parse_dockerfile(write(tmp_path, text)).exposed_ports == [3000, 8080, 9000, 9001, 9002]


def test_user_and_labels(tmp_path):
    text = 'FROM alpine\nENV V=1.2\nUSER app:app\nLABEL version=$V title="users api"\nCMD sh\n'
    config = parse_dockerfile(write(tmp_path, text))
    assert config.user == "app:app"
    assert config.labels == {"version": "1.2", "title": "users api"}


def test_multi_stage_final_stage_only(tmp_path):
    text = """FROM node:20 AS build
ENV BUILD_ONLY=1
WORKDIR /build
EXPOSE 9999
HEALTHCHECK CMD true
CMD ["npm", "run", "build"]

FROM python:3.11-slim
WORKDIR /app
COPY --from=build /build/dist ./static
CMD ["python", "main.py"]
"""
    config = parse_dockerfile(write(tmp_path, text))
    assert config == ImageConfig(cmd=["python", "main.py"], workdir="/app")


def test_stage_built_on_earlier_stage_inherits_config(tmp_path):
    text = """FROM python:3.11 AS base
ENV PYTHONUNBUFFERED=1
WORKDIR /app
CMD ["python", "main.py"]

FROM base AS web
ENTRYPOINT ["tini", "--"]
"""
    config = parse_dockerfile(write(tmp_path, text))
    assert config.env == {"PYTHONUNBUFFERED": "1"}
    assert config.workdir == "/app"
    # Docker: ENTRYPOINT resets a CMD inherited from the base stage.
    assert (config.entrypoint, config.cmd) == (["tini", "--"], [])


def test_global_arg_in_from_and_build_arg_override(tmp_path):
    text = "ARG VARIANT=slim\nFROM python:3.11-${VARIANT}\nARG VARIANT\nENV V=$VARIANT\nCMD x\n"
    assert parse_dockerfile(write(tmp_path, text)).env == {"V": "slim"}
    assert parse_dockerfile(write(tmp_path, text), {"VARIANT": "alpine"}).env == {"V": "alpine"}


def test_healthcheck_flags(tmp_path):
    text = (
        "FROM python:3.11\n"
        "HEALTHCHECK --interval=5s --timeout=1m30s --start-period=500ms --retries=2 \\\n"
        "  CMD curl -f http://localhost:8000/health || exit 1\n"
        'CMD ["python", "main.py"]\n'
    )
    assert parse_dockerfile(write(tmp_path, text)).healthcheck == {
        "test": ["CMD-SHELL", "curl -f http://localhost:8000/health || exit 1"],
        "interval": 5.0,
        "timeout": 90.0,
        "start_period": 0.5,
        "start_interval": 5.0,
        "retries": 2,
    }


def test_healthcheck_exec_form_gets_docker_defaults(tmp_path):
    text = 'FROM alpine\nHEALTHCHECK CMD ["wget", "-q", "-O-", "http://localhost/"]\nCMD sh\n'
    assert parse_dockerfile(write(tmp_path, text)).healthcheck == {
        "test": ["CMD", "wget", "-q", "-O-", "http://localhost/"],
        "interval": 30.0,
        "timeout": 30.0,
        "start_period": 0.0,
        "start_interval": 5.0,
        "retries": 3,
    }


def test_healthcheck_none_disables_inherited_check(tmp_path):
    text = "FROM alpine AS a\nHEALTHCHECK CMD true\nCMD sh\nFROM a\nHEALTHCHECK NONE\n"
    assert parse_dockerfile(write(tmp_path, text)).healthcheck is None


@pytest.mark.parametrize(
    "line",
    ["HEALTHCHECK --interval 5s CMD true", "HEALTHCHECK --interval=5x CMD true",
     "HEALTHCHECK --bogus=1 CMD true", "HEALTHCHECK curl localhost"],
)  # fmt: skip
def test_healthcheck_errors(tmp_path, line):
    with pytest.raises(ValueError, match="HEALTHCHECK|interval|duration"):
        parse_dockerfile(write(tmp_path, f"FROM alpine\n{line}\nCMD sh\n"))


def test_accepts_dockerfile_path_with_other_name(tmp_path):
    path = write(tmp_path, "FROM alpine\nCMD sh\n", name="Dockerfile.dev") / "Dockerfile.dev"
    assert parse_dockerfile(path).cmd == ["/bin/sh", "-c", "sh"]


def test_missing_dockerfile_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="No Dockerfile at"):
        parse_dockerfile(tmp_path)


def test_no_cmd_or_entrypoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no CMD or ENTRYPOINT"):
        parse_dockerfile(write(tmp_path, "FROM python:3.11\nWORKDIR /app\n"))


def test_cmd_in_earlier_stage_does_not_count(tmp_path):
    with pytest.raises(ValueError, match="no CMD or ENTRYPOINT"):
        parse_dockerfile(write(tmp_path, "FROM a AS build\nCMD make\nFROM python:3.11\n"))


# --------------------------------------------------------------------------- manifests


def sample_config() -> ImageConfig:
    return ImageConfig(
        entrypoint=["python"],
        cmd=["main.py"],
        workdir="/app",
        env={"PORT": "8000", "APP_ENV": "dev"},
        exposed_ports=[8000],
        healthcheck={"test": ["CMD-SHELL", "true"], "interval": 30.0, "timeout": 5.0,
                     "start_period": 0.0, "start_interval": 5.0, "retries": 3},
        user="app",
        labels={"title": "users api"},
    )  # fmt: skip


def test_manifest_is_a_valid_oci_manifest(tmp_path):
    manifest = json.loads(build_manifest(tmp_path, sample_config()))
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == OCI_MANIFEST_MEDIA_TYPE
    config = manifest["config"]
    assert config["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert config["digest"].startswith("sha256:") and len(config["digest"]) == 7 + 64
    assert isinstance(config["size"], int) and config["size"] > 0
    (layer,) = manifest["layers"]  # the build context, gzipped
    tar, zipped = context_layer(tmp_path)
    assert layer == {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": "sha256:" + hashlib.sha256(zipped).hexdigest(),
        "size": len(zipped),
    }
    assert gzip.decompress(zipped) == tar
    annotations = manifest["annotations"]
    assert annotations[ANNOTATION_CONTEXT] == tmp_path.resolve().as_posix()
    assert all(isinstance(v, str) for v in annotations.values())  # OCI: string map
    assert json.loads(annotations[ANNOTATION_CONFIG])["workdir"] == "/app"


def test_the_layer_is_the_context_and_the_same_each_time(tmp_path):
    (tmp_path / "main.py").write_text("print('hi')\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"cache")
    first = context_layer(tmp_path)
    os.utime(tmp_path / "main.py", (0, 12345))  # a touched file is the same layer
    assert context_layer(tmp_path) == first
    with tarfile.open(fileobj=io.BytesIO(first[0])) as tar:
        assert tar.getnames() == ["app/main.py"]
    (tmp_path / "main.py").write_text("print('bye')\n")
    assert context_layer(tmp_path) != first


def test_manifest_round_trip(tmp_path):
    manifest = build_manifest(tmp_path, sample_config(), dockerfile="Dockerfile.prod")
    assert read_manifest(manifest) == LocalImage(
        context_dir=tmp_path.resolve(), config=sample_config(), dockerfile="Dockerfile.prod"
    )


def test_parsed_dockerfile_round_trips(tmp_path):
    write(tmp_path, "FROM python:3.11\nENV A=1\nEXPOSE 8000\nHEALTHCHECK CMD true\nCMD x\n")
    config = parse_dockerfile(tmp_path)
    image = read_manifest(build_manifest(tmp_path, config))
    assert image is not None and image.config == config


def test_manifest_and_digest_are_stable(tmp_path):
    first = build_manifest(tmp_path, sample_config())
    reordered = ImageConfig(
        **{**sample_config().__dict__, "env": {"APP_ENV": "dev", "PORT": "8000"}}
    )
    assert build_manifest(tmp_path, reordered) == first
    assert image_digest(first) == image_digest(build_manifest(tmp_path, sample_config()))
    assert image_digest(first) == "sha256:" + hashlib.sha256(first.encode()).hexdigest()
    changed = build_manifest(tmp_path, ImageConfig(cmd=["other"]))
    assert image_digest(changed) != image_digest(first)


def test_read_manifest_ignores_foreign_manifests():
    real = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": 7023, "digest": "sha256:" + "b" * 64},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 32654, "digest": "sha256:" + "e" * 64}],
    }  # fmt: skip
    assert read_manifest(json.dumps(real)) is None
    assert read_manifest(json.dumps({**real, "annotations": {"other": "x"}})) is None
    assert read_manifest("not json") is None


def test_read_manifest_rejects_corrupt_sandbox_annotation(tmp_path):
    manifest = json.loads(build_manifest(tmp_path, sample_config()))
    manifest["annotations"][ANNOTATION_CONFIG] = "{broken"
    with pytest.raises(ValueError, match="corrupt"):
        read_manifest(json.dumps(manifest))


# --------------------------------------------------------------------------- image URIs


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/handson-api",
            ImageRef("123456789012", "ap-northeast-1", "handson-api", "latest", None,
                     "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com"),
        ),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/handson/api:v1.2",
            ImageRef("123456789012", "us-east-1", "team/handson/api", "v1.2", None,
                     "123456789012.dkr.ecr.us-east-1.amazonaws.com"),
        ),
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api@sha256:" + "a" * 64,
            ImageRef("123456789012", "eu-west-1", "api", None, "sha256:" + "a" * 64,
                     "123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
        ),
        (
            "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com/api:1@sha256:" + "0" * 64,
            ImageRef("123456789012", "us-gov-west-1", "api", "1", "sha256:" + "0" * 64,
                     "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com"),
        ),
        ("nginx:latest", ImageRef(None, None, "nginx", "latest", None, None)),
        ("nginx", ImageRef(None, None, "nginx", "latest", None, None)),
        ("library/python:3.11-slim", ImageRef(None, None, "library/python", "3.11-slim", None)),
        ("public.ecr.aws/x/y:1", ImageRef(None, None, "x/y", "1", None, "public.ecr.aws")),
        ("localhost:5000/app", ImageRef(None, None, "app", "latest", None, "localhost:5000")),
    ],
)  # fmt: skip
def test_parse_image_uri(uri, expected):
    ref = parse_image_uri(uri)
    assert ref == expected
    assert ref.is_ecr == (expected.account_id is not None)


def test_image_ref_str_round_trips():
    uri = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/team/api:v2"
    assert str(parse_image_uri(uri)) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/Handson-API:latest",  # uppercase
        "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/api@sha256:short",
        "1234.dkr.ecr.ap-northeast-1.amazonaws.com/api",  # account is 12 digits
        "nginx:bad tag",
    ],
)
def test_parse_image_uri_rejects_malformed(uri):
    with pytest.raises(ValueError):
        parse_image_uri(uri)


# --------------------------------------------------------------------------- argv


@pytest.mark.parametrize(
    ("entrypoint", "cmd", "command_override", "entrypoint_override", "expected"),
    [
        ([], ["python", "main.py"], None, None, ["python", "main.py"]),
        (["python"], ["main.py"], None, None, ["python", "main.py"]),
        (["python"], ["main.py"], ["worker.py"], None, ["python", "worker.py"]),
        # An overriding ENTRYPOINT drops the image CMD (Docker's merge rule).
        (["python"], ["main.py"], None, ["gunicorn"], ["gunicorn"]),
        (["python"], ["main.py"], ["-w", "2"], ["gunicorn"], ["gunicorn", "-w", "2"]),
        # Empty lists count as not set: the ECS agent omits them from the container config.
        (["python"], ["main.py"], [], [], ["python", "main.py"]),
    ],
)
def test_container_command(entrypoint, cmd, command_override, entrypoint_override, expected):
    config = ImageConfig(entrypoint=entrypoint, cmd=cmd)
    argv = container_command(
        config, command_override=command_override, entrypoint_override=entrypoint_override
    )
    assert argv == expected


def test_container_command_needs_something_to_run():
    with pytest.raises(ValueError, match="no command"):
        container_command(ImageConfig(), command_override=None, entrypoint_override=None)
