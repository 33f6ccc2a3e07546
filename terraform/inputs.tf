# ---------------------------------------------------------------------------------------------
# Naming and image
# ---------------------------------------------------------------------------------------------

variable "name" {
  type        = string
  description = "Prefix of every resource name: functions are <name>-statistics, <name>-solve, <name>-apply and <name>-collection; the state machine is <name>."
  default     = "stacrrn"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name))
    error_message = "name must be 2-32 characters of lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "image_uri" {
  type        = string
  description = "The stacrrn function image in Amazon ECR (built from the repository's Dockerfile), as <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag> or @sha256:<digest>."

  validation {
    condition     = can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", var.image_uri))
    error_message = "image_uri must be an Amazon ECR image with a tag or digest, e.g. 123456789012.dkr.ecr.us-west-2.amazonaws.com/stacrrn:0.1.0 (Lambda runs images from ECR only)."
  }
}

variable "architecture" {
  type        = string
  description = "Instruction set of the image and so of the functions (and of Fargate Batch jobs): x86_64 or arm64."
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

variable "input_bucket_names" {
  type        = list(string)
  description = "Existing buckets holding the input imagery (s3:// asset hrefs), read only: s3:GetObject on their objects, s3:ListBucket and s3:GetBucketLocation on the buckets. Public buckets of other accounts (e.g. sentinel-cogs) must be listed too. Assets read over https need no entry."
  default     = []

  validation {
    condition     = alltrue([for bucket in var.input_bucket_names : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", bucket))])
    error_message = "input_bucket_names must hold bucket names (3-63 lowercase letters, digits, dots, hyphens), not ARNs or s3:// URLs."
  }
}

variable "input_kms_key_arns" {
  type        = list(string)
  description = "KMS keys encrypting objects of the input buckets (SSE-KMS); the functions get kms:Decrypt on these keys only. Empty for SSE-S3 or unencrypted buckets."
  default     = []

  validation {
    condition     = alltrue([for key in var.input_kms_key_arns : can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", key))])
    error_message = "input_kms_key_arns must hold KMS key ARNs (arn:aws:kms:<region>:<account>:key/<id>)."
  }
}

variable "output_bucket_name" {
  type        = string
  description = "Name of the bucket the module creates for the results: tile statistics, the model, the corrected COGs, item and collection JSON."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.output_bucket_name)) && !can(regex("\\.\\.|^xn--|-s3alias$", var.output_bucket_name))
    error_message = "output_bucket_name must be a valid S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens."
  }
}

variable "output_prefix" {
  type        = string
  description = "Key prefix under the output bucket; STACRRN_OUTPUT is s3://<output_bucket_name>/<output_prefix>. Empty writes at the bucket root."
  default     = "stacrrn"

  validation {
    condition     = can(regex("^([A-Za-z0-9._=-]+(/[A-Za-z0-9._=-]+)*/?)?$", var.output_prefix))
    error_message = "output_prefix must not start with a slash nor hold empty segments (//); use letters, digits, '.', '_', '=', '-' and '/' only."
  }
}

variable "output_bucket_versioning" {
  type        = bool
  description = "Enable S3 versioning on the output bucket (keeps overwritten COGs; costs storage)."
  default     = false
}

variable "output_bucket_force_destroy" {
  type        = bool
  description = "Let terraform destroy delete the output bucket with its objects. Keep false outside experiments."
  default     = false
}

variable "abort_incomplete_multipart_upload_days" {
  type        = number
  description = "Days after which the output bucket's lifecycle rule aborts unfinished multipart uploads (left by interrupted COG writes)."
  default     = 7

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1 && floor(var.abort_incomplete_multipart_upload_days) == var.abort_incomplete_multipart_upload_days
    error_message = "abort_incomplete_multipart_upload_days must be a whole number of days, at least 1."
  }
}

# ---------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------

variable "statistics_memory_size" {
  type        = number
  description = "Memory (MB) of the statistics function, which reads one tile of every scene; CPU share grows with memory."
  default     = 3008

  validation {
    condition     = var.statistics_memory_size >= 128 && var.statistics_memory_size <= 10240
    error_message = "statistics_memory_size must be between 128 and 10240 MB."
  }
}

variable "statistics_timeout" {
  type        = number
  description = "Timeout (seconds) of the statistics function."
  default     = 900

  validation {
    condition     = var.statistics_timeout >= 1 && var.statistics_timeout <= 900
    error_message = "statistics_timeout must be between 1 and 900 seconds (the Lambda maximum)."
  }
}

variable "solve_memory_size" {
  type        = number
  description = "Memory (MB) of the solve function, which merges the tiles' moments and fits the model."
  default     = 2048

  validation {
    condition     = var.solve_memory_size >= 128 && var.solve_memory_size <= 10240
    error_message = "solve_memory_size must be between 128 and 10240 MB."
  }
}

variable "solve_timeout" {
  type        = number
  description = "Timeout (seconds) of the solve function."
  default     = 900

  validation {
    condition     = var.solve_timeout >= 1 && var.solve_timeout <= 900
    error_message = "solve_timeout must be between 1 and 900 seconds (the Lambda maximum)."
  }
}

variable "apply_memory_size" {
  type        = number
  description = "Memory (MB) of the apply function, which corrects one item and writes its COGs."
  default     = 3008

  validation {
    condition     = var.apply_memory_size >= 128 && var.apply_memory_size <= 10240
    error_message = "apply_memory_size must be between 128 and 10240 MB."
  }
}

variable "apply_timeout" {
  type        = number
  description = "Timeout (seconds) of the apply function. Items that need longer belong on AWS Batch (use_batch_for_apply)."
  default     = 900

  validation {
    condition     = var.apply_timeout >= 1 && var.apply_timeout <= 900
    error_message = "apply_timeout must be between 1 and 900 seconds (the Lambda maximum); use use_batch_for_apply for longer items."
  }
}

variable "collection_memory_size" {
  type        = number
  description = "Memory (MB) of the collection function, which writes collection.json."
  default     = 512

  validation {
    condition     = var.collection_memory_size >= 128 && var.collection_memory_size <= 10240
    error_message = "collection_memory_size must be between 128 and 10240 MB."
  }
}

variable "collection_timeout" {
  type        = number
  description = "Timeout (seconds) of the collection function."
  default     = 300

  validation {
    condition     = var.collection_timeout >= 1 && var.collection_timeout <= 900
    error_message = "collection_timeout must be between 1 and 900 seconds (the Lambda maximum)."
  }
}

variable "ephemeral_storage_size" {
  type        = number
  description = "Size (MB) of each function's /tmp, where apply writes the COGs before uploading them."
  default     = 4096

  validation {
    condition     = var.ephemeral_storage_size >= 512 && var.ephemeral_storage_size <= 10240
    error_message = "ephemeral_storage_size must be between 512 and 10240 MB."
  }
}

variable "extra_environment" {
  type        = map(string)
  description = "More environment variables for every stage (functions and the Batch job), e.g. GDAL or AWS_REQUEST_PAYER settings; they override the module's GDAL defaults and STACRRN_OUTPUT."
  default     = {}

  validation {
    condition = alltrue([
      for key in keys(var.extra_environment) :
      can(regex("^[A-Za-z][A-Za-z0-9_]*$", key)) &&
      !contains(["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_EXECUTION_ENV", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"], key) &&
      !startswith(key, "AWS_LAMBDA_") && !startswith(key, "AWS_BATCH") && !startswith(key, "AWS_XRAY_")
    ])
    error_message = "extra_environment keys must be identifiers and not reserved by Lambda or Batch (AWS_REGION, AWS_ACCESS_KEY_ID, AWS_LAMBDA_*, AWS_BATCH*, ...)."
  }
}

# ---------------------------------------------------------------------------------------------
# State machine
# ---------------------------------------------------------------------------------------------

variable "statistics_max_concurrency" {
  type        = number
  description = "How many statistics tiles run at once (Map MaxConcurrency); 0 lets Step Functions decide. Inline Map states run at most 40 iterations at a time."
  default     = 16

  validation {
    condition     = var.statistics_max_concurrency >= 0 && var.statistics_max_concurrency <= 40 && floor(var.statistics_max_concurrency) == var.statistics_max_concurrency
    error_message = "statistics_max_concurrency must be a whole number from 0 to 40 (the inline Map limit)."
  }
}

variable "apply_max_concurrency" {
  type        = number
  description = "How many items are corrected at once (Map MaxConcurrency); 0 lets Step Functions decide. Inline Map states run at most 40 iterations at a time."
  default     = 10

  validation {
    condition     = var.apply_max_concurrency >= 0 && var.apply_max_concurrency <= 40 && floor(var.apply_max_concurrency) == var.apply_max_concurrency
    error_message = "apply_max_concurrency must be a whole number from 0 to 40 (the inline Map limit)."
  }
}

variable "state_machine_log_level" {
  type        = string
  description = "Step Functions execution logging level: ALL, ERROR, FATAL or OFF."
  default     = "ERROR"

  validation {
    condition     = contains(["ALL", "ERROR", "FATAL", "OFF"], var.state_machine_log_level)
    error_message = "state_machine_log_level must be ALL, ERROR, FATAL or OFF."
  }
}

variable "state_machine_include_execution_data" {
  type        = bool
  description = "Log state inputs and outputs (the STAC payloads) with the state machine's events."
  default     = false
}

variable "log_retention_days" {
  type        = number
  description = "Retention (days) of the functions', the state machine's and the Batch job's log groups; 0 keeps logs forever."
  default     = 30

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the CloudWatch Logs values: 0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

# ---------------------------------------------------------------------------------------------
# AWS Batch for the apply stage (optional)
# ---------------------------------------------------------------------------------------------

variable "use_batch_for_apply" {
  type        = bool
  description = "Run the apply stage as AWS Batch jobs (same image, `python -m stacrrn.serverless apply --event s3://...`) instead of the apply function: for items that need more than 15 minutes or 10 GB. Needs batch_job_queue_arn."
  default     = false
}

variable "batch_job_queue_arn" {
  type        = string
  description = "ARN of an existing AWS Batch job queue (with its compute environment) for the apply jobs; required when use_batch_for_apply is true."
  default     = null

  validation {
    condition     = var.batch_job_queue_arn == null || can(regex("^arn:aws[a-z-]*:batch:[a-z0-9-]+:[0-9]{12}:job-queue/[A-Za-z0-9_-]+$", var.batch_job_queue_arn))
    error_message = "batch_job_queue_arn must be a job queue ARN: arn:aws:batch:<region>:<account>:job-queue/<name>."
  }
}

variable "batch_platform" {
  type        = string
  description = "Platform of the job queue's compute environment: FARGATE or EC2."
  default     = "FARGATE"

  validation {
    condition     = contains(["FARGATE", "EC2"], var.batch_platform)
    error_message = "batch_platform must be FARGATE or EC2."
  }
}

variable "batch_vcpu" {
  type        = number
  description = "vCPUs of one apply job (Fargate accepts 0.25, 0.5, 1, 2, 4, 8 or 16)."
  default     = 4

  validation {
    condition     = var.batch_vcpu >= 0.25 && var.batch_vcpu <= 192
    error_message = "batch_vcpu must be between 0.25 and 192."
  }
}

variable "batch_memory" {
  type        = number
  description = "Memory (MiB) of one apply job; on Fargate it must suit batch_vcpu (4 vCPU: 8192-30720)."
  default     = 16384

  validation {
    condition     = var.batch_memory >= 512 && floor(var.batch_memory) == var.batch_memory
    error_message = "batch_memory must be a whole number of MiB, at least 512."
  }
}

variable "batch_ephemeral_storage_size" {
  type        = number
  description = "Ephemeral storage (GiB) of one Fargate apply job (21-200); ignored on EC2, where the instance's volume is used."
  default     = 50

  validation {
    condition     = var.batch_ephemeral_storage_size >= 21 && var.batch_ephemeral_storage_size <= 200
    error_message = "batch_ephemeral_storage_size must be between 21 and 200 GiB."
  }
}

variable "batch_assign_public_ip" {
  type        = bool
  description = "Give Fargate apply jobs a public IP: needed in public subnets without a NAT gateway to reach ECR and S3."
  default     = false
}

variable "batch_timeout" {
  type        = number
  description = "Seconds after which an apply job attempt is stopped."
  default     = 14400

  validation {
    condition     = var.batch_timeout >= 60
    error_message = "batch_timeout must be at least 60 seconds (the Batch minimum)."
  }
}

variable "batch_attempts" {
  type        = number
  description = "Attempts of an apply job when its host goes away (Spot reclaim); other failures are not retried."
  default     = 2

  validation {
    condition     = var.batch_attempts >= 1 && var.batch_attempts <= 10
    error_message = "batch_attempts must be between 1 and 10."
  }
}

# ---------------------------------------------------------------------------------------------
# Tags
# ---------------------------------------------------------------------------------------------

variable "tags" {
  type        = map(string)
  description = "Tags for every resource the module creates."
  default     = {}
}
