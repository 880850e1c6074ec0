// Package dynamodb keeps checkpoints and pipeline locks in one DynamoDB table.
// URL: "dynamodb://TABLE?region=REGION&endpoint=URL", as for mapping/dynamodb
// (credentials from the AWS default chain; static dummy ones against a loopback
// endpoint when none are set). The table (partition key pk, a String; on-demand)
// is created when missing, and may be the mapping store's table: item keys do not
// overlap.
//
// Items:
//
//	cp#<pipeline>    seq (Number, exact to 2^64), cp (Binary: the checkpoint as JSON)
//	lock#<pipeline>  owner, token (random per lease), exp (Unix ms), ttl (Unix s)
//
// Save is a conditional put (attribute_not_exists(pk) OR seq <= :seq): a lower Seq
// fails with ErrStale and stores nothing. DynamoDB numbers are decimal with 38
// digits, so uint64 Seqs compare exactly.
//
// Lock is a conditional put (absent, or exp passed); Refresh an update on
// (token = ours AND exp not passed); Release a delete on token = ours. Expiry is
// judged by the clock of the process calling, so hosts sharing a lock need clocks
// within a small fraction of the ttl of each other (NTP). The ttl attribute lets
// DynamoDB's TTL remove a dead holder's item eventually; it is never relied on.
package dynamodb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/understudy/understudy/internal/ddb"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/understudy/understudy/checkpoint"
)

func init() {
	checkpoint.Register("dynamodb", func(ctx context.Context, u *url.URL) (checkpoint.Store, error) {
		return OpenURL(ctx, u)
	})
	checkpoint.RegisterLocker("dynamodb", func(ctx context.Context, u *url.URL) (checkpoint.Locker, error) {
		return OpenURL(ctx, u)
	})
}

var (
	_ checkpoint.Store  = (*Store)(nil)
	_ checkpoint.Locker = (*Store)(nil)
)

// ErrClosed is returned by a store used after Close.
var ErrClosed = errors.New("dynamodb checkpoint store closed")

// Store is a checkpoint store and pipeline Locker on one DynamoDB table.
type Store struct {
	c      *dynamodb.Client
	table  string
	url    string
	closed atomic.Bool
	now    func() time.Time
}

// Open opens the store named by rawURL.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	return OpenURL(ctx, u)
}

// OpenURL opens the store named by a dynamodb:// URL, creating the table if needed.
func OpenURL(ctx context.Context, u *url.URL) (*Store, error) {
	t, err := ddb.ParseURL(u)
	if err != nil {
		return nil, err
	}
	c, err := ddb.NewClient(ctx, t, 8)
	if err != nil {
		return nil, err
	}
	if err := ddb.EnsureTable(ctx, c, t.Table, "ttl"); err != nil {
		return nil, err
	}
	return &Store{c: c, table: t.Table, url: u.String(), now: time.Now}, nil
}

// URL returns the URL the store was opened with.
func (s *Store) URL() string { return s.url }

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func key(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str(pk)}
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

func (s *Store) wrap(op string, err error) error {
	return fmt.Errorf("dynamodb checkpoint store %s: %s: %w", s.table, op, err)
}

// Load implements checkpoint.Store with a consistent read.
func (s *Store) Load(ctx context.Context, pipeline string) (checkpoint.Checkpoint, error) {
	if s.closed.Load() {
		return checkpoint.Checkpoint{}, ErrClosed
	}
	out, err := s.c.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: key("cp#" + pipeline), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return checkpoint.Checkpoint{}, s.wrap("load "+pipeline, err)
	}
	b, ok := out.Item["cp"].(*types.AttributeValueMemberB)
	if !ok {
		return checkpoint.Checkpoint{}, checkpoint.ErrNotFound
	}
	var cp checkpoint.Checkpoint
	if err := json.Unmarshal(b.Value, &cp); err != nil {
		return checkpoint.Checkpoint{}, s.wrap("decode "+pipeline, err)
	}
	return cp, nil
}

