# Shared lookups and names. Resources live in files named by kind (s3.tf, iam.tf, lambda.tf,
# stepfunctions.tf, logs.tf, batch.tf); variables in inputs.tf, outputs in outputs.tf.

data "aws_partition" "current" {}

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id

  # s3://<output bucket>[/<prefix>], handed to every stage as STACRRN_OUTPUT.
  output_prefix = trimsuffix(var.output_prefix, "/")
  output_uri    = local.output_prefix == "" ? "s3://${var.output_bucket_name}" : "s3://${var.output_bucket_name}/${local.output_prefix}"

  # Where the state machine hands each Batch apply job its event (only with use_batch_for_apply).
  events_prefix = local.output_prefix == "" ? "_events/" : "${local.output_prefix}/_events/"

  # The four stages: one image, one handler each (see stacrrn/serverless/handlers.py).
  functions = {
    statistics = {
      handler     = "stacrrn.serverless.handlers.statistics"
      memory_size = var.statistics_memory_size
      timeout     = var.statistics_timeout
    }
    solve = {
      handler     = "stacrrn.serverless.handlers.solve"
      memory_size = var.solve_memory_size
      timeout     = var.solve_timeout
    }
    apply = {
      handler     = "stacrrn.serverless.handlers.apply"
      memory_size = var.apply_memory_size
      timeout     = var.apply_timeout
    }
    collection = {
      handler     = "stacrrn.serverless.handlers.collection"
      memory_size = var.collection_memory_size
      timeout     = var.collection_timeout
    }
  }

  # The AWS region is set by Lambda itself (AWS_REGION); extra_environment wins over the defaults.
  environment = merge(
    {
      GDAL_DISABLE_READDIR_ON_OPEN = "EMPTY_DIR"
      GDAL_HTTP_MAX_RETRY          = "5"
      GDAL_HTTP_RETRY_DELAY        = "1"
      STACRRN_OUTPUT               = local.output_uri
    },
    var.extra_environment,
  )

  # <account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@digest] -> the repository ARN,
  # which the Batch execution role may pull from (Lambda pulls with the deployer's rights).
  image = regex("^(?P<account>[0-9]{12})\\.dkr\\.ecr\\.(?P<region>[a-z0-9-]+)\\.amazonaws\\.com(?:\\.cn)?/(?P<repository>[^:@]+)", var.image_uri)

  ecr_repository_arn = "arn:${local.partition}:ecr:${local.image.region}:${local.image.account}:repository/${local.image.repository}"
}
