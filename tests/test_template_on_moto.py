"""template.yaml as a stack on moto's CloudFormation, and one real upload through it.

The SAM template is turned into plain CloudFormation offline by aws-sam-translator (as in
``test_template.py``, local code paths become S3 objects as ``sam package`` makes them), then
created in moto's CloudFormation (in process, ``mock_aws``) with the code zipped and uploaded
first and stand-ins for the two public layers. Then a producer's file goes through the validate
and publish handlers against THAT stack: bucket and queue names come from the stack's outputs,
and each handler reads and writes S3 with the credentials of its own function role, under
moto's IAM checks (``enable_iam_authentication``).

What moto 5.2 does not do with the template is done here from the template's own values, and
listed in ``Stack.applied``:
- a bucket's ``VersioningConfiguration`` and ``NotificationConfiguration`` are not applied:
  set with the S3 API (the notification sends the ``s3:TestEvent`` the validate function skips);
- ``AWS::CloudWatch::Alarm`` (like ``AWS::ApiGatewayV2::*`` and the queue and bucket policies)
  is skipped with a warning: the alarms are created with the CloudWatch API;
- ``AWS::Glue::Table`` (and ``AWS::Glue::Database``) are skipped too: the Athena database and
  tables are created with the Glue API, from the template's ``DatabaseInput`` and ``TableInput``;
- the event source mappings are created, but moto would run the functions' zips in Docker on
  every message: they are disabled, and the queue pump (``infra.pump``) plays Lambda's part with
  the handlers in process, as on the local stack (the site queue's batching window included);
- moto's IAM does not substitute policy variables: the producer's drop is made by a user holding
  the ``ProducerRole`` policy with ``${aws:PrincipalTag/producer}`` replaced by its producer id,
  which is what IAM does for a session tagged ``producer=spf``;
- moto keeps the inline policies of a role created by CloudFormation as objects, where its IAM
  checks expect JSON text: they are put again as JSON with the IAM API;
- moto's IAM checks SQS calls against the resource ``*`` only, so queue calls run as an operator
  (the SQS statements of the roles are checked in ``test_template.py``).
"""

from __future__ import annotations

import ast
import copy
import io
import json
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import HOSP

samtranslator = pytest.importorskip("samtranslator.translator.transform")
boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

pytestmark = pytest.mark.e2e  # the whole stack on moto: `make test` runs it, `make check` does not

from botocore.exceptions import ClientError  # noqa: E402
from moto.core import enable_iam_authentication  # noqa: E402

from infra.pump import Binding, LambdaContext, Pump  # noqa: E402
from infra.stack import QueueInfo  # noqa: E402
from opendepot import athena, layout, runtime  # noqa: E402
from opendepot.config import Settings  # noqa: E402
from opendepot.registry import load_cog, load_registry  # noqa: E402
from opendepot.storage import S3Store, SqsQueue  # noqa: E402
from test_template import _load, _NoManagedPolicies  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EVENTS = Path(__file__).parent / "events"
STACK, REGION, ACCOUNT = "opendepot", "eu-west-3", "123456789012"
ARTIFACTS = "opendepot-artifacts"
SKIPPED_BY_MOTO = {
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Stage",
    "AWS::CloudFront::CachePolicy",  # the site's CDN (template.yaml SiteDistribution)
    "AWS::CloudFront::Distribution",
    "AWS::CloudFront::Function",
    "AWS::CloudWatch::Alarm",
    "AWS::Glue::Database",  # the Athena tables (opendepot.athena), created with the Glue API
    "AWS::Glue::Table",
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
}


# ------------------------------------------------------------------------------ the stack


def _zip(folder: Path, prefix: str = "") -> bytes:
    """The folder's files in a zip (``prefix`` inside the archive), caches left out."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                z.write(path, prefix + path.relative_to(folder).as_posix())
    return buf.getvalue()


def _packaged() -> tuple[dict[str, Any], dict[str, bytes]]:
    """The SAM template with its local code paths as S3 objects, and those objects' bytes."""
    sam = _load()
    uploads: dict[str, bytes] = {}
    for res in sam["Resources"].values():
        props = res.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            local = props.get(key)
            if isinstance(local, str) and not local.startswith("s3://"):
                name = f"{local.strip('/')}.zip"
                # a layer's python/ folder is what Lambda puts on sys.path
                prefix = "python/" if key == "ContentUri" else ""
                uploads[name] = _zip(ROOT / local, prefix)
                props[key] = f"s3://{ARTIFACTS}/{name}"
    return sam, uploads


