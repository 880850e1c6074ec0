// Package ddb is the DynamoDB connection shared by the DynamoDB source, sink,
// mapping and checkpoint stores: URL parsing, the client (with local-endpoint
// credentials), reading a table's key, and creating a store's table.
package ddb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/smithy-go"
)

// Target is a parsed "dynamodb://TABLE?region=…&endpoint=…" URL.
type Target struct {
	Table    string
	Region   string // "" = the default chain's (AWS_REGION, profile)
	Endpoint string // "" = AWS; "http://127.0.0.1:8000" for DynamoDB Local
}

// ParseURL parses "dynamodb://TABLE?region=R&endpoint=E". The table is the URL's
// host (or, for "dynamodb:///TABLE", its path).
func ParseURL(u *url.URL) (Target, error) {
	t := Target{Table: u.Host, Region: u.Query().Get("region"), Endpoint: u.Query().Get("endpoint")}
	if t.Table == "" {
		t.Table = strings.Trim(u.Path, "/")
	}
	if t.Table == "" {
		return t, errors.New("dynamodb URL names no table (want dynamodb://TABLE?region=…)")
	}
	for k := range u.Query() {
		if k != "region" && k != "endpoint" {
			return t, fmt.Errorf("dynamodb URL: unknown parameter %q (known: region, endpoint)", k)
		}
	}
	if t.Endpoint != "" {
		e, err := url.Parse(t.Endpoint)
		if err != nil || e.Scheme == "" || e.Host == "" {
			return t, fmt.Errorf("dynamodb URL: endpoint %q is not an http(s) URL", t.Endpoint)
		}
	}
	return t, nil
}

// localEndpoint reports whether endpoint points at this machine (DynamoDB Local).
func localEndpoint(endpoint string) bool {
	e, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	h := e.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// NewClient returns a client for t. Credentials and region come from the SDK's
// default chain (environment, shared config/credentials files, SSO, IMDS/ECS).
// When the endpoint is local (DynamoDB Local on loopback) and the environment sets
// no credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE), static dummy credentials are
// used, since DynamoDB Local accepts any; the region then defaults to us-east-1.
// DynamoDB Local keeps separate tables per access key and region.
func NewClient(ctx context.Context, t Target, conns int) (*dynamodb.Client, error) {
	cfg, local, err := LoadConfig(ctx, t, conns)
	if err != nil {
		return nil, err
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if t.Endpoint != "" {
			o.BaseEndpoint = aws.String(t.Endpoint)
		}
		if local {
			// DynamoDB Local's x-amz-crc32 does not always match what the SDK
			// reads, which only produces warnings; AWS's is checked as usual.
			o.DisableValidateResponseChecksum = true
		}
	}), nil
}

// NewStreamsClient returns a DynamoDB Streams client for t, configured like
// NewClient. DynamoDB Local serves Streams on the same endpoint.
func NewStreamsClient(ctx context.Context, t Target, conns int) (*dynamodbstreams.Client, error) {
	cfg, _, err := LoadConfig(ctx, t, conns)
	if err != nil {
		return nil, err
	}
	return dynamodbstreams.NewFromConfig(cfg, func(o *dynamodbstreams.Options) {
		if t.Endpoint != "" {
			o.BaseEndpoint = aws.String(t.Endpoint)
		}
	}), nil
}

// LoadConfig builds the AWS config NewClient and NewStreamsClient share, and
// reports whether the endpoint is local (DynamoDB Local).
func LoadConfig(ctx context.Context, t Target, conns int) (aws.Config, bool, error) {
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConnsPerHost = conns
	})
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithHTTPClient(httpClient)}
	if t.Region != "" {
		opts = append(opts, awsconfig.WithRegion(t.Region))
	}
	local := t.Endpoint != "" && localEndpoint(t.Endpoint)
	if local && os.Getenv("AWS_ACCESS_KEY_ID") == "" && os.Getenv("AWS_PROFILE") == "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("understudy", "local", "")))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return cfg, local, fmt.Errorf("aws config: %w", err)
	}
	if cfg.Region == "" {
		if !local {
			return cfg, local, errors.New("no AWS region: add ?region=… to the URL or set AWS_REGION")
		}
		cfg.Region = "us-east-1"
	}
	return cfg, local, nil
}

