"""The peer's processor: the queue side of app.py, written the way the Powertools for AWS Lambda
(Python) docs show it, doing the processing job of functions/lambda/src/bin/processor.rs for Magicline events:

for each SQS message (Powertools BatchProcessor, partial batch failures) -> Powertools
idempotency on DynamoDB around "fetch the customer from the studio's Magicline API, store it on
the event item (status PROCESSED), publish the processed event to the EventBridge bus" -> the
failed messages' ids.

Environment: TENANTS_JSON (the studios' API base URLs and keys), TABLE_NAME,
IDEMPOTENCY_TABLE_NAME, EVENT_BUS_NAME and the usual AWS_* variables. Run with the AWS Lambda
Runtime Interface Client: `python -m awslambdaric processor.lambda_handler`.
"""

import json
import os
import time

import boto3
import urllib3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(service="webhook-processor")

# Built once per cold start, as the docs recommend.
TENANTS = {t["id"]: t for t in json.loads(os.environ["TENANTS_JSON"])["tenants"]}
TABLE_NAME = os.environ["TABLE_NAME"]
EVENT_BUS_NAME = os.environ["EVENT_BUS_NAME"]

processor = BatchProcessor(event_type=EventType.SQS)
persistence_layer = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE_NAME"])
config = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=3600)
dynamodb = boto3.client("dynamodb")
events = boto3.client("events")
http = urllib3.PoolManager(timeout=urllib3.Timeout(total=10), retries=False)


@idempotent_function(
    data_keyword_argument="message", config=config, persistence_store=persistence_layer
)
def process_message(message: dict) -> dict:
    api = TENANTS[message["tenant"]]["api"]
    answer = http.request(
        "GET",
        f"{api['base_url']}/v1/customers/{message['entity_id']}",
        headers={"x-api-key": api["api_key"]},
    )
    if answer.status != 200:
        raise RuntimeError(f"Magicline API answered {answer.status}")
    detail = answer.data.decode()
    now_ms = int(time.time() * 1000)
    dynamodb.update_item(
        TableName=TABLE_NAME,
        Key={"pk": {"S": message["key"]}},
        UpdateExpression="SET detail = :detail, #status = :processed, processed_at = :now",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={
            ":detail": {"S": detail},
            ":processed": {"S": "PROCESSED"},
            ":now": {"N": str(now_ms)},
        },
    )
    events.put_events(
        Entries=[
            {
                "EventBusName": EVENT_BUS_NAME,
                "Source": f"webhooks.{message['provider']}",
                "DetailType": message["event_type"],
                "Detail": json.dumps(
                    {
                        "key": message["key"],
                        "provider": message["provider"],
                        "tenant": message["tenant"],
                        "event_type": message["event_type"],
                        "entity_id": message["entity_id"],
                        "detail": json.loads(detail),
                    }
                ),
            }
        ]
    )
    return {"status": "PROCESSED"}


def record_handler(record: SQSRecord) -> dict:
    return process_message(message=json.loads(record.body))


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    config.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
