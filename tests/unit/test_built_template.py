"""What `sam build` produced (.aws-sam/build) and what SAM turns the template into: every handler
resolves to code in the build, the layer carries the package for the Lambda platform, the
transformed stack has no dependency cycle and its roles grant what tests/least_privilege.py says.

`make test` runs `make build` first; run it yourself before running these alone.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from sms_local import template as tpl
from tests.least_privilege import (
    EXPECTED_GRANTS,
    SAM_POLICY_TEMPLATES,
    Grant,
    resource_id,
    sam_template_grants,
    statement_grants,
)

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"
BUILT_TEMPLATE = BUILD / "template.yaml"
SAM_PYTHON = ROOT / ".tools" / "sam" / "bin" / "python"

# The Lambda platform of template.yaml's Globals.
RUNTIME = "python3.13"
ARCHITECTURE = "arm64"
# Wheels with compiled code must be built for it.
EXTENSION_SUFFIX = "cpython-313-aarch64-linux-gnu.so"

# Runs in SAM CLI's virtualenv, which has SAM's translator (the project's does not: it pins an
# older pydantic). Code paths become S3 URIs, as `sam package` would make them.
TRANSFORM = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class BundledPoliciesOnly:
    def load(self):
        return {}

template = yaml_parse(open(sys.argv[1]).read())
for resource in template["Resources"].values():
    properties = resource.get("Properties", {})
    for key in ("CodeUri", "ContentUri"):
        if isinstance(properties.get(key), str):
            properties[key] = "s3://bucket/" + properties[key]
json.dump(transform(template, {}, BundledPoliciesOnly()), sys.stdout)
"""

# What SAM attaches to the roles it generates (Tracing: Active adds X-Ray).
SAM_MANAGED_POLICIES = [
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
]


@cache
def built() -> dict[str, Any]:
    if not BUILT_TEMPLATE.exists():
        pytest.fail(f"{BUILT_TEMPLATE.relative_to(ROOT)} is missing: run `make build` first")
    return tpl.load_template(BUILT_TEMPLATE)


