"""Reading ``template.yaml``: a CloudFormation-aware YAML loader, intrinsic functions resolved
locally, and the queue -> function bindings the template declares.

``!Sub``, ``!Ref``, ``!GetAtt``, ``!Join``, ``!Select``, ``!If`` and ``!Split`` are resolved
against pseudo parameters (``AWS::StackName``, ``AWS::AccountId``...), parameter defaults and
the physical names of the template's buckets and queues.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"


class TemplateError(RuntimeError):
    """``template.yaml`` is missing, malformed, or uses something the local stack cannot resolve."""


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
        """Logical id -> physical name of each bucket, queue and topic (``name_resources``)."""
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
            elif res.get("Type") == "AWS::SNS::Topic":
                name = props.get("TopicName")
                self.physical[logical_id] = (
                    self.resolve(name) if name is not None else f"{stack}-{logical_id}"
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

    def topic_arn(self, logical_id: str) -> str:
        return f"arn:aws:sns:{self.region}:{self.account_id}:{self.physical[logical_id]}"

    def _ref(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        res = self.resources.get(name)
        if res is None:
            raise TemplateError(f"!Ref {name}: no such parameter or resource")
        if name in self.physical:
            if res["Type"] == "AWS::SQS::Queue":
                return self.queue_url(name)
            if res["Type"] == "AWS::SNS::Topic":
                return self.topic_arn(name)
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
        elif res["Type"] == "AWS::SNS::Topic":
            table = {"TopicArn": self.topic_arn(name), "TopicName": physical}
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
    batching_window: int = 0
    """``MaximumBatchingWindowInSeconds``: seconds Lambda gathers records before invoking."""


def to_bool(value: Any) -> bool:
    """A template boolean (``true``, ``"True"``...) as a bool."""
    return str(value).lower() == "true"


def handler_module(code_uri: Any, handler: str) -> tuple[str, str]:
    """(module, function) of a SAM ``Handler`` under ``CodeUri``: ``("functions.validate.app",
    "lambda_handler")``."""
    module, _, name = handler.rpartition(".")
    base = str(code_uri or "").strip("/").replace("/", ".") if isinstance(code_uri, str) else ""
    return (f"{base}.{module}" if base else module), name


def event_sources(template: Mapping[str, Any], resolver: Resolver) -> list[EventSource]:
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
        module, name = handler_module(
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
                batching_window=int(
                    resolver.resolve(props.get("MaximumBatchingWindowInSeconds", 0))),
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


# --- the Athena tables, generated from the dataset registry ------------------------------------

GLUE_BEGIN = "  # >>> Athena tables"
GLUE_END = "  # <<< Athena tables"
GLUE_DATABASE = "AthenaDatabase"
"""Logical id of the Glue database holding the tables."""


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", text))


def glue_table_id(dataset: str, level: str) -> str:
    """Logical id of a dataset level's Glue table: ``AthenaTable`` + CamelCase(dataset, level)
    (``AthenaTableDonneesHospitalieresCovid19Dep``)."""
    return f"AthenaTable{_camel(dataset)}{_camel(level)}"


def glue_resources(registry: Any) -> dict[str, dict[str, Any]]:
    """The Glue database and one symlink table per published dataset level (long-form
    intrinsics), as ``load_template`` reads them from ``template.yaml``: see
    ``opendepot.athena``. ``registry``: an ``opendepot.registry.Registry``."""
    from opendepot import athena, layout

    out: dict[str, dict[str, Any]] = {GLUE_DATABASE: {
        "Type": "AWS::Glue::Database",
        "Properties": {"CatalogId": {"Ref": "AWS::AccountId"}, "DatabaseInput": {
            "Name": {"Ref": "AthenaDatabaseName"},
            "Description": "opendepot: every published version of each dataset level",
        }},
    }}
    for d in sorted(registry, key=lambda d: d.name):
        for level in athena.published_levels(d):
            location = f"s3://${{PublishedBucket}}/{layout.athena_prefix(d.name, level)}"
            out[glue_table_id(d.name, level)] = {
                "Type": "AWS::Glue::Table",
                "Properties": {
                    "CatalogId": {"Ref": "AWS::AccountId"},
                    "DatabaseName": {"Ref": GLUE_DATABASE},
                    "TableInput": {
                        "Name": athena.table_name(d.name, level),
                        "Description": f"{d.name}, level {level}: every published version",
                        "TableType": "EXTERNAL_TABLE",
                        "Parameters": {"classification": "parquet", "opendepot.dataset": d.name,
                                       "opendepot.level": level},
                        "StorageDescriptor": {
                            "Columns": [{"Name": n, "Type": t}
                                        for n, t in athena.level_columns(d, level)],
                            "Location": {"Fn::Sub": location},
                            "InputFormat": athena.SYMLINK_INPUT_FORMAT,
                            "OutputFormat": athena.OUTPUT_FORMAT,
                            "SerdeInfo": {"SerializationLibrary": athena.PARQUET_SERDE},
                        },
                    },
                },
            }
    return out


def _yaml_value(value: Any, indent: int) -> list[str]:
    """``value`` as block YAML lines at ``indent`` spaces, ``Ref``/``Fn::Sub`` in short form."""
    pad = " " * indent
    if _inline(value):
        if isinstance(value, dict):
            ((fn, arg),) = value.items()
            return [f"{pad}!{fn.removeprefix('Fn::')} {_scalar(arg)}"]
        return [pad + _scalar(value)]
    lines: list[str] = []
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and all(_inline(v) and not isinstance(v, dict)
                                              for v in item.values()):  # a column: one line
                pairs = ", ".join(f"{k}: {_scalar(v)}" for k, v in item.items())
                lines.append(f"{pad}- {{{pairs}}}")
                continue
            inner = _yaml_value(item, indent + 2)
            lines += [f"{pad}- {inner[0].strip()}", *inner[1:]]
        return lines
    for k, v in value.items():
        key = k if re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", k) else json.dumps(k)
        if _inline(v):
            lines.append(f"{pad}{key}: {_yaml_value(v, 0)[0]}")
        else:
            lines += [f"{pad}{key}:", *_yaml_value(v, indent + 2)]
    return lines


def _scalar(value: Any) -> str:
    """A YAML scalar: plain when it cannot be read as anything but that string, else JSON."""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:/-]*", value) and (
            value.lower() not in ("true", "false", "yes", "no", "on", "off", "null", "y", "n")):
        return value
    return json.dumps(value, ensure_ascii=False)


def _inline(value: Any) -> bool:
    """A scalar, or a ``Ref``/``Fn::Sub``: written on its key's line."""
    if isinstance(value, dict):
        return len(value) == 1 and next(iter(value)) in ("Ref", "Fn::Sub")
    return not isinstance(value, list)


