package main

// The DynamoDB backends: the Streams source and the table target
// (source:/target: dynamodb://?region=…), the mapping store and the checkpoint
// store / pipeline lock on a DynamoDB table (mappings: and checkpoints:
// dynamodb://TABLE?region=…). See docs/dynamodb.md.
import (
	_ "github.com/understudy/understudy/cdc/dynamodb"
	_ "github.com/understudy/understudy/checkpoint/dynamodb"
	_ "github.com/understudy/understudy/mapping/dynamodb"
	_ "github.com/understudy/understudy/sinks/dynamodb"
)