@cache
def transformed() -> dict[str, Any]:
    if not SAM_PYTHON.exists():
        pytest.fail("SAM CLI's virtualenv is missing: run `make install` (or `make validate`)")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    result = subprocess.run(
        [str(SAM_PYTHON), "-c", TRANSFORM, str(tpl.TEMPLATE_PATH)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def built_functions() -> dict[str, dict[str, Any]]:
    return tpl.resources_of_type(built(), "AWS::Serverless::Function")


def module_level_names(path: Path) -> set[str]:
    """Names a module defines or imports at its top level."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
    return names


def module_file(package_root: Path, dotted: str) -> Path | None:
    path = package_root.joinpath(*dotted.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def unresolved_imports(handler: Path, site: Path) -> list[str]:
    """`from sms_gateway.x import y` lines of a handler that the built layer cannot satisfy."""
    missing = []
    for node in ast.walk(ast.parse(handler.read_text())):
        if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sms_gateway")):
            continue
        module = module_file(site, str(node.module))
        if module is None:
            missing.append(str(node.module))
            continue
        for alias in node.names:
            submodule = module_file(site, f"{node.module}.{alias.name}")
            if submodule is None and alias.name not in module_level_names(module):
                missing.append(f"{node.module}.{alias.name}")
    return missing


def layer_dir() -> Path:
    (layer,) = tpl.resources_of_type(built(), "AWS::Serverless::LayerVersion").values()
    return BUILD / str(layer["Properties"]["ContentUri"]) / "python"


# --- the build ---------------------------------------------------------------------------------


def test_the_build_has_every_function_of_the_template() -> None:
    source = tpl.resources_of_type(tpl.project_template(), "AWS::Serverless::Function")
    assert set(built_functions()) == set(source)
    assert built()["Globals"]["Function"]["Runtime"] == RUNTIME
    assert built()["Globals"]["Function"]["Architectures"] == [ARCHITECTURE]


@pytest.mark.parametrize(
    "function", sorted(tpl.resources_of_type(tpl.project_template(), "AWS::Serverless::Function"))
)
def test_handler_resolves_to_code_in_the_build(function: str) -> None:
    props = built_functions()[function]["Properties"]
    code = BUILD / props["CodeUri"]
    module, _, attribute = props["Handler"].rpartition(".")
    path = code / f"{module.replace('.', '/')}.py"
    assert path.is_file(), f"{function}: {props['Handler']} needs {path.relative_to(ROOT)}"
    assert attribute in module_level_names(path), f"{function}: no {attribute} in {path.name}"
    assert not unresolved_imports(path, layer_dir()), "missing from the built layer"


def test_the_layer_ships_the_package_and_its_dependencies_for_the_platform() -> None:
    python = layer_dir()
    assert (python / "sms_gateway" / "__init__.py").is_file()
    for dependency in ("aws_lambda_powertools", "pydantic", "pydantic_core", "phonenumbers"):
        assert (python / dependency).is_dir(), f"{dependency} is missing from the layer"
    extensions = list(python.rglob("*.so"))
    assert extensions, "pydantic_core at least is compiled"
    wrong = [
        str(e.relative_to(python)) for e in extensions if not e.name.endswith(EXTENSION_SUFFIX)
    ]
    assert not wrong, f"built for another platform than {RUNTIME} on {ARCHITECTURE}: {wrong}"
    # Lambda's runtime brings boto3; a copy in the layer would only shadow it.
    assert not (python / "boto3").exists()


def test_the_source_package_and_the_built_one_have_the_same_modules() -> None:
    source = ROOT / "layers" / "shared" / "sms_gateway"
    listed = {p.relative_to(source) for p in source.rglob("*.py")}
    shipped = {
        p.relative_to(layer_dir() / "sms_gateway")
        for p in (layer_dir() / "sms_gateway").rglob("*.py")
    }
    assert listed == shipped, "the build is older than the code: run `make build`"


# --- what SAM makes of the template ------------------------------------------------------------


def references(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else value
                found |= {n.split(".")[0] for n in re.findall(r"\$\{([^}!]+)\}", text)}
                found |= references(variables)
            else:
                found |= references(value)
    elif isinstance(node, list):
        for item in node:
            found |= references(item)
    return found


def test_the_deployed_stack_has_no_dependency_cycle() -> None:
    resources = transformed()["Resources"]
    graph = {}
    for name, resource in resources.items():
        depends = resource.get("DependsOn", [])
        edges = references(resource.get("Properties", {})) | set(
            [depends] if isinstance(depends, str) else depends
        )
        graph[name] = {e for e in edges if e in resources}

    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            pytest.fail("dependency cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for dependency in sorted(graph[name]):
            visit(dependency, [*path, name])
        done.add(name)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for name in sorted(graph):
        visit(name, [])


def role_of(function: str) -> dict[str, Any]:
    resources = transformed()["Resources"]
    role = resource_id(resources[function]["Properties"]["Role"])
    properties: dict[str, Any] = resources[role]["Properties"]
    return properties


@pytest.mark.parametrize("function", sorted(EXPECTED_GRANTS))
def test_sam_generates_roles_with_exactly_the_expected_grants(function: str) -> None:
    role = role_of(function)
    grants: set[Grant] = set()
    for policy in role.get("Policies", []):
        grants |= statement_grants(policy["PolicyDocument"]["Statement"])
    # A resource that is a parameter's Ref is named ${Name}, as the local stack resolves it.
    parameters = transformed()["Parameters"]
    grants = {(a, f"${{{r}}}" if r in parameters else r) for a, r in grants}
    assert grants == EXPECTED_GRANTS[function]
    source = tpl.project_template()["Resources"][function]["Properties"]
    if "Role" in source:
        managed = [resource_id(a) for a in role["ManagedPolicyArns"]]
        assert managed == ["arn:${AWS::Partition}:iam::aws:policy/AWSXrayWriteOnlyAccess"]
    else:
        # Nothing beyond logs and X-Ray; notably not AWSLambdaSQSQueueExecutionRole (any queue).
        assert role["ManagedPolicyArns"] == SAM_MANAGED_POLICIES


def test_the_table_of_sam_policy_templates_is_sams() -> None:
    found = list(SAM_PYTHON.parent.parent.glob("lib/python*/site-packages/samtranslator"))
    if not found:
        pytest.fail("SAM CLI's virtualenv is missing: run `make install` (or `make validate`)")
    data = json.loads((found[0] / "policy_templates_data" / "policy_templates.json").read_text())
    for name, (parameter, _, _) in SAM_POLICY_TEMPLATES.items():
        # SAM's definition names the resource {"Ref": "<parameter>"}: give the table the same.
        sams = statement_grants(data["Templates"][name]["Definition"]["Statement"])
        assert sams == sam_template_grants(name, {parameter: {"Ref": parameter}}), name


@pytest.mark.parametrize(
    "function",
    [
        *sorted({route.function for route in tpl.http_routes(tpl.project_template())}),
        "AuthorizerFunction",
    ],
)
def test_api_gateway_may_invoke_every_function_it_calls(function: str) -> None:
    # The authorizer included: without its permission every keyed route answers 500.
    permissions = [
        r["Properties"]
        for r in transformed()["Resources"].values()
        if r["Type"] == "AWS::Lambda::Permission"
    ]
    # A route invokes the function's alias (AutoPublishAlias, for SnapStart), the authorizer the
    # function itself.
    assert any(
        resource_id(p["FunctionName"]) in (function, f"{function}Aliaslive")
        and p["Principal"] == "apigateway.amazonaws.com"
        and p["Action"] == "lambda:InvokeFunction"
        for p in permissions
    )
