# The role Strata's pods (IRSA) or instances (instance profile) assume, allowed exactly the
# S3 calls Strata makes, on its own prefix only: GetObject (whole and ranged reads, HEAD),
# PutObject (segments, the metadata backup, probes), DeleteObject (the sweeper, probes) and
# ListBucket under the prefix (the sweeper, check-object-store). aws-config's default chain
# in the broker finds the credentials (web identity token or instance metadata).

locals {
  prefix = trimsuffix(trimprefix(var.prefix, "/"), "/")
  policy = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ObjectsUnderThePrefix"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
        Resource = ["${var.bucket_arn}/${local.prefix}/*"]
      },
      {
        Sid      = "ListThePrefix"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [var.bucket_arn]
        Condition = {
          StringLike = { "s3:prefix" = ["${local.prefix}/*"] }
        }
      },
    ]
  }
  ec2_trust = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  oidc_host = var.irsa == null ? null : trimprefix(var.irsa.oidc_provider_url, "https://")
  irsa_trust = var.irsa == null ? null : jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = var.irsa.oidc_provider_arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${local.oidc_host}:sub" = "system:serviceaccount:${var.irsa.namespace}:${var.irsa.service_account}"
          "${local.oidc_host}:aud" = "sts.amazonaws.com"
        }
      }
    }]
  })
}

resource "aws_iam_role" "this" {
  name               = var.name
  assume_role_policy = coalesce(local.irsa_trust, local.ec2_trust)
  tags               = var.tags
}

resource "aws_iam_policy" "s3" {
  name        = "${var.name}-s3"
  description = "Strata: tiered storage on ${var.bucket_arn}/${local.prefix}"
  policy      = jsonencode(local.policy)
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "s3" {
  role       = aws_iam_role.this.name
  policy_arn = aws_iam_policy.s3.arn
}

resource "aws_iam_instance_profile" "this" {
  count = var.irsa == null ? 1 : 0
  name  = var.name
  role  = aws_iam_role.this.name
  tags  = var.tags
}
