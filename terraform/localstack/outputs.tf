output "object_store_url" {
  description = "--object-store for brokers using this endpoint (add ?endpoint=...&path_style=true)."
  value       = module.bucket.object_store_url
}

output "broker_role_arn" {
  description = "The role created in the local IAM."
  value       = module.broker_role.role_arn
}
