# The same bucket and IAM modules against a local S3/IAM endpoint (LocalStack, or moto in
# server mode), so they can be applied without an AWS account:
#
#   terraform init && terraform apply -var endpoint=http://127.0.0.1:4566
#
# scripts/check-deploy.sh applies it against moto and checks the lifecycle rules landed.

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 6.0"
    }
  }
}

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "test"
  secret_key                  = "test"
  s3_use_path_style           = true
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  endpoints {
    s3  = var.endpoint
    iam = var.endpoint
    sts = var.endpoint
  }
}

module "bucket" {
  source        = "../modules/bucket"
  name          = var.bucket
  prefix        = "cluster"
  force_destroy = true
}

module "broker_role" {
  source     = "../modules/iam"
  name       = "strata-broker"
  bucket_arn = module.bucket.bucket_arn
  prefix     = module.bucket.prefix
}
