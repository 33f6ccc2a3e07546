# Four functions from one image; each runs its own handler (image_config.command).

resource "aws_lambda_function" "function" {
  for_each = local.functions

  function_name = "${var.name}-${each.key}"
  description   = "stacrrn ${each.key} stage (${each.value.handler})"
  role          = aws_iam_role.function[each.key].arn
  package_type  = "Image"
  image_uri     = var.image_uri
  architectures = [var.architecture]
  memory_size   = each.value.memory_size
  timeout       = each.value.timeout

  image_config {
    command = [each.value.handler]
  }

  ephemeral_storage {
    size = var.ephemeral_storage_size
  }

  environment {
    variables = local.environment
  }

  tags = var.tags

  # The log group must exist before the first invocation, or Lambda creates one that never
  # expires; the role's policy must be in place before the state machine calls the function.
  depends_on = [
    aws_cloudwatch_log_group.function,
    aws_iam_role_policy.function,
  ]
}
