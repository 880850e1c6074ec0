#!/bin/sh
# One-shot setup of the production side that has no init-script hook: the Kafka
# topic the mirror reads and the DynamoDB table (with its stream) the accounts
# pipeline reads. Run by docker-compose.yml's prod-kafka-setup and
# prod-dynamodb-setup services. Creating is idempotent; each run adds the
# sample records again (to the topic: new messages; to the table: the same item).
set -eu
case "${1:-}" in
kafka)
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server prod-kafka:9092 --create --if-not-exists \
    --topic signups --partitions 3 --replication-factor 1
  printf '%s\n' 'c1|{"email":"alice@corp.example","name":"Alice Johnson","plan":"pro"}' \
    'c2|{"email":"bob@corp.example","name":"Bob Smith","plan":"free"}' |
    /opt/kafka/bin/kafka-console-producer.sh --bootstrap-server prod-kafka:9092 --topic signups \
      --property parse.key=true --property key.separator='|'
  ;;
dynamodb)
  ddb="aws dynamodb --endpoint-url http://dynamodb:8000 --region prod"
  until $ddb list-tables >/dev/null 2>&1; do sleep 1; done
  $ddb describe-table --table-name accounts >/dev/null 2>&1 ||
    $ddb create-table --table-name accounts --billing-mode PAY_PER_REQUEST \
      --attribute-definitions AttributeName=id,AttributeType=S --key-schema AttributeName=id,KeyType=HASH \
      --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES
  $ddb put-item --table-name accounts --item '{"id":{"S":"a1"},"email":{"S":"alice@corp.example"},"holder":{"S":"Alice Johnson"},"balance":{"N":"100.50"}}'
  ;;
*)
  echo "usage: setup.sh kafka|dynamodb" >&2
  exit 2
  ;;
esac
