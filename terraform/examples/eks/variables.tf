variable "region" {
  description = "AWS region of the EKS cluster and the bucket."
  type        = string
  default     = "us-east-1"
}

variable "cluster_name" {
  description = "The existing EKS cluster (with an IAM OIDC provider for IRSA)."
  type        = string
}

variable "vpc_id" {
  description = "The cluster's VPC."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets in three or more zones."
  type        = list(string)
}

variable "bucket" {
  description = "Name of the bucket to create for tiered data."
  type        = string
}

variable "prefix" {
  description = "This cluster's prefix in the bucket."
  type        = string
  default     = "cluster"
}

variable "name" {
  description = "Name for the node group, role and load balancer."
  type        = string
  default     = "strata"
}

variable "namespace" {
  description = "The Kubernetes namespace Strata runs in (k8s/overlays/prod: strata)."
  type        = string
  default     = "strata"
}

variable "instance_types" {
  description = "Node instance types with NVMe instance storage."
  type        = list(string)
  default     = ["i4i.xlarge"]
}

variable "node_count" {
  description = "Nodes in the group: desired, min, max."
  type = object({
    desired = number
    min     = number
    max     = number
  })
  default = { desired = 6, min = 3, max = 12 }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
