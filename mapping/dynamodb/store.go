// Package dynamodb is a mapping store in one DynamoDB table, shared by any number
// of processes. URL: "dynamodb://TABLE?region=REGION&endpoint=URL" (endpoint only
// for DynamoDB Local or a VPC endpoint). Credentials come from the AWS SDK's default
// chain; against a loopback endpoint with no AWS_ACCESS_KEY_ID/AWS_PROFILE set,
// static dummy credentials are used (DynamoDB Local accepts any). The table is
// created (on-demand capacity, TTL on "ttl") when missing. See docs/dynamodb.md.
//
// Items (hash key pk, a String; namespace and domain escaped so neither holds '#'):
//
//	<scope>/<period>#<domain>#f#<hex key>     forward: v = replacement
//	<scope>/<period>#<domain>#r#<replacement> reverse claim: k = hex key
//	#namespaces                               ns = string set of "<scope>/<period>#<expiry ms>"
//
// Every data item also holds ns (the namespace, for Purge) and, in a namespace
// that expires, exp (expiry in Unix ms) and ttl (Unix seconds, DynamoDB's TTL
// attribute). TTL deletion is lazy (often a day or two late), so readers treat an
// item whose exp has passed as absent, and writers overwrite it.
//
// Get-or-create, per request: a consistent BatchGetItem finds existing forward
// items (100 keys per call, UnprocessedKeys retried with backoff). For a miss,
// each candidate in turn is claimed with a conditional put of its reverse item
// (attribute_not_exists(pk), or expired, or already claimed by this same key — a
// claim left by a crash or a racing resolver of the same value), and then the
// forward item is put on attribute_not_exists(pk) (or expired). When that forward
// put loses a race, the winner's value is returned and our claim, if it names a
// different replacement, is released (conditional delete on our key). So the first
// writer of the forward item wins everywhere, and a replacement is never held by
// two keys.
//
// Within one Resolve, requests that share a key or a candidate run in request
// order (earlier claims first); independent ones run concurrently (Concurrency
// goroutines), which is what makes a batch fast: each claim is a round trip.
//
// Forget reads the namespace registry (one item), drops its expired entries, and
// deletes the key's forward item and its claim in every live namespace. Purge
// scans the table (parallel segments) for items of the scope or namespace and
// deletes them with BatchWriteItem; run it while no pipeline maps into the scope.
package dynamodb

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/understudy/understudy/internal/ddb"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/understudy/understudy/mapping"
)

func init() {
	mapping.Register("dynamodb", func(ctx context.Context, u *url.URL) (mapping.Store, error) {
		return OpenURL(ctx, u)
	})
}

var _ mapping.Store = (*Store)(nil)

// Concurrency is how many independent requests of one Resolve claim at once, and
// how many BatchGetItem/BatchWriteItem calls run at once.
const Concurrency = 32

const (
	registryPK = "#namespaces"
	attrPK     = "pk"
	attrValue  = "v"   // forward: the replacement
	attrKey    = "k"   // reverse: the hex key holding the claim
	attrNS     = "ns"  // data items: the escaped namespace; registry: the set
	attrExp    = "exp" // expiry, Unix ms
	attrTTL    = "ttl" // expiry, Unix seconds, for DynamoDB TTL
)

// Store is a mapping store in one DynamoDB table.
type Store struct {
	c      *dynamodb.Client
	table  string
	closed atomic.Bool
	// registered holds the registry entries this process has written.
	registered sync.Map // string → struct{}
	// now is the clock for expiry checks (tests may replace it).
	now func() time.Time
}

// OpenURL opens the store named by a dynamodb:// URL, creating the table if needed.
func OpenURL(ctx context.Context, u *url.URL) (*Store, error) {
	t, err := ddb.ParseURL(u)
	if err != nil {
		return nil, err
	}
	c, err := ddb.NewClient(ctx, t, 2*Concurrency)
	if err != nil {
		return nil, err
	}
	return New(ctx, c, t.Table)
}

// Open opens the store named by rawURL ("dynamodb://TABLE?region=…&endpoint=…").
func Open(ctx context.Context, rawURL string) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	return OpenURL(ctx, u)
}

