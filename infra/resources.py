"""Creating the template's buckets, queues and topics on moto, with the template's own properties.

Queues first (buckets notify them), then their redrive policies (a dead-letter queue may come
after its source), then topics, then buckets with versioning, CORS, public access block,
encryption and ownership, then the buckets' notifications and policies. Each step returns what
it created and the names of what it did not apply locally (``ignored``).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from infra.template import Resolver, TemplateError, to_bool


@dataclass(frozen=True)
class QueueInfo:
    """One queue of the template, as created locally."""

    logical_id: str
    """Logical id in ``template.yaml``."""
    name: str
    """Queue name."""
    url: str
    """Queue URL on the local endpoint."""
    arn: str
    """Queue ARN."""
    fifo: bool
    """FIFO queue (name ends with ``.fifo``)."""
    attributes: dict[str, str] = field(default_factory=dict)
    """Attributes given to ``create_queue`` / ``set_queue_attributes`` (as strings)."""
    dead_letter_queue: str | None = None
    """Logical id of the redrive target, if any."""
    max_receive_count: int | None = None
    """Receives before a message moves to the dead-letter queue, if any."""


_CORS_KEYS = {
    "AllowedHeaders": "AllowedHeaders",
    "AllowedMethods": "AllowedMethods",
    "AllowedOrigins": "AllowedOrigins",
    "ExposedHeaders": "ExposeHeaders",
    "Id": "ID",
    "MaxAge": "MaxAgeSeconds",
}
_BUCKET_KEYS = frozenset(
    {
        "BucketName",
        "VersioningConfiguration",
        "CorsConfiguration",
        "NotificationConfiguration",
        "PublicAccessBlockConfiguration",
        "BucketEncryption",
        "OwnershipControls",
    }
)
_QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)
_QUEUE_KEYS = frozenset({*_QUEUE_ATTRIBUTES, "QueueName", "RedrivePolicy"})


def _s3_filter(cfn_filter: Mapping[str, Any] | None) -> dict[str, Any] | None:
    rules = ((cfn_filter or {}).get("S3Key") or {}).get("Rules") or []
    if not rules:
        return None
    return {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}


# --------------------------------------------------------------------------------------------
# Queues


def create_queues(sqs: Any, resolver: Resolver) -> tuple[dict[str, QueueInfo], list[str]]:
    """Create every active ``AWS::SQS::Queue`` of the template, then set the redrive policies.

    Returns logical id -> queue (template order) and the ``{logical id}.{property}`` names of
    the properties not applied locally.
    """
    queues: dict[str, QueueInfo] = {}
    ignored: list[str] = []
    redrive: dict[str, Any] = {}
    for lid, res in resolver.resources.items():
        if res.get("Type") != "AWS::SQS::Queue" or not resolver.active(res):
            continue
        props, others = resolver.resolve_some(res.get("Properties") or {}, _QUEUE_KEYS)
        attributes = _queue_attributes(props)
        name = resolver.physical[lid]
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        if "RedrivePolicy" in props:
            redrive[lid] = props["RedrivePolicy"]
        ignored.extend(f"{lid}.{other}" for other in others)
        queues[lid] = QueueInfo(
            logical_id=lid,
            name=name,
            url=url,
            arn=resolver.queue_arn(lid),
            fifo=to_bool(props.get("FifoQueue", False)),
            attributes=attributes,
        )
    arn_to_lid = {q.arn: lid for lid, q in queues.items()}
    for lid, policy in redrive.items():
        queues[lid] = _set_redrive(sqs, queues[lid], policy, arn_to_lid)
    return queues, ignored


def _queue_attributes(props: Mapping[str, Any]) -> dict[str, str]:
    """The ``create_queue`` attributes of resolved queue properties, as strings."""
    attributes = {
        k: (str(v).lower() if isinstance(v, bool) else str(v))
        for k, v in props.items()
        if k in _QUEUE_ATTRIBUTES
    }
    if attributes.get("FifoQueue") == "false":
        del attributes["FifoQueue"]
    return attributes


def _set_redrive(
    sqs: Any, queue: QueueInfo, policy: Any, arn_to_lid: Mapping[str, str]
) -> QueueInfo:
    """Give ``queue`` its redrive policy (JSON text or mapping); return it as now configured."""
    policy = json.loads(policy) if isinstance(policy, str) else dict(policy)
    target = policy["deadLetterTargetArn"]
    count = int(policy["maxReceiveCount"])
    text = json.dumps({"deadLetterTargetArn": target, "maxReceiveCount": count})
    sqs.set_queue_attributes(QueueUrl=queue.url, Attributes={"RedrivePolicy": text})
    return replace(
        queue,
        attributes={**queue.attributes, "RedrivePolicy": text},
        dead_letter_queue=arn_to_lid.get(target),
        max_receive_count=count,
    )


# --------------------------------------------------------------------------------------------
# Topics


@dataclass(frozen=True)
class TopicInfo:
    """One SNS topic of the template, as created locally."""

    logical_id: str
    """Logical id in ``template.yaml``."""
    name: str
    """Topic name."""
    arn: str
    """Topic ARN (what ``!Ref`` gives)."""


_TOPIC_ATTRIBUTES = ("DisplayName", "KmsMasterKeyId")
_TOPIC_KEYS = frozenset({*_TOPIC_ATTRIBUTES, "TopicName"})


def create_topics(sns: Any, resolver: Resolver) -> tuple[dict[str, TopicInfo], list[str]]:
    """Create every active ``AWS::SNS::Topic`` of the template (name, display name, key).

    Returns logical id -> topic (template order) and the properties not applied locally.
    """
    topics: dict[str, TopicInfo] = {}
    ignored: list[str] = []
    for lid, res in resolver.resources.items():
        if res.get("Type") != "AWS::SNS::Topic" or not resolver.active(res):
            continue
        props, others = resolver.resolve_some(res.get("Properties") or {}, _TOPIC_KEYS)
        attributes = {k: str(props[k]) for k in _TOPIC_ATTRIBUTES if k in props}
        name = resolver.physical[lid]
        arn = sns.create_topic(Name=name, Attributes=attributes)["TopicArn"]
        ignored.extend(f"{lid}.{other}" for other in others)
        topics[lid] = TopicInfo(logical_id=lid, name=name, arn=arn)
    return topics, ignored


# --------------------------------------------------------------------------------------------
# Buckets


def create_buckets(
    s3: Any, resolver: Resolver, region: str
) -> tuple[dict[str, str], dict[str, Any], list[str]]:
    """Create every active ``AWS::S3::Bucket`` of the template with its configuration.

    Returns logical id -> bucket name (template order), logical id -> the bucket's resolved
    ``NotificationConfiguration`` (for ``apply_notifications``), and the properties not applied.
    """
    buckets: dict[str, str] = {}
    notifications: dict[str, Any] = {}
    ignored: list[str] = []
    for lid, res in resolver.resources.items():
        if res.get("Type") != "AWS::S3::Bucket" or not resolver.active(res):
            continue
        props, others = resolver.resolve_some(res.get("Properties") or {}, _BUCKET_KEYS)
        name = resolver.physical[lid]
        if region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
        buckets[lid] = name
        _configure_bucket(s3, name, props)
        if props.get("NotificationConfiguration"):
            notifications[lid] = props["NotificationConfiguration"]
        ignored.extend(f"{lid}.{other}" for other in others)
    return buckets, notifications, ignored


def _configure_bucket(s3: Any, name: str, props: Mapping[str, Any]) -> None:
    """Versioning, CORS, public access block, encryption and ownership from the template."""
    versioning = (props.get("VersioningConfiguration") or {}).get("Status")
    if versioning:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning})
    cors = (props.get("CorsConfiguration") or {}).get("CorsRules")
    if cors:
        rules = [{_CORS_KEYS[k]: v for k, v in r.items() if k in _CORS_KEYS} for r in cors]
        s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": rules})
    block = props.get("PublicAccessBlockConfiguration")
    if block:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
    encryption = (props.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration")
    if encryption:  # CloudFormation's ServerSideEncryptionByDefault is the API's Apply...
        rules = [
            {
                (
                    "ApplyServerSideEncryptionByDefault"
                    if k == "ServerSideEncryptionByDefault"
                    else k
                ): v
                for k, v in rule.items()
            }
            for rule in encryption
        ]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    ownership = props.get("OwnershipControls")
    if ownership:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=ownership)


def apply_notifications(
    s3: Any, buckets: Mapping[str, str], notifications: Mapping[str, Any]
) -> list[str]:
    """Apply each bucket's queue notifications with the S3 API (moto does not apply them from
    CloudFormation); returns the notification kinds not applied locally."""
    ignored: list[str] = []
    for lid, config in notifications.items():
        queue_configs = [
            {
                "QueueArn": c["Queue"],
                "Events": [c["Event"]],
                **({"Filter": f} if (f := _s3_filter(c.get("Filter"))) else {}),
            }
            for c in config.get("QueueConfigurations") or []
        ]
        for other in sorted(set(config) - {"QueueConfigurations"}):
            ignored.append(f"{lid}.NotificationConfiguration.{other}")
        if queue_configs:
            s3.put_bucket_notification_configuration(
                Bucket=buckets[lid],
                NotificationConfiguration={"QueueConfigurations": queue_configs},
            )
    return ignored


# --------------------------------------------------------------------------------------------
# Bucket policies


def apply_bucket_policies(s3: Any, resolver: Resolver, buckets: Mapping[str, str]) -> list[str]:
    """Apply every active ``AWS::S3::BucketPolicy`` (see ``apply_bucket_policy``); returns what
    was left out."""
    ignored: list[str] = []
    for lid, res in resolver.resources.items():
        if res.get("Type") == "AWS::S3::BucketPolicy" and resolver.active(res):
            props = res.get("Properties") or {}
            ignored.extend(apply_bucket_policy(s3, lid, props, resolver, buckets.values()))
    return ignored


def apply_bucket_policy(
    s3: Any, lid: str, props: Mapping[str, Any], resolver: Resolver, buckets: Collection[str]
) -> list[str]:
    """Apply a bucket policy, without the statements moto cannot judge; returns what was left out.

    moto judges a statement whose ``Condition`` it cannot evaluate (``aws:SecureTransport``,
    ``aws:SourceArn``...) as DENIED for every request, which would block even the handlers;
    such statements, and those naming principals the local stack does not create (function
    roles), are left out locally and listed in the result.
    """
    ignored: list[str] = []
    bucket = resolver.resolve(props.get("Bucket"))
    if bucket not in buckets:
        return [f"{lid} (bucket {bucket!r} is not created locally)"]
    document = dict(props.get("PolicyDocument") or {})
    statements = document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    kept = []
    for i, statement in enumerate(statements):
        sid = statement.get("Sid", i)
        if statement.get("Condition"):
            ignored.append(f"{lid}.Statement[{sid}] (has a Condition)")
            continue
        try:
            kept.append(resolver.resolve(statement))
        except TemplateError as exc:
            ignored.append(f"{lid}.Statement[{sid}] ({exc})")
    if kept:
        document["Statement"] = kept
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(document))
    return ignored
