output "bucket" {
  description = "The bucket's name."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "The bucket's ARN (for IAM policies)."
  value       = aws_s3_bucket.this.arn
}

output "prefix" {
  description = "This cluster's key prefix."
  value       = var.prefix
}

output "object_store_url" {
  description = "What to pass as strata server --object-store (STRATA_OBJECT_STORE)."
  value       = "s3://${aws_s3_bucket.this.bucket}/${var.prefix}"
}