def glue_yaml(registry: Any) -> str:
    """The generated block of ``template.yaml`` (between ``GLUE_BEGIN`` and ``GLUE_END``)."""
    lines = [GLUE_BEGIN,
             "  # generated from shared/opendepot/datasets/*.json by `python -m infra.template`:",
             "  # do not edit by hand (tests/test_template.py checks it against the registry)"]
    for lid, res in glue_resources(registry).items():
        lines += [f"  {lid}:", *_yaml_value(res, 4)]
    return "\n".join([*lines, GLUE_END]) + "\n"


def write_glue(registry: Any, path: Path = DEFAULT_TEMPLATE) -> bool:
    """Replace the generated block of ``path`` with ``glue_yaml(registry)``; True if it changed.

    Raises:
        TemplateError: the file has no ``GLUE_BEGIN`` ... ``GLUE_END`` block.
    """
    text = path.read_text(encoding="utf-8")
    start, end = text.find(GLUE_BEGIN), text.find(GLUE_END)
    if start < 0 or end < start:
        raise TemplateError(f"{path} has no generated Athena block ({GLUE_BEGIN.strip()})")
    new = text[:start] + glue_yaml(registry) + text[end + len(GLUE_END) + 1:]
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":
    from opendepot.registry import load_registry

    changed = write_glue(load_registry())
    print(f"{DEFAULT_TEMPLATE}: Athena tables {'regenerated' if changed else 'up to date'}")
