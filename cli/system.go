package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/cli/opts"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/format"
)

func (c *Cli) systemCommands() []command {
	return []command{{"info", c.newInfoCmd}, {"version", c.newVersionCmd}, {"events", c.newEventsCmd},
		{"system", c.systemGroup}, {"volume", c.volumeGroup}, {"network", c.networkGroup}, {"builder", c.builderGroup}}
}

func (c *Cli) builderGroup() *cobra.Command {
	g := &cobra.Command{Use: "builder", Short: "Manage builds", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	g.AddCommand(c.newBuilderPruneCmd())
	return g
}

func (c *Cli) newBuilderPruneCmd() *cobra.Command {
	var all, force bool
	var keep opts.MemBytes
	filter := opts.NewFilterOpt()
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove build cache",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			warning := "WARNING! This will remove all dangling build cache."
			if all {
				warning = "WARNING! This will remove all build cache."
			}
			if !force && !c.confirm(warning) {
				return nil
			}
			space, err := c.pruneBuildCache(all, filter.Value(), keep.Value())
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Out, "Total reclaimed space:", units.HumanSize(float64(space)))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused build cache, not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(&filter, "filter", "Provide filter values (e.g. 'until=24h')")
	cmd.Flags().Var(&keep, "keep-storage", "Amount of disk space to keep for cache")
	return cmd
}

// pruneBuildCache prunes the build cache, prints what went and returns
// the bytes reclaimed.
func (c *Cli) pruneBuildCache(all bool, f client.Filters, keep int64) (uint64, error) {
	api, err := c.Client()
	if err != nil {
		return 0, err
	}
	res, err := api.BuildCachePrune(context.Background(), client.BuildCachePruneOptions{All: all, Filters: f, ReservedSpace: keep})
	if err != nil {
		return 0, err
	}
	c.printDeleted("Deleted build cache objects:", res.Report.CachesDeleted)
	return res.Report.SpaceReclaimed, nil
}

