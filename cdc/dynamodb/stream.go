package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streams "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/understudy/understudy/cdc"
	iddb "github.com/understudy/understudy/internal/ddb"
)

// StreamsAPI is the part of the DynamoDB Streams API the source calls.
// *dynamodbstreams.Client implements it; tests serve it from recorded responses.
type StreamsAPI interface {
	DescribeStream(ctx context.Context, in *dynamodbstreams.DescribeStreamInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error)
	GetShardIterator(ctx context.Context, in *dynamodbstreams.GetShardIteratorInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *dynamodbstreams.GetRecordsInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error)
}

// TableAPI is the part of the DynamoDB API the source calls.
type TableAPI interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// StreamARN checks that table exists and streams NEW_AND_OLD_IMAGES (the source
// needs old images for deletes and new ones for puts), and returns the stream's
// ARN. Its errors name the table and the setting to change.
func StreamARN(ctx context.Context, c TableAPI, table string) (string, error) {
	out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	var nf *ddb.ResourceNotFoundException
	if errors.As(err, &nf) {
		return "", fmt.Errorf("dynamodb source: table %s does not exist", table)
	}
	if err != nil {
		return "", fmt.Errorf("dynamodb source: describe table %s: %w", table, err)
	}
	return checkStream(table, out.Table)
}

func checkStream(table string, d *ddb.TableDescription) (string, error) {
	spec := d.StreamSpecification
	const fix = "enable it with StreamSpecification StreamEnabled=true, StreamViewType=NEW_AND_OLD_IMAGES"
	if spec == nil || !aws.ToBool(spec.StreamEnabled) || d.LatestStreamArn == nil {
		return "", fmt.Errorf("dynamodb source: table %s has no stream; %s", table, fix)
	}
	if spec.StreamViewType != ddb.StreamViewTypeNewAndOldImages {
		return "", fmt.Errorf("dynamodb source: table %s streams %s, not NEW_AND_OLD_IMAGES; %s", table, spec.StreamViewType, fix)
	}
	return aws.ToString(d.LatestStreamArn), nil
}

// reader follows the streams of the selected tables.
//
// One goroutine (run) owns the position. It lists each stream's shards, starts
// a reader goroutine per shard whose parent is finished (parent before
// children, as DynamoDB Streams requires for per-item order), and turns what the
// shard readers send into Batches. Because only run updates the position and
// sends, every Batch's Commit covers exactly the records sent before it.
type reader struct {
	api     StreamsAPI
	pos     *Position
	streams map[string]string // table → stream ARN
	tuning  Tuning
	now     func() time.Time

	events   chan event
	running  map[string]bool // table + "/" + shard
	kick     map[string]chan struct{}
	noFilter bool // the endpoint refused DescribeStream's ShardFilter
	wg       sync.WaitGroup
	sent     time.Time // when the last batch was sent
}

// Tuning holds the stream reader's timings; zero fields take the defaults.
type Tuning struct {
	Poll       time.Duration // wait after an empty GetRecords on an open shard (default 500 ms)
	Discover   time.Duration // interval between full shard listings (default 10 s)
	Backoff    time.Duration // first wait after throttling (default 100 ms), doubling
	MaxBackoff time.Duration // longest wait after throttling (default 10 s)
	Heartbeat  time.Duration // an idle stream's checkpoint refresh (default 5 min)
}

func (t Tuning) withDefaults() Tuning {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Poll, 500*time.Millisecond)
	def(&t.Discover, 10*time.Second)
	def(&t.Backoff, 100*time.Millisecond)
	def(&t.MaxBackoff, 10*time.Second)
	def(&t.Heartbeat, 5*time.Minute)
	return t
}

type event struct {
	table, shard string
	records      []streams.Record
	last         string // sequence number of the last record in records
	done         bool   // the shard is closed and every record was sent
	listing      []streams.Shard
	full         bool // listing is every shard of the stream
	err          error
}

func newReader(api StreamsAPI, pos *Position, streamARNs map[string]string, t Tuning) *reader {
	return &reader{api: api, pos: pos, streams: streamARNs, tuning: t.withDefaults(), now: time.Now,
		running: map[string]bool{}, kick: map[string]chan struct{}{}}
}

// lost wraps cdc.ErrPositionLost with what was lost.
func lost(table, format string, args ...any) error {
	return fmt.Errorf("dynamodb stream of table %s: %s: %w", table, fmt.Sprintf(format, args...), cdc.ErrPositionLost)
}

