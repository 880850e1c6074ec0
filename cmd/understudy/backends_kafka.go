package main

// The Kafka backends: the topic-mirror source (kafka:// source), and the mirror
// target and change-event publisher (kafka:// target, publish:).
import (
	_ "github.com/understudy/understudy/cdc/kafka"
	_ "github.com/understudy/understudy/sinks/kafka"
)
