# One log group per function, one for the state machine, one for the Batch apply job: created
# here so that their retention is set and each role can be limited to its own group.

resource "aws_cloudwatch_log_group" "function" {
  for_each = local.functions

  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "state_machine" {
  name              = "/aws/vendedlogs/states/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "batch_apply" {
  count = var.use_batch_for_apply ? 1 : 0

  name              = "/aws/batch/${var.name}-apply"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}
