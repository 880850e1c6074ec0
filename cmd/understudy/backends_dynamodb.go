package main

// The DynamoDB backends: the mapping store and the checkpoint store / pipeline
// lock on a DynamoDB table (mappings: and checkpoints: dynamodb://TABLE?region=…).
// See docs/dynamodb.md.
import (
	_ "github.com/understudy/understudy/checkpoint/dynamodb"
	_ "github.com/understudy/understudy/mapping/dynamodb"
)
