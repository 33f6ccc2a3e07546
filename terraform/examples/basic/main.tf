# The smallest deployment: Lambda for every stage, Sentinel-2 COGs from the public
# sentinel-cogs bucket (us-west-2), results in a new bucket.
#
#   terraform init
#   terraform apply -var image_uri=<account>.dkr.ecr.us-west-2.amazonaws.com/stacrrn:0.1.0 \
#                   -var output_bucket_name=<a globally unique name>

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      project = "stacrrn"
    }
  }
}

module "stacrrn" {
  source = "../.."

  name               = var.name
  image_uri          = var.image_uri
  input_bucket_names = var.input_bucket_names
  output_bucket_name = var.output_bucket_name
  output_prefix      = "runs"

  statistics_max_concurrency = 16
  apply_max_concurrency      = 10
  log_retention_days         = 14
}