class Resolver:
    """Values of the transformed template's intrinsic functions in the created stack."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.values = {
            "AWS::StackName": STACK,
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            **stack.parameters,
        }

    def ref(self, name: str) -> str:
        default = (self.stack.template.get("Parameters") or {}).get(name, {}).get("Default")
        return self.values.get(name) or self.stack.physical.get(name) or str(default)

    def get_att(self, name: str, attribute: str) -> str:
        kind = self.stack.template["Resources"][name]["Type"]
        physical = self.stack.physical[name]
        if kind == "AWS::SQS::Queue" and attribute == "Arn":
            attrs = self.stack.sqs.get_queue_attributes(
                QueueUrl=physical, AttributeNames=["QueueArn"]
            )
            return str(attrs["Attributes"]["QueueArn"])
        if kind == "AWS::SQS::Queue" and attribute == "QueueName":
            return physical.rsplit("/", 1)[-1]
        if kind == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{physical}"
        raise NotImplementedError(f"!GetAtt {name}.{attribute}")

    def sub(self, text: str) -> str:
        def one(m: re.Match[str]) -> str:
            var = m.group(1)
            return self.get_att(*var.split(".", 1)) if "." in var else self.ref(var)

        return re.sub(r"\$\{([^!}][^}]*)\}", one, text).replace("${!", "${")

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self.ref(value["Ref"])
        if set(value) == {"Fn::GetAtt"}:
            return self.get_att(*value["Fn::GetAtt"])
        if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            return self.sub(value["Fn::Sub"])
        return {k: self(v) for k, v in value.items()}


@dataclass
class Stack:
    """The created stack, its clients (as the operator who deployed it) and what was applied."""

    template: dict[str, Any]
    """The transformed template (plain CloudFormation)."""
    parameters: dict[str, str]
    """Parameter values given to ``create_stack``."""
    outputs: dict[str, str]
    """The stack's outputs."""
    physical: dict[str, str]
    """Logical id -> physical id of every resource moto created."""
    skipped: set[str]
    """Types of the resources moto did not create."""
    s3: Any
    sqs: Any
    applied: list[str] = field(default_factory=list)
    """What this module applied itself (see the module docstring)."""

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == kind}

    def client(self, service: str, credentials: dict[str, str]) -> Any:
        return boto3.client(service, region_name=REGION, **credentials)


def _create(cfn_template: dict[str, Any], uploads: dict[str, bytes]) -> Stack:
    s3, lam, cf = boto3.client("s3"), boto3.client("lambda"), boto3.client("cloudformation")
    s3.create_bucket(Bucket=ARTIFACTS, CreateBucketConfiguration={"LocationConstraint": REGION})
    for key, body in uploads.items():
        s3.put_object(Bucket=ARTIFACTS, Key=key, Body=body)
    # stand-ins for the public pandas and Powertools layers, in this account (moto checks them)
    empty = _zip(ROOT / "functions" / "validate")
    parameters = {
        p: lam.publish_layer_version(LayerName=name, Content={"ZipFile": empty})["LayerVersionArn"]
        for p, name in (
            ("PandasLayerArn", "AWSSDKPandas-Python312"),
            ("PowertoolsLayerArn", "AWSLambdaPowertoolsPythonV3-python312-x86_64"),
        )
    }
    with warnings.catch_warnings():  # moto warns for each type it skips, on every read
        warnings.simplefilter("ignore")
        cf.create_stack(
            StackName=STACK,
            TemplateBody=json.dumps(cfn_template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        (described,) = cf.describe_stacks(StackName=STACK)["Stacks"]
        summaries = cf.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    created = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in summaries
        if r["LogicalResourceId"] and r["ResourceStatus"] == "CREATE_COMPLETE"
    }
    stack = Stack(
        template=cfn_template,
        parameters=parameters,
        outputs={o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])},
        physical=created,
        skipped={r["Type"] for lid, r in cfn_template["Resources"].items() if lid not in created},
        s3=s3,
        sqs=boto3.client("sqs"),
    )
    _apply_what_moto_skips(stack)
    return stack