// run streams until ctx ends or an error occurs.
func (r *reader) run(ctx context.Context, out chan<- cdc.Batch) error {
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		r.wg.Wait()
	}()
	r.events = make(chan event)
	r.sent = r.now()

	for _, table := range sortedKeys(r.streams) {
		tp := r.pos.table(table, r.streams[table])
		if tp.Stream != r.streams[table] {
			return lost(table, "the stream changed (it was disabled and enabled again, or the table was recreated) since the checkpoint")
		}
		// An unstarted shard is read from its oldest record; after more than the
		// retention, records it held at the checkpoint may already be trimmed.
		if !r.pos.At.IsZero() && r.now().Sub(r.pos.At) > retention {
			for id, s := range tp.Shards {
				if !s.Done && s.Seq == "" {
					return lost(table, "the checkpoint is %s old, older than the stream's 24 h retention, and shard %s was not started", r.now().Sub(r.pos.At).Round(time.Minute), id)
				}
			}
		}
		shards, err := r.list(ctx, table, "")
		if err != nil {
			return err
		}
		if err := r.reconcile(table, shards, true); err != nil {
			return err
		}
		kick := make(chan struct{}, 1)
		r.kick[table] = kick
		r.wg.Add(1)
		go r.discover(ctx, table, kick)
	}
	if err := r.startReady(ctx); err != nil {
		return err
	}

	heartbeat := time.NewTicker(r.tuning.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-heartbeat.C:
			// An idle stream still checkpoints now and then, so the position's
			// age tells whether understudy or the stream was idle (see Stream).
			if r.now().Sub(r.sent) >= r.tuning.Heartbeat {
				if err := r.send(ctx, out, cdc.Batch{}, r.now()); err != nil {
					return err
				}
			}
		case ev := <-r.events:
			if err := r.handle(ctx, ev, out); err != nil {
				return err
			}
		}
	}
}

func (r *reader) handle(ctx context.Context, ev event, out chan<- cdc.Batch) error {
	switch {
	case ev.err != nil:
		return ev.err
	case ev.listing != nil || ev.full:
		if err := r.reconcile(ev.table, ev.listing, ev.full); err != nil {
			return err
		}
		return r.startReady(ctx)
	case ev.done:
		tp := r.pos.Tables[ev.table]
		s := tp.Shards[ev.shard]
		s.Done = true
		delete(r.running, ev.table+"/"+ev.shard)
		// Record the finish at once; then look for the children.
		if err := r.send(ctx, out, cdc.Batch{}, time.Time{}); err != nil {
			return err
		}
		if err := r.children(ctx, ev.table, ev.shard); err != nil {
			return err
		}
		return r.startReady(ctx)
	}
	b := cdc.Batch{Changes: make([]cdc.Change, 0, len(ev.records))}
	for _, rec := range ev.records {
		if rec.Dynamodb == nil {
			continue
		}
		at := aws.ToTime(rec.Dynamodb.ApproximateCreationDateTime)
		if !r.pos.Since.IsZero() && at.Before(r.pos.Since) {
			continue // the snapshot already holds its effect
		}
		ch, err := toChange(ev.table, rec)
		if err != nil {
			return err
		}
		b.Changes = append(b.Changes, ch)
		if at.After(b.CommitTime) {
			b.CommitTime = at
		}
	}
	r.pos.Tables[ev.table].Shards[ev.shard].Seq = ev.last
	return r.send(ctx, out, b, b.CommitTime)
}

