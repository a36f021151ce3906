variable "name" {
  description = "Name of the IAM role (and policy) the Strata brokers run as."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", var.name))
    error_message = "IAM role names are 1-64 characters of letters, digits and +=,.@_-."
  }
}

variable "bucket_arn" {
  description = "ARN of the bucket Strata tiers into (the bucket module's bucket_arn)."
  type        = string
  validation {
    condition     = startswith(var.bucket_arn, "arn:")
    error_message = "An ARN, e.g. arn:aws:s3:::my-bucket."
  }
}

variable "prefix" {
  description = "The cluster's key prefix in the bucket; the role can touch nothing outside it."
  type        = string
  default     = "cluster"
}

variable "irsa" {
  description = "Trust EKS pods through IRSA: the cluster's OIDC provider and the Kubernetes service account (k8s/base/serviceaccount.yaml). Null trusts EC2 instead and creates an instance profile."
  type = object({
    oidc_provider_arn = string
    oidc_provider_url = string
    namespace         = string
    service_account   = string
  })
  default = null
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
