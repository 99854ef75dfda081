"""template.yaml: cfn-lint passes, the SAM transform gives the resources the design asks for.

The template is read with a small CloudFormation-aware YAML loader (short forms ``!Sub``... as
their long forms), its local ``CodeUri``/``ContentUri`` are replaced by S3 URIs as ``sam package``
does, then ``samtranslator`` turns it into plain CloudFormation, offline. Tests skip only when
cfn-lint or aws-sam-translator is not installed (both are in the ``dev`` extra).
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
REGION = "eu-west-3"

BUCKETS = ("IncomingBucket", "InternalBucket", "PublishedBucket")
FUNCTIONS = ("ValidateFunction", "PublishFunction", "SiteFunction", "IndexApiFunction")
SETTINGS = (
    "OPENDEPOT_INCOMING_BUCKET",
    "OPENDEPOT_INTERNAL_BUCKET",
    "OPENDEPOT_PUBLISHED_BUCKET",
    "OPENDEPOT_PUBLIC_BASE_URL",
    "POWERTOOLS_SERVICE_NAME",
)
ALL_PUBLIC_ACCESS_BLOCKED = {
    "BlockPublicAcls": True,
    "BlockPublicPolicy": True,
    "IgnorePublicAcls": True,
    "RestrictPublicBuckets": True,
}


# ------------------------------------------------------------------------------ helpers


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader reading CloudFormation short forms (``!Ref``, ``!Sub``...) as long forms."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def _load() -> dict[str, Any]:
    with TEMPLATE.open(encoding="utf-8") as f:
        doc = yaml.load(f, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    assert isinstance(doc, dict)
    return doc


class _NoManagedPolicies:
    """Managed-policy loader for an offline transform (SAM then builds the ARNs itself)."""

    def load(self) -> dict[str, str]:
        return {}


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == kind}


def _props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id].get("Properties", {})


def _statements(role: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for policy in role["Properties"].get("Policies", []):
        statements = policy["PolicyDocument"]["Statement"]
        yield from [statements] if isinstance(statements, dict) else statements


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def _buckets_named(value: Any) -> set[str]:
    """Logical ids of the buckets a policy resource refers to (by Ref, Sub or GetAtt)."""
    text = json.dumps(value)
    return {b for b in BUCKETS if b in text}


def _s3_access(transformed: dict[str, Any], function: str, action: str) -> set[str]:
    """Buckets the function's role may apply ``action`` (or a wildcard covering it) to."""
    role_id = transformed["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    out: set[str] = set()
    for st in _statements(transformed["Resources"][role_id]):
        if st.get("Effect") != "Allow":
            continue
        if any(a in (action, "s3:*", "*") for a in _actions(st)):
            out |= _buckets_named(st.get("Resource"))
    return out


S3_WRITES = (
    "s3:PutObject",
    "s3:PutObjectAcl",
    "s3:PutObjectTagging",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:RestoreObject",
)
"""Actions that change a bucket's objects (a statement's action patterns are matched to them)."""


def _label(resource: Any) -> str:
    """A policy resource, short: ``InternalBucket/reports/*`` for
    ``!Sub arn:${AWS::Partition}:s3:::${InternalBucket}/reports/*``, ``PublishQueue`` for
    ``!GetAtt PublishQueue.Arn``."""
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        name, attribute = resource["Fn::GetAtt"]
        assert attribute == "Arn", resource
        return str(name)
    if isinstance(resource, dict) and "Ref" in resource:  # a topic's Ref is its ARN
        return str(resource["Ref"])
    text = resource["Fn::Sub"] if isinstance(resource, dict) else resource
    assert isinstance(text, str), resource
    return re.sub(r"\$\{([^}]+)\}", r"\1", text.removeprefix("arn:${AWS::Partition}:s3:::"))


def _grants(role: dict[str, Any]) -> set[tuple[str, str]]:
    """(action, resource label) for every action and resource a role's statements allow."""
    out = set()
    for st in _statements(role):
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        out |= {(a, _label(r)) for a in _actions(st) for r in resources}
    return out


_IAM_NAMES = {"AWS::Partition": "aws", "IncomingBucket": "incoming", "InternalBucket": "internal"}


def _iam_pattern(value: Any, producer: str | None) -> str | None:
    """A statement's resource or condition value as IAM reads it for a principal tagged
    ``producer`` (None when the tag is missing: the value then matches nothing)."""
    text = value
    if isinstance(value, dict):  # CloudFormation substitutes first; ${!x} is a literal ${x}
        text = re.sub(r"\$\{([^!}][^}]*)\}", lambda m: _IAM_NAMES[m.group(1)], value["Fn::Sub"])
        text = text.replace("${!", "${")
    if "${aws:PrincipalTag/producer}" in text:
        if producer is None:
            return None
        text = text.replace("${aws:PrincipalTag/producer}", producer)
    return str(text)


def _iam_like(pattern: str | None, value: str) -> bool:
    """IAM's wildcard match: ``*`` is any run of characters (``/`` included), ``?`` one."""
    if pattern is None:
        return False
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value) is not None


