output "state_machine_arn" {
  description = "Start executions with: aws stepfunctions start-execution --state-machine-arn <this> --input file://execution-input.json"
  value       = module.stacrrn.state_machine_arn
}

output "output_uri" {
  description = "Where the corrected COGs, items, model and collection.json are written."
  value       = module.stacrrn.output_uri
}

output "function_names" {
  description = "The stage functions, by stage."
  value       = module.stacrrn.function_names
}
