variable "region" {
  type        = string
  description = "AWS region to deploy to; the image must be in this region's ECR."
  default     = "us-west-2"
}

variable "name" {
  type        = string
  description = "Prefix of the resource names."
  default     = "stacrrn"
}

variable "image_uri" {
  type        = string
  description = "The stacrrn image pushed to ECR, e.g. 123456789012.dkr.ecr.us-west-2.amazonaws.com/stacrrn:0.1.0."
}

variable "input_bucket_names" {
  type        = list(string)
  description = "Buckets the functions may read imagery from."
  default     = ["sentinel-cogs"]
}

variable "output_bucket_name" {
  type        = string
  description = "Name of the bucket to create for the results (globally unique)."
}
