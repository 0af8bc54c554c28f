package blob

import (
	"context"
	"fmt"
	"net/url"
	"strings"
)

// S3Config locates a bucket. Credentials come from the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optionally AWS_SESSION_TOKEN),
// never from the URL, and String never shows them.
type S3Config struct {
	Bucket   string
	Endpoint string // scheme://host[:port]
	Region   string
	Prefix   string // "" or ending in "/"

	host, accessKey, secretKey, sessionToken string
	secure                                   bool
}

// String returns s3://BUCKET/PREFIX at ENDPOINT.
func (c S3Config) String() string {
	return "s3://" + c.Bucket + "/" + c.Prefix + " at " + c.Endpoint
}

// ParseS3URL parses s3://BUCKET?endpoint=URL&region=R&prefix=P. endpoint
// defaults to https://s3.amazonaws.com and region to us-east-1. getenv
// supplies the credentials.
func ParseS3URL(raw string, getenv func(string) string) (S3Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return S3Config{}, fmt.Errorf("blob: %q is not a URL: %v", raw, err)
	}
	if u.Scheme != "s3" {
		return S3Config{}, fmt.Errorf("blob: %q: want s3://BUCKET?endpoint=...", raw)
	}
	if u.User != nil {
		return S3Config{}, fmt.Errorf("blob: credentials do not belong in the bucket URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if u.Host == "" {
		return S3Config{}, fmt.Errorf("blob: %q names no bucket", raw)
	}
	if u.Path != "" && u.Path != "/" {
		return S3Config{}, fmt.Errorf("blob: %q: use ?prefix= for a key prefix, not a path", raw)
	}
	c := S3Config{Bucket: u.Host, Endpoint: "https://s3.amazonaws.com", Region: "us-east-1"}
	for k, v := range u.Query() {
		if len(v) != 1 {
			return S3Config{}, fmt.Errorf("blob: %q: %s given %d times", raw, k, len(v))
		}
		switch k {
		case "endpoint":
			c.Endpoint = v[0]
		case "region":
			c.Region = v[0]
		case "prefix":
			c.Prefix = strings.Trim(v[0], "/")
			if c.Prefix != "" {
				c.Prefix += "/"
			}
		default:
			return S3Config{}, fmt.Errorf("blob: %q: unknown parameter %q (known: endpoint, region, prefix)", raw, k)
		}
	}
	e, err := url.Parse(c.Endpoint)
	if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || (e.Path != "" && e.Path != "/") {
		return S3Config{}, fmt.Errorf("blob: endpoint %q: want http(s)://HOST[:PORT]", c.Endpoint)
	}
	if e.User != nil {
		return S3Config{}, fmt.Errorf("blob: credentials do not belong in the endpoint; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	c.Endpoint = e.Scheme + "://" + e.Host
	c.host, c.secure = e.Host, e.Scheme == "https"
	c.accessKey, c.secretKey, c.sessionToken = getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN")
	if c.accessKey == "" || c.secretKey == "" {
		return S3Config{}, fmt.Errorf("blob: %s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the bucket's credentials", c)
	}
	return c, nil
}

// OpenURL opens the store a --blobs value names: an s3:// URL, checked to
// be reachable; any other value is refused.
func OpenURL(ctx context.Context, raw string, getenv func(string) string) (Storage, error) {
	if !strings.HasPrefix(raw, "s3://") {
		return nil, fmt.Errorf("blob: --blobs %q: want s3://BUCKET?endpoint=... (without --blobs, payloads stay in the project's blobs/ directory)", raw)
	}
	cfg, err := ParseS3URL(raw, getenv)
	if err != nil {
		return nil, err
	}
	s, err := NewS3(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Check(ctx); err != nil {
		return nil, err
	}
	return s, nil
}
