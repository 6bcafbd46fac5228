// Command switchkd distils small vision-language models from big ones with Switch-KD.
//
// Each subcommand lives in its own file and registers itself in init().
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/switchkd/switchkd/engine"
)

// command is one subcommand: its flags are defined on fs in setup, and run does the work.
type command struct {
	name    string
	summary string
	usage   string // the argument synopsis shown in --help
	setup   func(fs *flag.FlagSet) func(args []string) error
}

var commands = map[string]*command{}

// stdout is where commands print their results; run points it at its writer (tests capture it).
var stdout io.Writer = os.Stdout

func register(c *command) { commands[c.name] = c }

func main() {
	engine.TuneGC()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit code. Errors are printed as one
// clear line on stderr with exit code 1; usage errors get exit code 2.
func run(args []string, out, stderr io.Writer) (code int) {
	stdout = out
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "switchkd: unknown command %q\n\n", args[0])
		printUsage(stderr)
		return 2
	}
	fs := flag.NewFlagSet("switchkd "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: switchkd %s %s\n\n%s\n\nflags:\n", c.name, c.usage, c.summary)
		fs.PrintDefaults()
	}
	runFn := c.setup(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	defer func() {
		// A panic is a bug, but the user still gets one readable line and exit code 1.
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "switchkd %s: internal error: %v\n", c.name, r)
			code = 1
		}
	}()
	if err := runFn(fs.Args()); err != nil {
		var ue usageError
		if asUsage(err, &ue) {
			fmt.Fprintf(stderr, "switchkd %s: %v\n", c.name, err)
			fs.Usage()
			return 2
		}
		fmt.Fprintf(stderr, "switchkd %s: %v\n", c.name, err)
		return 1
	}
	return 0
}

// usageError marks an error caused by a bad command line (missing flag, extra argument).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func asUsage(err error, target *usageError) bool {
	u, ok := err.(usageError)
	if ok {
		*target = u
	}
	return ok
}

// requireFlags returns a usage error naming the first empty string flag.
func requireFlags(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return usagef("--%s is required", pairs[i])
		}
	}
	return nil
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "switchkd: Switch-KD distillation for TinyLLaVA vision-language models, in Go.")
	fmt.Fprintln(w, "\nusage: switchkd <command> [flags]   (switchkd <command> --help for details)\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, strings.SplitN(commands[n].summary, "\n", 2)[0])
	}
}
