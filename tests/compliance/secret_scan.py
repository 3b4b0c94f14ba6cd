"""A scanner for credentials in a cloud assembly (cdk.out): every file, zip members too.

Deliberately simple patterns, each for a way a secret could end up in synthesized output:
a credential pasted into config or code, a secret value unwrapped into a template or a
Kubernetes manifest (which CloudFormation would resolve into plain text), a key file copied
into an asset. The only files not scanned are Lambda layers byte-identical to the layer.zip
shipped in a pinned AWS CDK package (the AWS CLI layer carries botocore's documentation
examples, e.g. AKIAIOSFODNN7EXAMPLE); they are listed in the result, not silently passed.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import aws_cdk

# JSON inside JSON (a manifest in a template) escapes quotes: allow backslashes before them.
_Q = rb'\\*"'

PATTERNS: dict[str, re.Pattern[bytes]] = {
    "aws access key id": re.compile(rb"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),
    "aws secret access key": re.compile(
        rb"(?i)aws.?secret.?access.?key\\*[\"']?\s*[:=]\s*\\*[\"']?[A-Za-z0-9/+=]{40}"
    ),
    "private key": re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    "SecretString": re.compile(_Q + rb"SecretString" + _Q + rb"\s*:"),
    "password value": re.compile(
        rb"(?i)"
        + _Q
        + rb"[a-z_]*pass(?:word|wd)"
        + _Q
        + rb"\s*:\s*"
        + _Q
        + rb"(?!\{\{resolve:|\$\{)[^\"\\]+"
        + _Q
    ),
    "password env var": re.compile(
        _Q
        + rb"name"
        + _Q
        + rb"\s*:\s*"
        + _Q
        + rb"[A-Z0-9_]*(?:PASSWORD|PASSWD|ACCESS_KEY)[A-Z0-9_]*"
        + _Q
        + rb"\s*,\s*"
        + _Q
        + rb"value"
        + _Q
    ),
    "password env var, value first": re.compile(
        _Q
        + rb"value"
        + _Q
        + rb"\s*:\s*"
        + _Q
        + rb"[^\"\\]*"
        + _Q
        + rb"\s*,\s*"
        + _Q
        + rb"name"
        + _Q
        + rb"\s*:\s*"
        + _Q
        + rb"[A-Z0-9_]*(?:PASSWORD|PASSWD|ACCESS_KEY)"
    ),
    "password assignment": re.compile(rb"(?i)\bpass(?:word|wd)\s*=\s*[\"'][^\"'\n]{4,}[\"']"),
    "credentials in a URL": re.compile(rb"\b[a-z][a-z0-9+.-]*://[^/\s:@\"'\\]+:[^/\s@\"'\\]+@"),
}


YAML_PATTERNS: dict[str, re.Pattern[bytes]] = {
    "password env var (YAML)": re.compile(
        rb"(?m)name:\s*[\"']?[A-Z0-9_]*(?:PASSWORD|PASSWD|ACCESS_KEY)[A-Z0-9_]*[\"']?[ \t]*\n"
        rb"[ \t-]*value:"
    ),
    "password env var, value first (YAML)": re.compile(
        rb"(?m)value:[^\n]*\n[ \t-]*name:\s*[\"']?[A-Z0-9_]*(?:PASSWORD|PASSWD|ACCESS_KEY)"
    ),
    "password value (YAML)": re.compile(
        rb"(?im)^[ \t-]*[a-z_]*pass(?:word|wd):[ \t]*(?![\"']?\$\{)[^\s#][^\n]*$"
    ),
}
"""Only for YAML files (the review manifests in cdk.out/manifests/, YAML in assets): an env
entry either way round, a password key. In code `password: str` is a type annotation."""


@dataclass
class Finding:
    file: str
    kind: str
    text: str


@dataclass
class ScanResult:
    findings: list[Finding] = field(default_factory=list)
    scanned: list[str] = field(default_factory=list)
    vendored: list[str] = field(default_factory=list)
    """Files skipped because they are byte-identical to a pinned package's layer.zip."""


def scan(directory: Path) -> ScanResult:
    result = ScanResult()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = str(path.relative_to(directory))
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() in vendored_layers():
            result.vendored.append(name)
            continue
        for member, content in _contents(name, data):
            result.scanned.append(member)
            result.findings.extend(scan_bytes(member, content))
    for template in sorted(directory.glob("*.template.json")):
        result.findings.extend(_dynamic_secret_references(template))
    return result


def scan_bytes(name: str, data: bytes) -> Iterator[Finding]:
    patterns = PATTERNS
    if name.endswith((".yaml", ".yml")):
        patterns = {**PATTERNS, **YAML_PATTERNS}
    for kind, pattern in patterns.items():
        for match in pattern.finditer(data):
            yield Finding(name, kind, match.group(0)[:120].decode("utf-8", "replace"))


def _contents(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    yield name, data
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(__import__("io").BytesIO(data)) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    yield from _contents(f"{name}!{info.filename}", archive.read(info))


def _dynamic_secret_references(template: Path) -> Iterator[Finding]:
    """`{{resolve:secretsmanager:...}}` only as an RDS master password: anywhere else (an
    environment variable, a Kubernetes manifest, an output) CloudFormation would write the
    secret's value in plain text."""
    resources = json.loads(template.read_text()).get("Resources", {})
    for path, value in _strings(json.loads(template.read_text())):
        if "{{resolve:secretsmanager:" not in value:
            continue
        allowed = (
            len(path) >= 4
            and path[0] == "Resources"
            and path[2:4] == ("Properties", "MasterUserPassword")
            and resources.get(path[1], {}).get("Type") == "AWS::RDS::DBInstance"
        )
        if not allowed:
            yield Finding(template.name, "secret dynamic reference", "/".join(map(str, path)))


def _strings(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))


@cache
def vendored_layers() -> frozenset[str]:
    """SHA-256 of the layer.zip in each installed aws_cdk layer package (awscli, kubectl...)."""
    digests = set()
    root = Path(aws_cdk.__file__).parent
    for tgz in root.glob("*/_jsii/*.jsii.tgz"):
        if tgz.name.startswith("aws-cdk-lib@"):
            continue
        with tarfile.open(tgz) as archive:
            for member in archive.getmembers():
                if member.name.endswith("layer.zip"):
                    extracted = archive.extractfile(member)
                    assert extracted is not None
                    digests.add(hashlib.sha256(extracted.read()).hexdigest())
    return frozenset(digests)
