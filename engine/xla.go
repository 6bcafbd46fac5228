//go:build cgo && !noxla

package engine

import _ "github.com/gomlx/go-xla/compute/xla" // registers the "xla" backend for users with GPUs
