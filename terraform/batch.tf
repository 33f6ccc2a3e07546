# Optional: the apply stage as an AWS Batch job (use_batch_for_apply) for items beyond Lambda's
# 15 minutes / 10 GB. Same image; the state machine writes each item's event to
# s3://<output bucket>/<prefix>/_events/<execution>/<item>.json and passes its URL as the job
# parameter "event". The job queue and its compute environment are not part of this module.

locals {
  batch_container_properties = {
    image            = var.image_uri
    command          = ["python", "-m", "stacrrn.serverless", "apply", "--event", "Ref::event"]
    jobRoleArn       = one(aws_iam_role.batch_job[*].arn)
    executionRoleArn = one(aws_iam_role.batch_execution[*].arn)
    resourceRequirements = [
      { type = "VCPU", value = tostring(var.batch_vcpu) },
      { type = "MEMORY", value = tostring(var.batch_memory) },
    ]
    environment = [
      for key, value in merge(local.environment, { AWS_REGION = local.region, AWS_DEFAULT_REGION = local.region }) :
      { name = key, value = value }
    ]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = one(aws_cloudwatch_log_group.batch_apply[*].name)
        "awslogs-region"        = local.region
        "awslogs-stream-prefix" = "apply"
      }
    }
    # Fargate only (null drops the key below).
    fargatePlatformConfiguration = var.batch_platform == "FARGATE" ? { platformVersion = "LATEST" } : null
    networkConfiguration         = var.batch_platform == "FARGATE" ? { assignPublicIp = var.batch_assign_public_ip ? "ENABLED" : "DISABLED" } : null
    ephemeralStorage             = var.batch_platform == "FARGATE" ? { sizeInGiB = var.batch_ephemeral_storage_size } : null
    runtimePlatform              = var.batch_platform == "FARGATE" ? { operatingSystemFamily = "LINUX", cpuArchitecture = var.architecture == "arm64" ? "ARM64" : "X86_64" } : null
  }
}

resource "aws_batch_job_definition" "apply" {
  count = var.use_batch_for_apply ? 1 : 0

  name                  = "${var.name}-apply"
  type                  = "container"
  platform_capabilities = [var.batch_platform]
  propagate_tags        = true

  container_properties = jsonencode({
    for key, value in local.batch_container_properties : key => value if value != null
  })

  # Retry only when the host went away (e.g. a Spot reclaim), not on errors of the code.
  retry_strategy {
    attempts = var.batch_attempts

    evaluate_on_exit {
      on_status_reason = "Host EC2*"
      action           = "RETRY"
    }

    evaluate_on_exit {
      on_reason = "*"
      action    = "EXIT"
    }
  }

  timeout {
    attempt_duration_seconds = var.batch_timeout
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.batch_job_queue_arn != null
      error_message = "use_batch_for_apply = true needs batch_job_queue_arn: the ARN of an existing AWS Batch job queue."
    }
  }
}