// New returns a store over table with an existing client, creating the table when
// missing.
func New(ctx context.Context, c *dynamodb.Client, table string) (*Store, error) {
	if err := ddb.EnsureTable(ctx, c, table, attrTTL); err != nil {
		return nil, err
	}
	return &Store{c: c, table: table, now: time.Now}, nil
}

// esc makes a namespace or domain safe between '#' separators.
func esc(s string) string {
	if !strings.ContainsAny(s, "%#") {
		return s
	}
	return strings.NewReplacer("%", "%25", "#", "%23").Replace(s)
}

func nsID(ns mapping.Namespace) string {
	return esc(mapping.Namespace{Scope: ns.Scope, Period: ns.Period}.String())
}

func expMS(ns mapping.Namespace) int64 {
	if ns.Expires.IsZero() {
		return 0
	}
	return ns.Expires.UnixMilli()
}

func fwdPK(r *mapping.Request) string {
	return nsID(r.NS) + "#" + esc(r.Domain) + "#f#" + hex.EncodeToString(r.Key[:])
}

func revPK(r *mapping.Request, cand string) string {
	return nsID(r.NS) + "#" + esc(r.Domain) + "#r#" + cand
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// live reports whether item exists and has not expired at nowMS.
func live(item map[string]types.AttributeValue, nowMS int64) bool {
	if item == nil {
		return false
	}
	if e, ok := item[attrExp].(*types.AttributeValueMemberN); ok {
		n, err := strconv.ParseInt(e.Value, 10, 64)
		if err == nil && n <= nowMS {
			return false
		}
	}
	return true
}

func getS(item map[string]types.AttributeValue, name string) string {
	if s, ok := item[name].(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

// dataItem is a data item's common attributes.
func dataItem(pk string, r *mapping.Request) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{attrPK: str(pk), attrNS: str(nsID(r.NS))}
	if e := expMS(r.NS); e != 0 {
		item[attrExp] = num(e)
		item[attrTTL] = num((e + 999) / 1000)
	}
	return item
}

// Lookup implements mapping.Store with consistent BatchGetItem calls.
func (s *Store) Lookup(ctx context.Context, reqs []mapping.Request) ([]mapping.Resolution, error) {
	if s.closed.Load() {
		return nil, mapping.ErrClosed
	}
	pks := make([]string, len(reqs))
	for i := range reqs {
		pks[i] = fwdPK(&reqs[i])
	}
	found, err := s.batchGet(ctx, pks)
	if err != nil {
		return nil, s.wrap(err)
	}
	out := make([]mapping.Resolution, len(reqs))
	for i, pk := range pks {
		if v, ok := found[pk]; ok {
			out[i] = mapping.Resolution{Value: v, OK: true}
		}
	}
	return out, nil
}

// batchGet returns the value (attribute v) of every live item among pks.
func (s *Store) batchGet(ctx context.Context, pks []string) (map[string]string, error) {
	uniq := make([]string, 0, len(pks))
	seen := make(map[string]struct{}, len(pks))
	for _, pk := range pks {
		if _, dup := seen[pk]; !dup {
			seen[pk] = struct{}{}
			uniq = append(uniq, pk)
		}
	}
	found := make(map[string]string, len(uniq))
	var mu sync.Mutex
	err := parallel(ctx, (len(uniq)+99)/100, func(ctx context.Context, i int) error {
		chunk := uniq[i*100 : min((i+1)*100, len(uniq))]
		keys := make([]map[string]types.AttributeValue, len(chunk))
		for j, pk := range chunk {
			keys[j] = map[string]types.AttributeValue{attrPK: str(pk)}
		}
		req := map[string]types.KeysAndAttributes{s.table: {
			Keys: keys, ConsistentRead: aws.Bool(true),
			ProjectionExpression: aws.String("pk, v, exp"),
		}}
		for attempt := 0; len(req) > 0; attempt++ {
			if attempt > 0 {
				if err := backoff(ctx, attempt); err != nil {
					return err
				}
			}
			out, err := s.c.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return err
			}
			nowMS := s.now().UnixMilli()
			mu.Lock()
			for _, item := range out.Responses[s.table] {
				if live(item, nowMS) {
					found[getS(item, attrPK)] = getS(item, attrValue)
				}
			}
			mu.Unlock()
			req = out.UnprocessedKeys
		}
		return nil
	})
	return found, err
}

// Resolve implements mapping.Store.
func (s *Store) Resolve(ctx context.Context, reqs []mapping.Request) ([]mapping.Resolution, error) {
	if s.closed.Load() {
		return nil, mapping.ErrClosed
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	if err := s.register(ctx, reqs); err != nil {
		return nil, s.wrap(err)
	}
	fpks := make([]string, len(reqs))
	for i := range reqs {
		fpks[i] = fwdPK(&reqs[i])
	}
	found, err := s.batchGet(ctx, fpks)
	if err != nil {
		return nil, s.wrap(err)
	}
	out := make([]mapping.Resolution, len(reqs))

	// Requests to create, grouped into components that share a forward key or a
	// candidate: those run in request order, components run concurrently.
	uf := newUnionFind()
	var pending []int
	for i := range reqs {
		if v, ok := found[fpks[i]]; ok {
			out[i] = mapping.Resolution{Value: v, OK: true, Existed: true}
			continue
		}
		if len(reqs[i].Candidates) == 0 {
			continue
		}
		pending = append(pending, i)
		uf.union(fpks[i], fpks[i])
		for _, c := range reqs[i].Candidates {
			uf.union(fpks[i], revPK(&reqs[i], c))
		}
	}
	groups := make(map[string][]int)
	var roots []string
	for _, i := range pending {
		r := uf.find(fpks[i])
		if _, ok := groups[r]; !ok {
			roots = append(roots, r)
		}
		groups[r] = append(groups[r], i)
	}
	err = parallel(ctx, len(roots), func(ctx context.Context, g int) error {
		made := make(map[string]string) // forward pk → value, within this group
		for _, i := range groups[roots[g]] {
			if v, ok := made[fpks[i]]; ok {
				out[i] = mapping.Resolution{Value: v, OK: true}
				continue
			}
			v, ok, err := s.create(ctx, &reqs[i], fpks[i])
			if err != nil {
				return err
			}
			if ok {
				made[fpks[i]] = v
				out[i] = mapping.Resolution{Value: v, OK: true}
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	return out, nil
}

// create claims the first free candidate of r and stores the forward item, or
// returns the mapping another writer stored first.
func (s *Store) create(ctx context.Context, r *mapping.Request, fpk string) (string, bool, error) {
	hexKey := hex.EncodeToString(r.Key[:])
	for _, cand := range r.Candidates {
		rpk := revPK(r, cand)
		claim := dataItem(rpk, r)
		claim[attrKey] = str(hexKey)
		_, err := s.c.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:           aws.String(s.table),
			Item:                claim,
			ConditionExpression: aws.String("attribute_not_exists(pk) OR k = :k OR exp <= :now"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":k": str(hexKey), ":now": num(s.now().UnixMilli()),
			},
		})
		if isConditionFailed(err) {
			continue
		}
		if err != nil {
			return "", false, err
		}
		fwd := dataItem(fpk, r)
		fwd[attrValue] = str(cand)
		_, err = s.c.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                           aws.String(s.table),
			Item:                                fwd,
			ConditionExpression:                 aws.String("attribute_not_exists(pk) OR exp <= :now"),
			ExpressionAttributeValues:           map[string]types.AttributeValue{":now": num(s.now().UnixMilli())},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		if err == nil {
			return cand, true, nil
		}
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return "", false, err
		}
		// Another writer stored this key's mapping first: theirs wins.
		theirs := getS(ccf.Item, attrValue)
		if ccf.Item == nil {
			got, err := s.c.GetItem(ctx, &dynamodb.GetItemInput{
				TableName: aws.String(s.table), ConsistentRead: aws.Bool(true),
				Key: map[string]types.AttributeValue{attrPK: str(fpk)},
			})
			if err != nil {
				return "", false, err
			}
			theirs = getS(got.Item, attrValue)
		}
		if theirs != cand {
			if err := s.release(ctx, rpk, hexKey); err != nil {
				return "", false, err
			}
		}
		return theirs, true, nil
	}
	return "", false, nil
}

// release deletes the claim rpk if hexKey still holds it.
func (s *Store) release(ctx context.Context, rpk, hexKey string) error {
	_, err := s.c.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(s.table),
		Key:                       map[string]types.AttributeValue{attrPK: str(rpk)},
		ConditionExpression:       aws.String("k = :k"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":k": str(hexKey)},
	})
	if isConditionFailed(err) {
		return nil
	}
	return err
}

// register records the batch's namespaces in the registry item, once per process
// per (namespace, expiry), so that Forget can find them.
func (s *Store) register(ctx context.Context, reqs []mapping.Request) error {
	var add []string
	seen := make(map[string]bool)
	for i := range reqs {
		e := nsID(reqs[i].NS) + "#" + strconv.FormatInt(expMS(reqs[i].NS), 10)
		if seen[e] {
			continue
		}
		seen[e] = true
		if _, ok := s.registered.Load(e); !ok {
			add = append(add, e)
		}
	}
	if len(add) == 0 {
		return nil
	}
	_, err := s.c.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       map[string]types.AttributeValue{attrPK: str(registryPK)},
		UpdateExpression:          aws.String("ADD ns :e"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":e": &types.AttributeValueMemberSS{Value: add}},
	})
	if err != nil {
		return fmt.Errorf("register namespaces: %w", err)
	}
	for _, e := range add {
		s.registered.Store(e, struct{}{})
	}
	return nil
}

