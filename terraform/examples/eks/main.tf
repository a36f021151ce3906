# A complete Strata deployment on an existing EKS cluster: the bucket, the brokers' IRSA
# role, a node group with NVMe instance storage, and the clients' load balancer. Its outputs
# fill the two TERRAFORM values in k8s/overlays/prod (docs/deploy.md).
#
#   terraform init && terraform apply -var cluster_name=... -var vpc_id=... \
#     -var 'subnet_ids=["subnet-a","subnet-b","subnet-c"]' -var bucket=my-strata-data

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
  region = var.region
}

data "aws_eks_cluster" "this" {
  name = var.cluster_name
}

data "aws_iam_openid_connect_provider" "this" {
  url = data.aws_eks_cluster.this.identity[0].oidc[0].issuer
}

locals {
  tags = merge(var.tags, { "app.kubernetes.io/part-of" = "strata" })
}

module "bucket" {
  source = "../../modules/bucket"
  name   = var.bucket
  prefix = var.prefix
  tags   = local.tags
}

module "broker_role" {
  source     = "../../modules/iam"
  name       = "${var.name}-broker"
  bucket_arn = module.bucket.bucket_arn
  prefix     = module.bucket.prefix
  irsa = {
    oidc_provider_arn = data.aws_iam_openid_connect_provider.this.arn
    oidc_provider_url = data.aws_iam_openid_connect_provider.this.url
    namespace         = var.namespace
    service_account   = "strata"
  }
  tags = local.tags
}

module "nodes" {
  source         = "../../modules/nodes"
  cluster_name   = var.cluster_name
  name           = var.name
  subnet_ids     = var.subnet_ids
  instance_types = var.instance_types
  size           = var.node_count
  tags           = local.tags
}

module "nlb" {
  source     = "../../modules/nlb"
  name       = var.name
  vpc_id     = var.vpc_id
  subnet_ids = var.subnet_ids
  tags       = local.tags
}
