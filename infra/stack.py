"""The local stack: moto's server as S3 and SQS, with the buckets and queues of ``template.yaml``.

``LocalStack`` starts ``moto.server.ThreadedMotoServer`` on 127.0.0.1, points boto3 at it through
the process environment (``AWS_ENDPOINT_URL``, fake credentials, region), sets the ``OPENDEPOT_*``
settings the handlers read at cold start, and creates every ``AWS::S3::Bucket`` and
``AWS::SQS::Queue`` the template declares, with the template's own properties: versioning, CORS,
FIFO, content-based deduplication, visibility timeout, redrive policy. moto does not apply a
bucket's ``NotificationConfiguration`` from CloudFormation, so it is applied here with the S3 API
(which also sends the ``s3:TestEvent`` the validate function must skip, as on AWS).

The template is read with a small CloudFormation-aware YAML loader; ``!Sub``, ``!Ref``,
``!GetAtt``, ``!Join``, ``!Select``, ``!If`` and ``!Split`` are resolved with
``AWS::StackName`` = ``opendepot`` and ``AWS::AccountId`` = ``123456789012`` by default.

    with LocalStack() as stack:
        stack.s3.put_object(Bucket=stack.incoming_bucket, Key="...", Body=b"...")
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"
DEFAULT_STACK = "opendepot"
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "eu-west-3"
HOST = "127.0.0.1"

# Logical ids of template.yaml the local stack gives names to (see docs/design.md).
INCOMING, INTERNAL, PUBLISHED = "IncomingBucket", "InternalBucket", "PublishedBucket"
VALIDATE_QUEUE, PUBLISH_QUEUE = "ValidateQueue", "PublishQueue"

log = logging.getLogger(__name__)


class TemplateError(RuntimeError):
    """``template.yaml`` is missing, malformed, or uses something the local stack cannot resolve."""


# --------------------------------------------------------------------------------------------
# Reading the template


class _CfnLoader(yaml.SafeLoader):
    """A SafeLoader that reads CloudFormation short forms (``!Sub``...) as their long forms."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path | str = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """Read a CloudFormation / SAM template, short-form tags turned into long forms.

    Raises:
        TemplateError: the file is missing or is not a YAML mapping with ``Resources``.
    """
    path = Path(path)
    if not path.is_file():
        raise TemplateError(f"{path} does not exist")
    with path.open(encoding="utf-8") as f:
        doc = yaml.load(f, Loader=_CfnLoader)
    if not isinstance(doc, dict) or not isinstance(doc.get("Resources"), dict):
        raise TemplateError(f"{path} is not a template (no Resources mapping)")
    return doc


_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")
_NO_VALUE = object()


class Resolver:
    """Resolves intrinsic functions against pseudo parameters, parameter defaults and the
    physical names of the template's buckets and queues."""

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        stack_name: str,
        account_id: str,
        region: str,
        endpoint: str = "",
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.region = region
        self.account_id = account_id
        self.endpoint = endpoint.rstrip("/")
        self.values: dict[str, Any] = {
            "AWS::StackName": stack_name,
            "AWS::AccountId": account_id,
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local"
            ),
            "AWS::NotificationARNs": [],
            "AWS::NoValue": _NO_VALUE,
        }
        for name, spec in (template.get("Parameters") or {}).items():
            if parameters and name in parameters:
                self.values[name] = parameters[name]
            elif isinstance(spec, dict) and "Default" in spec:
                self.values[name] = spec["Default"]
        self.resources: dict[str, dict[str, Any]] = template["Resources"]
        self.physical: dict[str, str] = {}
        """Logical id -> physical name of each bucket and queue (filled by ``name_resources``)."""
        self._conditions: dict[str, bool] = {}

    # names first: they only depend on pseudo parameters and parameters
    def active(self, res: Mapping[str, Any]) -> bool:
        """The resource exists in this deployment (its ``Condition``, if any, holds)."""
        return "Condition" not in res or self.condition(res["Condition"])

    def resolve_some(
        self, props: Mapping[str, Any], keys: set[str] | frozenset[str]
    ) -> tuple[dict[str, Any], list[str]]:
        """Resolve the properties in ``keys``; return them and the names of the others (which
        are left alone: they may reference resources the local stack does not create)."""
        resolved = {k: self.resolve(v) for k, v in props.items() if k in keys}
        resolved = {k: v for k, v in resolved.items() if v is not _NO_VALUE}
        return resolved, sorted(set(props) - set(keys))

    def name_resources(self) -> None:
        stack = self.values["AWS::StackName"]
        for logical_id, res in self.resources.items():
            if not self.active(res):
                continue
            props = res.get("Properties") or {}
            if res.get("Type") == "AWS::S3::Bucket":
                name = props.get("BucketName")
                self.physical[logical_id] = (
                    self.resolve(name) if name is not None else f"{stack}-{logical_id}".lower()
                )
            elif res.get("Type") == "AWS::SQS::Queue":
                name = props.get("QueueName")
                if name is not None:
                    self.physical[logical_id] = self.resolve(name)
                else:
                    fifo = str(self.resolve(props.get("FifoQueue", False))).lower() == "true"
                    self.physical[logical_id] = f"{stack}-{logical_id}" + (".fifo" if fifo else "")

    def queue_url(self, logical_id: str) -> str:
        return f"{self.endpoint}/{self.account_id}/{self.physical[logical_id]}"

    def queue_arn(self, logical_id: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account_id}:{self.physical[logical_id]}"

    def _ref(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        res = self.resources.get(name)
        if res is None:
            raise TemplateError(f"!Ref {name}: no such parameter or resource")
        if name in self.physical:
            if res["Type"] == "AWS::SQS::Queue":
                return self.queue_url(name)
            return self.physical[name]
        raise TemplateError(f"!Ref {name} ({res.get('Type')}) is not resolvable locally")

    def _get_att(self, name: str, attribute: str) -> Any:
        res = self.resources.get(name)
        if res is None or name not in self.physical:
            raise TemplateError(f"!GetAtt {name}.{attribute} is not resolvable locally")
        physical = self.physical[name]
        if res["Type"] == "AWS::SQS::Queue":
            table = {
                "Arn": self.queue_arn(name),
                "QueueName": physical,
                "QueueUrl": self.queue_url(name),
            }
        else:
            table = {
                "Arn": f"arn:aws:s3:::{physical}",
                "DomainName": f"{physical}.s3.amazonaws.com",
                "RegionalDomainName": f"{physical}.s3.{self.region}.amazonaws.com",
                "WebsiteURL": f"http://{physical}.s3-website.{self.region}.amazonaws.com",
            }
        if attribute not in table:
            raise TemplateError(f"!GetAtt {name}.{attribute} is not resolvable locally")
        return table[attribute]

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, local = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, local = arg, {}

        def one(m: re.Match[str]) -> str:
            var = m.group(1).strip()
            if var in local:
                return str(local[var])
            if "." in var and var.split(".", 1)[0] in self.resources:
                return str(self._get_att(*var.split(".", 1)))
            return str(self._ref(var))

        return _SUB_VAR.sub(one, text).replace("${!", "${")

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            spec = (self.template.get("Conditions") or {}).get(name)
            if spec is None:
                raise TemplateError(f"condition {name} is not defined")
            self._conditions[name] = bool(self.resolve(spec))
        return self._conditions[name]

    def resolve(self, value: Any) -> Any:
        """Return ``value`` with every intrinsic function replaced by its local value."""
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Ref":
                return self._ref(arg)
            if fn == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._get_att(self.resolve(name), self.resolve(attribute))
            if fn == "Fn::Sub":
                return self._sub(arg)
            if fn == "Fn::Join":
                sep, items = arg
                return str(self.resolve(sep)).join(str(v) for v in self.resolve(items))
            if fn == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if fn == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(self.resolve(sep))
            if fn == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if fn == "Fn::Equals":
                a, b = (self.resolve(v) for v in arg)
                return str(a) == str(b)
            if fn == "Fn::Not":
                return not self.resolve(arg[0])
            if fn == "Fn::And":
                return all(self.resolve(v) for v in arg)
            if fn == "Fn::Or":
                return any(self.resolve(v) for v in arg)
            if fn == "Condition":
                return self.condition(arg)
            if fn.startswith("Fn::"):
                raise TemplateError(f"{fn} is not supported by the local stack")
        out = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not _NO_VALUE}


