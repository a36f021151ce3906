#!/usr/bin/env bash
# LocalStack runs this once it is ready: the bucket the brokers tier into.
awslocal s3 mb s3://strata