// registry returns the registry entries, split into live namespaces (escaped ids)
// and entries whose expiry has passed.
func (s *Store) registry(ctx context.Context) (liveNS []string, all, expired []string, err error) {
	out, err := s.c.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{attrPK: str(registryPK)},
	})
	if err != nil {
		return nil, nil, nil, err
	}
	set, _ := out.Item[attrNS].(*types.AttributeValueMemberSS)
	if set == nil {
		return nil, nil, nil, nil
	}
	nowMS := s.now().UnixMilli()
	seen := make(map[string]bool)
	for _, e := range set.Value {
		i := strings.LastIndexByte(e, '#')
		if i < 0 {
			continue
		}
		id := e[:i]
		exp, _ := strconv.ParseInt(e[i+1:], 10, 64)
		all = append(all, e)
		if exp != 0 && exp <= nowMS {
			expired = append(expired, e)
			continue
		}
		if !seen[id] {
			seen[id] = true
			liveNS = append(liveNS, id)
		}
	}
	return liveNS, all, expired, nil
}

// unregister removes entries from the registry set.
func (s *Store) unregister(ctx context.Context, entries []string) error {
	if len(entries) == 0 {
		return nil
	}
	_, err := s.c.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       map[string]types.AttributeValue{attrPK: str(registryPK)},
		UpdateExpression:          aws.String("DELETE ns :e"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":e": &types.AttributeValueMemberSS{Value: entries}},
	})
	for _, e := range entries {
		s.registered.Delete(e)
	}
	return err
}

