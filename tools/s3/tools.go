//go:build tools

// Package tools records the S3-compatible server this module builds for the tests (versitygw,
// posix backend), so `go mod tidy` keeps its dependencies. Test infrastructure only.
package tools

import (
	_ "github.com/versity/versitygw/cmd/versitygw"
)