# --------------------------------------------------------------------------------------------
# What the stack exposes


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


@dataclass(frozen=True)
class EventSource:
    """A function fed by a queue (a SAM ``Events: Type: SQS`` or an EventSourceMapping)."""

    function: str
    """Logical id of the function."""
    function_name: str
    """Physical function name (``FunctionName``, else ``{stack}-{logical id}``)."""
    queue: str
    """Logical id of the queue."""
    batch_size: int
    """Largest number of records per invocation."""
    handler_module: str
    """Importable module of the handler, e.g. ``functions.validate.app``."""
    handler_name: str
    """Function name in that module, e.g. ``lambda_handler``."""
    timeout: int
    """Function timeout in seconds."""
    memory_size: int
    """Function memory in MB."""
    report_batch_item_failures: bool
    """``FunctionResponseTypes`` has ``ReportBatchItemFailures``."""


def _to_bool(value: Any) -> bool:
    return str(value).lower() == "true"


def _handler_module(code_uri: Any, handler: str) -> tuple[str, str]:
    module, _, name = handler.rpartition(".")
    base = str(code_uri or "").strip("/").replace("/", ".") if isinstance(code_uri, str) else ""
    return (f"{base}.{module}" if base else module), name


def _event_sources(template: Mapping[str, Any], resolver: Resolver) -> list[EventSource]:
    """Read which function each queue feeds, with the batch size and the handler."""
    glob = (template.get("Globals") or {}).get("Function") or {}
    resources = template["Resources"]
    arn_to_queue = {
        resolver.queue_arn(lid): lid
        for lid, r in resources.items()
        if r.get("Type") == "AWS::SQS::Queue"
    }
    out: list[EventSource] = []

    def add(function_id: str, props: Mapping[str, Any], queue_arn: Any) -> None:
        fprops = resources[function_id].get("Properties") or {}
        try:
            arn = resolver.resolve(queue_arn)
        except TemplateError:
            return
        if arn not in arn_to_queue:
            return
        module, name = _handler_module(
            fprops.get("CodeUri", glob.get("CodeUri")),
            str(fprops.get("Handler", glob.get("Handler", "app.lambda_handler"))),
        )
        out.append(
            EventSource(
                function=function_id,
                function_name=str(
                    resolver.resolve(fprops["FunctionName"])
                    if "FunctionName" in fprops
                    else f"{resolver.values['AWS::StackName']}-{function_id}"
                ),
                queue=arn_to_queue[arn],
                batch_size=int(resolver.resolve(props.get("BatchSize", 10))),
                handler_module=module,
                handler_name=name,
                timeout=int(resolver.resolve(fprops.get("Timeout", glob.get("Timeout", 3)))),
                memory_size=int(
                    resolver.resolve(fprops.get("MemorySize", glob.get("MemorySize", 128)))
                ),
                report_batch_item_failures="ReportBatchItemFailures"
                in (resolver.resolve(props.get("FunctionResponseTypes")) or []),
            )
        )

    for lid, res in resources.items():
        if res.get("Type") == "AWS::Serverless::Function":
            for event in ((res.get("Properties") or {}).get("Events") or {}).values():
                if event.get("Type") == "SQS":
                    props = event.get("Properties") or {}
                    add(lid, props, props.get("Queue"))
        elif res.get("Type") == "AWS::Lambda::EventSourceMapping":
            props = res.get("Properties") or {}
            fn = props.get("FunctionName")
            fn_id = fn.get("Ref") if isinstance(fn, dict) else fn
            if isinstance(fn_id, str) and fn_id in resources:
                add(fn_id, props, props.get("EventSourceArn"))
    return out


