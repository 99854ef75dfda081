"""The local stack: moto's server as S3, SQS and SNS, with the buckets, queues and topics of
``template.yaml``.

``LocalStack`` starts ``moto.server.ThreadedMotoServer`` on 127.0.0.1, points boto3 at it through
the process environment (``AWS_ENDPOINT_URL``, fake credentials, region), sets the ``OPENDEPOT_*``
settings the handlers read at cold start, and creates every ``AWS::S3::Bucket``,
``AWS::SQS::Queue`` and ``AWS::SNS::Topic`` the template declares, with the template's own
properties: versioning, CORS, FIFO, content-based deduplication, visibility timeout, redrive
policy; the versions topic's ARN is the publish function's ``OPENDEPOT_VERSIONS_TOPIC_ARN``.
moto does not apply a bucket's ``NotificationConfiguration`` from CloudFormation, so it is
applied here with the S3 API (which also sends the ``s3:TestEvent`` the validate function must
skip, as on AWS).

The template is read with a small CloudFormation-aware YAML loader; ``!Sub``, ``!Ref``,
``!GetAtt``, ``!Join``, ``!Select``, ``!If`` and ``!Split`` are resolved with
``AWS::StackName`` = ``opendepot`` and ``AWS::AccountId`` = ``123456789012`` by default.

    with LocalStack() as stack:
        stack.s3.put_object(Bucket=stack.incoming_bucket, Key="...", Body=b"...")

The template is read by ``infra.template`` and its resources are created by ``infra.resources``;
this module runs the server, names the resources and sets the environment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from infra.resources import (
    QueueInfo,
    TopicInfo,
    apply_bucket_policies,
    apply_notifications,
    create_buckets,
    create_queues,
    create_topics,
)
from infra.template import (
    DEFAULT_TEMPLATE,
    REPO_ROOT,
    EventSource,
    Resolver,
    TemplateError,
    event_sources,
    handler_module,
    load_template,
)

__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_REGION",
    "DEFAULT_STACK",
    "DEFAULT_TEMPLATE",
    "HOST",
    "INCOMING",
    "INTERNAL",
    "PUBLISHED",
    "PUBLISH_QUEUE",
    "REPO_ROOT",
    "SITE_QUEUE",
    "VALIDATE_QUEUE",
    "VERSIONS_TOPIC",
    "EventSource",
    "LocalStack",
    "QueueInfo",
    "Resolver",
    "TopicInfo",
    "TemplateError",
    "load_template",
]

DEFAULT_STACK = "opendepot"
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "eu-west-3"
HOST = "127.0.0.1"

# Logical ids of template.yaml the local stack gives names to (see docs/design.md).
INCOMING, INTERNAL, PUBLISHED = "IncomingBucket", "InternalBucket", "PublishedBucket"
VALIDATE_QUEUE, PUBLISH_QUEUE, SITE_QUEUE = "ValidateQueue", "PublishQueue", "SiteQueue"
VERSIONS_TOPIC = "VersionsTopic"

log = logging.getLogger(__name__)


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
        site_dashboards: bool = False,
    ) -> None:
        """``port`` 0 picks a free port; ``api_port`` is where the HTTP index will be served
        (it sets ``OPENDEPOT_API_BASE_URL``; None leaves links relative). ``site_dashboards``:
        the site function builds the dashboards too (``OPENDEPOT_SITE_DASHBOARDS``); off by
        default, as tests pump their files one by one and each pump ends with a refresh (the
        demo turns them on and holds the site queue until its files are published)."""
        self.template_path = Path(template)
        self.template = load_template(self.template_path)
        self.port = port
        self.api_port = api_port
        self.stack_name = stack_name
        self.account_id = account_id
        self.region = region
        self.parameters = dict(parameters or {})
        self.quiet = quiet
        self.site_dashboards = site_dashboards
        self.endpoint = ""
        self.buckets: dict[str, str] = {}
        """Logical id -> bucket name."""
        self.queues: dict[str, QueueInfo] = {}
        """Logical id -> queue."""
        self.topics: dict[str, TopicInfo] = {}
        """Logical id -> SNS topic."""
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
    def versions_topic(self) -> TopicInfo | None:
        """The topic new versions are announced on (None: the template has none)."""
        return self.topics.get(VERSIONS_TOPIC)

    @property
    def site_queue(self) -> QueueInfo | None:
        """The queue of site requests (None: the template has none)."""
        return self.queues.get(SITE_QUEUE)

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
        return handler_module(
            props.get("CodeUri", glob.get("CodeUri")),
            str(props.get("Handler", glob.get("Handler", "app.lambda_handler"))),
        )

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def sqs(self) -> Any:
        return self.client("sqs")

    @property
    def sns(self) -> Any:
        return self.client("sns")

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

        from infra import moto_disk

        moto_disk.apply()  # large objects stay on disk: infra/moto_disk.py
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
            "OPENDEPOT_VERSIONS_TOPIC_ARN": self.versions_topic.arn if self.versions_topic else "",
            "OPENDEPOT_SITE_QUEUE_URL": self.site_queue.url if self.site_queue else "",
            "OPENDEPOT_SITE_DASHBOARDS": "1" if self.site_dashboards else "0",
        }
        # a profile would win over the fake keys for clients built without explicit keys
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ.pop(name, None)
        for name, value in self.env.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _create_resources(self) -> None:
        """Queues, topics, then buckets, their notifications and policies; then the event
        sources."""
        resolver = self._resolver
        assert resolver is not None
        queues, ignored = create_queues(self.sqs, resolver)
        self.queues.update(queues)
        self.ignored.extend(ignored)
        topics, ignored = create_topics(self.sns, resolver)
        self.topics.update(topics)
        self.ignored.extend(ignored)
        buckets, notifications, ignored = create_buckets(self.s3, resolver, self.region)
        self.buckets.update(buckets)
        self.ignored.extend(ignored)
        self.ignored.extend(apply_notifications(self.s3, self.buckets, notifications))
        self.ignored.extend(apply_bucket_policies(self.s3, resolver, self.buckets))
        self.event_sources = event_sources(self.template, resolver)
        if self.ignored:
            log.debug("not applied locally: %s", ", ".join(self.ignored))

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
