output "role_arn" {
  description = "The role's ARN: the eks.amazonaws.com/role-arn annotation of the strata service account (IRSA)."
  value       = aws_iam_role.this.arn
}

output "role_name" {
  description = "The role's name."
  value       = aws_iam_role.this.name
}

output "instance_profile_name" {
  description = "The instance profile for EC2 nodes (null with IRSA)."
  value       = one(aws_iam_instance_profile.this[*].name)
}