def _iam_allows(
    statements: list[dict[str, Any]],
    action: str,
    resource: str,
    producer: str | None,
    context: dict[str, str],
) -> bool:
    """IAM's verdict for one request: an explicit Deny wins, else some Allow must match (only
    the ``StringLike`` condition is understood, as the producer policy uses no other)."""

    def matches(st: dict[str, Any]) -> bool:
        if not any(_iam_like(a, action) for a in _actions(st)):
            return False
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if not any(_iam_like(_iam_pattern(r, producer), resource) for r in resources):
            return False
        for operator, tests in (st.get("Condition") or {}).items():
            assert operator == "StringLike", operator
            for key, pattern in tests.items():
                value = context.get(key)
                if value is None or not _iam_like(_iam_pattern(pattern, producer), value):
                    return False
        return True

    hits = [st["Effect"] for st in statements if matches(st)]
    return "Allow" in hits and "Deny" not in hits


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    if not TEMPLATE.is_file():
        pytest.fail(f"{TEMPLATE} is missing")
    return _load()


@pytest.fixture(scope="module")
def transformed(template: dict[str, Any]) -> dict[str, Any]:
    """The SAM template turned into plain CloudFormation by aws-sam-translator."""
    transform = pytest.importorskip("samtranslator.translator.transform").transform
    sam = copy.deepcopy(template)
    for res in sam["Resources"].values():
        props = res.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://opendepot-artifacts/{props[key].strip('/')}.zip"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        mp.setenv("AWS_REGION", REGION)
        out: dict[str, Any] = transform(sam, {}, _NoManagedPolicies())
    return out


# ------------------------------------------------------------------------------ lint


def test_template__passes_cfn_lint_without_errors_or_warnings() -> None:
    api = pytest.importorskip("cfnlint.api")

    matches = api.lint_file(TEMPLATE, config=api.ManualArgs(regions=[REGION, "us-east-1"]))

    assert [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches] == []


# ------------------------------------------------------------------------------ source template


def test_template_sections__come_in_the_house_order(template: dict[str, Any]) -> None:
    sections = [k for k in template if k in ("Parameters", "Globals", "Resources", "Outputs")]
    assert sections == ["Parameters", "Globals", "Resources", "Outputs"]


def test_code_paths__point_at_the_handlers_and_the_shared_package(
    template: dict[str, Any],
) -> None:
    for fn in FUNCTIONS:
        props = _props(template, fn)
        handler = props.get("Handler", template["Globals"]["Function"]["Handler"])
        module = handler.rpartition(".")[0]
        assert (ROOT / props["CodeUri"] / f"{module}.py").is_file(), fn
    layer = _props(template, "SharedLayer")
    assert (ROOT / layer["ContentUri"] / "opendepot" / "__init__.py").is_file()
    assert template["Resources"]["SharedLayer"]["Metadata"]["BuildMethod"] == "python3.12"


def test_layer_parameters__default_to_python312_x86_64_layers(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    arch = template["Globals"]["Function"]["Architectures"]

    assert arch == ["x86_64"]
    assert ":layer:AWSSDKPandas-Python312:" in params["PandasLayerArn"]["Default"]
    assert "-python312-x86_64:" in params["PowertoolsLayerArn"]["Default"]


def test_bucket_and_queue_names__are_deterministic_subs_of_stack_and_account(
    template: dict[str, Any],
) -> None:
    names = {
        lid: r["Properties"].get("BucketName", r["Properties"].get("QueueName"))
        for lid, r in template["Resources"].items()
        if r["Type"] in ("AWS::S3::Bucket", "AWS::SQS::Queue")
    }

    assert names == {
        "IncomingBucket": {"Fn::Sub": "${AWS::StackName}-incoming-${AWS::AccountId}"},
        "InternalBucket": {"Fn::Sub": "${AWS::StackName}-internal-${AWS::AccountId}"},
        "PublishedBucket": {"Fn::Sub": "${AWS::StackName}-published-${AWS::AccountId}"},
        "ValidateQueue": {"Fn::Sub": "${AWS::StackName}-validate"},
        "ValidateDeadLetterQueue": {"Fn::Sub": "${AWS::StackName}-validate-dlq"},
        "PublishQueue": {"Fn::Sub": "${AWS::StackName}-publish.fifo"},
        "PublishDeadLetterQueue": {"Fn::Sub": "${AWS::StackName}-publish-dlq.fifo"},
        "SiteQueue": {"Fn::Sub": "${AWS::StackName}-site"},
        "SiteDeadLetterQueue": {"Fn::Sub": "${AWS::StackName}-site-dlq"},
    }


# ------------------------------------------------------------------------------ transformed


def test_sam_transform__gives_the_buckets_queues_functions_layer_and_api(
    transformed: dict[str, Any],
) -> None:
    count = {
        kind: len(_of_type(transformed, kind))
        for kind in (
            "AWS::S3::Bucket",
            "AWS::SQS::Queue",
            "AWS::Lambda::Function",
            "AWS::Lambda::LayerVersion",
            "AWS::Lambda::EventSourceMapping",
            "AWS::ApiGatewayV2::Api",
            "AWS::CloudWatch::Alarm",
            "AWS::SNS::Topic",
        )
    }

    assert count == {
        "AWS::S3::Bucket": 3,
        "AWS::SQS::Queue": 6,
        "AWS::Lambda::Function": 4,
        "AWS::Lambda::LayerVersion": 1,
        "AWS::Lambda::EventSourceMapping": 3,
        "AWS::ApiGatewayV2::Api": 1,
        "AWS::CloudWatch::Alarm": 4,
        "AWS::SNS::Topic": 1,
    }
    assert set(BUCKETS) | set(FUNCTIONS) <= set(transformed["Resources"])


def test_event_source_mappings__feed_each_queue_to_its_function_with_partial_failures(
    transformed: dict[str, Any],
) -> None:
    mappings = {
        (
            m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0],
            m["Properties"]["FunctionName"]["Ref"],
        ): m["Properties"]
        for m in _of_type(transformed, "AWS::Lambda::EventSourceMapping").values()
    }

    assert set(mappings) == {
        ("ValidateQueue", "ValidateFunction"),
        ("PublishQueue", "PublishFunction"),
        ("SiteQueue", "SiteFunction"),
    }
    assert mappings["ValidateQueue", "ValidateFunction"]["BatchSize"] == 10
    assert mappings["PublishQueue", "PublishFunction"]["BatchSize"] == 1
    for props in mappings.values():
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # debounced: up to 30 s (or 100 requests) gathered, refreshed once
    site = mappings["SiteQueue", "SiteFunction"]
    assert (site["BatchSize"], site["MaximumBatchingWindowInSeconds"]) == (100, 30)
    assert not any("MaximumBatchingWindowInSeconds" in mappings[k] for k in
                   (("ValidateQueue", "ValidateFunction"), ("PublishQueue", "PublishFunction")))


