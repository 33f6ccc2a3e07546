# Least privilege: one role per function, limited to its own log group; S3 read on the input
# buckets, read/write/delete on the output bucket; the state machine may only invoke the stage
# functions (or submit the apply job) and deliver its own logs. IAM is global, so role names
# carry the region.

# ---------------------------------------------------------------------------------------------
# Data access, shared by the functions and the Batch apply job
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "data_access" {
  dynamic "statement" {
    for_each = length(var.input_bucket_names) > 0 ? [1] : []

    content {
      sid       = "ListInputBuckets"
      actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
      resources = [for bucket in var.input_bucket_names : "arn:${local.partition}:s3:::${bucket}"]
    }
  }

  dynamic "statement" {
    for_each = length(var.input_bucket_names) > 0 ? [1] : []

    content {
      sid       = "ReadInputObjects"
      actions   = ["s3:GetObject"]
      resources = [for bucket in var.input_bucket_names : "arn:${local.partition}:s3:::${bucket}/*"]
    }
  }

  dynamic "statement" {
    for_each = length(var.input_kms_key_arns) > 0 ? [1] : []

    content {
      sid       = "DecryptInputObjects"
      actions   = ["kms:Decrypt"]
      resources = var.input_kms_key_arns
    }
  }

  statement {
    sid       = "ListOutputBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.output.arn]
  }

  statement {
    sid       = "ReadWriteOutputObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.output.arn}/*"]
  }
}

# ---------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each = local.functions

  name               = "${var.name}-${each.key}-${local.region}"
  description        = "Execution role of the ${var.name}-${each.key} function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "function" {
  for_each = local.functions

  source_policy_documents = [data.aws_iam_policy_document.data_access.json]

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = "${var.name}-${each.key}"
  role   = aws_iam_role.function[each.key].id
  policy = data.aws_iam_policy_document.function[each.key].json
}

# ---------------------------------------------------------------------------------------------
# State machine
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "state_machine_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "state_machine" {
  name               = "${var.name}-state-machine-${local.region}"
  description        = "Role of the ${var.name} state machine"
  assume_role_policy = data.aws_iam_policy_document.state_machine_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "state_machine" {
  statement {
    sid     = "InvokeStageFunctions"
    actions = ["lambda:InvokeFunction"]
    resources = flatten([
      for stage, function in aws_lambda_function.function : [function.arn, "${function.arn}:*"]
      if !(var.use_batch_for_apply && stage == "apply")
    ])
  }

  # CloudWatch Logs delivery for Step Functions has no resource-level permissions.
  statement {
    sid = "DeliverExecutionLogs"
    actions = [
      "logs:CreateLogDelivery",
      "logs:GetLogDelivery",
      "logs:UpdateLogDelivery",
      "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries",
      "logs:PutResourcePolicy",
      "logs:DescribeResourcePolicies",
      "logs:DescribeLogGroups",
    ]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = var.use_batch_for_apply ? [1] : []

    content {
      sid     = "WriteApplyEvents"
      actions = ["s3:PutObject"]
      resources = [
        "${aws_s3_bucket.output.arn}/${local.events_prefix}*",
      ]
    }
  }

  dynamic "statement" {
    for_each = var.use_batch_for_apply ? [1] : []

    content {
      sid     = "SubmitApplyJobs"
      actions = ["batch:SubmitJob"]
      resources = [
        var.batch_job_queue_arn,
        "arn:${local.partition}:batch:${local.region}:${local.account_id}:job-definition/${var.name}-apply",
        "arn:${local.partition}:batch:${local.region}:${local.account_id}:job-definition/${var.name}-apply:*",
      ]
    }
  }

  dynamic "statement" {
    for_each = var.use_batch_for_apply ? [1] : []

    content {
      sid       = "StopApplyJobs"
      actions   = ["batch:TerminateJob"]
      resources = ["arn:${local.partition}:batch:${local.region}:${local.account_id}:job/*"]
    }
  }

  # batch:DescribeJobs has no resource-level permissions.
  dynamic "statement" {
    for_each = var.use_batch_for_apply ? [1] : []

    content {
      sid       = "TrackApplyJobs"
      actions   = ["batch:DescribeJobs"]
      resources = ["*"]
    }
  }

  # submitJob.sync waits on this managed EventBridge rule.
  dynamic "statement" {
    for_each = var.use_batch_for_apply ? [1] : []

    content {
      sid       = "ManageBatchJobEventsRule"
      actions   = ["events:PutTargets", "events:PutRule", "events:DescribeRule"]
      resources = ["arn:${local.partition}:events:${local.region}:${local.account_id}:rule/StepFunctionsGetEventsForBatchJobsRule"]
    }
  }
}

resource "aws_iam_role_policy" "state_machine" {
  name   = "${var.name}-state-machine"
  role   = aws_iam_role.state_machine.id
  policy = data.aws_iam_policy_document.state_machine.json
}

# ---------------------------------------------------------------------------------------------
# Batch apply job (use_batch_for_apply)
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# What the job's code may do: the same data access as the functions.
resource "aws_iam_role" "batch_job" {
  count = var.use_batch_for_apply ? 1 : 0

  name               = "${var.name}-apply-job-${local.region}"
  description        = "Role of the ${var.name}-apply Batch job's container"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "batch_job" {
  count = var.use_batch_for_apply ? 1 : 0

  name   = "${var.name}-apply-job"
  role   = aws_iam_role.batch_job[0].id
  policy = data.aws_iam_policy_document.data_access.json
}

# What ECS needs to start the job: pull the image, write the job's log group.
resource "aws_iam_role" "batch_execution" {
  count = var.use_batch_for_apply ? 1 : 0

  name               = "${var.name}-apply-exec-${local.region}"
  description        = "Execution role (image pull, logs) of the ${var.name}-apply Batch job"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "batch_execution" {
  count = var.use_batch_for_apply ? 1 : 0

  # ecr:GetAuthorizationToken has no resource-level permissions.
  statement {
    sid       = "GetRegistryToken"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullImage"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = [local.ecr_repository_arn]
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.batch_apply[0].arn}:*"]
  }
}

resource "aws_iam_role_policy" "batch_execution" {
  count = var.use_batch_for_apply ? 1 : 0

  name   = "${var.name}-apply-exec"
  role   = aws_iam_role.batch_execution[0].id
  policy = data.aws_iam_policy_document.batch_execution[0].json
}
