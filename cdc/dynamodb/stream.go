package dynamodb

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// StreamARN checks that table exists and streams NEW_AND_OLD_IMAGES (the source
// needs old images for deletes and new ones for puts), and returns the stream's
// ARN. Its errors name the table and the setting to change.
func StreamARN(ctx context.Context, c *dynamodb.Client, table string) (string, error) {
	out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	var nf *ddb.ResourceNotFoundException
	if errors.As(err, &nf) {
		return "", fmt.Errorf("dynamodb source: table %s does not exist", table)
	}
	if err != nil {
		return "", fmt.Errorf("dynamodb source: describe table %s: %w", table, err)
	}
	spec := out.Table.StreamSpecification
	const fix = "enable it with StreamSpecification StreamEnabled=true, StreamViewType=NEW_AND_OLD_IMAGES"
	if spec == nil || !aws.ToBool(spec.StreamEnabled) || out.Table.LatestStreamArn == nil {
		return "", fmt.Errorf("dynamodb source: table %s has no stream; %s", table, fix)
	}
	if spec.StreamViewType != ddb.StreamViewTypeNewAndOldImages {
		return "", fmt.Errorf("dynamodb source: table %s streams %s, not NEW_AND_OLD_IMAGES; %s", table, spec.StreamViewType, fix)
	}
	return aws.ToString(out.Table.LatestStreamArn), nil
}