// Forget implements mapping.Store.
func (s *Store) Forget(ctx context.Context, domain string, key mapping.Key) (int, error) {
	if s.closed.Load() {
		return 0, mapping.ErrClosed
	}
	liveNS, _, expired, err := s.registry(ctx)
	if err != nil {
		return 0, s.wrap(err)
	}
	if err := s.unregister(ctx, expired); err != nil {
		return 0, s.wrap(err)
	}
	hexKey := hex.EncodeToString(key[:])
	var n atomic.Int64
	err = parallel(ctx, len(liveNS), func(ctx context.Context, i int) error {
		pre := liveNS[i] + "#" + esc(domain) + "#"
		out, err := s.c.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName:    aws.String(s.table),
			Key:          map[string]types.AttributeValue{attrPK: str(pre + "f#" + hexKey)},
			ReturnValues: types.ReturnValueAllOld,
		})
		if err != nil || out.Attributes == nil {
			return err
		}
		v := getS(out.Attributes, attrValue)
		if err := s.release(ctx, pre+"r#"+v, hexKey); err != nil {
			return err
		}
		if live(out.Attributes, s.now().UnixMilli()) {
			n.Add(1)
		}
		return nil
	})
	if err != nil {
		return 0, s.wrap(err)
	}
	return int(n.Load()), nil
}

// PurgeSegments is how many parallel Scan segments Purge uses.
const PurgeSegments = 4