// send stamps the position on b and sends it.
func (r *reader) send(ctx context.Context, out chan<- cdc.Batch, b cdc.Batch, commitTime time.Time) error {
	r.pos.At = r.now().UTC()
	b.Commit = r.pos.Encode()
	b.CommitTime = commitTime
	select {
	case out <- b:
		r.sent = r.now()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reconcile merges a shard listing into the position. A full listing also
// retires finished shards the stream no longer lists, and detects shards that
// expired before they were finished.
func (r *reader) reconcile(table string, shards []streams.Shard, full bool) error {
	tp := r.pos.Tables[table]
	listed := make(map[string]bool, len(shards))
	for _, sh := range shards {
		id := aws.ToString(sh.ShardId)
		listed[id] = true
		if tp.Shards[id] == nil {
			tp.Shards[id] = &ShardPos{Parent: aws.ToString(sh.ParentShardId)}
		}
	}
	if !full {
		return nil
	}
	for id, s := range tp.Shards {
		if listed[id] {
			continue
		}
		switch {
		case s.Done:
			delete(tp.Shards, id) // past retention: its children need it no more
		case s.Seq != "":
			return lost(table, "shard %s expired from the stream (24 h retention) before understudy finished it", id)
		}
	}
	return nil
}

// startReady starts a reader for every unfinished shard whose parent is
// finished or gone.
func (r *reader) startReady(ctx context.Context) error {
	for _, table := range sortedKeys(r.pos.Tables) {
		tp := r.pos.Tables[table]
		arn, ok := r.streams[table]
		if !ok {
			continue
		}
		for _, id := range sortedKeys(tp.Shards) {
			s := tp.Shards[id]
			key := table + "/" + id
			if s.Done || r.running[key] {
				continue
			}
			if p := tp.Shards[s.Parent]; s.Parent != "" && p != nil && !p.Done {
				continue // parent first
			}
			r.running[key] = true
			r.wg.Add(1)
			go r.readShard(ctx, table, arn, id, s.Seq)
		}
	}
	return nil
}

// discover lists the table's shards every Discover interval, and at once when
// kicked, so new shards (after a split or a rollover) are picked up.
func (r *reader) discover(ctx context.Context, table string, kick <-chan struct{}) {
	defer r.wg.Done()
	t := time.NewTicker(r.tuning.Discover)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
		shards, err := r.list(ctx, table, "")
		ev := event{table: table, listing: shards, full: true, err: err}
		if ctx.Err() != nil {
			return
		}
		select {
		case r.events <- ev:
		case <-ctx.Done():
			return
		}
	}
}

// children looks up the children of a finished shard with DescribeStream's
// child-shard filter, falling back to a full listing where the endpoint does not
// support the filter.
func (r *reader) children(ctx context.Context, table, parent string) error {
	if !r.noFilter {
		shards, err := r.list(ctx, table, parent)
		if err == nil {
			return r.reconcile(table, shards, false)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch iddb.ErrorCode(err) {
		case "ValidationException", "UnknownOperationException", "InvalidParameterException":
			r.noFilter = true
		default:
			return err
		}
	}
	select {
	case r.kick[table] <- struct{}{}:
	default: // a listing is already due
	}
	return nil
}

// list returns every shard of table's stream (paginated DescribeStream), or,
// with parent set, the children of parent.
func (r *reader) list(ctx context.Context, table, parent string) ([]streams.Shard, error) {
	arn := r.streams[table]
	in := &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(arn)}
	if parent != "" {
		in.ShardFilter = &streams.ShardFilter{Type: streams.ShardFilterTypeChildShards, ShardId: aws.String(parent)}
	}
	var shards []streams.Shard
	bo := r.tuning.Backoff
	for {
		out, err := r.api.DescribeStream(ctx, in)
		if err != nil {
			if throttled(err) {
				if err := r.sleep(ctx, &bo); err != nil {
					return nil, err
				}
				continue
			}
			if iddb.ErrorCode(err) == "ResourceNotFoundException" && parent == "" {
				return nil, lost(table, "its stream %s no longer exists", arn)
			}
			return nil, fmt.Errorf("dynamodb stream of table %s: DescribeStream: %w", table, err)
		}
		bo = r.tuning.Backoff
		d := out.StreamDescription
		if d == nil {
			return shards, nil
		}
		if parent == "" && d.StreamStatus == streams.StreamStatusDisabled && len(d.Shards) == 0 && d.LastEvaluatedShardId == nil {
			return nil, fmt.Errorf("dynamodb source: the stream of table %s is disabled; enable it with StreamSpecification StreamEnabled=true, StreamViewType=NEW_AND_OLD_IMAGES, then run `understudy reset`", table)
		}
		shards = append(shards, d.Shards...)
		if d.LastEvaluatedShardId == nil {
			return shards, nil
		}
		in.ExclusiveStartShardId = d.LastEvaluatedShardId
	}
}

// readShard reads one shard from after seq (or its oldest record) to its end,
// sending what it reads to run.
func (r *reader) readShard(ctx context.Context, table, arn, shard, seq string) {
	defer r.wg.Done()
	send := func(ev event) bool {
		ev.table, ev.shard = table, shard
		select {
		case r.events <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	fail := func(err error) {
		if ctx.Err() == nil {
			send(event{err: err})
		}
	}
	iter, err := r.iterator(ctx, table, arn, shard, seq)
	if err != nil {
		fail(err)
		return
	}
	bo := r.tuning.Backoff
	for {
		out, err := r.api.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: aws.String(iter), Limit: aws.Int32(1000)})
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return
			case throttled(err):
				if r.sleep(ctx, &bo) != nil {
					return
				}
				continue
			case iddb.ErrorCode(err) == "ExpiredIteratorException":
				// Iterators live 15 minutes; a fresh one continues after the
				// last record read.
				if iter, err = r.iterator(ctx, table, arn, shard, seq); err != nil {
					fail(err)
					return
				}
				continue
			case iddb.ErrorCode(err) == "TrimmedDataAccessException":
				fail(lost(table, "shard %s: records after the checkpoint were trimmed (24 h retention)", shard))
				return
			}
			fail(fmt.Errorf("dynamodb stream of table %s: GetRecords on shard %s: %w", table, shard, err))
			return
		}
		bo = r.tuning.Backoff
		if n := len(out.Records); n > 0 {
			if d := out.Records[n-1].Dynamodb; d != nil {
				seq = aws.ToString(d.SequenceNumber)
			}
			if !send(event{records: out.Records, last: seq}) {
				return
			}
		}
		if out.NextShardIterator == nil {
			send(event{done: true})
			return
		}
		iter = *out.NextShardIterator
		if len(out.Records) == 0 {
			select {
			case <-time.After(r.tuning.Poll):
			case <-ctx.Done():
				return
			}
		}
	}
}

