output "node_group_name" {
  description = "The node group's name."
  value       = aws_eks_node_group.this.node_group_name
}

output "node_role_arn" {
  description = "The nodes' IAM role (not used by Strata itself: its pods use IRSA)."
  value       = aws_iam_role.node.arn
}
