variable "name" {
  description = "Name of the load balancer and its target group."
  type        = string
  default     = "strata"
  validation {
    condition     = can(regex("^[A-Za-z0-9-]{1,28}$", var.name))
    error_message = "1-28 letters, digits and hyphens (AWS limits target group names to 32)."
  }
}

variable "vpc_id" {
  description = "The VPC of the EKS cluster."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets for the load balancer, one per zone."
  type        = list(string)
}

variable "internal" {
  description = "An internal load balancer (clients in the VPC or peered networks) or an internet-facing one."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
