output "object_store_url" {
  description = "STRATA_OBJECT_STORE in k8s/overlays/prod."
  value       = module.bucket.object_store_url
}

output "broker_role_arn" {
  description = "The strata service account's eks.amazonaws.com/role-arn in k8s/overlays/prod."
  value       = module.broker_role.role_arn
}

output "bootstrap" {
  description = "bootstrap.servers for Kafka clients."
  value       = module.nlb.bootstrap
}

output "target_group_arn" {
  description = "For the TargetGroupBinding that registers broker pods with the load balancer."
  value       = module.nlb.target_group_arn
}