def test_site_function__one_at_a_time_sized_by_the_bench_asked_by_publish(
    transformed: dict[str, Any],
) -> None:
    """One site refresh at a time (two would race on the home page), within Lambda's limits with
    about twice what the bench measured (×100: 78 to 161 s, 0.8 to 1.0 GiB); publish only
    asks."""
    site, publish = _props(transformed, "SiteFunction"), _props(transformed, "PublishFunction")
    env = site["Environment"]["Variables"]

    assert site["ReservedConcurrentExecutions"] == 1
    assert site["Timeout"] == 300 and site["MemorySize"] == 2048
    assert publish["Environment"]["Variables"]["OPENDEPOT_SITE_QUEUE_URL"] == {"Ref": "SiteQueue"}
    assert env["POWERTOOLS_SERVICE_NAME"] == "opendepot-site"
    assert env["OPENDEPOT_API_BASE_URL"] == publish["Environment"]["Variables"][
        "OPENDEPOT_API_BASE_URL"]  # the pages' API links, absolute
    assert "OPENDEPOT_SITE_QUEUE_URL" not in env  # it never asks itself


def test_queue_visibility_timeouts__are_at_least_six_times_their_function_timeout(
    transformed: dict[str, Any],
) -> None:
    pairs = (("ValidateQueue", "ValidateFunction"), ("PublishQueue", "PublishFunction"),
             ("SiteQueue", "SiteFunction"))
    for queue, function in pairs:
        timeout = _props(transformed, function)["Timeout"]
        assert _props(transformed, queue)["VisibilityTimeout"] >= 6 * timeout, queue
    # plus the batching window, as AWS recommends for a batched event source
    assert _props(transformed, "SiteQueue")["VisibilityTimeout"] >= 6 * 300 + 30


def test_queues__redrive_to_their_dead_letter_queues_and_fifo_stays_fifo(
    transformed: dict[str, Any],
) -> None:
    validate, publish = _props(transformed, "ValidateQueue"), _props(transformed, "PublishQueue")
    publish_dlq, site = _props(transformed, "PublishDeadLetterQueue"), _props(transformed, "SiteQueue")

    assert validate["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["ValidateDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    assert publish["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["PublishDeadLetterQueue", "Arn"]
    }
    assert publish["FifoQueue"] is True and publish["ContentBasedDeduplication"] is True
    assert publish_dlq["FifoQueue"] is True
    assert "FifoQueue" not in validate
    assert site["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["SiteDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    assert "FifoQueue" not in site  # standard: duplicates only rebuild the same pages
    for lid in _of_type(transformed, "AWS::SQS::Queue"):
        assert _props(transformed, lid)["SqsManagedSseEnabled"] is True, lid


def test_incoming_bucket__notifies_the_validate_queue_once_its_policy_exists(
    transformed: dict[str, Any],
) -> None:
    bucket = transformed["Resources"]["IncomingBucket"]
    configs = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]

    assert configs == [
        {"Event": "s3:ObjectCreated:*", "Queue": {"Fn::GetAtt": ["ValidateQueue", "Arn"]}}
    ]
    depends = bucket.get("DependsOn", [])
    assert "ValidateQueuePolicy" in ([depends] if isinstance(depends, str) else depends)


def test_validate_queue_policy__admits_only_s3_from_the_incoming_bucket_and_account(
    transformed: dict[str, Any],
) -> None:
    props = _props(transformed, "ValidateQueuePolicy")
    (statement,) = props["PolicyDocument"]["Statement"]

    assert props["Queues"] == [{"Ref": "ValidateQueue"}]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    # built from the deterministic name: a GetAtt on the bucket would be a cycle
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${AWS::StackName}-incoming-${AWS::AccountId}"
    }
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {
        "Ref": "AWS::AccountId"
    }


