// Package cli is the berth command line: Docker's verbs, flags, output
// and exit codes, speaking only the Docker Engine API through the
// official moby client.
package cli

import (
	"context"
	"errors"
	"fmt"
	"github.com/fvbommel/sortorder"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/stream"
)

// DefaultHost is the daemon berth talks to when nothing else is chosen.
const DefaultHost = "unix:///run/berth/berth.sock"

// Version and GitCommit are set at link time.
var (
	Version   = "dev"
	GitCommit = "unknown"
)

// StatusError ends the command with Code after printing Status (when not
// empty) on stderr.
type StatusError struct {
	Status string
	Code   int
}

func (e StatusError) Error() string {
	if e.Status != "" {
		return e.Status
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Cli is one berth invocation: its streams, the chosen daemon and the
// lazily made API client.
type Cli struct {
	*stream.Streams
	host      string
	configDir string
	logLevel  string
	debug     bool
	api       *client.Client
	cfg       *configfile.ConfigFile
}

// Main runs berth with args (without the program name) on the process's
// streams and returns the exit code.
func Main(args []string) int {
	return Run(args, stream.Standard())
}

// Run runs berth with args on s and returns the exit code.
func Run(args []string, s *stream.Streams) int {
	c := &Cli{Streams: s}
	root := c.rootCommand(commandName(args))
	root.SetArgs(args)
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	err := c.daemonError(root.Execute())
	if c.api != nil {
		c.api.Close()
	}
	if err == nil {
		return 0
	}
	var se StatusError
	if errors.As(err, &se) {
		if se.Status != "" {
			fmt.Fprintln(s.Err, se.Status)
		}
		if se.Code == 0 {
			return 1
		}
		return se.Code
	}
	fmt.Fprintln(s.Err, err)
	return 1
}

// Client returns the API client for the chosen daemon, negotiating the
// API version with it on first use.
func (c *Cli) Client() (*client.Client, error) {
	if c.api != nil {
		return c.api, nil
	}
	api, err := c.newClient()
	if err != nil {
		return nil, err
	}
	c.api = api
	return api, nil
}

// newClient makes an API client for the chosen daemon with extra
// options (a command's request hook).
func (c *Cli) newClient(extra ...client.Opt) (*client.Client, error) {
	host := c.host
	if host == "" {
		host = os.Getenv("BERTH_HOST")
	}
	if host == "" {
		host = os.Getenv("DOCKER_HOST")
	}
	if host == "" {
		host = DefaultHost
	}
	opts := append([]client.Opt{client.WithHost(host), client.WithAPIVersionNegotiation(),
		client.WithUserAgent("Berth-Client/" + Version)}, extra...)
	api, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("daemon host %q: %w", host, err)
	}
	return api, nil
}

// ConfigFile is the client configuration (credentials, detach keys),
// shared with docker's: --config, DOCKER_CONFIG, ~/.docker.
func (c *Cli) ConfigFile() *configfile.ConfigFile {
	if c.cfg != nil {
		return c.cfg
	}
	dir := c.configDir
	if dir == "" {
		dir = config.Dir()
	}
	cfg, err := config.Load(dir)
	if err != nil {
		fmt.Fprintf(c.Err, "WARNING: Error loading config file: %v\n", err)
		cfg = configfile.New(filepath.Join(dir, config.ConfigFileName))
	}
	c.cfg = cfg
	return cfg
}

// command is one of the root's commands, built when needed: a process
// runs one, and building only that one spares it the flags of the other
// sixty or so (some 300 kB of allocations, 2-3 ms of CPU per invocation
// on a virtualised host where each page touched costs ~15 µs).
type command struct {
	name  string
	build func() *cobra.Command
}

// commands lists the root's commands.
func (c *Cli) commands() []command {
	return slices.Concat(c.containerCommands(), c.imageCommands(), c.systemCommands())
}

// commandName is the name of the command args run: the first argument
// after the global flags, or "" where the scan cannot tell (a flag it does
// not know, --help, --version).
func commandName(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-H" || a == "--host" || a == "--config" || a == "-l" || a == "--log-level":
			i++ // the flag's value
		case a == "-D" || a == "--debug" || strings.HasPrefix(a, "--host=") || strings.HasPrefix(a, "--config=") ||
			strings.HasPrefix(a, "--log-level=") || strings.HasPrefix(a, "-H") && len(a) > 2 || strings.HasPrefix(a, "-l") && len(a) > 2:
		case strings.HasPrefix(a, "-"):
			return "" // --version, --help, a typo: the whole tree answers
		default:
			return a
		}
	}
	return ""
}

