"""The fallback for machines without terraform or its provider mirror: checks, by parsing the
HCL (python-hcl2), the same properties `terraform test` asserts on a plan: the bucket's
lifecycle rules and the IAM policy's actions and resources. It says loudly that it is the
fallback."""

import sys
from pathlib import Path

import hcl2

ROOT = Path(__file__).resolve().parent.parent / "terraform" / "modules"


def load(path):
    with open(path) as f:
        return hcl2.load(f)


def unquote(value):
    return value.strip('"') if isinstance(value, str) else value


def resources(doc, kind):
    for block in doc.get("resource", []):
        for k, named in block.items():
            if unquote(k) == kind:
                yield from named.values()


def main():
    print("FALLBACK: terraform or /opt/tf-plugins is missing; checking the HCL structurally (python-hcl2)")
    bucket = load(ROOT / "bucket" / "main.tf")
    (lifecycle,) = list(resources(bucket, "aws_s3_bucket_lifecycle_configuration"))
    rules = {unquote(r["id"]): r for r in lifecycle["rule"]}
    assert set(rules) == {"abort-incomplete-multipart-uploads", "expire-check-probes"}, rules
    assert "abort_incomplete_multipart_upload" in rules["abort-incomplete-multipart-uploads"]
    assert "expiration" in rules["expire-check-probes"]
    for rule in rules.values():
        assert "segments" not in str(rule["filter"]), "no rule may expire tiered segments"
    (versioning,) = list(resources(bucket, "aws_s3_bucket_versioning"))
    assert unquote(versioning["versioning_configuration"][0]["status"]) == "Disabled"

    iam = load(ROOT / "iam" / "main.tf")
    policy = iam["locals"][0]["policy"]
    actions = sorted(unquote(a) for s in policy["Statement"] for a in s["Action"])
    assert actions == ["s3:DeleteObject", "s3:GetObject", "s3:ListBucket", "s3:PutObject"], actions
    for statement in policy["Statement"]:
        for resource in statement["Resource"]:
            assert unquote(resource).startswith("${var.bucket_arn}"), resource
    print("  terraform/modules: lifecycle rules and IAM actions/resources hold (structural check only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
