variable "name" {
  description = "Bucket name (globally unique). Strata writes its tiered segments under <prefix>/segments/ and, on an embedded node, its metadata backup under <prefix>/metadata/."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.name))
    error_message = "An S3 bucket name is 3-63 lowercase letters, digits, dots and hyphens."
  }
}

variable "prefix" {
  description = "The key prefix of this cluster in the bucket (the path part of --object-store s3://bucket/prefix); no leading or trailing slash."
  type        = string
  default     = "cluster"
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)*$", var.prefix))
    error_message = "The prefix is one or more path segments without leading or trailing slashes."
  }
}

variable "kms_key_arn" {
  description = "KMS key for server-side encryption; null uses S3-managed keys (SSE-S3)."
  type        = string
  default     = null
}

variable "abort_incomplete_uploads_days" {
  description = "Days after which S3 aborts multipart uploads that never completed (a crashed upload's parts are billed until then)."
  type        = number
  default     = 1
  validation {
    condition     = var.abort_incomplete_uploads_days >= 1
    error_message = "At least one day."
  }
}

variable "probe_expiry_days" {
  description = "Days after which leftovers of `strata check-object-store` (under <prefix>/check/) expire."
  type        = number
  default     = 1
  validation {
    condition     = var.probe_expiry_days >= 1
    error_message = "At least one day."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a bucket that still holds objects (for test environments only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
