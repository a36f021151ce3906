output "bootstrap" {
  description = "bootstrap.servers for clients."
  value       = "${aws_lb.this.dns_name}:9092"
}

output "target_group_arn" {
  description = "For the TargetGroupBinding that registers the broker pods."
  value       = aws_lb_target_group.kafka.arn
}
