// Command dynamobench measures understudy's DynamoDB → DynamoDB pipeline against
// the raw read rate of the same data, side by side in one run on one DynamoDB
// Local (started here, in memory; production and test are two of its regions):
//
//   - load:   `Pipeline.Load` (parallel-scan segments → transform → BatchWriteItem)
//     vs a raw parallel Scan of the same table with the same segments and
//     strongly consistent reads, which only counts items;
//   - stream: `Pipeline.Sync` applying a backlog of stream records to the
//     target vs raw GetRecords reading the same records from the same shards.
//
// Target: each understudy rate ≥ 0.8× its raw rate. understudy runs in process
// through pipeline.Deployment (the code `understudy load` and `sync` run), with
// the memory mapping and checkpoint stores so the figures are about the source,
// transform and sink, not a store.
//
//	go run ./bench/dynamobench -items 50000 -changes 30000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streams "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/understudy/understudy/cdc"
	source "github.com/understudy/understudy/cdc/dynamodb"
	_ "github.com/understudy/understudy/checkpoint/memory"
	"github.com/understudy/understudy/config"
	iddb "github.com/understudy/understudy/internal/ddb"
	"github.com/understudy/understudy/internal/gctune"
	_ "github.com/understudy/understudy/mapping/memory"
	"github.com/understudy/understudy/pipeline"
	_ "github.com/understudy/understudy/sinks/dynamodb"
	"github.com/understudy/understudy/testenv"
)

var (
	items    = flag.Int("items", 50_000, "items in the source table")
	changes  = flag.Int("changes", 30_000, "updates written to the source after the load (the stream backlog)")
	endpoint = flag.String("endpoint", "", "use this DynamoDB Local instead of starting one")
)

func main() {
	flag.Parse()
	// The GC settings of the understudy binary; both sides of the comparison
	// run in this process under them.
	gctune.Apply()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dynamobench:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	ep := *endpoint
	if ep == "" {
		srv, err := testenv.StartDynamoDB("")
		if err != nil {
			return err
		}
		defer srv.Stop()
		ep = srv.Endpoint
	}
	host, _ := os.Hostname()
	fmt.Printf("machine: %s, %d CPUs, %s/%s, %s; DynamoDB Local at %s\n", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), ep)
	run := time.Now().UnixNano() % 1e6
	srcURL := fmt.Sprintf("dynamodb://?region=bench-%d-prod&endpoint=%s", run, ep)
	dstURL := fmt.Sprintf("dynamodb://?region=bench-%d-test&endpoint=%s", run, ep)
	src, err := client(ctx, srcURL)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := seed(ctx, src); err != nil {
		return err
	}
	fmt.Printf("seed:   raw BatchWriteItem (8 writers) %d items in %s = %.0f items/s (the write ceiling both understudy figures are bound by)\n",
		*items, time.Since(start).Round(time.Millisecond), rate(int64(*items), time.Since(start)))

	cfgText := fmt.Sprintf(`secret: ${UNDERSTUDY_SECRET}
metrics: off
mappings: memory
checkpoints: memory
pipelines:
  - name: bench
    source: %s
    target: %s
    tables: [customers]
    rules:
      customers:
        name: {replace: last_name, domain: surname}
        email: hash
        profile:
          json:
            $.phone: hash
`, srcURL, dstURL)
	env := func(k string) (string, bool) {
		if k == "UNDERSTUDY_SECRET" {
			return "dynamobench-secret-0123456789abcdef", true
		}
		return os.LookupEnv(k)
	}
	cfg, err := config.Parse(os.TempDir()+"/dynamobench.yaml", []byte(cfgText), env)
	if err != nil {
		return err
	}
	d, err := pipeline.Open(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer d.Close()
	p, err := d.Pipeline(ctx, "bench")
	if err != nil {
		return err
	}
	defer p.Close()

	// Load: raw parallel scan, then understudy's load, same segments.
	segments := 8 // what the source plans for a table this size (see segmentsFor)
	if n := (*items + 19_999) / 20_000; n > segments {
		segments = n
	}
	var scanned atomic.Int64
	start = time.Now()
	err = source.ParallelScan(ctx, src, "customers", segments, func(rows []cdc.Row) error {
		scanned.Add(int64(len(rows)))
		return nil
	})
	if err != nil {
		return err
	}
	rawScan := time.Since(start)
	start = time.Now()
	if err := p.Load(ctx); err != nil {
		return err
	}
	load := time.Since(start)
	fmt.Printf("load:   raw parallel Scan %d items in %s = %.0f items/s; understudy load %d items in %s = %.0f items/s; ratio %.2f\n",
		scanned.Load(), rawScan.Round(time.Millisecond), rate(scanned.Load(), rawScan),
		*items, load.Round(time.Millisecond), rate(int64(*items), load), rawScan.Seconds()/load.Seconds())

	// Stream: a backlog of updates, read raw from TRIM_HORIZON, then applied by sync.
	if err := update(ctx, src); err != nil {
		return err
	}
	sc, err := streamsClient(ctx, srcURL)
	if err != nil {
		return err
	}
	start = time.Now()
	records, last, err := rawRead(ctx, src, sc)
	if err != nil {
		return err
	}
	rawStream := time.Since(start)

	syncCtx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 1)
	start = time.Now()
	go func() { errc <- p.Sync(syncCtx) }()
	cps := p.Checkpoints
	for {
		cp, err := cps.Load(ctx, "bench")
		if err == nil && cp.Load == nil && caughtUp(cp.Position, last) {
			break
		}
		select {
		case err := <-errc:
			return fmt.Errorf("sync stopped: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	synced := time.Since(start)
	stop()
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	fmt.Printf("stream: raw GetRecords %d records in %s = %.0f records/s; understudy sync applied them in %s = %.0f records/s; ratio %.2f\n",
		records, rawStream.Round(time.Millisecond), rate(records, rawStream), synced.Round(time.Millisecond), rate(records, synced), rawStream.Seconds()/synced.Seconds())
	return nil
}

func rate(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() }

func client(ctx context.Context, u string) (*dynamodb.Client, error) {
	t, err := iddb.ParseStoreURL(u)
	if err != nil {
		return nil, err
	}
	return iddb.NewClient(ctx, t, 64)
}

func streamsClient(ctx context.Context, u string) (*dynamodbstreams.Client, error) {
	t, err := iddb.ParseStoreURL(u)
	if err != nil {
		return nil, err
	}
	return iddb.NewStreamsClient(ctx, t, 16)
}

func item(i, rev int) map[string]ddb.AttributeValue {
	return map[string]ddb.AttributeValue{
		"id":    &ddb.AttributeValueMemberS{Value: fmt.Sprintf("cust-%08d", i)},
		"name":  &ddb.AttributeValueMemberS{Value: fmt.Sprintf("Surname%d", i%5000)},
		"email": &ddb.AttributeValueMemberS{Value: fmt.Sprintf("user%d@corp.example", i)},
		"n":     &ddb.AttributeValueMemberN{Value: fmt.Sprint(rev)},
		"profile": &ddb.AttributeValueMemberM{Value: map[string]ddb.AttributeValue{
			"phone": &ddb.AttributeValueMemberS{Value: fmt.Sprintf("+1 555 %07d", i)},
			"tier":  &ddb.AttributeValueMemberS{Value: "gold"},
		}},
	}
}

func seed(ctx context.Context, c *dynamodb.Client) error {
	_, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String("customers"), BillingMode: ddb.BillingModePayPerRequest,
		StreamSpecification:  &ddb.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: ddb.StreamViewTypeNewAndOldImages},
		AttributeDefinitions: []ddb.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: ddb.ScalarAttributeTypeS}},
		KeySchema:            []ddb.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: ddb.KeyTypeHash}}})
	if err != nil {
		return err
	}
	return writeAll(ctx, c, *items, 0)
}

