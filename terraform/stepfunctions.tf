# The pipeline: tile indices (Pass) -> Statistics (Map over tiles) -> Solve -> Apply (Map over
# items, Lambda or Batch) -> Collection. The definition is templates/state_machine.asl.json.tftpl;
# the apply iteration is templates/apply_lambda.asl.json.tftpl or apply_batch.asl.json.tftpl.

locals {
  apply_lambda_template_vars = {
    partition          = local.partition
    apply_function_arn = aws_lambda_function.function["apply"].arn
  }

  apply_batch_template_vars = {
    partition                = local.partition
    name                     = var.name
    events_bucket            = aws_s3_bucket.output.id
    events_prefix            = local.events_prefix
    batch_job_definition_arn = try(aws_batch_job_definition.apply[0].arn, "")
    batch_job_queue_arn      = var.batch_job_queue_arn == null ? "" : var.batch_job_queue_arn
  }

  state_machine_template_vars = {
    partition                  = local.partition
    statistics_function_arn    = aws_lambda_function.function["statistics"].arn
    solve_function_arn         = aws_lambda_function.function["solve"].arn
    collection_function_arn    = aws_lambda_function.function["collection"].arn
    statistics_max_concurrency = var.statistics_max_concurrency
    apply_max_concurrency      = var.apply_max_concurrency
    apply_item_processor = (var.use_batch_for_apply
      ? templatefile("${path.module}/templates/apply_batch.asl.json.tftpl", local.apply_batch_template_vars)
      : templatefile("${path.module}/templates/apply_lambda.asl.json.tftpl", local.apply_lambda_template_vars)
    )
  }
}

resource "aws_sfn_state_machine" "pipeline" {
  name       = var.name
  type       = "STANDARD"
  role_arn   = aws_iam_role.state_machine.arn
  definition = templatefile("${path.module}/templates/state_machine.asl.json.tftpl", local.state_machine_template_vars)

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.state_machine.arn}:*"
    include_execution_data = var.state_machine_include_execution_data
    level                  = var.state_machine_log_level
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.state_machine]
}