def _apply_what_moto_skips(stack: Stack) -> None:
    lam = boto3.client("lambda")
    for lid in stack.of_type("AWS::Lambda::EventSourceMapping"):  # first: before any message
        lam.update_event_source_mapping(UUID=stack.physical[lid], Enabled=False)
        stack.applied.append(f"{lid} (disabled: the pump delivers)")
    iam = boto3.client("iam")
    for lid in stack.of_type("AWS::IAM::Role"):
        role = stack.physical[lid]
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = _policy(iam.get_role_policy(RoleName=role, PolicyName=name))
            iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))
        stack.applied.append(f"{lid}.Policies (as JSON text)")
    resolve = Resolver(stack)
    for lid, res in stack.of_type("AWS::S3::Bucket").items():
        props, bucket = res["Properties"], stack.physical[lid]
        if "VersioningConfiguration" in props:
            stack.s3.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration=props["VersioningConfiguration"]
            )
            stack.applied.append(f"{lid}.VersioningConfiguration")
        queues = resolve(props.get("NotificationConfiguration", {})).get("QueueConfigurations")
        if queues:
            configs = [{"QueueArn": q["Queue"], "Events": [q["Event"]]} for q in queues]
            stack.s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configs}
            )
            stack.applied.append(f"{lid}.NotificationConfiguration")
    cloudwatch = boto3.client("cloudwatch")
    for lid, res in stack.of_type("AWS::CloudWatch::Alarm").items():
        props = resolve(res["Properties"])
        props.setdefault("AlarmName", f"{STACK}-{lid}")
        cloudwatch.put_metric_alarm(**props)
        stack.applied.append(lid)
    _create_glue(stack, resolve)


def _create_glue(stack: Stack, resolve: Resolver) -> None:
    """The Athena database and tables, from the template's values, with the Glue API."""
    glue = boto3.client("glue")
    for lid, res in stack.of_type("AWS::Glue::Database").items():
        if lid not in stack.physical:
            database = resolve(res["Properties"]["DatabaseInput"])
            glue.create_database(DatabaseInput=database)
            stack.physical[lid] = database["Name"]  # a database's physical id is its name
            stack.applied.append(lid)
    for lid, res in stack.of_type("AWS::Glue::Table").items():
        props = resolve(res["Properties"])
        glue.create_table(DatabaseName=props["DatabaseName"], TableInput=props["TableInput"])
        stack.applied.append(lid)
def _policy(answer: dict[str, Any]) -> dict[str, Any]:
    """The policy document of a ``get_role_policy`` answer. moto keeps the inline policies of a
    role created by CloudFormation as objects (answered as their Python repr), where its own IAM
    checks expect JSON text: they are put again as JSON."""
    document = answer["PolicyDocument"]
    return ast.literal_eval(document) if isinstance(document, str) else dict(document)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }.items():
            mp.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            mp.delenv(name, raising=False)
        sam, uploads = _packaged()
        cfn_template = samtranslator.transform(copy.deepcopy(sam), {}, _NoManagedPolicies())
        with moto.mock_aws():
            yield _create(cfn_template, uploads)
            runtime.use(None)


# ------------------------------------------------------------------------------ identities