func (c *Cli) systemGroup() *cobra.Command {
	g := &cobra.Command{Use: "system", Short: "Manage Berth", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	g.AddCommand(c.newInfoCmd(), c.newEventsCmd(), c.newDfCmd(), c.newSystemPruneCmd())
	return g
}

// clientVersion is the Client of `version --format`, with docker's field
// names (templates say .Client.APIVersion; JSON says ApiVersion). berth
// has no contexts: the context is always "default".
type clientVersion struct {
	Version           string
	APIVersion        string `json:"ApiVersion"`
	DefaultAPIVersion string `json:"DefaultAPIVersion,omitempty"`
	GitCommit         string
	GoVersion         string
	Os                string
	Arch              string
	BuildTime         string `json:",omitempty"`
	Context           string
}

func (c *Cli) clientVersion(apiVersion string) clientVersion {
	return clientVersion{Version: Version, APIVersion: apiVersion, DefaultAPIVersion: client.MaxAPIVersion,
		GitCommit: GitCommit, GoVersion: runtime.Version(), Os: runtime.GOOS, Arch: runtime.GOARCH, Context: "default"}
}

// infoView is what `info --format` templates see, as docker's: the
// daemon's Info and the client's part (berth has no CLI plugins).
type infoView struct {
	*system.Info
	ServerErrors []string    `json:",omitempty"`
	ClientInfo   *clientInfo `json:",omitempty"`
	ClientErrors []string    `json:",omitempty"`
}

type clientInfo struct {
	Debug bool
	clientVersion
	Plugins  []any
	Warnings []string
}

func (c *Cli) newVersionCmd() *cobra.Command {
	var fmtStr string
	cmd := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the Berth version information",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			clientInfo := c.clientVersion(client.MaxAPIVersion)
			sv, serr := api.ServerVersion(context.Background(), client.ServerVersionOptions{})
			if serr == nil {
				clientInfo.APIVersion = api.ClientVersion()
			}
			if fmtStr != "" {
				v := map[string]any{"Client": clientInfo}
				if serr == nil {
					v["Server"] = sv
				}
				if err := format.Template(c.Out, fmtStr, v); err != nil {
					return err
				}
				fmt.Fprintln(c.Out)
				return serr
			}
			w := tabwriter.NewWriter(c.Out, 20, 1, 1, ' ', 0)
			fmt.Fprintf(w, "Client:\n Version:\t%s\n API version:\t%s\n Go version:\t%s\n Git commit:\t%s\n OS/Arch:\t%s/%s\n",
				Version, clientInfo.APIVersion, runtime.Version(), GitCommit, runtime.GOOS, runtime.GOARCH)
			if serr != nil {
				w.Flush()
				return serr
			}
			name := sv.Platform.Name
			if name == "" {
				name = "Engine"
			}
			fmt.Fprintf(w, "\nServer: %s\n", name)
			for _, comp := range sv.Components {
				fmt.Fprintf(w, " %s:\n  Version:\t%s\n", comp.Name, comp.Version)
				if comp.Name == "Engine" {
					d := comp.Details
					fmt.Fprintf(w, "  API version:\t%s (minimum version %s)\n  Go version:\t%s\n  Git commit:\t%s\n  Built:\t%s\n  OS/Arch:\t%s/%s\n  Experimental:\t%s\n",
						d["ApiVersion"], d["MinAPIVersion"], d["GoVersion"], d["GitCommit"], d["BuildTime"], d["Os"], d["Arch"], d["Experimental"])
					continue
				}
				if gc := comp.Details["GitCommit"]; gc != "" {
					fmt.Fprintf(w, "  GitCommit:\t%s\n", gc)
				}
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVarP(&fmtStr, "format", "f", "", "Format the output using the given Go template")
	return cmd
}

func (c *Cli) newInfoCmd() *cobra.Command {
	var fmtStr string
	cmd := &cobra.Command{
		Use:   "info [OPTIONS]",
		Short: "Display system-wide information",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.Info(context.Background(), client.InfoOptions{})
			if err != nil {
				return err
			}
			i := res.Info
			if fmtStr != "" {
				v := infoView{Info: &i, ClientInfo: &clientInfo{Debug: c.debug, clientVersion: c.clientVersion(api.ClientVersion()),
					Plugins: []any{}, Warnings: []string{}}}
				if err := format.Template(c.Out, fmtStr, v); err != nil {
					return err
				}
				fmt.Fprintln(c.Out)
				return nil
			}
			o := c.Out
			fmt.Fprintf(o, "Client:\n Context:    default\n Debug Mode: %v\n\n", c.debug)
			fmt.Fprintf(o, "Server:\n Containers: %d\n  Running: %d\n  Paused: %d\n  Stopped: %d\n Images: %d\n",
				i.Containers, i.ContainersRunning, i.ContainersPaused, i.ContainersStopped, i.Images)
			fmt.Fprintf(o, " Server Version: %s\n Storage Driver: %s\n", i.ServerVersion, i.Driver)
			for _, kv := range i.DriverStatus {
				fmt.Fprintf(o, "  %s: %s\n", kv[0], kv[1])
			}
			fmt.Fprintf(o, " Logging Driver: %s\n Cgroup Driver: %s\n Cgroup Version: %s\n", i.LoggingDriver, i.CgroupDriver, i.CgroupVersion)
			fmt.Fprintf(o, " Runtimes: %s\n Default Runtime: %s\n Init Binary: %s\n", strings.Join(sortedRuntimes(i.Runtimes), " "), i.DefaultRuntime, i.InitBinary)
			fmt.Fprintf(o, " Kernel Version: %s\n Operating System: %s\n OSType: %s\n Architecture: %s\n CPUs: %d\n Total Memory: %s\n Name: %s\n ID: %s\n Docker Root Dir: %s\n Debug Mode: %v\n",
				i.KernelVersion, i.OperatingSystem, i.OSType, i.Architecture, i.NCPU, units.BytesSize(float64(i.MemTotal)), i.Name, i.ID, i.DockerRootDir, i.Debug)
			printSecurityOptions(o, i.SecurityOptions)
			if len(i.Labels) > 0 {
				fmt.Fprintln(o, " Labels:")
				for _, l := range i.Labels {
					fmt.Fprintf(o, "  %s\n", l)
				}
			}
			fmt.Fprintf(o, " Experimental: %v\n Live Restore Enabled: %v\n", i.ExperimentalBuild, i.LiveRestoreEnabled)
			for _, w := range i.Warnings {
				fmt.Fprintln(c.Err, w)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&fmtStr, "format", "f", "", "Format the output using the given Go template")
	return cmd
}

func sortedRuntimes[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// eventTime is Docker's fixed-width RFC 3339 time with nanoseconds.
const eventTime = "2006-01-02T15:04:05.000000000Z07:00"

func (c *Cli) newEventsCmd() *cobra.Command {
	var since, until, fmtStr string
	filter := opts.NewFilterOpt()
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Get real time events from the server",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			var tmpl func(io.Writer, events.Message) error
			if fmtStr != "" {
				t, err := format.Parse(fmtStr)
				if err != nil {
					return err
				}
				tmpl = func(w io.Writer, m events.Message) error { return t.Execute(w, legacyEvent{m}) }
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			res := api.Events(ctx, client.EventsListOptions{Since: since, Until: until, Filters: filter.Value()})
			for {
				select {
				case m := <-res.Messages:
					if tmpl != nil {
						if err := tmpl(c.Out, m); err != nil {
							return err
						}
						fmt.Fprintln(c.Out)
						continue
					}
					printEvent(c.Out, m)
				case err := <-res.Err:
					if err == io.EOF {
						return nil
					}
					return err
				}
			}
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "Show all events created since timestamp")
	cmd.Flags().StringVar(&until, "until", "", "Stream events until this timestamp")
	cmd.Flags().StringVar(&fmtStr, "format", "", "Format the output using the given Go template")
	cmd.Flags().VarP(&filter, "filter", "f", "Filter output based on conditions provided")
	return cmd
}

// printEvent writes an event as Docker's default events output.
func printEvent(w io.Writer, m events.Message) {
	if m.TimeNano != 0 {
		fmt.Fprintf(w, "%s ", time.Unix(0, m.TimeNano).Format(eventTime))
	} else if m.Time != 0 {
		fmt.Fprintf(w, "%s ", time.Unix(m.Time, 0).Format(eventTime))
	}
	fmt.Fprintf(w, "%s %s %s", m.Type, m.Action, m.Actor.ID)
	if len(m.Actor.Attributes) > 0 {
		keys := make([]string, 0, len(m.Actor.Attributes))
		for k := range m.Actor.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		attrs := make([]string, 0, len(keys))
		for _, k := range keys {
			attrs = append(attrs, k+"="+m.Actor.Attributes[k])
		}
		fmt.Fprintf(w, " (%s)", strings.Join(attrs, ", "))
	}
	fmt.Fprintln(w)
}

func (c *Cli) newDfCmd() *cobra.Command {
	var verbose bool
	var fmtStr string
	cmd := &cobra.Command{
		Use:   "df [OPTIONS]",
		Short: "Show docker disk usage",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			du, err := api.DiskUsage(context.Background(), client.DiskUsageOptions{Containers: true, Images: true,
				Volumes: true, BuildCache: true, Verbose: verbose})
			if err != nil {
				return err
			}
			if verbose {
				return c.writeDfVerbose(du)
			}
			rows := []format.Context{
				dfRow{"Images", du.Images.TotalCount, du.Images.ActiveCount, du.Images.TotalSize, du.Images.Reclaimable, true},
				dfRow{"Containers", du.Containers.TotalCount, du.Containers.ActiveCount, du.Containers.TotalSize, du.Containers.Reclaimable, true},
				dfRow{"Local Volumes", du.Volumes.TotalCount, du.Volumes.ActiveCount, du.Volumes.TotalSize, du.Volumes.Reclaimable, true},
				dfRow{"Build Cache", du.BuildCache.TotalCount, du.BuildCache.ActiveCount, du.BuildCache.TotalSize, du.BuildCache.Reclaimable, false},
			}
			if fmtStr == "" || fmtStr == format.TableKey {
				fmtStr = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
			}
			return format.Write(c.Out, format.Format(fmtStr), rows, dfHeader)
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "Show detailed information on space usage")
	cmd.Flags().StringVar(&fmtStr, "format", "", "Pretty-print images using a Go template")
	return cmd
}

var dfHeader = map[string]string{"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}

type dfRow struct {
	typ                              string
	total, active, size, reclaimable int64
	percent                          bool
}

func (r dfRow) Header() map[string]string { return dfHeader }
func (r dfRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"Type": r.Type(), "TotalCount": r.TotalCount(), "Active": r.Active(), "Size": r.Size(), "Reclaimable": r.Reclaimable()})
}

// Type names the kind of object.
func (r dfRow) Type() string { return r.typ }

// TotalCount counts the objects.
func (r dfRow) TotalCount() string { return fmt.Sprint(r.total) }

// Active counts the objects in use.
func (r dfRow) Active() string { return fmt.Sprint(r.active) }

// Size is their total size.
func (r dfRow) Size() string { return units.HumanSize(float64(r.size)) }

// Reclaimable is what a prune would free, with its share of Size.
func (r dfRow) Reclaimable() string {
	if r.percent && r.size > 0 {
		return fmt.Sprintf("%s (%v%%)", units.HumanSize(float64(r.reclaimable)), r.reclaimable*100/r.size)
	}
	return units.HumanSize(float64(r.reclaimable))
}

func (c *Cli) writeDfVerbose(du client.DiskUsageResult) error {
	w := tabwriter.NewWriter(c.Out, 10, 1, 3, ' ', 0)
	fmt.Fprintln(w, "Images space usage:\n\nREPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS")
	for _, r := range format.ImageRows(du.Images.Items, true, false) {
		i := r.(format.Image)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i.Repository(), i.Tag(), i.ID(), i.CreatedSince(), i.Size(), i.SharedSize(), i.UniqueSize(), i.Containers())
	}
	fmt.Fprintln(w, "\nContainers space usage:\n\nCONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES")
	for _, ctr := range du.Containers.Items {
		f := format.Container{C: ctr, Trunc: true}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.ID(), f.Image(), f.Command(), f.LocalVolumes(),
			units.HumanSizeWithPrecision(float64(ctr.SizeRw), 3), f.RunningFor(), f.Status(), f.Names())
	}
	fmt.Fprintln(w, "\nLocal Volumes space usage:\n\nVOLUME NAME\tLINKS\tSIZE")
	for _, v := range du.Volumes.Items {
		links, size := "N/A", "N/A"
		if v.UsageData != nil {
			links, size = fmt.Sprint(v.UsageData.RefCount), units.HumanSize(float64(v.UsageData.Size))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", v.Name, links, size)
	}
	fmt.Fprintf(w, "\nBuild cache usage: %s\n\nCACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED\n", units.HumanSize(float64(du.BuildCache.TotalSize)))
	for _, b := range du.BuildCache.Items {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%v\n", b.ID, b.Type, units.HumanSize(float64(b.Size)),
			units.HumanDuration(time.Since(b.CreatedAt))+" ago", lastUsed(b.LastUsedAt), b.UsageCount, b.Shared)
	}
	return w.Flush()
}

func (c *Cli) newSystemPruneCmd() *cobra.Command {
	var all, force, volumes bool
	filter := opts.NewFilterOpt()
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused data",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			warn := "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n"
			if volumes {
				warn += "  - all volumes not used by at least one container\n"
			}
			if all {
				warn += "  - all images without at least one container associated to them\n  - all build cache\n"
			} else {
				warn += "  - all dangling images\n  - all dangling build cache\n"
			}
			if !force && !c.confirm(warn) {
				return nil
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			ctx := context.Background()
			var total uint64
			space, out, err := c.pruneContainers(filter.Value())
			if err != nil {
				return err
			}
			total += space
			fmt.Fprint(c.Out, out)
			if volumes {
				res, err := api.VolumePrune(ctx, client.VolumePruneOptions{Filters: filter.Value()})
				if err != nil {
					return err
				}
				c.printDeleted("Deleted Volumes:", res.Report.VolumesDeleted)
				total += res.Report.SpaceReclaimed
			}
			if res, err := api.NetworkPrune(ctx, client.NetworkPruneOptions{Filters: filter.Value()}); err == nil {
				c.printDeleted("Deleted Networks:", res.Report.NetworksDeleted)
			}
			space, out, err = c.pruneImages(all, filter.Value())
			if err != nil {
				return err
			}
			total += space
			fmt.Fprint(c.Out, out)
			if space, err = c.pruneBuildCache(all, filter.Value(), 0); err != nil {
				return err
			}
			total += space
			fmt.Fprintln(c.Out, "Total reclaimed space:", units.HumanSize(float64(total)))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().BoolVar(&volumes, "volumes", false, "Prune volumes")
	cmd.Flags().Var(&filter, "filter", "Provide filter values (e.g. 'label=<key>=<value>')")
	return cmd
}

func lastUsed(t *time.Time) string {
	if t == nil {
		return ""
	}
	return units.HumanDuration(time.Since(*t)) + " ago"
}

// legacyEvent adds the status, id and from fields that the daemon's
// container and image events still carry in API 1.41 (the moby types
// dropped them), so {{json .}} prints what docker prints.
type legacyEvent struct{ events.Message }

// MarshalJSON writes the legacy fields first, as the daemon does.
func (e legacyEvent) MarshalJSON() ([]byte, error) {
	msg, err := json.Marshal(e.Message)
	if err != nil {
		return nil, err
	}
	var legacy []byte
	switch e.Type {
	case events.ContainerEventType:
		legacy, _ = json.Marshal(struct {
			Status string `json:"status,omitempty"`
			ID     string `json:"id,omitempty"`
			From   string `json:"from,omitempty"`
		}{string(e.Action), e.Actor.ID, e.Actor.Attributes["image"]})
	case events.ImageEventType:
		legacy, _ = json.Marshal(struct {
			Status string `json:"status,omitempty"`
			ID     string `json:"id,omitempty"`
		}{string(e.Action), e.Actor.ID})
	default:
		return msg, nil
	}
	if len(legacy) <= 2 {
		return msg, nil
	}
	return append(append(legacy[:len(legacy)-1], ','), msg[1:]...), nil
}

// printSecurityOptions lists the "name=seccomp,profile=builtin" entries
// of info as the docker CLI does: the name, then its other keys.
func printSecurityOptions(w io.Writer, opts []string) {
	if len(opts) == 0 {
		return
	}
	fmt.Fprintln(w, " Security Options:")
	for _, o := range opts {
		for _, kv := range strings.Split(o, ",") {
			k, v, _ := strings.Cut(kv, "=")
			if k == "name" {
				fmt.Fprintf(w, "  %s\n", v)
				continue
			}
			if k != "" {
				fmt.Fprintf(w, "   %s: %s\n", strings.ToUpper(k[:1])+k[1:], v)
			}
		}
	}
}