// ParseStoreURL parses a pipeline's source or target URL,
// "dynamodb://?region=R&endpoint=E". It names no table: a pipeline's tables:
// lists them. The returned Target's Table is empty.
func ParseStoreURL(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, errors.New("dynamodb URL does not parse; write dynamodb://?region=REGION[&endpoint=URL]")
	}
	if u.Host != "" || strings.Trim(u.Path, "/") != "" {
		return Target{}, fmt.Errorf("dynamodb source/target URL names %q, but the tables come from the pipeline's tables:; write dynamodb://?region=REGION[&endpoint=URL]", u.Host+u.Path)
	}
	u.Host = "-"
	t, err := ParseURL(u)
	t.Table = ""
	return t, err
}

// IsLocal reports whether t's endpoint is DynamoDB Local on this machine.
func (t Target) IsLocal() bool { return t.Endpoint != "" && localEndpoint(t.Endpoint) }

// ErrorCode returns the AWS error code of err ("" when it has none).
func ErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// KeyNames returns the attribute names of a table's or index's key schema,
// partition key first, whatever order DescribeTable lists them in.
func KeyNames(ks []types.KeySchemaElement) []string {
	var hash, rng []string
	for _, k := range ks {
		if k.KeyType == types.KeyTypeHash {
			hash = append(hash, aws.ToString(k.AttributeName))
		} else {
			rng = append(rng, aws.ToString(k.AttributeName))
		}
	}
	return append(hash, rng...)
}

// EnsureTable checks that table exists with the single string hash key "pk",
// creating it (on-demand capacity) when missing, and turns on TTL on ttlAttr
// when given and possible.
func EnsureTable(ctx context.Context, c *dynamodb.Client, table, ttlAttr string) error {
	out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	var nf *types.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		_, err = c.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:            aws.String(table),
			BillingMode:          types.BillingModePayPerRequest,
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		})
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) { // in use: another process created it first
			if isAccessDenied(err) {
				return fmt.Errorf("table %s does not exist and these credentials may not create it "+
					"(grant dynamodb:CreateTable, or create it: partition key pk (String), on-demand): %w", table, err)
			}
			return fmt.Errorf("create table %s: %w", table, err)
		}
		if err := waitActive(ctx, c, table); err != nil {
			return err
		}
	case err != nil:
		if isAccessDenied(err) {
			return fmt.Errorf("describe table %s: access denied (grant dynamodb:DescribeTable): %w", table, err)
		}
		return fmt.Errorf("describe table %s: %w", table, err)
	default:
		ks := out.Table.KeySchema
		if len(ks) != 1 || aws.ToString(ks[0].AttributeName) != "pk" {
			return fmt.Errorf("table %s exists with another key schema; understudy needs a table of its own with partition key pk (String)", table)
		}
		if out.Table.TableStatus != types.TableStatusActive {
			if err := waitActive(ctx, c, table); err != nil {
				return err
			}
		}
	}
	if ttlAttr == "" {
		return nil
	}
	// TTL only saves storage: readers ignore expired items themselves. Lacking
	// dynamodb:UpdateTimeToLive is therefore not fatal.
	ttl, err := c.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil || ttl.TimeToLiveDescription == nil {
		return nil
	}
	switch ttl.TimeToLiveDescription.TimeToLiveStatus {
	case types.TimeToLiveStatusEnabled, types.TimeToLiveStatusEnabling:
		return nil
	}
	_, _ = c.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(ttlAttr), Enabled: aws.Bool(true)},
	})
	return nil
}

// waitActive polls until table is ACTIVE (instant on DynamoDB Local, seconds on AWS).
func waitActive(ctx context.Context, c *dynamodb.Client, table string) error {
	w := dynamodb.NewTableExistsWaiter(c, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 200 * time.Millisecond
		o.MaxDelay = 5 * time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, 5*time.Minute); err != nil {
		return fmt.Errorf("wait for table %s to become active: %w", table, err)
	}
	return nil
}

func isAccessDenied(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		c := ae.ErrorCode()
		return c == "AccessDeniedException" || c == "UnrecognizedClientException" || strings.Contains(c, "AccessDenied")
	}
	return false
}
