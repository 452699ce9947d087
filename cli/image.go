package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker/cli/opts"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/format"
	"github.com/berth-dev/berth/cli/runopts"
	"github.com/berth-dev/berth/image/progress"
)

// indexServer is the key of Docker Hub's credentials in the config file.
const indexServer = "https://index.docker.io/v1/"

func (c *Cli) imageCommands() []command {
	return []command{{"pull", c.newPullCmd}, {"push", c.newPushCmd},
		{"images", func() *cobra.Command { return c.newImagesCmd("images") }},
		{"rmi", func() *cobra.Command { return c.newRmiCmd("rmi") }},
		{"tag", c.newTagCmd}, {"save", c.newSaveCmd}, {"load", c.newLoadCmd}, {"import", c.newImportCmd},
		{"history", c.newHistoryCmd}, {"login", c.newLoginCmd}, {"logout", c.newLogoutCmd},
		{"image", c.imageGroup}, {"build", c.newBuildCmd}}
}

func (c *Cli) imageGroup() *cobra.Command {
	g := &cobra.Command{Use: "image", Short: "Manage images", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	ls := c.newImagesCmd("ls")
	ls.Aliases = []string{"list"}
	rm := c.newRmiCmd("rm")
	rm.Aliases = []string{"remove"}
	g.AddCommand(c.newPullCmd(), c.newPushCmd(), ls, rm, c.newTagCmd(), c.newSaveCmd(), c.newLoadCmd(),
		c.newImportCmd(), c.newHistoryCmd(), c.newImageInspectCmd(), c.newImagePruneCmd(), c.newBuildCmd())
	return g
}

// encodedAuth is the X-Registry-Auth value for the registry of ref, from
// the config file's credentials.
func (c *Cli) encodedAuth(ref string) string {
	server := indexServer
	if named, err := reference.ParseNormalizedNamed(ref); err == nil {
		if d := reference.Domain(named); d != "docker.io" {
			server = d
		}
	}
	ac, err := c.ConfigFile().GetAuthConfig(server)
	if err != nil {
		return ""
	}
	enc, err := authconfig.Encode(registry.AuthConfig{Username: ac.Username, Password: ac.Password,
		Auth: ac.Auth, ServerAddress: ac.ServerAddress, IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken})
	if err != nil {
		return ""
	}
	return enc
}

// pullImage pulls ref, drawing the daemon's progress stream on out.
func (c *Cli) pullImage(ctx context.Context, ref, platform string, all, quiet bool, out io.Writer) error {
	api, err := c.Client()
	if err != nil {
		return err
	}
	o := client.ImagePullOptions{All: all, RegistryAuth: c.encodedAuth(ref)}
	if platform != "" {
		p, err := parsePlatform(platform)
		if err != nil {
			return err
		}
		o.Platforms = []ocispec.Platform{p}
	}
	resp, err := api.ImagePull(ctx, ref, o)
	if err != nil {
		return err
	}
	defer resp.Close()
	var rep progress.Reporter = progress.New(out)
	if quiet {
		rep = progress.Discard
	}
	return progress.Replay(resp, rep)
}

func (c *Cli) newPullCmd() *cobra.Command {
	var all, quiet, noTrust bool
	var platform string
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Pull an image or a repository from a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !noTrust {
				return runopts.ErrContentTrust
			}
			named, err := reference.ParseNormalizedNamed(args[0])
			if err != nil {
				return err
			}
			if all && !reference.IsNameOnly(named) {
				return errors.New("tag can't be used with --all-tags/-a")
			}
			if !all && reference.IsNameOnly(named) {
				named = reference.TagNameOnly(named)
				if t, ok := named.(reference.Tagged); ok && !quiet {
					fmt.Fprintf(c.Out, "Using default tag: %s\n", t.Tag())
				}
			}
			if err := c.pullImage(context.Background(), reference.FamiliarString(named), platform, all, quiet, c.Out); err != nil {
				return err
			}
			fmt.Fprintln(c.Out, named.String())
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all-tags", "a", false, "Download all tagged images in the repository")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	cmd.Flags().StringVar(&platform, "platform", "", "Set platform if server is multi-platform capable")
	cmd.Flags().BoolVar(&noTrust, "disable-content-trust", runopts.ContentTrustDefault(), "Skip image verification")
	return cmd
}

func (c *Cli) newPushCmd() *cobra.Command {
	var all, quiet, noTrust bool
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG]",
		Short: "Push an image or a repository to a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !noTrust {
				return runopts.ErrContentTrust
			}
			named, err := reference.ParseNormalizedNamed(args[0])
			if err != nil {
				return err
			}
			if !all && reference.IsNameOnly(named) {
				named = reference.TagNameOnly(named)
				if t, ok := named.(reference.Tagged); ok && !quiet {
					fmt.Fprintf(c.Out, "Using default tag: %s\n", t.Tag())
				}
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			resp, err := api.ImagePush(context.Background(), reference.FamiliarString(named),
				client.ImagePushOptions{All: all, RegistryAuth: c.encodedAuth(args[0])})
			if err != nil {
				return err
			}
			defer resp.Close()
			var rep progress.Reporter = progress.New(c.Out)
			if quiet {
				rep = progress.Discard
			}
			if err := progress.Replay(resp, rep); err != nil {
				return err
			}
			if quiet {
				fmt.Fprintln(c.Out, named.String())
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all-tags", "a", false, "Push all tagged images in the repository")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	cmd.Flags().BoolVar(&noTrust, "disable-content-trust", runopts.ContentTrustDefault(), "Skip image signing")
	return cmd
}

func (c *Cli) newImagesCmd(use string) *cobra.Command {
	var all, quiet, digests, noTrunc bool
	var fmtStr string
	filter := opts.NewFilterOpt()
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS] [REPOSITORY[:TAG]]",
		Short: "List images",
		Args:  requiresRangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			f := filter.Value()
			if len(args) == 1 {
				f.Add("reference", args[0])
			}
			res, err := api.ImageList(context.Background(), client.ImageListOptions{All: all, Filters: f})
			if err != nil {
				return err
			}
			if fmtStr == "" {
				fmtStr = c.ConfigFile().ImagesFormat
			}
			switch {
			case quiet:
				fmtStr = format.ImagesQuiet
			case fmtStr == "" || fmtStr == format.TableKey:
				fmtStr = format.ImagesTable
				if digests {
					fmtStr = format.ImagesTableDigests
				}
			}
			rows := format.ImageRows(res.Items, !noTrunc, digests || strings.Contains(fmtStr, "{{.Digest}}"))
			if quiet {
				// One line per image, not per tag.
				seen := map[string]bool{}
				var uniq []format.Context
				for _, r := range rows {
					id := r.(format.Image).ID()
					if !seen[id] {
						seen[id] = true
						uniq = append(uniq, r)
					}
				}
				rows = uniq
			}
			return format.Write(c.Out, format.Format(fmtStr), rows, format.ImageHeader)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&all, "all", "a", false, "Show all images (default hides intermediate images)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	fl.BoolVar(&digests, "digests", false, "Show digests")
	fl.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	fl.StringVar(&fmtStr, "format", "", "Pretty-print images using a Go template")
	fl.VarP(&filter, "filter", "f", "Filter output based on conditions provided")
	return cmd
}