# --------------------------------------------------------------------------------------------
# The stack


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


class LocalStack:
    """moto's server with the buckets and queues of ``template.yaml``; a context manager.

    Inside the ``with`` block the process environment points boto3 and opendepot at it; the
    environment is restored on exit. moto keeps its state in the process, not in the server:
    starting a stack empties it, so run one stack per process at a time.
    """

    def __init__(
        self,
        template: Path | str = DEFAULT_TEMPLATE,
        *,
        port: int = 0,
        api_port: int | None = 8080,
        stack_name: str = DEFAULT_STACK,
        account_id: str = DEFAULT_ACCOUNT,
        region: str = DEFAULT_REGION,
        parameters: Mapping[str, str] | None = None,
        quiet: bool = True,
    ) -> None:
        """``port`` 0 picks a free port; ``api_port`` is where the HTTP index will be served
        (it sets ``OPENDEPOT_API_BASE_URL``; None leaves links relative)."""
        self.template_path = Path(template)
        self.template = load_template(self.template_path)
        self.port = port
        self.api_port = api_port
        self.stack_name = stack_name
        self.account_id = account_id
        self.region = region
        self.parameters = dict(parameters or {})
        self.quiet = quiet
        self.endpoint = ""
        self.buckets: dict[str, str] = {}
        """Logical id -> bucket name."""
        self.queues: dict[str, QueueInfo] = {}
        """Logical id -> queue."""
        self.event_sources: list[EventSource] = []
        """Queue -> function bindings declared in the template."""
        self.env: dict[str, str] = {}
        """The environment variables set while the stack runs."""
        self.ignored: list[str] = []
        """What the template asks for that the local stack does not apply (for the curious)."""
        self._server: Any = None
        self._clients: dict[str, Any] = {}
        self._resolver: Resolver | None = None
        self._saved_env: dict[str, str | None] = {}

    # -- names
    @property
    def incoming_bucket(self) -> str:
        return self.buckets[INCOMING]

    @property
    def internal_bucket(self) -> str:
        return self.buckets[INTERNAL]

    @property
    def published_bucket(self) -> str:
        return self.buckets[PUBLISHED]

    @property
    def validate_queue(self) -> QueueInfo:
        return self.queues[VALIDATE_QUEUE]

    @property
    def publish_queue(self) -> QueueInfo:
        return self.queues[PUBLISH_QUEUE]

    @property
    def validate_queue_url(self) -> str:
        return self.validate_queue.url

    @property
    def publish_queue_url(self) -> str:
        return self.publish_queue.url

    @property
    def public_base_url(self) -> str:
        """Where published files download from: the published bucket on the moto server."""
        return f"{self.endpoint}/{self.published_bucket}"

    @property
    def api_base_url(self) -> str:
        return f"http://{HOST}:{self.api_port}" if self.api_port else ""

    # -- clients
    def client(self, service: str) -> Any:
        """A boto3 client on the local endpoint (valid inside the ``with`` block), cached."""
        import boto3

        if service not in self._clients:
            self._clients[service] = boto3.session.Session().client(
                service,
                endpoint_url=self.endpoint,
                region_name=self.region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                aws_session_token="testing",
            )
        return self._clients[service]

    def handler_of(self, function_id: str) -> tuple[str, str] | None:
        """(module, function) of a function's handler in the template, e.g.
        ``("functions.index_api.app", "lambda_handler")``; None when it is not declared."""
        res = self.template["Resources"].get(function_id)
        if not res or res.get("Type") != "AWS::Serverless::Function":
            return None
        glob = (self.template.get("Globals") or {}).get("Function") or {}
        props = res.get("Properties") or {}
        return _handler_module(
            props.get("CodeUri", glob.get("CodeUri")),
            str(props.get("Handler", glob.get("Handler", "app.lambda_handler"))),
        )

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def sqs(self) -> Any:
        return self.client("sqs")

    # -- lifecycle
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server, set the environment, create the resources."""
        from moto.server import ThreadedMotoServer

        if self.quiet:
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address=HOST, port=self.port, verbose=False)
        try:
            server.start()
        except OSError as exc:
            raise RuntimeError(f"cannot start moto on {HOST}:{self.port}: {exc}") from exc
        self._server = server
        self.port = server.get_host_and_port()[1]
        self.endpoint = f"http://{HOST}:{self.port}"
        try:
            self._reset()
            self._resolver = Resolver(
                self.template,
                stack_name=self.stack_name,
                account_id=self.account_id,
                region=self.region,
                endpoint=self.endpoint,
                parameters=self.parameters,
            )
            self._resolver.name_resources()
            for lid in (INCOMING, INTERNAL, PUBLISHED, VALIDATE_QUEUE, PUBLISH_QUEUE):
                if lid not in self._resolver.physical:
                    raise TemplateError(f"{self.template_path} has no {lid} bucket or queue")
            self._create_resources()
            self._set_env()
        except BaseException:
            self.stop()
            raise

    def _reset(self) -> None:
        """Empty moto: its state is global to the process, whichever server serves it."""
        import urllib.request

        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

    def stop(self) -> None:
        """Stop the server and restore the environment (idempotent)."""
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}
        self._clients = {}
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _set_env(self) -> None:
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            # moto decodes botocore's default chunked (checksummed) upload bodies in quadratic
            # time: a 240 MB put takes 41 s instead of 2 s
            "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
            "OPENDEPOT_INCOMING_BUCKET": self.incoming_bucket,
            "OPENDEPOT_INTERNAL_BUCKET": self.internal_bucket,
            "OPENDEPOT_PUBLISHED_BUCKET": self.published_bucket,
            "OPENDEPOT_PUBLISH_QUEUE_URL": self.publish_queue_url,
            "OPENDEPOT_PUBLIC_BASE_URL": self.public_base_url,
            "OPENDEPOT_API_BASE_URL": self.api_base_url,
        }
        # a profile would win over the fake keys for clients built without explicit keys
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ.pop(name, None)
        for name, value in self.env.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _create_resources(self) -> None:
        resolver = self._resolver
        assert resolver is not None
        resources = self.template["Resources"]
        s3, sqs = self.s3, self.sqs

        # queues first (buckets notify them), without redrive: a DLQ may come after its source
        redrive: dict[str, Any] = {}
        for lid, res in resources.items():
            if res.get("Type") != "AWS::SQS::Queue" or not resolver.active(res):
                continue
            props, others = resolver.resolve_some(res.get("Properties") or {}, _QUEUE_KEYS)
            attributes = {
                k: (str(v).lower() if isinstance(v, bool) else str(v))
                for k, v in props.items()
                if k in _QUEUE_ATTRIBUTES
            }
            if attributes.get("FifoQueue") == "false":
                del attributes["FifoQueue"]
            name = resolver.physical[lid]
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            if "RedrivePolicy" in props:
                redrive[lid] = props["RedrivePolicy"]
            self.ignored.extend(f"{lid}.{other}" for other in others)
            self.queues[lid] = QueueInfo(
                logical_id=lid,
                name=name,
                url=url,
                arn=resolver.queue_arn(lid),
                fifo=_to_bool(props.get("FifoQueue", False)),
                attributes=attributes,
            )
        arn_to_lid = {q.arn: lid for lid, q in self.queues.items()}
        for lid, policy in redrive.items():
            policy = json.loads(policy) if isinstance(policy, str) else dict(policy)
            target = policy["deadLetterTargetArn"]
            count = int(policy["maxReceiveCount"])
            text = json.dumps({"deadLetterTargetArn": target, "maxReceiveCount": count})
            sqs.set_queue_attributes(
                QueueUrl=self.queues[lid].url, Attributes={"RedrivePolicy": text}
            )
            q = self.queues[lid]
            self.queues[lid] = QueueInfo(
                q.logical_id,
                q.name,
                q.url,
                q.arn,
                q.fifo,
                {**q.attributes, "RedrivePolicy": text},
                arn_to_lid.get(target),
                count,
            )

        # buckets, then their notifications (they need the queues)
        notifications: dict[str, Any] = {}
        for lid, res in resources.items():
            if res.get("Type") != "AWS::S3::Bucket" or not resolver.active(res):
                continue
            props, others = resolver.resolve_some(res.get("Properties") or {}, _BUCKET_KEYS)
            name = resolver.physical[lid]
            if self.region == "us-east-1":
                s3.create_bucket(Bucket=name)
            else:
                s3.create_bucket(
                    Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region}
                )
            self.buckets[lid] = name
            versioning = (props.get("VersioningConfiguration") or {}).get("Status")
            if versioning:
                s3.put_bucket_versioning(
                    Bucket=name, VersioningConfiguration={"Status": versioning}
                )
            cors = (props.get("CorsConfiguration") or {}).get("CorsRules")
            if cors:
                rules = [{_CORS_KEYS[k]: v for k, v in r.items() if k in _CORS_KEYS} for r in cors]
                s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": rules})
            block = props.get("PublicAccessBlockConfiguration")
            if block:
                s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
            encryption = (props.get("BucketEncryption") or {}).get(
                "ServerSideEncryptionConfiguration"
            )
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
                s3.put_bucket_encryption(
                    Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules}
                )
            ownership = props.get("OwnershipControls")
            if ownership:
                s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=ownership)
            if props.get("NotificationConfiguration"):
                notifications[lid] = props["NotificationConfiguration"]
            self.ignored.extend(f"{lid}.{other}" for other in others)

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
                self.ignored.append(f"{lid}.NotificationConfiguration.{other}")
            if queue_configs:
                s3.put_bucket_notification_configuration(
                    Bucket=self.buckets[lid],
                    NotificationConfiguration={"QueueConfigurations": queue_configs},
                )

        for lid, res in resources.items():
            if res.get("Type") == "AWS::S3::BucketPolicy" and resolver.active(res):
                self._apply_bucket_policy(lid, res.get("Properties") or {}, resolver)

        self.event_sources = _event_sources(self.template, resolver)
        if self.ignored:
            log.debug("not applied locally: %s", ", ".join(self.ignored))

    def _apply_bucket_policy(self, lid: str, props: Mapping[str, Any], resolver: Resolver) -> None:
        """Apply a bucket policy, without the statements moto cannot judge.

        moto judges a statement whose ``Condition`` it cannot evaluate (``aws:SecureTransport``,
        ``aws:SourceArn``...) as DENIED for every request, which would block even the handlers;
        such statements, and those naming principals the local stack does not create (function
        roles), are left out locally and listed in ``ignored``.
        """
        bucket = resolver.resolve(props.get("Bucket"))
        if bucket not in self.buckets.values():
            self.ignored.append(f"{lid} (bucket {bucket!r} is not created locally)")
            return
        document = dict(props.get("PolicyDocument") or {})
        statements = document.get("Statement") or []
        if isinstance(statements, dict):
            statements = [statements]
        kept = []
        for i, statement in enumerate(statements):
            sid = statement.get("Sid", i)
            if statement.get("Condition"):
                self.ignored.append(f"{lid}.Statement[{sid}] (has a Condition)")
                continue
            try:
                kept.append(resolver.resolve(statement))
            except TemplateError as exc:
                self.ignored.append(f"{lid}.Statement[{sid}] ({exc})")
        if kept:
            document["Statement"] = kept
            self.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(document))

    # -- inspection helpers
    def queue_depth(self, url: str) -> tuple[int, int, int]:
        """(visible, in flight, delayed) messages of a queue."""
        a = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return (
            int(a.get("ApproximateNumberOfMessages", 0)),
            int(a.get("ApproximateNumberOfMessagesNotVisible", 0)),
            int(a.get("ApproximateNumberOfMessagesDelayed", 0)),
        )

    def dead_letter_queues(self) -> Iterator[QueueInfo]:
        """The queues some other queue redrives to."""
        targets = {q.dead_letter_queue for q in self.queues.values() if q.dead_letter_queue}
        return (self.queues[t] for t in sorted(targets))
