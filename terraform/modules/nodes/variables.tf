variable "cluster_name" {
  description = "The EKS cluster the Strata nodes join."
  type        = string
}

variable "name" {
  description = "Name of the node group (and its role and launch template)."
  type        = string
  default     = "strata"
}

variable "subnet_ids" {
  description = "Private subnets, one per availability zone the brokers spread over (k8s topology spread: one broker per zone in turn)."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) >= 3
    error_message = "Three zones at least: the raft quorum and the brokers spread over them."
  }
}

variable "instance_types" {
  description = "Instance types with local NVMe instance storage for the hot tail and the read cache (i4i, i3en, im4gn, is4gen, c6id/m6id/r6id, c7gd/m7gd/r7gd, ...)."
  type        = list(string)
  default     = ["i4i.xlarge"]
  validation {
    condition     = alltrue([for t in var.instance_types : can(regex("^(i3|i3en|i4i|i4g|im4gn|is4gen|[cmr][5-8][a-z]*d|x2idn|x2iedn)\\.", t))])
    error_message = "Pick instance types that have NVMe instance storage (the family name ends in d, or an i-family type)."
  }
}

variable "size" {
  description = "Node count: desired, min and max (one Strata pod per node)."
  type = object({
    desired = number
    min     = number
    max     = number
  })
  default = { desired = 6, min = 3, max = 12 }
  validation {
    condition     = var.size.min >= 3 && var.size.min <= var.size.desired && var.size.desired <= var.size.max
    error_message = "3 <= min <= desired <= max."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