func (c *Cli) newRmiCmd(use string) *cobra.Command {
	var force, noPrune bool
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS] IMAGE [IMAGE...]",
		Short: "Remove one or more images",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			var errs []string
			fatal := false
			for _, img := range args {
				res, err := api.ImageRemove(context.Background(), img, client.ImageRemoveOptions{Force: force, PruneChildren: !noPrune})
				if isNotFound(err) {
					err = fmt.Errorf("Error: No such image: %s", img)
				} else if err != nil {
					fatal = true
				}
				if err != nil {
					errs = append(errs, err.Error())
					continue
				}
				for _, d := range res.Items {
					if d.Deleted != "" {
						fmt.Fprintf(c.Out, "Deleted: %s\n", d.Deleted)
					} else {
						fmt.Fprintf(c.Out, "Untagged: %s\n", d.Untagged)
					}
				}
			}
			if len(errs) > 0 {
				msg := strings.Join(errs, "\n")
				if !force || fatal {
					return errors.New(msg)
				}
				// -f: images already gone are reported, not a failure.
				fmt.Fprintln(c.Err, msg)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force removal of the image")
	cmd.Flags().BoolVar(&noPrune, "no-prune", false, "Do not delete untagged parents")
	return cmd
}

func (c *Cli) newTagCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			_, err = api.ImageTag(context.Background(), client.ImageTagOptions{Source: args[0], Target: args[1]})
			if err != nil && strings.HasPrefix(err.Error(), "error parsing reference") {
				// docker's words: the client library lowercased them.
				return errors.New("E" + strings.TrimPrefix(err.Error(), "e"))
			}
			return err
		},
	}
}

func (c *Cli) newSaveCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := c.openOutput(output, "images")
			if err != nil {
				return err
			}
			api, err := c.Client()
			if err != nil {
				w.Close()
				return err
			}
			r, err := api.ImageSave(context.Background(), args)
			if err != nil {
				w.Close()
				if output != "" {
					os.Remove(output)
				}
				return err
			}
			defer r.Close()
			if _, err := io.Copy(w, r); err != nil {
				w.Close()
				return fmt.Errorf("failed to save images: %w", err)
			}
			return w.Close()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}

func (c *Cli) newLoadCmd() *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load an image from a tar archive or STDIN",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader = c.In
			if input != "" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			} else if c.InIsTerminal() {
				return errors.New("requested load from stdin, but stdin is empty")
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			// Quiet unless stdout is a terminal, as docker load.
			q := quiet || !c.OutIsTerminal()
			resp, err := api.ImageLoad(context.Background(), in, client.ImageLoadWithQuiet(q))
			if err != nil {
				return err
			}
			defer resp.Close()
			var rep progress.Reporter = progress.New(c.Out)
			if quiet {
				rep = progress.ReporterFunc(func(ev progress.Event) {
					if ev.ID == "" && ev.Current == 0 && ev.Total == 0 {
						progress.NewPlain(c.Out).Report(ev)
					}
				})
			}
			return progress.Replay(resp, rep)
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "Read from tar archive file, instead of STDIN")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress the load output")
	return cmd
}