// iterator returns a shard iterator after seq, or at the shard's oldest record.
func (r *reader) iterator(ctx context.Context, table, arn, shard, seq string) (string, error) {
	in := &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(arn), ShardId: aws.String(shard),
		ShardIteratorType: streams.ShardIteratorTypeTrimHorizon}
	if seq != "" {
		in.ShardIteratorType = streams.ShardIteratorTypeAfterSequenceNumber
		in.SequenceNumber = aws.String(seq)
	}
	bo := r.tuning.Backoff
	for {
		out, err := r.api.GetShardIterator(ctx, in)
		switch {
		case err == nil:
			return aws.ToString(out.ShardIterator), nil
		case throttled(err):
			if err := r.sleep(ctx, &bo); err != nil {
				return "", err
			}
			continue
		case iddb.ErrorCode(err) == "TrimmedDataAccessException":
			return "", lost(table, "shard %s: the checkpointed record was trimmed from the stream (24 h retention)", shard)
		case iddb.ErrorCode(err) == "ResourceNotFoundException":
			return "", lost(table, "shard %s is no longer in the stream (24 h retention)", shard)
		}
		return "", fmt.Errorf("dynamodb stream of table %s: GetShardIterator on shard %s: %w", table, shard, err)
	}
}

// sleep waits *bo with jitter, then doubles it up to MaxBackoff.
func (r *reader) sleep(ctx context.Context, bo *time.Duration) error {
	d := *bo/2 + time.Duration(rand.Int64N(int64(*bo)/2+1))
	*bo = min(2**bo, r.tuning.MaxBackoff)
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// throttled reports whether err asks the caller to slow down.
func throttled(err error) bool {
	switch iddb.ErrorCode(err) {
	case "LimitExceededException", "ProvisionedThroughputExceededException", "ThrottlingException",
		"RequestLimitExceeded", "TooManyRequestsException":
		return true
	}
	return false
}

// toChange converts one stream record into a change of table.
func toChange(table string, rec streams.Record) (cdc.Change, error) {
	d := rec.Dynamodb
	key, err := NormalizeStream(d.Keys)
	if err != nil {
		return cdc.Change{}, fmt.Errorf("dynamodb stream of table %s: key: %w", table, err)
	}
	ch := cdc.Change{Table: table, Key: key, CommitTime: aws.ToTime(d.ApproximateCreationDateTime).UTC()}
	if d.OldImage != nil {
		if ch.Before, err = NormalizeStream(d.OldImage); err != nil {
			return ch, fmt.Errorf("dynamodb stream of table %s: old image: %w", table, err)
		}
	}
	switch rec.EventName {
	case streams.OperationTypeInsert, streams.OperationTypeModify:
		ch.Op = cdc.Insert
		if rec.EventName == streams.OperationTypeModify {
			ch.Op = cdc.Update
		}
		if d.NewImage == nil {
			return ch, fmt.Errorf("dynamodb stream of table %s: a %s record has no new image; the stream must be NEW_AND_OLD_IMAGES (StreamViewType), then run `understudy reset`", table, rec.EventName)
		}
		if ch.After, err = NormalizeStream(d.NewImage); err != nil {
			return ch, fmt.Errorf("dynamodb stream of table %s: new image: %w", table, err)
		}
	case streams.OperationTypeRemove:
		ch.Op = cdc.Delete
	default:
		return ch, fmt.Errorf("dynamodb stream of table %s: unknown event %q", table, rec.EventName)
	}
	return ch, nil
}
