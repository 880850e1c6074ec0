package kafka_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/cdc/kafka/kafkatest"
	"github.com/understudy/understudy/pipeline"
)

// A batch bigger than the broker's message.max.bytes (1 MiB by default) for one
// partition is cut into several produce batches instead of being rejected.
func TestMirrorBatchLargerThanMaxMessageBytes(t *testing.T) {
	_, src := kafkatest.Cluster(t, 1, "big")
	_, dst := kafkatest.Cluster(t, 0)
	const n = 6000 // × ~600 bytes ≈ 3.6 MB, in one partition
	pad := strings.Repeat("x", 560)
	msgs := make([]kafkatest.Message, n)
	for i := range msgs {
		msgs[i] = kafkatest.Message{Topic: "big", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, pad))}
	}
	kafkatest.Produce(t, src, msgs...)
	d := newDeployment(t, `
secret: ${UNDERSTUDY_SECRET}
metrics: off
pipelines:
  - name: big
    source: kafka://`+src+`/big
    target: kafka://`+dst+`
    tables: [big]
`)
	d.options = pipeline.Options{BatchSize: 10 * n, FlushInterval: 300 * time.Millisecond}
	stop := d.start("big")
	waitCount(t, dst, "big", n)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
