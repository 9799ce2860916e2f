//go:build tools

// Package tools only exists so that `go mod tidy` keeps what
// tools/build-pulumi.sh builds (and all its dependencies) in go.mod/go.sum.
// The build tag keeps it out of every normal build; a main package can be
// blank-imported here because this file is never compiled.
package tools

import (
	// The engine (the `pulumi` CLI).
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
	// Holds the Version variable that build-pulumi.sh sets with -ldflags -X;
	// imported so sdk/v3 stays a direct requirement pinned to the same tag.
	_ "github.com/pulumi/pulumi/sdk/v3/go/common/version"
)