func update(ctx context.Context, c *dynamodb.Client) error { return writeAll(ctx, c, *changes, 1) }

// writeAll puts n items (ids modulo the table size) with 8 writers.
func writeAll(ctx context.Context, c *dynamodb.Client, n, rev int) error {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * 25; i < n; i += 8 * 25 {
				var reqs []ddb.WriteRequest
				for j := i; j < min(i+25, n); j++ {
					reqs = append(reqs, ddb.WriteRequest{PutRequest: &ddb.PutRequest{Item: item(j%*items, rev)}})
				}
				req := map[string][]ddb.WriteRequest{"customers": reqs}
				for len(req) > 0 {
					out, err := c.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: req})
					if err != nil {
						errs <- err
						return
					}
					req = out.UnprocessedItems
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// rawRead reads every record of every shard from TRIM_HORIZON to the present
// (an empty page on an open shard), returning the count and each shard's last
// sequence number.
func rawRead(ctx context.Context, c *dynamodb.Client, sc *dynamodbstreams.Client) (int64, map[string]string, error) {
	arn, err := source.StreamARN(ctx, c, "customers")
	if err != nil {
		return 0, nil, err
	}
	d, err := sc.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(arn)})
	if err != nil {
		return 0, nil, err
	}
	var n int64
	last := map[string]string{}
	for _, sh := range d.StreamDescription.Shards {
		it, err := sc.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(arn),
			ShardId: sh.ShardId, ShardIteratorType: streams.ShardIteratorTypeTrimHorizon})
		if err != nil {
			return 0, nil, err
		}
		iter := it.ShardIterator
		for iter != nil {
			out, err := sc.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(1000)})
			if err != nil {
				return 0, nil, err
			}
			n += int64(len(out.Records))
			if k := len(out.Records); k > 0 {
				last[aws.ToString(sh.ShardId)] = aws.ToString(out.Records[k-1].Dynamodb.SequenceNumber)
			} else {
				break
			}
			iter = out.NextShardIterator
		}
	}
	return n, last, nil
}

// caughtUp reports whether an encoded position has every shard at its last
// record.
func caughtUp(pos cdc.Position, last map[string]string) bool {
	p, err := source.ParsePosition(pos)
	if err != nil || p.Tables["customers"] == nil {
		return false
	}
	for id, seq := range last {
		s := p.Tables["customers"].Shards[id]
		if s == nil || (!s.Done && strings.Compare(s.Seq, seq) < 0) {
			return false
		}
	}
	return true
}
