"""Fetch a batch from `s3://bucket/prefix` into a local folder, through boto3.

    client = s3_client(settings)
    staged = stage_s3("s3://cards/incoming/batch-7", Path("/tmp/stage"), client)
    staged.unreadable    # {"images/x.jpg": "InvalidObjectState: ..."}

Endpoint, region and keys come from the settings when set, else from boto3's own chain
(environment, ~/.aws, instance role). Transient errors are retried by botocore's standard retry
mode; an object that stays unreadable is recorded, not fatal: its item is quarantined with why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from components.ingest.formats import inside
from components.ingest.model import IngestError
from components.settings import GradelineSettings

RETRIES = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5,
                 read_timeout=30)


@dataclass
class StagedSource:
    """A remote batch copied to `root`; `unreadable` maps relative keys to the error."""

    root: Path
    unreadable: dict[str, str] = field(default_factory=dict)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, prefix ending in / or empty) of an s3:// URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise IngestError(f"{uri!r} is not an s3://bucket/prefix URI")
    prefix = parsed.path.lstrip("/")
    return parsed.netloc, prefix if not prefix or prefix.endswith("/") else prefix + "/"


def s3_client(settings: GradelineSettings):
    """A boto3 S3 client for the settings' endpoint, region and keys (each optional)."""
    secret = settings.aws_secret_access_key
    key = settings.aws_access_key_id
    return boto3.client(
        "s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.aws_region,
        aws_access_key_id=key.get_secret_value() if key else None,
        aws_secret_access_key=secret.get_secret_value() if secret else None, config=RETRIES)


def stage_s3(uri: str, root: Path, client) -> StagedSource:
    """Download every object under the URI's prefix to `root`, keeping relative keys.

    Listing errors raise (nothing can be known about the batch); a single object that cannot
    be fetched is recorded in `unreadable`.
    """
    bucket, prefix = parse_s3_uri(uri)
    staged = StagedSource(root=root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = [entry["Key"] for page in pages for entry in page.get("Contents", ())]
    except ClientError as error:
        raise IngestError(f"cannot list {uri}: {error}") from error
    if not keys:
        raise IngestError(f"{uri} holds no objects")
    for key in keys:
        relative = key[len(prefix):]
        target = inside(root, relative)
        if target is None or key.endswith("/"):
            continue  # folder markers; a key leaving the prefix cannot be written safely
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            client.download_file(bucket, key, str(target))
        except (ClientError, BotoCoreError) as error:
            target.unlink(missing_ok=True)
            staged.unreadable[relative] = str(error)
    return staged
