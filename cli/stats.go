package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/format"
)

func (c *Cli) newStatsCmd() *cobra.Command {
	var all, noStream, noTrunc bool
	var fmtStr string
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a live stream of container(s) resource usage statistics",
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.Client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			names := args
			if len(names) == 0 {
				res, err := api.ContainerList(ctx, client.ContainerListOptions{All: all})
				if err != nil {
					return err
				}
				for _, ctr := range res.Items {
					names = append(names, ctr.ID)
				}
			}
			if fmtStr == "" {
				fmtStr = c.ConfigFile().StatsFormat
			}
			if fmtStr == "" || fmtStr == format.TableKey {
				fmtStr = format.StatsTable
			}
			entries := make([]*format.StatsEntry, len(names))
			var mu sync.Mutex
			var wg sync.WaitGroup
			errs := make([]error, len(names))
			first := make(chan struct{}, len(names))
			for i, n := range names {
				entries[i] = &format.StatsEntry{Container: n, IDV: n, Missing: true}
				wg.Add(1)
				go func(i int, n string) {
					defer wg.Done()
					errs[i] = c.collectStats(ctx, n, !noStream, func(v *container.StatsResponse) {
						mu.Lock()
						entries[i].Compute(v)
						mu.Unlock()
						select {
						case first <- struct{}{}:
						default:
						}
					})
					if errs[i] != nil {
						select {
						case first <- struct{}{}:
						default:
						}
					}
				}(i, n)
			}
			render := func() error {
				mu.Lock()
				defer mu.Unlock()
				rows := make([]format.Context, 0, len(entries))
				for i, e := range entries {
					if errs[i] != nil && len(args) == 0 {
						continue
					}
					rows = append(rows, format.Stats{S: *e, Trunc: !noTrunc})
				}
				return format.Write(c.Out, format.Format(fmtStr), rows, format.StatsHeader)
			}
			if noStream {
				wg.Wait()
				var msgs []string
				for i, err := range errs {
					if err != nil && len(args) > 0 {
						msgs = append(msgs, err.Error())
						_ = i
					}
				}
				if len(msgs) > 0 {
					return errors.New(strings.Join(msgs, "\n"))
				}
				return render()
			}
			// The live table: redrawn every half second, as docker stats.
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			for {
				select {
				case <-tick.C:
				case <-done:
					return render()
				}
				if c.OutIsTerminal() {
					fmt.Fprint(c.Out, "\033[2J\033[H")
				}
				if err := render(); err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "Do not truncate output")
	cmd.Flags().StringVar(&fmtStr, "format", "", "Pretty-print images using a Go template")
	return cmd
}

// collectStats reads one container's stats (one sample, or the stream
// until it ends) and hands each sample to fn.
func (c *Cli) collectStats(ctx context.Context, name string, streamed bool, fn func(*container.StatsResponse)) error {
	api, err := c.Client()
	if err != nil {
		return err
	}
	res, err := api.ContainerStats(ctx, name, client.ContainerStatsOptions{Stream: streamed, IncludePreviousSample: !streamed})
	if err != nil {
		return err
	}
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var v container.StatsResponse
		if err := dec.Decode(&v); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		fn(&v)
		if !streamed {
			return nil
		}
	}
}