// Purge implements mapping.Store: a parallel Scan filtered on the namespace, and
// BatchWriteItem deletes.
func (s *Store) Purge(ctx context.Context, scope mapping.Scope, period string) error {
	if s.closed.Load() {
		return mapping.ErrClosed
	}
	var filter string
	var val string
	if period != "" {
		filter, val = "ns = :ns", nsID(mapping.Namespace{Scope: scope, Period: period})
	} else {
		filter, val = "begins_with(ns, :ns)", esc(string(scope)+"/")
	}
	err := parallel(ctx, PurgeSegments, func(ctx context.Context, seg int) error {
		in := &dynamodb.ScanInput{
			TableName:                 aws.String(s.table),
			Segment:                   aws.Int32(int32(seg)),
			TotalSegments:             aws.Int32(PurgeSegments),
			ConsistentRead:            aws.Bool(true),
			FilterExpression:          aws.String(filter + " AND pk <> :reg"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":ns": str(val), ":reg": str(registryPK)},
			ProjectionExpression:      aws.String("pk"),
		}
		p := dynamodb.NewScanPaginator(s.c, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return err
			}
			pks := make([]string, len(page.Items))
			for i, item := range page.Items {
				pks[i] = getS(item, attrPK)
			}
			if err := s.batchDelete(ctx, pks); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.wrap(err)
	}
	_, all, _, err := s.registry(ctx)
	if err != nil {
		return s.wrap(err)
	}
	var drop []string
	for _, e := range all {
		id := e[:strings.LastIndexByte(e, '#')]
		if (period != "" && id == val) || (period == "" && strings.HasPrefix(id, val)) {
			drop = append(drop, e)
		}
	}
	if err := s.unregister(ctx, drop); err != nil {
		return s.wrap(err)
	}
	return nil
}

// batchDelete deletes pks, 25 per BatchWriteItem, retrying unprocessed items.
func (s *Store) batchDelete(ctx context.Context, pks []string) error {
	for lo := 0; lo < len(pks); lo += 25 {
		chunk := pks[lo:min(lo+25, len(pks))]
		reqs := make([]types.WriteRequest, len(chunk))
		for i, pk := range chunk {
			reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: map[string]types.AttributeValue{attrPK: str(pk)}}}
		}
		items := map[string][]types.WriteRequest{s.table: reqs}
		for attempt := 0; len(items) > 0; attempt++ {
			if attempt > 0 {
				if err := backoff(ctx, attempt); err != nil {
					return err
				}
			}
			out, err := s.c.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: items})
			if err != nil {
				return err
			}
			items = out.UnprocessedItems
		}
	}
	return nil
}

// Close implements mapping.Store. The SDK client holds no resources to release
// beyond idle connections.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

func (s *Store) wrap(err error) error {
	if s.closed.Load() && errors.Is(err, context.Canceled) {
		return mapping.ErrClosed
	}
	return fmt.Errorf("dynamodb mapping store %s: %w", s.table, err)
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// backoff waits before retry attempt (1, 2, …): exponential from 25 ms, capped at
// 2 s, with full jitter.
func backoff(ctx context.Context, attempt int) error {
	d := min(25*time.Millisecond<<min(attempt-1, 7), 2*time.Second)
	t := time.NewTimer(rand.N(d) + time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// parallel runs f(0..n-1) on up to Concurrency goroutines and returns the first
// error, cancelling the rest.
func parallel(ctx context.Context, n int, f func(ctx context.Context, i int) error) error {
	if n == 0 {
		return nil
	}
	if n == 1 {
		return f(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for range min(n, Concurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					errOnce.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// unionFind groups strings.
type unionFind struct{ parent map[string]string }

func newUnionFind() *unionFind { return &unionFind{parent: make(map[string]string)} }

func (u *unionFind) find(x string) string {
	p, ok := u.parent[x]
	if !ok {
		u.parent[x] = x
		return x
	}
	if p == x {
		return x
	}
	r := u.find(p)
	u.parent[x] = r
	return r
}

func (u *unionFind) union(a, b string) {
	ra, rb := u.find(a), u.find(b)
	if ra != rb {
		u.parent[rb] = ra
	}
}
