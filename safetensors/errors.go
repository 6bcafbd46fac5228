package safetensors

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by archive methods called after Close.
var ErrClosed = errors.New("safetensors: archive is closed")

// Error describes a problem with a safetensors file or index: the file, the
// tensor (when one is concerned) and what is wrong.
type Error struct {
	File   string // path of the offending file
	Tensor string // tensor name, "" when the problem is not about one tensor
	Msg    string
	Err    error // underlying error, if any
}

func (e *Error) Error() string {
	s := "safetensors: " + e.File
	if e.Tensor != "" {
		s += fmt.Sprintf(": tensor %q", e.Tensor)
	}
	s += ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

func fileErr(file, format string, args ...any) error {
	return &Error{File: file, Msg: fmt.Sprintf(format, args...)}
}

func tensorErr(file, tensor, format string, args ...any) error {
	return &Error{File: file, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}
}

func wrapErr(file, tensor, msg string, err error) error {
	return &Error{File: file, Tensor: tensor, Msg: msg, Err: err}
}
