"""The peer: the Magicline webhook written the way the Powertools for AWS Lambda (Python) docs
show it, doing the same job as functions/lambda/src/bin/magicline-webhook.rs for the same API Gateway event:

verify the studio's x-api-key -> parse the notification -> store the delivery once and queue it
(Powertools idempotency on DynamoDB around "store the event, send the SQS message") -> answer.

Environment: TENANTS_JSON (the same demo tenants document as the Rust function), TABLE_NAME,
QUEUE_URL, IDEMPOTENCY_TABLE_NAME (partition key `id`, String), and the usual AWS_* variables;
boto3 reads AWS_ENDPOINT_URL. Run with the AWS Lambda Runtime Interface Client:
`python -m awslambdaric app.lambda_handler`.
"""

import base64
import json
import os
import time

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(service="magicline-webhook")

# Built once per cold start, as the docs recommend.
TENANTS = json.loads(os.environ["TENANTS_JSON"])["tenants"]
TENANT_BY_KEY = {
    secret: tenant["id"] for tenant in TENANTS for secret in tenant.get("webhook_secrets", [])
}
TABLE_NAME = os.environ["TABLE_NAME"]
QUEUE_URL = os.environ["QUEUE_URL"]
RETENTION_SECONDS = 30 * 24 * 3600

persistence_layer = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE_NAME"])
config = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=RETENTION_SECONDS)
dynamodb = boto3.client("dynamodb")
sqs = boto3.client("sqs")


def answer(status: int, body: dict) -> dict:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }


def tenant_of(presented):
    """The studio whose webhook key this is."""
    if not presented:
        return None
    return TENANT_BY_KEY.get(presented)


@idempotent_function(
    data_keyword_argument="delivery", config=config, persistence_store=persistence_layer
)
def store_and_enqueue(delivery: dict) -> dict:
    now_ms = int(time.time() * 1000)
    dynamodb.put_item(
        TableName=TABLE_NAME,
        Item={
            "pk": {"S": delivery["key"]},
            "provider": {"S": "magicline"},
            "tenant": {"S": delivery["tenant"]},
            "event_type": {"S": delivery["event_type"]},
            "entity_id": {"S": delivery["entity_id"]},
            "subject": {"S": f"magicline#{delivery['tenant']}#{delivery['entity_id']}"},
            "body": {"S": delivery["body"]},
            "received_at": {"N": str(now_ms)},
            "status": {"S": "QUEUED"},
            "expires_at": {"N": str(now_ms // 1000 + RETENTION_SECONDS)},
        },
    )
    sqs.send_message(
        QueueUrl=QUEUE_URL,
        MessageBody=json.dumps(
            {
                "provider": "magicline",
                "tenant": delivery["tenant"],
                "key": delivery["key"],
                "event_type": delivery["event_type"],
                "entity_id": delivery["entity_id"],
            }
        ),
    )
    return {"status": "accepted", "duplicate": False, "id": delivery["key"]}


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    config.register_lambda_context(context)
    if event.get("requestContext", {}).get("http", {}).get("method") != "POST":
        return answer(405, {"error": "method not allowed"})
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    tenant = tenant_of(headers.get("x-api-key"))
    if tenant is None:
        return answer(401, {"error": "unauthorized"})
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    try:
        notification = json.loads(body)
        uuid = notification["uuid"]
        entity_id = str(notification["entityId"])
        event_type = notification["payload"][0]["type"]
        if not isinstance(uuid, str) or not uuid.strip():
            raise ValueError("uuid must not be empty")
    except (ValueError, KeyError, IndexError, TypeError) as error:
        return answer(400, {"error": f"malformed body: {error}"})
    key = f"magicline#{tenant}#{uuid}"
    result = store_and_enqueue(
        delivery={
            "key": key,
            "tenant": tenant,
            "event_type": event_type,
            "entity_id": entity_id,
            "body": body,
        }
    )
    logger.info("webhook", tenant=tenant, event_type=event_type, key=key, outcome="accepted")
    return answer(202, result)
