"""Reads template.yaml, the single source of truth, for the local stack and the tests: the
resources to create in moto, each function's handler, environment, routes and event sources."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"

_SHORT_TAGS = {
    "Ref": "Ref",
    "GetAtt": "Fn::GetAtt",
    "Sub": "Fn::Sub",
    "If": "Fn::If",
    "Not": "Fn::Not",
    "Equals": "Fn::Equals",
    "Join": "Fn::Join",
    "Select": "Fn::Select",
    "Split": "Fn::Split",
    "And": "Fn::And",
    "Or": "Fn::Or",
    "Condition": "Condition",
    "FindInMap": "Fn::FindInMap",
    "ImportValue": "Fn::ImportValue",
    "GetAZs": "Fn::GetAZs",
    "Base64": "Fn::Base64",
}


class _TemplateLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short tags (!Ref, !GetAtt ...) into their long form."""


def _construct(tag: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag == "Fn::GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {tag: value}

    return construct


for _short, _long in _SHORT_TAGS.items():
    _TemplateLoader.add_constructor(f"!{_short}", _construct(_long))


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open() as handle:
        data: dict[str, Any] = yaml.load(handle, Loader=_TemplateLoader)  # noqa: S506
    return data


@lru_cache(maxsize=1)
def project_template() -> dict[str, Any]:
    return load_template()


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    authorized: bool


@dataclass(frozen=True)
class SqsSource:
    function: str
    queue: str
    batch_size: int
    report_batch_item_failures: bool
    maximum_concurrency: Any = None


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    code_uri: str
    handler: str
    environment: dict[str, Any] = field(default_factory=dict)
    timeout: int = 3


def functions(template: dict[str, Any]) -> dict[str, FunctionSpec]:
    globals_ = template.get("Globals", {}).get("Function", {})
    global_env = globals_.get("Environment", {}).get("Variables", {})
    specs = {}
    for name, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        props = resource["Properties"]
        env = {**global_env, **props.get("Environment", {}).get("Variables", {})}
        specs[name] = FunctionSpec(
            name=name,
            code_uri=props["CodeUri"],
            handler=props["Handler"],
            environment=env,
            timeout=int(props.get("Timeout", globals_.get("Timeout", 3))),
        )
    return specs


def http_routes(template: dict[str, Any]) -> list[Route]:
    routes = []
    for name, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        for event in resource["Properties"].get("Events", {}).values():
            if event.get("Type") != "HttpApi":
                continue
            props = event["Properties"]
            auth = props.get("Auth", {}).get("Authorizer")
            routes.append(
                Route(
                    method=props["Method"].upper(),
                    path=props["Path"],
                    function=name,
                    authorized=auth != "NONE",
                )
            )
    return routes


def sqs_sources(template: dict[str, Any]) -> list[SqsSource]:
    sources = []
    for name, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        for event in resource["Properties"].get("Events", {}).values():
            if event.get("Type") != "SQS":
                continue
            props = event["Properties"]
            queue = props["Queue"]["Fn::GetAtt"][0]
            sources.append(
                SqsSource(
                    function=name,
                    queue=queue,
                    batch_size=int(props.get("BatchSize", 10)),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in props.get("FunctionResponseTypes", []),
                    maximum_concurrency=props.get("ScalingConfig", {}).get("MaximumConcurrency"),
                )
            )
    return sources


@dataclass(frozen=True)
class StreamPipe:
    """An EventBridge pipe from a DynamoDB table's stream to an SQS queue."""

    name: str
    table: str
    queue: str
    filter_patterns: tuple[str, ...]
    input_template: str | None
    starting_position: str


def stream_pipes(template: dict[str, Any]) -> list[StreamPipe]:
    """The AWS::Pipes::Pipe resources whose source is a table's stream and target a queue."""
    pipes = []
    for name, resource in resources_of_type(template, "AWS::Pipes::Pipe").items():
        props = resource["Properties"]
        table, attribute = props["Source"]["Fn::GetAtt"]
        queue, queue_attribute = props["Target"]["Fn::GetAtt"]
        if attribute != "StreamArn" or queue_attribute != "Arn":
            raise ValueError(f"{name}: the local stack runs only table-stream-to-queue pipes")
        source = props.get("SourceParameters", {})
        stream = source.get("DynamoDBStreamParameters", {})
        filters = source.get("FilterCriteria", {}).get("Filters", [])
        pipes.append(
            StreamPipe(
                name=name,
                table=table,
                queue=queue,
                filter_patterns=tuple(f["Pattern"] for f in filters),
                input_template=props.get("TargetParameters", {}).get("InputTemplate"),
                starting_position=stream.get("StartingPosition", "LATEST"),
            )
        )
    return pipes


@dataclass(frozen=True)
class StreamSource:
    """A function fed by a table's DynamoDB stream (a SAM event of Type DynamoDB): Lambda's event
    source mapping, as far as the local stack runs it."""

    function: str
    table: str
    starting_position: str
    batch_size: int = 100
    maximum_batching_window_seconds: float = 0
    report_batch_item_failures: bool = False


# SAM's DynamoDB event properties that the local stack runs as AWS does.
_STREAM_PROPERTIES = frozenset(
    {
        "Stream",
        "StartingPosition",
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "FunctionResponseTypes",
        "Enabled",
        # Accepted only at the values that mean "retry a failed batch until it succeeds, one
        # invocation at a time per shard" (checked below): the only behaviour built here.
        "MaximumRetryAttempts",
        "MaximumRecordAgeInSeconds",
        "BisectBatchOnFunctionError",
        "ParallelizationFactor",
    }
)
_STREAM_DEFAULTS_ONLY = {
    "MaximumRetryAttempts": -1,
    "MaximumRecordAgeInSeconds": -1,
    "BisectBatchOnFunctionError": False,
    "ParallelizationFactor": 1,
}


def stream_sources(template: dict[str, Any]) -> list[StreamSource]:
    """The functions' DynamoDB stream event sources. A setting the local stack cannot honour (a
    filter, a failure destination, bounded retries, bisection...) is refused rather than run
    differently from AWS, as `stream_pipes` refuses what it cannot run; a disabled source
    (Enabled: false) has no mapping running, so none is returned."""
    sources = []
    for name, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        for event_name, event in resource["Properties"].get("Events", {}).items():
            if event.get("Type") != "DynamoDB":
                continue
            where = f"{name}.Events.{event_name}"
            props = event["Properties"]
            _refuse_what_is_not_run_locally(where, props)
            if props.get("Enabled", True) is False:
                continue
            position = props["StartingPosition"]
            if position not in ("TRIM_HORIZON", "LATEST"):
                raise ValueError(f"{where}: a DynamoDB stream starts at TRIM_HORIZON or LATEST")
            response_types = props.get("FunctionResponseTypes", [])
            if set(response_types) - {"ReportBatchItemFailures"}:
                raise ValueError(f"{where}: unknown FunctionResponseTypes {response_types}")
            sources.append(
                StreamSource(
                    function=name,
                    table=_stream_table(where, props["Stream"]),
                    starting_position=position,
                    batch_size=int(props.get("BatchSize", 100)),
                    maximum_batching_window_seconds=float(
                        props.get("MaximumBatchingWindowInSeconds", 0)
                    ),
                    report_batch_item_failures="ReportBatchItemFailures" in response_types,
                )
            )
    return sources


def _stream_table(where: str, stream: Any) -> str:
    """The logical id of the table whose stream `!GetAtt Table.StreamArn` names."""
    reference = stream.get("Fn::GetAtt") if isinstance(stream, dict) else None
    if not reference or reference[1] != "StreamArn":
        raise ValueError(
            f"{where}: the local stack reads a stream named by !GetAtt <Table>.StreamArn"
        )
    return str(reference[0])


def _refuse_what_is_not_run_locally(where: str, props: dict[str, Any]) -> None:
    unknown = sorted(set(props) - _STREAM_PROPERTIES)
    if unknown:
        raise ValueError(f"{where}: the local stack does not run {', '.join(unknown)}")
    for setting, default in _STREAM_DEFAULTS_ONLY.items():
        if setting in props and props[setting] != default:
            raise ValueError(
                f"{where}: the local stack runs only {setting}: {default!r} (a failed batch is "
                "retried until it succeeds, one batch at a time per shard)"
            )


def default_authorizer(template: dict[str, Any]) -> str | None:
    """The function behind the HTTP API's default authorizer, if there is one."""
    for resource in resources_of_type(template, "AWS::Serverless::HttpApi").values():
        auth = resource["Properties"].get("Auth", {})
        default = auth.get("DefaultAuthorizer")
        if default:
            arn = auth["Authorizers"][default]["FunctionArn"]
            return str(arn["Fn::GetAtt"][0])
    return None