def _operator(stack: Stack) -> dict[str, str]:
    """Credentials of an IAM user allowed everything (moto's IAM checks need a known key)."""
    iam = boto3.client("iam")
    iam.create_user(UserName="operator")
    iam.put_user_policy(
        UserName="operator",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    return _keys(iam.create_access_key(UserName="operator")["AccessKey"])


def _keys(key: dict[str, Any]) -> dict[str, str]:
    out = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
    if "SessionToken" in key:
        out["aws_session_token"] = key["SessionToken"]
    return out


def _as_role(stack: Stack, logical_id: str) -> dict[str, str]:
    """Credentials of a session of the stack's role ``logical_id`` (as Lambda gets them)."""
    arn = boto3.client("iam").get_role(RoleName=stack.physical[logical_id])["Role"]["Arn"]
    creds = boto3.client("sts").assume_role(RoleArn=arn, RoleSessionName=logical_id)
    return _keys(creds["Credentials"])


def _as_producer(stack: Stack, producer: str) -> dict[str, str]:
    """Credentials of a user holding the stack's ProducerRole policy for ``producer`` (the
    policy variable substituted, as IAM does for a session tagged ``producer=<id>``)."""
    iam = boto3.client("iam")
    role = stack.physical["ProducerRole"]
    user = f"producer-{producer}"
    iam.create_user(UserName=user)
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = json.dumps(_policy(iam.get_role_policy(RoleName=role, PolicyName=name)))
        document = document.replace("${aws:PrincipalTag/producer}", producer)
        iam.put_user_policy(UserName=user, PolicyName=name, PolicyDocument=document)
    return _keys(iam.create_access_key(UserName=user)["AccessKey"])


def _denied(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"] in {"AccessDenied", "403"}
    return False


# ------------------------------------------------------------------------------ handlers


def _queue(stack: Stack, logical_id: str) -> QueueInfo:
    url = stack.physical[logical_id]
    arn = stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    name = url.rsplit("/", 1)[-1]
    return QueueInfo(logical_id, name, url, arn["QueueArn"], name.endswith(".fifo"))


def _bindings(stack: Stack, handlers: dict[str, Callable[..., Any]]) -> list[Binding]:
    """One binding per event source mapping of the stack, with the mapping's own settings."""
    lam = boto3.client("lambda")
    out = []
    for lid, res in stack.of_type("AWS::Lambda::EventSourceMapping").items():
        mapping = lam.get_event_source_mapping(UUID=stack.physical[lid])
        function = res["Properties"]["FunctionName"]["Ref"]
        queue = res["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
        out.append(
            Binding(
                _queue(stack, queue),
                handlers[function],
                stack.physical[function],
                mapping["BatchSize"],
                report_batch_item_failures="ReportBatchItemFailures"
                in mapping.get("FunctionResponseTypes", []),
                batching_window=mapping.get("MaximumBatchingWindowInSeconds", 0),
            )
        )
    return out


def _settings(stack: Stack) -> Settings:
    """What the functions' environment holds on AWS, from the stack's outputs."""
    o = stack.outputs
    return Settings(
        incoming_bucket=o["IncomingBucketName"],
        internal_bucket=o["InternalBucketName"],
        published_bucket=o["PublishedBucketName"],
        publish_queue_url=o["PublishQueueUrl"],
        site_queue_url=o["SiteQueueUrl"],
        public_base_url=o["PublishedBaseUrl"],
    )


def _running_as(rt: runtime.Runtime, handler: Callable[..., Any]) -> Callable[..., Any]:
    """``handler`` invoked with ``rt`` installed (each function has its own role)."""

    def invoke(event: dict[str, Any], context: Any) -> Any:
        runtime.use(rt)
        try:
            return handler(event, context)
        finally:
            runtime.use(None)

    return invoke


@dataclass
class Wired:
    """The stack's functions wired as on AWS: each handler with its role's credentials."""

    settings: Settings
    """The functions' settings, from the stack's outputs."""
    pump: Pump
    """Lambda's part: the stack's queues into the validate, publish and site handlers."""
    s3: Any
    """S3 as the operator (to look at what the functions did)."""
    index_s3: Any
    """S3 as the index function's role."""

    def reports(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Key -> validation report, for the reports under ``prefix``."""
        bucket = self.settings.internal_bucket
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        return {
            o["Key"]: json.loads(self.s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
            for o in listed if o["Key"].endswith(".json")  # its page (.html) is beside it
        }


@pytest.fixture(scope="module")
def wired(stack: Stack) -> Wired:
    from functions.publish import app as publish_app
    from functions.site import app as site_app
    from functions.validate import app as validate_app

    operator = _operator(stack)
    settings = _settings(stack)
    sqs = stack.client("sqs", operator)

    def rt(role: str) -> runtime.Runtime:
        store = S3Store(stack.client("s3", _as_role(stack, role)))
        return runtime.Runtime(settings, store, SqsQueue(sqs), load_registry(), load_cog())

    handlers = {
        "ValidateFunction": _running_as(rt("ValidateFunctionRole"), validate_app.lambda_handler),
        "PublishFunction": _running_as(rt("PublishFunctionRole"), publish_app.lambda_handler),
        "SiteFunction": _running_as(rt("SiteFunctionRole"), site_app.lambda_handler),
    }
    pump = Pump(sqs, _bindings(stack, handlers), region=REGION, account_id=ACCOUNT)
    return Wired(
        settings,
        pump,
        stack.client("s3", operator),
        stack.client("s3", _as_role(stack, "IndexApiFunctionRole")),
    )


def _http_get(wired: Wired, path: str) -> dict[str, Any]:
    """The index function's answer to a GET of ``path``, run with its role's credentials."""
    from functions.index_api import app as index_app

    event = json.loads((EVENTS / "http_get_dataset.json").read_text("utf-8"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["headers"]["accept-encoding"] = "identity"
    index_app.configure(S3Store(wired.index_s3), wired.settings)
    try:
        context = LambdaContext("opendepot-index-api")
        response: dict[str, Any] = index_app.lambda_handler(event, context)
    finally:
        index_app.configure(None, Settings())
    return response


# ------------------------------------------------------------------------------ tests


def test_sam_template_on_moto__creates_every_resource_moto_supports(stack: Stack) -> None:
    kinds = {r["Type"] for r in stack.template["Resources"].values()}

    assert stack.skipped <= SKIPPED_BY_MOTO
    assert kinds - SKIPPED_BY_MOTO >= {
        "AWS::S3::Bucket",
        "AWS::SQS::Queue",
        "AWS::IAM::Role",
        "AWS::Lambda::Function",
        "AWS::Lambda::LayerVersion",
        "AWS::Lambda::EventSourceMapping",
        "AWS::Logs::LogGroup",
    }
    assert len(stack.of_type("AWS::IAM::Role")) == 5  # four functions and the producers
    for name in ("IncomingBucketName", "InternalBucketName", "PublishedBucketName"):
        rule = stack.s3.get_bucket_encryption(Bucket=stack.outputs[name])
        (sse,) = rule["ServerSideEncryptionConfiguration"]["Rules"]
        assert sse["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    publish = stack.sqs.get_queue_attributes(
        QueueUrl=stack.outputs["PublishQueueUrl"], AttributeNames=["All"]
    )["Attributes"]
    assert publish["FifoQueue"] == "true" and publish["SqsManagedSseEnabled"] == "true"
    assert json.loads(publish["RedrivePolicy"])["deadLetterTargetArn"].endswith("-publish-dlq.fifo")


def test_one_upload_through_the_stack__publishes_the_national_figure_as_the_function_roles(
    stack: Stack, wired: Wired, cases_dir: Path
) -> None:
    spf = stack.client("s3", _as_producer(stack, "spf"))
    name = "C10-duplicate-delivery-object.csv"
    body = (cases_dir / name).read_bytes()
    incoming, published = wired.settings.incoming_bucket, wired.settings.published_bucket

    with enable_iam_authentication():
        spf.put_object(Bucket=incoming, Key=f"{HOSP}/spf/{name}", Body=body)
        stats = wired.pump.run(timeout=60)
        response = _http_get(wired, f"/api/1/datasets/{HOSP}/")
        resources = json.loads(response["body"])["resources"]
        (fra,) = [r for r in resources if r["extras"]["level"] == "fra" and r["format"] == "csv"]
        key = fra["url"].removeprefix(wired.settings.published_url + "/")
        csv = wired.s3.get_object(Bucket=published, Key=key)["Body"].read()
        (report,) = wired.reports(f"reports/{HOSP}/spf/").values()
        home = wired.s3.get_object(Bucket=published, Key="site/index.html")["Body"].read()
        page = wired.s3.get_object(Bucket=published, Key=f"site/datasets/{HOSP}/index.html")

    assert stats.errors == [] and stats.failed == 0, stats
    # the site function, under its own role, wrote the site (and its dashboards) from it
    assert f'data-dataset="{HOSP}"'.encode() in home and page["ContentLength"] > 0
    assert stats.per_queue["ValidateQueue"][0] >= 1 and stats.per_queue["PublishQueue"][0] >= 1
    assert stats.per_queue["SiteQueue"] == (1, 0)  # one new version, one refresh
    assert report["valid"] is True
    assert response["statusCode"] == 200
    national = pd.read_csv(io.BytesIO(csv), sep=";")
    day = national[(national.jour == "2020-03-24") & (national.sexe == 0)]
    assert day.hosp.tolist() == [1692]
    for q in ("ValidateDeadLetterQueueUrl", "PublishDeadLetterQueueUrl", "SiteDeadLetterQueueUrl"):
        depth = stack.sqs.get_queue_attributes(
            QueueUrl=stack.outputs[q], AttributeNames=["ApproximateNumberOfMessages"])
        assert depth["Attributes"]["ApproximateNumberOfMessages"] == "0", q


def _hospital_published(stack: Stack, wired: Wired, cases_dir: Path) -> None:
    """The real hospital case published through the stack (unless a test did it already)."""
    published = wired.settings.published_bucket
    if "Contents" in wired.s3.list_objects_v2(Bucket=published, Prefix=layout.manifest_key(HOSP)):
        return
    spf = stack.client("s3", _as_producer(stack, "spf"))
    name = "C10-duplicate-delivery-object.csv"
    with enable_iam_authentication():
        spf.put_object(Bucket=wired.settings.incoming_bucket, Key=f"{HOSP}/spf/{name}",
                       Body=(cases_dir / name).read_bytes())
        stats = wired.pump.run(timeout=60)
    assert stats.errors == [] and stats.failed == 0, stats


def test_athena_tables_of_the_stack__one_per_dataset_level_columns_from_the_schema_every_version(
    stack: Stack, wired: Wired, cases_dir: Path
) -> None:
    """Item 5 of issue 16: the Glue database and tables of the template, created on moto, have
    each level's Table Schema columns and its symlink location; after a real publication the
    location lists the version's symlink, naming a Parquet file whose columns are the table's."""
    glue, published = boto3.client("glue"), wired.settings.published_bucket
    _hospital_published(stack, wired, cases_dir)
    registry = load_registry()
    tables = {t["Name"]: t for t in glue.get_tables(DatabaseName="opendepot")["TableList"]}
    levels = {athena.table_name(d.name, lv): (d, lv) for d in registry
              for lv in athena.published_levels(d)}

    # moto leaves out an output naming a resource it skipped: the template's value, resolved
    assert Resolver(stack)(stack.template["Outputs"]["AthenaDatabase"]["Value"]) == "opendepot"
    assert len(tables) == 32 and set(tables) == set(levels)  # 18 datasets
    for name, (d, level) in levels.items():
        sd = tables[name]["StorageDescriptor"]
        assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == athena.level_columns(d, level)
        assert sd["Location"] == f"s3://{published}/{d.name}/athena/{level}/"
        assert sd["InputFormat"] == "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"
        assert sd["SerdeInfo"]["SerializationLibrary"] == (
            "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe")
        assert tables[name]["TableType"] == "EXTERNAL_TABLE"
    dep = tables["donnees_hospitalieres_covid19_dep"]["StorageDescriptor"]["Columns"]
    assert [(c["Name"], c["Type"]) for c in dep] == [
        ("dep", "string"), ("sexe", "bigint"), ("jour", "date"), ("hosp", "bigint"),
        ("rea", "bigint"), ("hospconv", "bigint"), ("ssr_usld", "bigint"),
        ("autres", "bigint"), ("rad", "bigint"), ("dc", "bigint")]

    manifest = json.loads(wired.s3.get_object(
        Bucket=published, Key=layout.manifest_key(HOSP))["Body"].read())
    for level in ("dep", "reg", "fra"):
        location = tables[athena.table_name(HOSP, level)]["StorageDescriptor"]["Location"]
        listed = wired.s3.list_objects_v2(Bucket=published, Prefix=location.split("/", 3)[3])
        keys = [o["Key"] for o in listed["Contents"]]
        assert keys == [f"{HOSP}/athena/{level}/{manifest['version']}.txt"]
        (uri,) = wired.s3.get_object(Bucket=published, Key=keys[0])["Body"].read().decode().split()
        assert uri == (f"s3://{published}/{HOSP}/{manifest['version']}/"
                       f"{HOSP}-{level}.parquet")
        body = wired.s3.get_object(Bucket=published, Key=uri.split("/", 3)[3])["Body"].read()
        schema = pq.read_schema(io.BytesIO(body))
        columns = tables[athena.table_name(HOSP, level)]["StorageDescriptor"]["Columns"]
        assert [f.name.lower() for f in schema] == [c["Name"] for c in columns]


def test_roles_of_the_stack__producers_write_only_as_themselves_functions_never_into_incoming(
    stack: Stack, wired: Wired
) -> None:
    """IAM lets a producer drop under its own segment of any dataset; the registry check in the
    validate function then refuses a dataset the producer may not publish."""
    incoming, internal = wired.settings.incoming_bucket, wired.settings.internal_bucket
    ars = stack.client("s3", _as_producer(stack, "ars-corse"))
    functions = {
        role: stack.client("s3", _as_role(stack, role))
        for role in ("ValidateFunctionRole", "PublishFunctionRole", "SiteFunctionRole",
                     "IndexApiFunctionRole")
    }
    wired.s3.put_object(Bucket=internal, Key=f"reports/{HOSP}/spf/x.json", Body=b"{}")

    with enable_iam_authentication():
        ars.put_object(Bucket=incoming, Key=f"{HOSP}/ars-corse/a.csv", Body=b"dep;jour\n")
        as_spf = _denied(
            lambda: ars.put_object(Bucket=incoming, Key=f"{HOSP}/spf/a.csv", Body=b"a")
        )
        nested = _denied(lambda: ars.put_object(
            Bucket=incoming, Key=f"{HOSP}/spf/ars-corse/a.csv", Body=b"a"))
        function_writes = {
            role: _denied(lambda c=client: c.put_object(
                Bucket=incoming, Key=f"{HOSP}/spf/from-a-function.csv", Body=b"a"))
            for role, client in functions.items()
        }
        wired.pump.run(timeout=60)
        ((key, report),) = wired.reports(f"reports/{HOSP}/ars-corse/").items()
        read_own = ars.get_object(Bucket=internal, Key=key)
        read_other = _denied(
            lambda: ars.get_object(Bucket=internal, Key=f"reports/{HOSP}/spf/x.json")
        )
        staged = wired.s3.list_objects_v2(Bucket=internal, Prefix=f"staging/{HOSP}/ars-corse/")

    assert (as_spf, nested, read_other) == (True, True, True)
    assert function_writes == {role: True for role in functions}
    assert report["tasks"][0]["errors"][0]["type"] == "producer-not-allowed"
    assert json.loads(read_own["Body"].read()) == report
    assert staged.get("KeyCount", 0) == 0


def test_dead_letter_queues_of_the_stack__each_have_a_depth_alarm(stack: Stack) -> None:
    targets = set()
    for lid in stack.of_type("AWS::SQS::Queue"):
        attrs = stack.sqs.get_queue_attributes(
            QueueUrl=stack.physical[lid], AttributeNames=["RedrivePolicy"]
        ).get("Attributes", {})
        if "RedrivePolicy" in attrs:
            target = json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"]
            targets.add(target.rsplit(":", 1)[-1])
    alarms = boto3.client("cloudwatch").describe_alarms()["MetricAlarms"]
    watched = {
        d["Value"]
        for a in alarms
        if a["Namespace"] == "AWS/SQS"
        and a["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and a["ComparisonOperator"] == "GreaterThanThreshold"
        and a["Threshold"] == 0
        for d in a["Dimensions"]
        if d["Name"] == "QueueName"
    }

    assert targets == {f"{STACK}-validate-dlq", f"{STACK}-publish-dlq.fifo", f"{STACK}-site-dlq"}
    assert watched == targets
    assert {o.rsplit("/", 1)[-1] for k, o in stack.outputs.items() if "DeadLetter" in k} == targets