func (c *Cli) newImportCmd() *cobra.Command {
	var changes []string
	var message, platform string
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src := client.ImageImportSource{SourceName: args[0]}
			switch {
			case args[0] == "-":
				src.Source = c.In
			case !strings.Contains(args[0], "://"):
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				src = client.ImageImportSource{Source: f, SourceName: "-"}
			}
			ref := ""
			if len(args) > 1 {
				ref = args[1]
			}
			o := client.ImageImportOptions{Message: message, Changes: changes}
			if platform != "" {
				p, err := parsePlatform(platform)
				if err != nil {
					return err
				}
				o.Platform = p
			}
			api, err := c.Client()
			if err != nil {
				return err
			}
			resp, err := api.ImageImport(context.Background(), src, ref, o)
			if err != nil {
				return err
			}
			defer resp.Close()
			return progress.Replay(resp, progress.New(c.Out))
		},
	}
	cmd.Flags().StringArrayVarP(&changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	cmd.Flags().StringVarP(&message, "message", "m", "", "Set commit message for imported image")
	cmd.Flags().StringVar(&platform, "platform", "", "Set platform if server is multi-platform capable")
	return cmd
}

func (c *Cli) newHistoryCmd() *cobra.Command {
	var human, noTrunc, quiet bool
	var fmtStr string
	cmd := &cobra.Command{
		Use:   "history [OPTIONS] IMAGE",
		Short: "Show the history of an image",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			res, err := api.ImageHistory(context.Background(), args[0])
			if err != nil {
				return err
			}
			switch {
			case quiet:
				fmtStr = format.HistoryQuiet
			case fmtStr == "" || fmtStr == format.TableKey:
				fmtStr = format.HistoryTable
			}
			rows := make([]format.Context, 0, len(res.Items))
			for _, h := range res.Items {
				rows = append(rows, format.History{H: h, Trunc: !noTrunc, Human: human})
			}
			header := format.HistoryHeader
			if !human {
				// docker history -H=false shows times, and names the column so.
				header = map[string]string{}
				for k, v := range format.HistoryHeader {
					header[k] = v
				}
				header["CreatedSince"] = "CREATED AT"
			}
			return format.Write(c.Out, format.Format(fmtStr), rows, header)
		},
	}
	cmd.Flags().BoolVarP(&human, "human", "H", true, "Print sizes and dates in human readable format")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	cmd.Flags().StringVar(&fmtStr, "format", "", "Pretty-print images using a Go template")
	return cmd
}

func (c *Cli) newImagePruneCmd() *cobra.Command {
	var all, force bool
	filter := opts.NewFilterOpt()
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images",
		Args:  noArgsCmd,
		RunE: func(cmd *cobra.Command, args []string) error {
			warning := "WARNING! This will remove all dangling images."
			if all {
				warning = "WARNING! This will remove all images without at least one container associated to them."
			}
			if !force && !c.confirm(warning) {
				return nil
			}
			space, out, err := c.pruneImages(all, filter.Value())
			if err != nil {
				return err
			}
			if out != "" {
				fmt.Fprint(c.Out, out)
			}
			fmt.Fprintln(c.Out, "Total reclaimed space:", units.HumanSize(float64(space)))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(&filter, "filter", "Provide filter values (e.g. 'until=<timestamp>')")
	return cmd
}

// pruneImages prunes and returns the reclaimed bytes and docker's report
// of what was deleted.
func (c *Cli) pruneImages(all bool, f client.Filters) (uint64, string, error) {
	api, err := c.Client()
	if err != nil {
		return 0, "", err
	}
	f = f.Clone()
	if all {
		f.Add("dangling", "false")
	} else {
		f.Add("dangling", "true")
	}
	res, err := api.ImagePrune(context.Background(), client.ImagePruneOptions{Filters: f})
	if err != nil {
		return 0, "", err
	}
	var b strings.Builder
	if len(res.Report.ImagesDeleted) > 0 {
		b.WriteString("Deleted Images:\n")
		for _, d := range res.Report.ImagesDeleted {
			if d.Untagged != "" {
				fmt.Fprintf(&b, "untagged: %s\n", d.Untagged)
			} else {
				fmt.Fprintf(&b, "deleted: %s\n", d.Deleted)
			}
		}
		b.WriteString("\n")
	}
	return res.Report.SpaceReclaimed, b.String(), nil
}

// confirm asks a yes/no question on the terminal, as docker prune does.
func (c *Cli) confirm(warning string) bool {
	fmt.Fprintf(c.Out, "%s\nAre you sure you want to continue? [y/N] ", warning)
	line, _ := bufio.NewReader(c.In).ReadString('\n')
	line = strings.TrimSpace(line)
	return strings.EqualFold(line, "y") || strings.EqualFold(line, "yes")
}
