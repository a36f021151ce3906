# The compute: an EKS managed node group of instances with local NVMe instance storage.
#
# Why this and not EC2 instances with a systemd unit: the k8s/ manifests are the one way we
# run Strata, and a managed node group gives rolling AMI upgrades that respect the
# PodDisruptionBudget. Why instance storage and not EBS: Strata keeps only the hot tail and a
# read cache locally; everything sealed is in S3, so losing a node's disk loses at most the
# not-yet-uploaded tail (docs/architecture.md) while NVMe gives the produce path local-disk
# latency and no per-GB-month EBS bill.
#
# nodeadm (AL2023) assembles the instance-store disks into one RAID0 array; the
# `local-nvme` StorageClass of k8s/overlays/prod is served on it by the local static
# provisioner (docs/deploy.md).

resource "aws_iam_role" "node" {
  name = "${var.name}-node"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset([
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
  ])
  role       = aws_iam_role.node.name
  policy_arn = each.value
}

resource "aws_launch_template" "node" {
  name_prefix = "${var.name}-"
  # IMDSv2 only, one hop: pods use IRSA, not the node's instance role.
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  user_data = base64encode(<<-EOT
    MIME-Version: 1.0
    Content-Type: multipart/mixed; boundary="strata"

    --strata
    Content-Type: application/node.eks.aws

    apiVersion: node.eks.aws/v1alpha1
    kind: NodeConfig
    spec:
      instance:
        localStorage:
          strategy: RAID0
    --strata--
  EOT
  )
  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = var.name })
  }
  tags = var.tags
}

resource "aws_eks_node_group" "this" {
  cluster_name    = var.cluster_name
  node_group_name = var.name
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.subnet_ids
  instance_types  = var.instance_types
  ami_type        = "AL2023_x86_64_STANDARD"

  scaling_config {
    desired_size = var.size.desired
    min_size     = var.size.min
    max_size     = var.size.max
  }

  # One node at a time, as the PodDisruptionBudget allows one Strata pod down.
  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  labels = {
    "strata.dev/node" = "true"
  }

  taint {
    key    = "strata.dev/dedicated"
    value  = "true"
    effect = "NO_SCHEDULE"
  }

  tags       = var.tags
  depends_on = [aws_iam_role_policy_attachment.node]
}
