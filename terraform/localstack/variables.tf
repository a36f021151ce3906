variable "endpoint" {
  description = "The local AWS endpoint (LocalStack: http://127.0.0.1:4566)."
  type        = string
  default     = "http://127.0.0.1:4566"
  validation {
    condition     = can(regex("^https?://", var.endpoint))
    error_message = "An http:// or https:// URL."
  }
}

variable "bucket" {
  description = "The bucket to create."
  type        = string
  default     = "strata"
}