// Save implements checkpoint.Store with a put conditional on the stored Seq.
func (s *Store) Save(ctx context.Context, cp checkpoint.Checkpoint) error {
	if s.closed.Load() {
		return ErrClosed
	}
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	seq := &types.AttributeValueMemberN{Value: strconv.FormatUint(cp.Seq, 10)}
	_, err = s.c.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table),
		Item: map[string]types.AttributeValue{
			"pk": str("cp#" + cp.Pipeline), "seq": seq, "cp": &types.AttributeValueMemberB{Value: b},
		},
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR seq <= :seq"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":seq": seq},
	})
	if isConditionFailed(err) {
		return checkpoint.ErrStale
	}
	if err != nil {
		return s.wrap("save "+cp.Pipeline, err)
	}
	return nil
}

// Delete implements checkpoint.Store.
func (s *Store) Delete(ctx context.Context, pipeline string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	_, err := s.c.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.table), Key: key("cp#" + pipeline)})
	if err != nil {
		return s.wrap("delete "+pipeline, err)
	}
	return nil
}

// Close implements checkpoint.Store and checkpoint.Locker. Leases not released
// expire by their ttl.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

// Lock implements checkpoint.Locker.
func (s *Store) Lock(ctx context.Context, pipeline, owner string, ttl time.Duration) (checkpoint.Lease, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if ttl <= 0 {
		ttl = checkpoint.DefaultLockTTL
	}
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	l := &lease{s: s, pipeline: pipeline, token: hex.EncodeToString(tok[:]), ttl: ttl}
	now := s.now()
	item := l.expiry(now)
	item["pk"] = str("lock#" + pipeline)
	item["owner"] = str(owner)
	item["token"] = str(l.token)
	_, err := s.c.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           aws.String(s.table),
		Item:                                item,
		ConditionExpression:                 aws.String("attribute_not_exists(pk) OR exp <= :now"),
		ExpressionAttributeValues:           map[string]types.AttributeValue{":now": num(now.UnixMilli())},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		holder := ""
		if o, ok := ccf.Item["owner"].(*types.AttributeValueMemberS); ok {
			holder = o.Value
		}
		return nil, &checkpoint.LockedError{Pipeline: pipeline, Holder: holder}
	}
	if err != nil {
		return nil, s.wrap("lock "+pipeline, err)
	}
	return l, nil
}

type lease struct {
	s        *Store
	pipeline string
	token    string
	ttl      time.Duration
}

// expiry returns the exp and ttl attributes of a lease renewed at now.
func (l *lease) expiry(now time.Time) map[string]types.AttributeValue {
	exp := now.Add(l.ttl)
	return map[string]types.AttributeValue{
		"exp": num(exp.UnixMilli()),
		"ttl": num(exp.Add(time.Hour).Unix()),
	}
}

// Refresh implements checkpoint.Lease.
func (l *lease) Refresh(ctx context.Context) error {
	now := l.s.now()
	e := l.expiry(now)
	_, err := l.s.c.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(l.s.table),
		Key:                 key("lock#" + l.pipeline),
		UpdateExpression:    aws.String("SET exp = :exp, #ttl = :ttl"),
		ConditionExpression: aws.String("#token = :tok AND exp > :now"),
		ExpressionAttributeNames: map[string]string{
			"#ttl": "ttl", "#token": "token",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":exp": e["exp"], ":ttl": e["ttl"], ":tok": str(l.token), ":now": num(now.UnixMilli()),
		},
	})
	if isConditionFailed(err) {
		return checkpoint.ErrLockLost
	}
	if err != nil {
		return l.s.wrap("refresh lock "+l.pipeline, err)
	}
	return nil
}

// Release implements checkpoint.Lease: it deletes the lock only while it is ours.
func (l *lease) Release(ctx context.Context) error {
	_, err := l.s.c.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(l.s.table),
		Key:                       key("lock#" + l.pipeline),
		ConditionExpression:       aws.String("#token = :tok"),
		ExpressionAttributeNames:  map[string]string{"#token": "token"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":tok": str(l.token)},
	})
	if err != nil && !isConditionFailed(err) {
		return l.s.wrap("release lock "+l.pipeline, err)
	}
	return nil
}
