"""AWS list prices the cost figures use: one region, on-demand, no free tier, no discounts.

There is no live web where these benchmarks run, so they were not read from AWS's price pages
on the day of the run. Each price says where it was checked (stored copies of public pages) and
as of when; "from memory" marks the ones that could not be checked that way. Change them here
when AWS changes them: BENCHMARKS.md prints this table with the figures.
"""

REGION = "us-east-1 (N. Virginia)"
CHECKED = "2026-11-26"
PAGES_DATED = "the stored pages are dated July 2025 to March 2026 where they carry a date"

# name: (USD, unit, source)
PRICES = {
    "apigw_http_request": (
        1.00 / 1e6,
        "HTTP API request (first 300 M a month; metered in 512 KB increments)",
        "AWS whitepaper 'Best Practices for Designing Amazon API Gateway Private APIs', Table 4 "
        "(docs.aws.amazon.com, stored copy)",
    ),
    "lambda_request": (
        0.20 / 1e6,
        "Lambda request",
        "lambda_local_runner docs 'lambda-13-cost' and AWS Lambda pricing examples (stored copies); "
        "AWS list price since 2014",
    ),
    "lambda_gb_s_x86_64": (
        0.0000166667,
        "Lambda GB-second, x86_64 (first 6 billion GB-s a month)",
        "cloudchipr.com 'AWS Lambda pricing breakdown' (stored copy)",
    ),
    "lambda_gb_s_arm64": (
        0.0000133334,
        "Lambda GB-second, arm64 (first 7.5 billion GB-s a month)",
        "cloudchipr.com 'AWS Lambda pricing breakdown' (stored copy)",
    ),
    "dynamodb_wru": (
        0.625 / 1e6,
        "DynamoDB on-demand write request unit (after the 1 Nov 2024 price cut)",
        "airbyte.com 'Amazon DynamoDB pricing' (stored copy, July 2025)",
    ),
    "dynamodb_rru": (
        0.125 / 1e6,
        "DynamoDB on-demand read request unit (after the 1 Nov 2024 price cut)",
        "airbyte.com 'Amazon DynamoDB pricing' (stored copy, July 2025)",
    ),
    "dynamodb_storage_gb_month": (
        0.25,
        "DynamoDB Standard table storage, GB-month (beyond the first 25 GB)",
        "from memory (AWS DynamoDB pricing page, as of 2025); not checked here",
    ),
    "sqs_request": (
        0.40 / 1e6,
        "SQS standard request (each 64 KB chunk of a payload is one request)",
        "cloudburn.io 'Amazon SQS pricing' (stored copy, March 2026)",
    ),
    "eventbridge_event": (
        1.00 / 1e6,
        "EventBridge custom event put on a bus (each 64 KB chunk is one event)",
        "cloudburn.io 'Amazon EventBridge pricing' (stored copy, March 2026)",
    ),
    "logs_ingest_gb": (
        0.50,
        "CloudWatch Logs ingestion, GB (Lambda logs, first 10 TB a month; Standard class)",
        "duckbillgroup.com on the May 2025 Lambda log tiers; c3x.dev (stored copies)",
    ),
    "logs_storage_gb_month": (
        0.03,
        "CloudWatch Logs storage, GB-month",
        "hykell.com 'CloudWatch Logs pricing'; c3x.dev (stored copies)",
    ),
}


def price(name):
    return PRICES[name][0]