@pytest.mark.parametrize("bucket", ["IncomingBucket", "InternalBucket"])
def test_private_buckets__block_all_public_access_and_keep_versions(
    transformed: dict[str, Any], bucket: str
) -> None:
    props = _props(transformed, bucket)
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]

    assert props["PublicAccessBlockConfiguration"] == ALL_PUBLIC_ACCESS_BLOCKED
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (lifecycle,) = props["LifecycleConfiguration"]["Rules"]
    assert lifecycle["NoncurrentVersionExpiration"]["NoncurrentDays"] >= 30
    assert transformed["Resources"][bucket]["DeletionPolicy"] == "Retain"


def test_published_bucket__public_read_for_objects_list_for_parquet_prefixes_with_cors(
    transformed: dict[str, Any],
) -> None:
    props = _props(transformed, "PublishedBucket")
    policies = [
        p["Properties"]
        for p in _of_type(transformed, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": "PublishedBucket"}
    ]
    public = [
        st
        for p in policies
        for st in p["PolicyDocument"]["Statement"]
        if st["Effect"] == "Allow" and st.get("Principal") == "*"
    ]

    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": False,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": False,
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert public == [
        {
            "Sid": "PublicReadObjects",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${PublishedBucket}/*"},
        },
        {   # listing only under the Parquet prefixes (docs/design.md, "Parquet prefix") and
            # the Athena tables' locations (opendepot.athena)
            "Sid": "PublicListParquetPrefixes",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:ListBucket",
            "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${PublishedBucket}"},
            "Condition": {"StringLike": {"s3:prefix": ["*/parquet/*", "*/athena/*"]}},
        },
    ]
    (cors,) = props["CorsConfiguration"]["CorsRules"]
    assert cors["AllowedOrigins"] == ["*"]
    assert set(cors["AllowedMethods"]) == {"GET", "HEAD"}


def test_function_roles__read_and_write_only_their_own_buckets(
    transformed: dict[str, Any],
) -> None:
    reads = {fn: _s3_access(transformed, fn, "s3:GetObject") for fn in FUNCTIONS}
    writes = {fn: _s3_access(transformed, fn, "s3:PutObject") for fn in FUNCTIONS}
    deletes = {fn: _s3_access(transformed, fn, "s3:DeleteObject") for fn in FUNCTIONS}

    assert reads == {
        "ValidateFunction": {"IncomingBucket", "InternalBucket", "PublishedBucket"},
        "PublishFunction": {"InternalBucket", "PublishedBucket"},
        "SiteFunction": {"InternalBucket", "PublishedBucket"},  # reports for the dataset pages
        "IndexApiFunction": {"PublishedBucket"},
    }
    # one writer per prefix, and no function writes where it is triggered: validate writes the
    # published bucket's reuse catalogue only (opendepot.reuses), publish everything else there
    assert writes == {
        "ValidateFunction": {"InternalBucket", "PublishedBucket"},
        "PublishFunction": {"InternalBucket", "PublishedBucket"},  # announced/ markers
        "SiteFunction": {"PublishedBucket"},  # site/ only
        "IndexApiFunction": set(),
    }
    # publish takes the inbox in and expires staged copies no version can need again
    assert deletes["PublishFunction"] >= {"InternalBucket"}
    # and the files of a version never switched to (opendepot.pending), in version folders only
    assert deletes["PublishFunction"] == {"InternalBucket", "PublishedBucket"}
    assert deletes["ValidateFunction"] == deletes["IndexApiFunction"] == set()
    assert deletes["SiteFunction"] == set()
    published = {(a, _label(r)) for a, r in _grant_resources(transformed, "ValidateFunctionRole")
                 if _label(r).startswith("PublishedBucket")}
    assert published == {("s3:GetObject", "PublishedBucket/reuses/*"),
                         ("s3:PutObject", "PublishedBucket/reuses/*"),
                         ("s3:ListBucket", "PublishedBucket")}


def test_publish_role__deletes_published_files_in_version_folders_only(
    transformed: dict[str, Any],
) -> None:
    """The sweep of a failed publication (``opendepot.pending``) deletes version files; IAM
    wildcards (``*`` any run of characters, ``/`` included; no ``?``, which moto's IAM check
    cannot compile) must never reach a manifest, ``latest/``, a Parquet prefix, a page of
    versions or the catalog."""
    import fnmatch

    from opendepot import layout

    (pattern,) = [_label(r) for a, r in _grant_resources(transformed, "PublishFunctionRole")
                  if a == "s3:DeleteObject" and _label(r).startswith("PublishedBucket/")]
    pattern = pattern.removeprefix("PublishedBucket/")
    ds, v = "donnees-hospitalieres-covid19", "2026-11-29-08h00m30s"
    for key in (layout.published_file_key(ds, v, "dep", "csv"), layout.datapackage_key(ds, v),
                layout.changes_key(ds, v), layout.changes_csv_key(ds, v)):
        assert fnmatch.fnmatchcase(key, pattern), key
    for key in (layout.manifest_key(ds), layout.latest_key(ds, "dep", "csv"), layout.CATALOG_KEY,
                layout.parquet_key(ds, "dep"), layout.versions_page_key(ds, v, v)):
        assert not fnmatch.fnmatchcase(key, pattern), key


def _grant_resources(transformed: dict[str, Any], role: str) -> list[tuple[str, Any]]:
    out = []
    for st in _statements(transformed["Resources"][role]):
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        out += [(a, r) for a in _actions(st) for r in resources]
    return out


def test_function_roles__send_only_publish_requests(transformed: dict[str, Any]) -> None:
    sends = {
        fn: [
            st["Resource"]
            for st in _statements(transformed["Resources"][f"{fn}Role"])
            if any(a.startswith("sqs:SendMessage") for a in _actions(st))
        ]
        for fn in FUNCTIONS
    }

    # validate asks for publications; publish asks the datasets a new version feeds (the feed
    # graph is acyclic: tests/test_registry_feeds.py) and the site function for a refresh
    assert sends == {
        "ValidateFunction": [{"Fn::GetAtt": ["PublishQueue", "Arn"]}],
        "PublishFunction": [{"Fn::GetAtt": ["PublishQueue", "Arn"]},
                            {"Fn::GetAtt": ["SiteQueue", "Arn"]}],
        "SiteFunction": [],
        "IndexApiFunction": [],
    }


def test_function_roles__grant_only_the_actions_their_code_uses_on_named_resources(
    transformed: dict[str, Any],
) -> None:
    grants = {fn: _grants(transformed["Resources"][f"{fn}Role"]) for fn in FUNCTIONS}
    receive = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
    logs = ("logs:CreateLogStream", "logs:PutLogEvents")

    assert grants == {
        "ValidateFunction": {
            *((a, "ValidateQueue") for a in receive),
            ("s3:GetObject", "IncomingBucket/*"),
            ("s3:GetObjectVersion", "IncomingBucket/*"),  # reads the notified version
            ("s3:ListBucket", "IncomingBucket"),  # 404, not 403, for an upload gone before read
            *((a, f"InternalBucket/{p}/*") for a in ("s3:GetObject", "s3:PutObject")
              for p in ("reports", "staging", "inbox")),
            ("s3:GetObject", "InternalBucket/index/*"),  # the shrink guard's previous upload
            ("s3:ListBucket", "InternalBucket"),  # the inbox; 404 for a missing report
            # the reuse catalogue (opendepot.reuses): each reuse and the index of them
            *((a, "PublishedBucket/reuses/*") for a in ("s3:GetObject", "s3:PutObject")),
            ("s3:ListBucket", "PublishedBucket"),  # 404, not 403, for a reuse not yet there
            ("sqs:SendMessage", "PublishQueue"),
            *((a, "ValidateLogGroup") for a in logs),
        },
        "PublishFunction": {
            *((a, "PublishQueue") for a in receive),
            # the inbox taken in, staged copies read, and expired when no version needs them
            *((a, f"InternalBucket/{p}/*") for a in ("s3:GetObject", "s3:DeleteObject")
              for p in ("staging", "inbox")),
            ("s3:GetObject", "InternalBucket/index/*"),  # the upload index, and its switch
            ("s3:PutObject", "InternalBucket/index/*"),
            ("s3:DeleteObject", "InternalBucket/index/*/keys/*"),  # its shards, once replaced
            # announced/{dataset}/{version}.json: a version announced exactly once
            ("s3:GetObject", "InternalBucket/announced/*"),
            ("s3:PutObject", "InternalBucket/announced/*"),
            # pending/{dataset}/{version}.json: a publication's keys until its switch
            *((a, "InternalBucket/pending/*") for a in
              ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")),
            # a version never switched to: its files, in version folders only
            ("s3:DeleteObject", "PublishedBucket/*/2*-*-*-*h*m*s/*"),
            ("s3:ListBucket", "InternalBucket"),
            ("s3:GetObject", "PublishedBucket/*"),
            ("s3:PutObject", "PublishedBucket/*"),  # also copies, and conditional writes
            ("s3:ListBucket", "PublishedBucket"),  # 404 for a missing manifest or catalog
            ("sqs:SendMessage", "PublishQueue"),
            ("sns:Publish", "VersionsTopic"),  # announces each new version
            ("sqs:SendMessage", "SiteQueue"),  # asks for a site refresh
            *((a, "PublishLogGroup") for a in logs),
        },
        "SiteFunction": {
            *((a, "SiteQueue") for a in receive),
            ("s3:GetObject", "PublishedBucket/*"),  # catalog, manifests, changes, Parquet
            ("s3:PutObject", "PublishedBucket/site/*"),  # the site only
            ("s3:ListBucket", "PublishedBucket"),  # the stored pages' ETags; 404s
            ("s3:GetObject", "InternalBucket/reports/*"),  # the newest uploads' validation
            ("s3:ListBucket", "InternalBucket"),  # a dataset's reports
            *((a, "SiteLogGroup") for a in logs),
        },
        "IndexApiFunction": {
            ("s3:GetObject", "PublishedBucket/*"),
            ("s3:ListBucket", "PublishedBucket"),
            *((a, "IndexApiLogGroup") for a in logs),
        },
    }
    for fn in FUNCTIONS:
        role = transformed["Resources"][f"{fn}Role"]["Properties"]
        assert _props(transformed, fn)["Role"] == {"Fn::GetAtt": [f"{fn}Role", "Arn"]}
        # SAM's managed policies would grant logs and sqs actions on every resource
        assert "ManagedPolicyArns" not in role, fn
        (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}, fn
        assert all(st["Effect"] == "Allow" and "Condition" not in st for st in _statements(
            transformed["Resources"][f"{fn}Role"]))


def test_incoming_bucket__never_written_by_a_function_and_the_only_one_that_notifies(
    transformed: dict[str, Any],
) -> None:
    resources = transformed["Resources"]
    writers = {
        lid
        for lid, role in _of_type(transformed, "AWS::IAM::Role").items()
        for st in _statements(role)
        if st["Effect"] == "Allow"
        and "IncomingBucket" in _buckets_named(st.get("Resource"))
        and any(fnmatch.fnmatchcase(w, a) for a in _actions(st) for w in S3_WRITES)
    }
    notifying = {
        lid: _props(transformed, lid)["NotificationConfiguration"]
        for lid in _of_type(transformed, "AWS::S3::Bucket")
        if "NotificationConfiguration" in _props(transformed, lid)
    }
    fed_by = {  # function -> queues that invoke it
        m["Properties"]["FunctionName"]["Ref"]: m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
        for m in _of_type(transformed, "AWS::Lambda::EventSourceMapping").values()
    }
    triggers = {  # function -> buckets whose notifications invoke it
        fn: {b for b, n in notifying.items() for q in n.get("QueueConfigurations", [])
             if q["Queue"] == {"Fn::GetAtt": [queue, "Arn"]}}
        for fn, queue in fed_by.items()
    }

    assert writers == {"ProducerRole"}
    assert set(notifying) == {"IncomingBucket"}
    assert set(notifying["IncomingBucket"]) == {"QueueConfigurations"}
    assert triggers == {"ValidateFunction": {"IncomingBucket"}, "PublishFunction": set(),
                        "SiteFunction": set()}
    for fn, buckets in triggers.items():
        assert not buckets & _s3_access(transformed, fn, "s3:PutObject"), fn
    # nothing else invokes a function from S3
    for perm in _of_type(transformed, "AWS::Lambda::Permission").values():
        assert perm["Properties"]["Principal"] != "s3.amazonaws.com"
    assert all(
        e["Type"] != "S3"
        for r in _of_type(_load(), "AWS::Serverless::Function").values()
        for e in (r["Properties"].get("Events") or {}).values()
    )
    assert resources["IncomingBucket"]["DeletionPolicy"] == "Retain"


def test_producer_role__tagged_producers_drop_under_their_segment_and_read_their_reports(
    transformed: dict[str, Any],
) -> None:
    role = transformed["Resources"]["ProducerRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    incoming = "arn:${AWS::Partition}:s3:::${IncomingBucket}"
    internal = "arn:${AWS::Partition}:s3:::${InternalBucket}"
    own = "${!aws:PrincipalTag/producer}"

    assert trust["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    account = "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"
    assert trust["Principal"] == {"AWS": {"Fn::Sub": account}}
    # a producer's session carries its own producer tag, and only that tag
    assert trust["Condition"] == {
        "Null": {"aws:PrincipalTag/producer": "false"},
        "StringEquals": {"aws:RequestTag/producer": "${aws:PrincipalTag/producer}"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["producer"]},
    }
    assert [
        (st["Effect"], st["Action"], st["Resource"], st.get("Condition"))
        for st in _statements(transformed["Resources"]["ProducerRole"])
    ] == [
        ("Allow", "s3:PutObject", {"Fn::Sub": f"{incoming}/*/{own}/*"}, None),
        ("Deny", "s3:PutObject", {"Fn::Sub": f"{incoming}/*/*/{own}/*"}, None),
        ("Allow", "s3:GetObject", {"Fn::Sub": f"{internal}/reports/*/{own}/*"}, None),
        ("Allow", "s3:ListBucket", {"Fn::Sub": internal},
         {"StringLike": {"s3:prefix": "reports/*/${aws:PrincipalTag/producer}/*"}}),
    ]
    assert transformed["Outputs"]["ProducerRoleArn"]["Value"] == {
        "Fn::GetAtt": ["ProducerRole", "Arn"]
    }


@pytest.mark.parametrize(
    ("action", "resource", "prefix", "allowed"),
    [
        ("s3:PutObject", "incoming/ds/spf/file.csv", None, True),
        ("s3:PutObject", "incoming/ds/spf/2020/file.csv", None, True),
        ("s3:PutObject", "incoming/ds/ars/file.csv", None, False),
        ("s3:PutObject", "incoming/ds/ars/spf/file.csv", None, False),  # routes to producer ars
        ("s3:PutObject", "incoming/spf/file.csv", None, False),
        ("s3:PutObject", "incoming/ds/spfx/file.csv", None, False),
        ("s3:PutObject", "internal/reports/ds/spf/r.json", None, False),
        ("s3:GetObject", "internal/reports/ds/spf/r.json", None, True),
        ("s3:GetObject", "internal/reports/ds/ars/r.json", None, False),
        ("s3:GetObject", "internal/staging/ds/spf/u.parquet", None, False),
        ("s3:GetObject", "incoming/ds/ars/file.csv", None, False),
        ("s3:ListBucket", "internal", "reports/ds/spf/", True),
        ("s3:ListBucket", "internal", "reports/", False),
        ("s3:ListBucket", "internal", "reports/ds/ars/", False),
        ("s3:DeleteObject", "incoming/ds/spf/file.csv", None, False),
    ],
)
def test_producer_policy__a_producer_writes_and_reads_only_as_itself(
    transformed: dict[str, Any], action: str, resource: str, prefix: str | None, allowed: bool
) -> None:
    statements = list(_statements(transformed["Resources"]["ProducerRole"]))
    context = {"s3:prefix": prefix} if prefix is not None else {}

    assert _iam_allows(statements, action, f"arn:aws:s3:::{resource}", "spf", context) is allowed
    assert _iam_allows(statements, action, f"arn:aws:s3:::{resource}", None, context) is False


def test_functions__run_python312_x86_64_with_the_layers(transformed: dict[str, Any]) -> None:
    layer_ids = set(_of_type(transformed, "AWS::Lambda::LayerVersion"))
    for fn in FUNCTIONS:
        props = _props(transformed, fn)
        layers = props["Layers"]
        assert props["Runtime"] == "python3.12", fn
        assert props["Architectures"] == ["x86_64"], fn
        assert props["Handler"] == "app.lambda_handler", fn
        assert {"Ref": "PowertoolsLayerArn"} in layers, fn
        assert any(layer.get("Ref") in layer_ids for layer in layers), fn
    for fn in ("ValidateFunction", "PublishFunction", "SiteFunction"):
        assert {"Ref": "PandasLayerArn"} in _props(transformed, fn)["Layers"], fn


def test_function_environments__carry_the_settings_the_code_reads(
    transformed: dict[str, Any],
) -> None:
    env = {fn: _props(transformed, fn)["Environment"]["Variables"] for fn in FUNCTIONS}
    bucket_names = {b: _props(transformed, b)["BucketName"] for b in BUCKETS}

    for fn, variables in env.items():
        assert set(SETTINGS) <= set(variables), fn
        assert variables["OPENDEPOT_INCOMING_BUCKET"] == bucket_names["IncomingBucket"], fn
        assert variables["OPENDEPOT_INTERNAL_BUCKET"] == bucket_names["InternalBucket"], fn
        assert variables["OPENDEPOT_PUBLISHED_BUCKET"] == bucket_names["PublishedBucket"], fn
    assert env["ValidateFunction"]["OPENDEPOT_PUBLISH_QUEUE_URL"] == {"Ref": "PublishQueue"}
    assert env["PublishFunction"]["OPENDEPOT_PUBLISH_QUEUE_URL"] == {"Ref": "PublishQueue"}
    assert "OPENDEPOT_PUBLISH_QUEUE_URL" not in env["IndexApiFunction"]
    assert "OPENDEPOT_PUBLISH_QUEUE_URL" not in env["SiteFunction"]
    assert {fn for fn, v in env.items() if "OPENDEPOT_VERSIONS_TOPIC_ARN" in v} == {"PublishFunction"}
    assert env["PublishFunction"]["OPENDEPOT_VERSIONS_TOPIC_ARN"] == {"Ref": "VersionsTopic"}
    # announcements link to the API absolutely; the index itself cannot know its URL (a cycle)
    assert env["PublishFunction"]["OPENDEPOT_API_BASE_URL"] == {
        "Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    assert "OPENDEPOT_API_BASE_URL" not in env["IndexApiFunction"]
    assert env["ValidateFunction"]["POWERTOOLS_SERVICE_NAME"] == "opendepot-validate"
    assert env["PublishFunction"]["POWERTOOLS_SERVICE_NAME"] == "opendepot-publish"
    assert env["IndexApiFunction"]["POWERTOOLS_SERVICE_NAME"] == "opendepot-index-api"
    assert env["SiteFunction"]["POWERTOOLS_SERVICE_NAME"] == "opendepot-site"
    published = "${AWS::StackName}-published-${AWS::AccountId}"
    assert env["ValidateFunction"]["OPENDEPOT_PUBLIC_BASE_URL"] == {
        "Fn::Sub": f"https://{published}.s3.${{AWS::Region}}.${{AWS::URLSuffix}}"
    }


def test_http_api__routes_every_method_but_options_to_the_index_with_open_cors(
    transformed: dict[str, Any],
) -> None:
    """GET and HEAD, and the methods the index answers with its JSON 405 (API Gateway would
    answer its own 404 to an unrouted one); OPTIONS stays with API Gateway's CORS."""
    body = _props(transformed, "HttpApi")["Body"]
    routes = {(path, method) for path, ops in body["paths"].items() for method in ops}
    methods = ("get", "head", "post", "put", "patch", "delete")

    assert routes == {(path, m) for path in ("/api/{proxy+}", "/catalog.jsonld") for m in methods}
    behaviours = _props(transformed, "SiteDistribution")["DistributionConfig"]["CacheBehaviors"]
    (api,) = [b for b in behaviours if b["PathPattern"] == "api/*"]
    assert set(api["AllowedMethods"]) == {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"}
    for ops in body["paths"].values():
        for op in ops.values():
            uri = op["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
            assert "${IndexApiFunction.Arn}" in uri
    cors = body["x-amazon-apigateway-cors"]
    assert cors["allowOrigins"] == ["*"]
    assert set(cors["allowMethods"]) == {"GET", "HEAD", "OPTIONS"}


def test_dead_letter_queues__each_have_a_depth_alarm(transformed: dict[str, Any]) -> None:
    watched = set()
    for alarm in _of_type(transformed, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props["Namespace"] != "AWS/SQS":
            continue
        assert props["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert props["ComparisonOperator"] == "GreaterThanThreshold"
        assert props["Threshold"] == 0
        (dimension,) = props["Dimensions"]
        assert dimension["Name"] == "QueueName"
        watched.add(dimension["Value"]["Fn::GetAtt"][0])

    assert watched == {"ValidateDeadLetterQueue", "PublishDeadLetterQueue",
                       "SiteDeadLetterQueue"}


def test_outputs__name_buckets_queues_and_the_api_url(transformed: dict[str, Any]) -> None:
    outputs = {name: o["Value"] for name, o in transformed["Outputs"].items()}

    assert outputs["IncomingBucketName"] == {"Ref": "IncomingBucket"}
    assert outputs["InternalBucketName"] == {"Ref": "InternalBucket"}
    assert outputs["PublishedBucketName"] == {"Ref": "PublishedBucket"}
    assert outputs["ValidateQueueUrl"] == {"Ref": "ValidateQueue"}
    assert outputs["PublishQueueUrl"] == {"Ref": "PublishQueue"}
    assert outputs["SiteQueueUrl"] == {"Ref": "SiteQueue"}
    assert outputs["SiteDeadLetterQueueUrl"] == {"Ref": "SiteDeadLetterQueue"}
    assert outputs["VersionsTopicArn"] == {"Ref": "VersionsTopic"}
    assert outputs["ApiUrl"] == {
        "Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
    }


def test_versions_topic__standard_announced_by_publish_only_with_an_alarm_on_failures(
    transformed: dict[str, Any],
) -> None:
    (topic_id,) = _of_type(transformed, "AWS::SNS::Topic")
    props = _props(transformed, topic_id)
    # standard: FIFO topics take no e-mail or HTTPS subscriptions
    assert "FifoTopic" not in props and props["TopicName"] == {"Fn::Sub": "${AWS::StackName}-versions"}
    publishers = {
        lid for lid, role in _of_type(transformed, "AWS::IAM::Role").items()
        for st in _statements(role) if "sns:Publish" in _actions(st)
    }
    assert publishers == {"PublishFunctionRole"}
    (alarm,) = [a["Properties"] for a in _of_type(transformed, "AWS::CloudWatch::Alarm").values()
                if a["Properties"]["MetricName"] == "NotificationsFailed"]
    # Powertools' metrics of the publish function: namespace opendepot, dimension service
    assert (alarm["Namespace"], alarm["Dimensions"]) == (
        "opendepot", [{"Name": "service", "Value": "publish"}])
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "Sum", 0, "GreaterThanThreshold")


def test_athena_tables__generated_from_the_registry_one_per_published_level() -> None:
    """The Glue block of template.yaml is what ``infra.template.glue_resources`` makes of
    today's registry: a dataset added (or a column) without `python -m infra.template` fails."""
    from infra.template import glue_resources, glue_table_id
    from opendepot import athena
    from opendepot.registry import load_registry

    registry = load_registry()
    glue = {lid: r for lid, r in _load()["Resources"].items() if r["Type"].startswith("AWS::Glue")}
    hosp = glue["AthenaTableDonneesHospitalieresCovid19Reg"]["Properties"]["TableInput"]

    assert glue == glue_resources(registry), "run: python -m infra.template"
    assert set(glue) == {"AthenaDatabase"} | {
        glue_table_id(d.name, lv) for d in registry for lv in athena.published_levels(d)}
    assert len(glue) == 33  # the database, 32 levels of 18 datasets
    assert hosp["Name"] == "donnees_hospitalieres_covid19_reg"
    assert hosp["StorageDescriptor"]["Location"] == {
        "Fn::Sub": "s3://${PublishedBucket}/donnees-hospitalieres-covid19/athena/reg/"}
    assert hosp["StorageDescriptor"]["Columns"][:3] == [
        {"Name": "reg", "Type": "string"}, {"Name": "sexe", "Type": "bigint"},
        {"Name": "jour", "Type": "date"}]
    # chiffres-cles: its sources and the consolidated table, not rolled up
    assert {lid for lid in glue if lid.startswith("AthenaTableChiffresCles")} == {
        "AthenaTableChiffresClesSources", "AthenaTableChiffresClesConsolide"}


def test_http_api__every_route_of_the_index_is_routed_to_it(transformed: dict[str, Any]) -> None:
    """A route the index declares but API Gateway does not send it would answer API Gateway's
    own 404 once deployed (the local server sends every path to the handler)."""
    from functions.index_api.app import ROUTES

    routed = [p.replace("{proxy+}", "") for p in _props(transformed, "HttpApi")["Body"]["paths"]]
    assert len(ROUTES) > 30  # the udata, api-tabular and reuse routes among them
    assert {"/api/2/datasets/resources/<rid>/", "/api/resources/<rid>/data/"} <= set(ROUTES)
    for rule in ROUTES:
        assert any(rule == p or (p.endswith("/") and rule.startswith(p)) for p in routed), rule
