"""The kit's Docker-free container image format, shared by both sides: the library's push
(``handson.registry``, on the sandbox) writes it, the sandbox's data plane reads it back.

Without Docker there is nothing to build or pull. An "image" is an OCI image manifest whose
annotations say where the build context lives and what its Dockerfile configures (CMD,
ENTRYPOINT, ENV, WORKDIR, EXPOSE, HEALTHCHECK, USER, LABEL). It is pushed with
``ecr.put_image(imageManifest=m, imageManifestMediaType=OCI_MANIFEST_MEDIA_TYPE,
imageDigest=image_digest(m))`` (see :func:`image_digest` for why the digest is passed) and the
data plane reads it back with :func:`read_manifest` to start the task as a local process.

Pure standard library plus dockerfile-parse; no moto and no AWS calls.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import posixpath
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockerfile_parse import DockerfileParser
from dockerfile_parse.parser import image_from
from dockerfile_parse.util import WordSplitter

from handson.i18n import _

__all__ = [
    "ANNOTATION_CONFIG",
    "ANNOTATION_CONTEXT",
    "ANNOTATION_DOCKERFILE",
    "OCI_CONFIG_MEDIA_TYPE",
    "OCI_LAYER_MEDIA_TYPE",
    "OCI_MANIFEST_MEDIA_TYPE",
    "ImageConfig",
    "ImageRef",
    "LocalImage",
    "build_manifest",
    "container_command",
    "context_layer",
    "image_digest",
    "parse_dockerfile",
    "parse_image_uri",
    "read_manifest",
]

OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
ANNOTATION_CONTEXT = "dev.handson.context"
ANNOTATION_DOCKERFILE = "dev.handson.dockerfile"
ANNOTATION_CONFIG = "dev.handson.config"
# Directories a build context never needs (caches, virtualenvs, VCS metadata).
_SKIPPED_DIRS = frozenset(
    {"__pycache__", ".git", ".venv", "node_modules", ".ipynb_checkpoints", ".pytest_cache"}
)

# Docker's defaults for HEALTHCHECK flags that the Dockerfile leaves out.
_HEALTHCHECK_DEFAULTS: dict[str, float] = {
    "interval": 30.0,
    "timeout": 30.0,
    "start_period": 0.0,
    "start_interval": 5.0,
}
_HEALTHCHECK_RETRIES_DEFAULT = 3
_DEFAULT_SHELL = ("/bin/sh", "-c")


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class ImageConfig:
    """The runtime configuration a Dockerfile gives its image (final stage)."""

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    exposed_ports: list[int] = field(default_factory=list)
    # Docker's form: {"test": [...], "interval": s, "timeout": s, "start_period": s,
    # "start_interval": s, "retries": n}; None means no HEALTHCHECK (or HEALTHCHECK NONE).
    healthcheck: dict[str, Any] | None = None
    user: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the form stored in the manifest annotation)."""
        return {
            "entrypoint": list(self.entrypoint),
            "cmd": list(self.cmd),
            "workdir": self.workdir,
            "env": dict(self.env),
            "exposed_ports": list(self.exposed_ports),
            "healthcheck": None if self.healthcheck is None else dict(self.healthcheck),
            "user": self.user,
            "labels": dict(self.labels),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageConfig:
        """Inverse of :meth:`to_dict`; raises ValueError on a malformed dict."""
        try:
            healthcheck = data.get("healthcheck")
            return cls(
                entrypoint=[str(x) for x in data.get("entrypoint") or []],
                cmd=[str(x) for x in data.get("cmd") or []],
                workdir=str(data.get("workdir") or "/"),
                env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
                exposed_ports=[int(p) for p in data.get("exposed_ports") or []],
                healthcheck=None if healthcheck is None else dict(healthcheck),
                user=None if data.get("user") is None else str(data["user"]),
                labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed image config: {exc}") from exc


@dataclass(frozen=True)
class LocalImage:
    """What a sandbox manifest points at: a build context and its parsed config."""

    context_dir: Path
    config: ImageConfig
    dockerfile: str = "Dockerfile"


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference. ECR fields are None for other registries."""

    account_id: str | None
    region: str | None
    repository: str
    tag: str | None  # None only for a digest-only reference (repo@sha256:...)
    digest: str | None
    registry: str | None = None  # None means Docker Hub

    @property
    def is_ecr(self) -> bool:
        """True for a private ECR repository URI (<acct>.dkr.ecr.<region>.amazonaws.com)."""
        return self.account_id is not None

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}" if self.registry else self.repository
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


# --------------------------------------------------------------------------- Dockerfile


@dataclass
class _Stage:
    """Mutable state of one build stage while its instructions are applied."""

    name: str | None
    base: str
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    cmd_set: bool = False
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)
    exposed: set[int] = field(default_factory=set)
    healthcheck: dict[str, Any] | None = None
    user: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    shell: list[str] = field(default_factory=lambda: list(_DEFAULT_SHELL))

    def inherit(self, name: str | None, base: str) -> _Stage:
        """A new stage FROM this one: image config carries over, ARGs do not (Docker)."""
        return _Stage(
            name=name,
            base=base,
            entrypoint=list(self.entrypoint),
            cmd=list(self.cmd),
            workdir=self.workdir,
            env=dict(self.env),
            exposed=set(self.exposed),
            healthcheck=None if self.healthcheck is None else dict(self.healthcheck),
            user=self.user,
            labels=dict(self.labels),
            shell=list(self.shell),
        )

    def variables(self) -> dict[str, str]:
        # ENV wins over an ARG of the same name (Dockerfile reference, "ARG").
        return {**self.args, **self.env}


def parse_dockerfile(
    path: Path,
    build_args: Mapping[str, str] | None = None,
    *,
    base_env: Mapping[str, str] | None = None,
) -> ImageConfig:
    """Read a Dockerfile (or a directory holding one) into the final stage's ImageConfig.

    Instructions are lexed by dockerfile-parse (continuations, comments, escape directive);
    their meaning follows Docker: shell-form CMD/ENTRYPOINT run under SHELL (default
    ``/bin/sh -c``), ENV/LABEL/WORKDIR/EXPOSE/USER expand ``$VAR``, ``${VAR}``,
    ``${VAR:-word}`` and ``${VAR:+word}`` from ENV and ARG, and ``FROM <earlier stage>``
    inherits that stage's config. The base image's own config cannot be read without Docker:
    ``base_env`` stands in for its environment (e.g. ``{"PATH": ...}`` so that
    ``ENV PATH=/app/bin:$PATH`` keeps it), and a final stage without CMD or ENTRYPOINT is an
    error. Raises ValueError for a missing or unusable Dockerfile.
    """
    path = Path(path)
    dockerfile = path / "Dockerfile" if path.is_dir() else path
    if not dockerfile.is_file():
        raise ValueError(
            _(
                "No Dockerfile at {dockerfile}. Pass the build context directory that contains "
                "the Dockerfile, or the Dockerfile itself."
            ).format(dockerfile=dockerfile)
        )
    # fileobj, not path: DockerfileParser only accepts files literally named "Dockerfile".
    parser = DockerfileParser(fileobj=io.BytesIO(dockerfile.read_bytes()))
    overrides = {str(k): str(v) for k, v in (build_args or {}).items()}
    inherited_env = {str(k): str(v) for k, v in (base_env or {}).items()}

    global_args: dict[str, str] = {}
    stages: list[_Stage] = []
    stage: _Stage | None = None
    for insn in parser.structure:
        kind: str = insn["instruction"]
        value: str = insn["value"] or ""
        where = f"{dockerfile}:{insn['startline'] + 1}"
        if kind == "COMMENT":
            continue
        if kind == "FROM":
            stage = _start_stage(value, stages, global_args, inherited_env, where)
            stages.append(stage)
        elif stage is None:
            if kind == "ARG":  # ARGs before the first FROM are global (usable in FROM)
                for name, default in _arg_declarations(value, global_args, where):
                    global_args[name] = overrides.get(name, default or "")
            else:
                raise ValueError(
                    _("{where}: {instruction} before the first FROM").format(
                        where=where, instruction=kind
                    )
                )
        else:
            _apply(stage, kind, value, overrides, global_args, where)

    if stage is None:
        raise ValueError(
            _("{dockerfile}: no FROM instruction; this is not a Dockerfile").format(
                dockerfile=dockerfile
            )
        )
    if not stage.entrypoint and not stage.cmd:
        raise ValueError(
            _(
                "{dockerfile}: the final stage (FROM {base}) has no CMD or ENTRYPOINT. "
                "The sandbox cannot read the base image's default command without Docker; add "
                'one, e.g. CMD ["python", "main.py"].'
            ).format(dockerfile=dockerfile, base=stage.base)
        )
    return ImageConfig(
        entrypoint=stage.entrypoint,
        cmd=stage.cmd,
        workdir=stage.workdir,
        env=stage.env,
        exposed_ports=sorted(stage.exposed),
        healthcheck=stage.healthcheck,
        user=stage.user,
        labels=stage.labels,
    )


def _start_stage(
    value: str,
    stages: list[_Stage],
    global_args: Mapping[str, str],
    base_env: Mapping[str, str],
    where: str,
) -> _Stage:
    image, name = image_from(value)
    if image is None:
        raise ValueError(_("{where}: FROM needs an image").format(where=where))
    image = _expand(image, global_args)
    lowered = image.lower()
    # FROM <earlier stage name or index> builds on that stage (multi-stage builds).
    for index, earlier in enumerate(stages):
        if lowered == str(index) or (earlier.name and lowered == earlier.name.lower()):
            return earlier.inherit(name, image)
    return _Stage(name=name, base=image, env=dict(base_env))


def _apply(
    stage: _Stage,
    kind: str,
    value: str,
    overrides: Mapping[str, str],
    global_args: Mapping[str, str],
    where: str,
) -> None:
    """Apply one instruction of a stage; instructions that only affect the filesystem
    (RUN, COPY, ADD, ...) do not matter to a process started from the build context."""
    if kind == "ARG":
        for name, default in _arg_declarations(value, stage.variables(), where):
            if name in overrides:
                stage.args[name] = overrides[name]
            elif default is not None:
                stage.args[name] = default
            elif name in global_args:  # re-declared global ARG takes the global value
                stage.args[name] = global_args[name]
    elif kind == "ENV":
        # All values of one ENV see the variables as they were before it (Docker).
        stage.env.update(_key_values(value, stage.variables(), where))
    elif kind == "LABEL":
        stage.labels.update(_key_values(value, stage.variables(), where))
    elif kind == "WORKDIR":
        workdir = _expand(value.strip(), stage.variables())
        stage.workdir = posixpath.normpath(posixpath.join(stage.workdir, workdir))
    elif kind == "EXPOSE":
        for word in _words(value):
            stage.exposed.update(_exposed_ports(_expand(word, stage.variables()), where))
    elif kind == "USER":
        stage.user = _expand(value.strip(), stage.variables()) or None
    elif kind == "SHELL":
        shell = _exec_form(value)
        if not shell:
            raise ValueError(
                _('{where}: SHELL needs the JSON form, e.g. ["/bin/bash", "-c"]').format(
                    where=where
                )
            )
        stage.shell = shell
    elif kind == "CMD":
        stage.cmd = _command(value, stage.shell)
        stage.cmd_set = True
    elif kind == "ENTRYPOINT":
        stage.entrypoint = _command(value, stage.shell)
        # Docker: ENTRYPOINT resets a CMD inherited from the base, not one set in this stage.
        if not stage.cmd_set:
            stage.cmd = []
    elif kind == "HEALTHCHECK":
        stage.healthcheck = _healthcheck(value, where)


def _exec_form(value: str) -> list[str] | None:
    """The JSON (exec) form's list, or None when the value is in shell form."""
    text = value.strip()
    if not text.startswith("["):
        return None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return None  # Docker falls back to shell form for invalid JSON
    if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
        return parsed
    return None


def _command(value: str, shell: list[str]) -> list[str]:
    exec_form = _exec_form(value)
    if exec_form is not None:
        return exec_form
    text = value.strip()
    return [*shell, text] if text else []


def _words(value: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes for _expand to process."""
    return list(WordSplitter(value).split(dequote=False))


def _arg_declarations(
    value: str, variables: Mapping[str, str], where: str
) -> list[tuple[str, str | None]]:
    declarations: list[tuple[str, str | None]] = []
    for word in _words(value):
        name, sep, default = word.partition("=")
        name = _expand(name, {})
        if not name:
            raise ValueError(_("{where}: ARG needs a name").format(where=where))
        declarations.append((name, _expand(default, variables) if sep else None))
    return declarations


def _key_values(value: str, variables: Mapping[str, str], where: str) -> dict[str, str]:
    """ENV/LABEL in both syntaxes: ``KEY=value ...`` and the legacy ``KEY value words``."""
    words = _words(value)
    if not words:
        raise ValueError(_("{where}: missing KEY=value").format(where=where))
    if "=" not in words[0]:
        key, *tail = re.split(r"\s+", value.strip(), maxsplit=1)
        rest = tail[0] if tail else ""
        if not rest.strip():
            raise ValueError(
                _("{where}: {key} needs a value (KEY=value or KEY value)").format(
                    where=where, key=key
                )
            )
        return {_expand(key, variables): _expand(rest.strip(), variables)}
    pairs: dict[str, str] = {}
    for word in words:
        key, sep, raw = word.partition("=")
        if not sep or not key:
            raise ValueError(
                _("{where}: expected KEY=value, got {word!r}").format(where=where, word=word)
            )
        pairs[_expand(key, variables)] = _expand(raw, variables)
    return pairs


def _exposed_ports(spec: str, where: str) -> list[int]:
    match = re.fullmatch(r"(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?", spec.lower())
    if not match:
        raise ValueError(
            _("{where}: invalid EXPOSE value {spec!r} (expected e.g. 3000/tcp)").format(
                where=where, spec=spec
            )
        )
    first = int(match.group(1))
    last = int(match.group(2) or first)
    if not 1 <= first <= last <= 65535:
        raise ValueError(
            _("{where}: invalid EXPOSE port range {spec!r}").format(where=where, spec=spec)
        )
    # Only TCP ports matter: the sandbox routes HTTP, and an ALB target is TCP.
    if (match.group(3) or "tcp") != "tcp":
        return []
    return list(range(first, last + 1))


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def _duration(text: str, flag: str, where: str) -> float:
    """Seconds from a Go duration ("30s", "1m30s", "500ms"), as HEALTHCHECK flags take."""
    if text == "0":
        return 0.0
    if not text:
        raise ValueError(_("{where}: --{flag} needs a duration").format(where=where, flag=flag))
    pos, total = 0, 0.0
    while pos < len(text):
        part = _DURATION_PART.match(text, pos)
        if part is None:
            raise ValueError(
                _("{where}: --{flag}={text} is not a duration like 30s or 1m30s").format(
                    where=where, flag=flag, text=text
                )
            )
        total += float(part.group(1)) * _DURATION_UNITS[part.group(2)]
        pos = part.end()
    return round(total, 9)


def _healthcheck(value: str, where: str) -> dict[str, Any] | None:
    rest = value.strip()
    options: dict[str, str] = {}
    while rest.startswith("--"):
        flag_match = re.match(r"--([a-z-]+)=(\S*)\s*", rest)
        if flag_match is None:
            raise ValueError(
                _("{where}: HEALTHCHECK flags take the form --name=value").format(where=where)
            )
        options[flag_match.group(1)] = flag_match.group(2)
        rest = rest[flag_match.end() :]
    keyword, _space, command = rest.partition(" ")
    if keyword.upper() == "NONE":
        return None  # disables any check inherited from the base image
    if keyword.upper() != "CMD" or not command.strip():
        raise ValueError(
            _("{where}: HEALTHCHECK must be NONE or [OPTIONS] CMD <command>").format(where=where)
        )
    exec_form = _exec_form(command)
    # Shell form is stored as CMD-SHELL; Docker runs it with the image's SHELL at check time.
    test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", command.strip()]
    check: dict[str, Any] = {"test": test}
    for flag, default in _HEALTHCHECK_DEFAULTS.items():
        raw = options.pop(flag.replace("_", "-"), None)
        check[flag] = default if raw is None else _duration(raw, flag.replace("_", "-"), where)
    retries = options.pop("retries", None)
    try:
        check["retries"] = _HEALTHCHECK_RETRIES_DEFAULT if retries is None else int(retries)
    except ValueError:
        raise ValueError(
            _("{where}: --retries={retries} is not a whole number").format(
                where=where, retries=retries
            )
        ) from None
    if check["retries"] < 0:
        raise ValueError(_("{where}: --retries cannot be negative").format(where=where))
    if options:
        raise ValueError(
            _("{where}: unknown HEALTHCHECK flag(s): {flags}").format(
                where=where, flags=", ".join(sorted(options))
            )
        )
    return check


def _expand(text: str, variables: Mapping[str, str]) -> str:
    """Docker's word processing for ENV, LABEL, WORKDIR, ...: quotes, backslash escapes and
    $VAR / ${VAR} / ${VAR:-word} / ${VAR:+word} (dockerfile-parse lacks the modifiers).
    Unset variables expand to "" as in Docker."""
    out: list[str] = []
    i, n = 0, len(text)
    quote: str | None = None
    while i < n:
        ch = text[i]
        if quote == "'":
            if ch == "'":
                quote = None
            else:
                out.append(ch)
            i += 1
        elif ch == "\\" and i + 1 < n:
            nxt = text[i + 1]
            # Inside double quotes a backslash only escapes \ " $; elsewhere it escapes all.
            if quote == '"' and nxt not in '\\"$':
                out.append(ch)
            else:
                out.append(nxt)
            i += 2
        elif ch == '"':
            quote = None if quote == '"' else '"'
            i += 1
        elif ch == "'" and quote is None:
            quote = "'"
            i += 1
        elif ch == "$":
            value, i = _dollar(text, i, variables)
            out.append(value)
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _dollar(text: str, start: int, variables: Mapping[str, str]) -> tuple[str, int]:
    """Expand the $-reference at text[start]; return its value and the index after it."""
    simple = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(text, start + 1)
    if simple:
        return variables.get(simple.group(0), ""), simple.end()
    if not text.startswith("{", start + 1):
        return "$", start + 1
    name_match = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(text, start + 2)
    if name_match is None:
        return "$", start + 1
    name, pos = name_match.group(0), name_match.end()
    if text.startswith("}", pos):
        return variables.get(name, ""), pos + 1
    modifier = re.compile(r":?[-+]").match(text, pos)
    if modifier is None:
        return "$", start + 1
    # The word runs to the matching brace; it may itself hold ${...} references.
    depth, end = 1, modifier.end()
    while end < len(text) and depth:
        if text[end] == "{":
            depth += 1
        elif text[end] == "}":
            depth -= 1
        end += 1
    if depth:
        return "$", start + 1
    word = _expand(text[modifier.end() : end - 1], variables)
    is_set = name in variables and (not modifier.group(0).startswith(":") or variables[name])
    if modifier.group(0).endswith("-"):
        return (variables[name] if is_set else word), end
    return (word if is_set else ""), end


# --------------------------------------------------------------------------- manifests


def _canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _oci_config_blob(config: ImageConfig, diff_ids: list[str]) -> bytes:
    """The OCI image config JSON the manifest's config descriptor points at."""
    runtime: dict[str, Any] = {
        "Cmd": config.cmd or None,
        "Entrypoint": config.entrypoint or None,
        "Env": [f"{k}={v}" for k, v in sorted(config.env.items())],
        "ExposedPorts": {f"{p}/tcp": {} for p in sorted(config.exposed_ports)},
        "Labels": dict(sorted(config.labels.items())),
        "User": config.user or "",
        "WorkingDir": config.workdir,
    }
    if config.healthcheck is not None:
        hc = config.healthcheck
        # Docker stores HEALTHCHECK durations in nanoseconds.
        runtime["Healthcheck"] = {
            "Test": hc.get("test"),
            "Interval": int(hc.get("interval", 0) * 1e9),
            "Timeout": int(hc.get("timeout", 0) * 1e9),
            "StartPeriod": int(hc.get("start_period", 0) * 1e9),
            "StartInterval": int(hc.get("start_interval", 0) * 1e9),
            "Retries": hc.get("retries", 0),
        }
    blob = {
        # Fargate's default runtime platform is LINUX/X86_64.
        "architecture": "amd64",
        "os": "linux",
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    return _canonical_json(blob).encode("utf-8")


def _context_files(root: Path) -> list[Path]:
    """The build context's files, sorted (caches, virtualenvs and VCS metadata skipped)."""
    if not root.is_dir():
        return []
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and not path.name.endswith(".pyc")
        and not _SKIPPED_DIRS.intersection(path.relative_to(root).parts)
    )


def context_layer(context_dir: Path) -> tuple[bytes, bytes]:
    """The build context as an image layer: (the tar, the tar gzipped), made the same way
    each time (names sorted, times, owners and modes fixed), so the same files give the
    same layer digest, and a changed file a new one, hence a new image digest, as ``docker
    build`` would. Its gzipped size is what the image adds to the registry."""
    root = Path(context_dir)
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _context_files(root):
            data = path.read_bytes()
            info = tarfile.TarInfo("app/" + path.relative_to(root).as_posix())
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return plain.getvalue(), gzip.compress(plain.getvalue(), mtime=0)


def build_manifest(
    context_dir: Path, config: ImageConfig, *, dockerfile: str = "Dockerfile"
) -> str:
    """OCI image manifest JSON for a sandbox image, ready for ``ecr.put_image``.

    The annotations record the build context (as an absolute path), the Dockerfile name
    and the parsed config; its one layer is the context (its digest and
    gzipped size: what ECR reports as the image's size), though the sandbox runs the context
    in place. The same input always gives the same text, hence the same digest.
    """
    tar, zipped = context_layer(context_dir)
    blob = _oci_config_blob(config, ["sha256:" + hashlib.sha256(tar).hexdigest()])
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": OCI_CONFIG_MEDIA_TYPE,
            "digest": "sha256:" + hashlib.sha256(blob).hexdigest(),
            "size": len(blob),
        },
        "layers": [
            {
                "mediaType": OCI_LAYER_MEDIA_TYPE,
                "digest": "sha256:" + hashlib.sha256(zipped).hexdigest(),
                "size": len(zipped),
            }
        ],
        "annotations": {
            ANNOTATION_CONTEXT: Path(context_dir).resolve().as_posix(),
            ANNOTATION_DOCKERFILE: dockerfile,
            ANNOTATION_CONFIG: _canonical_json(config.to_dict()),
        },
    }
    return json.dumps(manifest, indent=2, ensure_ascii=False)


def image_digest(manifest: str) -> str:
    """``sha256:<hex>`` of the manifest bytes: what ECR reports as imageDigest.

    moto 5.2 derives its imageDigest from the layer digests instead (the same value for
    two images with the same files and another Dockerfile) unless put_image is given
    ``imageDigest=image_digest(m)``.
    """
    return "sha256:" + hashlib.sha256(manifest.encode("utf-8")).hexdigest()


def read_manifest(manifest: str) -> LocalImage | None:
    """The LocalImage a sandbox manifest describes; None for any other manifest (e.g. one
    pushed by a real ``docker push``). Raises ValueError if a sandbox annotation is corrupt."""
    try:
        data = json.loads(manifest)
    except (TypeError, ValueError):
        return None
    annotations = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(annotations, dict):
        return None
    context = annotations.get(ANNOTATION_CONTEXT)
    raw_config = annotations.get(ANNOTATION_CONFIG)
    if not isinstance(context, str) or not isinstance(raw_config, str):
        return None
    try:
        config_data = json.loads(raw_config)
    except ValueError as exc:
        raise ValueError(f"corrupt {ANNOTATION_CONFIG} annotation: {exc}") from exc
    if not isinstance(config_data, dict):
        raise ValueError(f"corrupt {ANNOTATION_CONFIG} annotation: not a JSON object")
    return LocalImage(
        context_dir=Path(context),
        config=ImageConfig.from_dict(config_data),
        dockerfile=str(annotations.get(ANNOTATION_DOCKERFILE) or "Dockerfile"),
    )


# --------------------------------------------------------------------------- references

_ECR_HOST = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)"
    r"\.amazonaws\.com(?:\.cn)?"
)
# ECR repository names (CreateRepository): lowercase path components of [a-z0-9._-].
_ECR_REPOSITORY = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[+._-][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")


def parse_image_uri(uri: str) -> ImageRef:
    """Split an image reference into registry, repository, tag and digest.

    ECR URIs ``<acct>.dkr.ecr.<region>.amazonaws.com/<repo>[:tag|@sha256:...]`` also yield
    account and region (``is_ecr``); anything else (``nginx:latest``,
    ``public.ecr.aws/x/y:1``) parses with ``is_ecr`` False. The tag defaults to "latest"
    unless the reference pins a digest. Raises ValueError for a malformed reference.
    """
    ref = uri.strip()
    if not ref or any(ch.isspace() for ch in ref):
        raise ValueError(f"invalid image reference {uri!r}")
    name, at, digest = ref.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise ValueError(f"invalid digest in image reference {uri!r}")
    tag: str | None = None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ValueError(f"invalid tag {tag!r} in image reference {uri!r}")
    registry: str | None = None
    first, sep, remainder = name.partition("/")
    # Docker's rule: the first component is a registry host if it looks like one.
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, name = first.lower(), remainder
    if not name:
        raise ValueError(f"invalid image reference {uri!r}: no repository")
    if tag is None and not at:
        tag = "latest"

    host = _ECR_HOST.fullmatch(registry or "")
    if host is None:
        if registry and ".dkr.ecr." in registry:
            raise ValueError(
                f"{uri!r} looks like an ECR URI but the registry host is malformed; expected "
                "<12-digit account>.dkr.ecr.<region>.amazonaws.com"
            )
        return ImageRef(None, None, name, tag, digest or None, registry)
    if not _ECR_REPOSITORY.fullmatch(name) or not 2 <= len(name) <= 256:
        raise ValueError(
            f"invalid ECR repository name {name!r} in {uri!r}: use 2-256 lowercase letters, "
            "digits and . _ - / (each path part starting and ending with a letter or digit)"
        )
    if at and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise ValueError(f"invalid ECR image digest {digest!r}: expected sha256:<64 hex>")
    return ImageRef(host["account"], host["region"], name, tag, digest or None, registry)


# --------------------------------------------------------------------------- commands


def container_command(
    config: ImageConfig,
    *,
    command_override: list[str] | None,
    entrypoint_override: list[str] | None,
) -> list[str]:
    """argv a container starts with: ENTRYPOINT + CMD after task-definition overrides.

    Docker's merge rules: ``entryPoint`` replaces ENTRYPOINT and drops the image CMD;
    ``command`` replaces CMD. An empty list counts as not set, because the ECS agent leaves
    empty lists out of the container config. Raises ValueError if nothing is left to run.
    """
    if entrypoint_override:
        argv = [*entrypoint_override, *(command_override or [])]
    else:
        argv = [*config.entrypoint, *(command_override or config.cmd)]
    if not argv:
        raise ValueError("no command specified: the image has no CMD or ENTRYPOINT")
    return argv