// rootCommand is the root with the command named name only, or with all
// if name is none of them (help, usage and suggestions list them all).
func (c *Cli) rootCommand(name string) *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:              "berth [OPTIONS] COMMAND [ARG...]",
		Short:            "A Docker-compatible container engine",
		SilenceUsage:     true,
		SilenceErrors:    true,
		TraverseChildren: true,
		Args:             noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if showVersion {
				fmt.Fprintf(c.Out, "Berth version %s, build %s\n", Version, GitCommit)
				return nil
			}
			return cmd.Help()
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if c.debug {
				c.logLevel = "debug"
			}
			switch c.logLevel {
			case "debug", "info", "warn", "error", "fatal":
				return nil
			}
			return StatusError{Status: fmt.Sprintf("Unable to parse logging level: %s", c.logLevel), Code: 1}
		},
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetFlagErrorFunc(flagError)
	// Global flags belong to the root only and are parsed before the
	// command (TraverseChildren), so commands may reuse their letters
	// (run -l is --label).
	fs := root.Flags()
	fs.StringVarP(&c.host, "host", "H", "", "Daemon socket to connect to (default: $BERTH_HOST, $DOCKER_HOST, "+DefaultHost+")")
	fs.StringVar(&c.configDir, "config", "", "Location of client config files (default ~/.docker)")
	fs.StringVarP(&c.logLevel, "log-level", "l", "info", `Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")`)
	fs.BoolVarP(&c.debug, "debug", "D", false, "Enable debug mode")
	fs.BoolVarP(&showVersion, "version", "v", false, "Print version information and quit")

	cmds := c.commands()
	if i := slices.IndexFunc(cmds, func(cmd command) bool { return cmd.name == name }); i >= 0 {
		cmds = cmds[i : i+1]
	}
	for _, cmd := range cmds {
		root.AddCommand(cmd.build())
	}
	freeHelpShorthand(root)
	return root
}

// freeHelpShorthand gives commands that use -h for something else (run
// -h is --hostname) a --help flag without the shorthand, before cobra
// adds its own -h/--help.
func freeHelpShorthand(cmd *cobra.Command) {
	cmd.DisableFlagsInUseLine = true
	if cmd.Flags().ShorthandLookup("h") != nil && cmd.Flags().Lookup("help") == nil {
		cmd.Flags().Bool("help", false, "Print usage")
	}
	for _, sub := range cmd.Commands() {
		freeHelpShorthand(sub)
	}
}

// daemonError says in Docker's words that the daemon cannot be reached.
func (c *Cli) daemonError(err error) error {
	if err == nil || !client.IsErrConnectionFailed(err) {
		return err
	}
	host := ""
	if c.api != nil {
		host = c.api.DaemonHost()
	}
	return fmt.Errorf("Cannot connect to the Berth daemon at %s. Is the berth daemon running?", host)
}

// flagError is a usage error as Docker reports it: exit 125.
func flagError(cmd *cobra.Command, err error) error {
	if err == nil {
		return nil
	}
	return StatusError{Status: fmt.Sprintf("%s\nSee '%s --help'.", err, cmd.CommandPath()), Code: 125}
}

// noArgs rejects arguments as Docker does: an unknown command.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return fmt.Errorf("%s: '%s' is not a %s command.\nSee '%s --help'", cmd.Name(), args[0], cmd.Name(), cmd.CommandPath())
}

func usageError(cmd *cobra.Command, what string) error {
	return fmt.Errorf("%q %s.\nSee '%s --help'.\n\nUsage:  %s\n\n%s",
		cmd.CommandPath(), what, cmd.CommandPath(), cmd.UseLine(), cmd.Short)
}

func requiresMinArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= n {
			return nil
		}
		return usageError(cmd, fmt.Sprintf("requires at least %d %s", n, plural("argument", n)))
	}
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		return usageError(cmd, fmt.Sprintf("requires exactly %d %s", n, plural("argument", n)))
	}
}

func requiresRangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= lo && len(args) <= hi {
			return nil
		}
		return usageError(cmd, fmt.Sprintf("requires at least %d and at most %d %s", lo, hi, plural("argument", hi)))
	}
}

func noArgsCmd(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return usageError(cmd, "accepts no arguments")
}

func plural(s string, n int) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

// printDeleted lists what a prune removed under Docker's heading
// ("Deleted Volumes:"), followed by an empty line; nothing when none.
func (c *Cli) printDeleted(heading string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintln(c.Out, heading)
	for _, it := range items {
		fmt.Fprintln(c.Out, it)
	}
	fmt.Fprintln(c.Out)
}

// errSkip, from a forEach function, passes a name over in silence.
var errSkip = errors.New("skip")

// forEach runs fn for every name, printing each name that succeeded (as
// docker stop/rm/kill do) and all failures together at the end.
func (c *Cli) forEach(names []string, fn func(ctx context.Context, name string) error) error {
	ctx := context.Background()
	var errs []string
	for _, n := range names {
		if err := fn(ctx, n); errors.Is(err, errSkip) {
			continue
		} else if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		fmt.Fprintln(c.Out, n)
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// writeOut writes to a file named by -o, or to stdout, refusing a
// terminal as Docker does for binary streams.
func (c *Cli) openOutput(name, what string) (io.WriteCloser, error) {
	if name == "" || name == "-" {
		if c.OutIsTerminal() {
			return nil, fmt.Errorf("cowardly refusing to save to a terminal. Use the -o flag or redirect")
		}
		return nopCloser{c.Out}, nil
	}
	f, err := os.Create(name)
	if err != nil {
		return nil, fmt.Errorf("failed to save %s: %w", what, err)
	}
	return f, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// naturalCmp orders names as docker's ls commands do: "v2" before "v10"
// (sortorder's natural order, the docker CLI's).
func naturalCmp(a, b string) int {
	switch {
	case sortorder.NaturalLess(a, b):
		return -1
	case sortorder.NaturalLess(b, a):
		return 1
	}
	return 0
}
