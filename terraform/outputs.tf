output "state_machine_arn" {
  description = "ARN of the pipeline state machine: pass it to `aws stepfunctions start-execution --state-machine-arn`."
  value       = aws_sfn_state_machine.pipeline.arn
}

output "state_machine_name" {
  description = "Name of the pipeline state machine."
  value       = aws_sfn_state_machine.pipeline.name
}

output "function_arns" {
  description = "ARNs of the four stage functions, by stage (statistics, solve, apply, collection)."
  value       = { for stage, function in aws_lambda_function.function : stage => function.arn }
}

output "function_names" {
  description = "Names of the four stage functions, by stage, e.g. for `aws lambda invoke`."
  value       = { for stage, function in aws_lambda_function.function : stage => function.function_name }
}

output "output_bucket_name" {
  description = "Name of the output bucket."
  value       = aws_s3_bucket.output.id
}

output "output_bucket_arn" {
  description = "ARN of the output bucket."
  value       = aws_s3_bucket.output.arn
}

output "output_uri" {
  description = "Where the results go (STACRRN_OUTPUT): s3://<output bucket>/<output prefix>."
  value       = local.output_uri
}

output "function_role_arns" {
  description = "ARNs of the functions' execution roles, by stage."
  value       = { for stage, role in aws_iam_role.function : stage => role.arn }
}

output "state_machine_role_arn" {
  description = "ARN of the state machine's role."
  value       = aws_iam_role.state_machine.arn
}

output "log_group_names" {
  description = "CloudWatch log groups: one per stage function, plus state_machine (and batch_apply with use_batch_for_apply)."
  value = merge(
    { for stage, group in aws_cloudwatch_log_group.function : stage => group.name },
    { state_machine = aws_cloudwatch_log_group.state_machine.name },
    var.use_batch_for_apply ? { batch_apply = aws_cloudwatch_log_group.batch_apply[0].name } : {},
  )
}

output "batch_job_definition_arn" {
  description = "ARN of the apply job definition, or null without use_batch_for_apply."
  value       = one(aws_batch_job_definition.apply[*].arn)
}

output "batch_job_role_arn" {
  description = "ARN of the apply job's container role, or null without use_batch_for_apply."
  value       = one(aws_iam_role.batch_job[*].arn)
}

output "batch_execution_role_arn" {
  description = "ARN of the apply job's execution role (image pull, logs), or null without use_batch_for_apply."
  value       = one(aws_iam_role.batch_execution[*].arn)
}
