# `terraform test` with a mocked provider: plans only, no AWS account needed.
mock_provider "aws" {}

variables {
  name   = "strata-test-data"
  prefix = "prod/cluster-a"
}

run "lifecycle_rules_clean_up_what_strata_cannot" {
  command = plan

  assert {
    condition     = length(aws_s3_bucket_lifecycle_configuration.this.rule) == 2
    error_message = "two lifecycle rules: incomplete multipart uploads and probes"
  }
  assert {
    condition = anytrue([
      for r in aws_s3_bucket_lifecycle_configuration.this.rule :
      r.abort_incomplete_multipart_upload[0].days_after_initiation == 1 && r.filter[0].prefix == "prod/cluster-a/"
      if length(r.abort_incomplete_multipart_upload) > 0
    ])
    error_message = "incomplete multipart uploads under the cluster's prefix are aborted after a day"
  }
  assert {
    condition = anytrue([
      for r in aws_s3_bucket_lifecycle_configuration.this.rule :
      r.expiration[0].days == 1 && r.filter[0].prefix == "prod/cluster-a/check/"
      if length(r.expiration) > 0
    ])
    error_message = "check-object-store probes expire"
  }
  assert {
    condition = alltrue([
      for r in aws_s3_bucket_lifecycle_configuration.this.rule :
      !startswith(r.filter[0].prefix, "prod/cluster-a/segments")
    ])
    error_message = "no lifecycle rule ever expires tiered segments: only Strata's sweeper deletes them"
  }
}

run "the_bucket_is_private_unversioned_and_encrypted" {
  command = plan

  assert {
    condition     = aws_s3_bucket_versioning.this.versioning_configuration[0].status == "Disabled"
    error_message = "versioning is off: objects are never overwritten"
  }
  assert {
    condition = alltrue([
      aws_s3_bucket_public_access_block.this.block_public_acls,
      aws_s3_bucket_public_access_block.this.block_public_policy,
      aws_s3_bucket_public_access_block.this.ignore_public_acls,
      aws_s3_bucket_public_access_block.this.restrict_public_buckets,
    ])
    error_message = "public access is blocked"
  }
  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default).sse_algorithm == "AES256"
    error_message = "SSE-S3 without a KMS key"
  }
  assert {
    condition     = output.object_store_url == "s3://strata-test-data/prod/cluster-a"
    error_message = "the object store URL names the bucket and prefix"
  }
}

run "bad_names_are_refused" {
  command = plan
  variables {
    name = "Not_A_Bucket"
  }
  expect_failures = [var.name]
}
