mock_provider "aws" {}

variables {
  name       = "strata-broker"
  bucket_arn = "arn:aws:s3:::strata-test-data"
  prefix     = "prod/cluster-a"
  irsa = {
    oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
    oidc_provider_url = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC"
    namespace         = "strata"
    service_account   = "strata"
  }
}

run "the_policy_allows_exactly_what_strata_calls_on_its_prefix" {
  command = plan

  assert {
    condition = join(",", sort(flatten([
      for s in jsondecode(aws_iam_policy.s3.policy).Statement : s.Action
    ]))) == "s3:DeleteObject,s3:GetObject,s3:ListBucket,s3:PutObject"
    error_message = "exactly Get, Put, Delete and List"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_policy.s3.policy).Statement :
      alltrue([for r in s.Resource : r == "arn:aws:s3:::strata-test-data/prod/cluster-a/*" || r == "arn:aws:s3:::strata-test-data"])
    ])
    error_message = "resources are the bucket and the cluster's prefix, nothing else"
  }
  assert {
    condition = anytrue([
      for s in jsondecode(aws_iam_policy.s3.policy).Statement :
      try(join(",", s.Condition.StringLike["s3:prefix"]) == "prod/cluster-a/*", false)
    ])
    error_message = "listing is limited to the prefix"
  }
  assert {
    condition     = alltrue([for s in jsondecode(aws_iam_policy.s3.policy).Statement : s.Effect == "Allow" && !contains(s.Action, "s3:*")])
    error_message = "no wildcard actions"
  }
}

run "irsa_trusts_only_the_strata_service_account" {
  command = plan

  assert {
    condition     = jsondecode(aws_iam_role.this.assume_role_policy).Statement[0].Action == "sts:AssumeRoleWithWebIdentity"
    error_message = "IRSA assumes the role with a web identity"
  }
  assert {
    condition     = jsondecode(aws_iam_role.this.assume_role_policy).Statement[0].Condition.StringEquals["oidc.eks.us-east-1.amazonaws.com/id/ABC:sub"] == "system:serviceaccount:strata:strata"
    error_message = "only the strata service account in the strata namespace"
  }
  assert {
    condition     = length(aws_iam_instance_profile.this) == 0
    error_message = "no instance profile with IRSA"
  }
}

run "without_irsa_ec2_instances_get_an_instance_profile" {
  command = plan
  variables {
    irsa = null
  }

  assert {
    condition     = jsondecode(aws_iam_role.this.assume_role_policy).Statement[0].Principal.Service == "ec2.amazonaws.com"
    error_message = "EC2 assumes the role"
  }
  assert {
    condition     = length(aws_iam_instance_profile.this) == 1
    error_message = "an instance profile"
  }
}
