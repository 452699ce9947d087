package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/format"
)

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

// inspected is one object: its decoded form for templates and the
// daemon's JSON as it came.
type inspected struct {
	typed any
	raw   []byte
}

type inspectFunc func(ctx context.Context, name string) (inspected, error)

func (c *Cli) inspectContainer(size bool) inspectFunc {
	return func(ctx context.Context, name string) (inspected, error) {
		api, err := c.Client()
		if err != nil {
			return inspected{}, err
		}
		res, err := api.ContainerInspect(ctx, name, client.ContainerInspectOptions{Size: size})
		if err != nil {
			return inspected{}, err
		}
		return inspected{res.Container, res.Raw}, nil
	}
}

func (c *Cli) inspectImage(ctx context.Context, name string) (inspected, error) {
	api, err := c.Client()
	if err != nil {
		return inspected{}, err
	}
	var raw bytes.Buffer
	res, err := api.ImageInspect(ctx, name, client.ImageInspectWithRawResponse(&raw))
	if err != nil {
		return inspected{}, err
	}
	return inspected{res.InspectResponse, raw.Bytes()}, nil
}

// inspectAll prints every named object as Docker's inspect does: an
// indented JSON array of the daemon's objects, or the template once per
// object; failures are reported after the objects that were found.
func (c *Cli) inspectAll(names []string, tmplText string, get inspectFunc) error {
	ctx := context.Background()
	var errs []string
	var raws [][]byte
	var out bytes.Buffer
	for _, n := range names {
		obj, err := get(ctx, n)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if tmplText == "" {
			raws = append(raws, obj.raw)
			continue
		}
		if err := executeInspect(&out, tmplText, obj); err != nil {
			return err
		}
		out.WriteByte('\n')
	}
	if tmplText == "" {
		out.WriteString("[")
		for i, r := range raws {
			var b bytes.Buffer
			if err := json.Indent(&b, r, "", "    "); err != nil {
				return err
			}
			if i > 0 {
				out.WriteString(",")
			}
			out.WriteString("\n    ")
			out.WriteString(strings.ReplaceAll(strings.TrimSpace(b.String()), "\n", "\n    "))
		}
		if len(raws) > 0 {
			out.WriteString("\n")
		}
		out.WriteString("]\n")
	}
	if _, err := out.WriteTo(c.Out); err != nil {
		return err
	}
	if len(errs) > 0 {
		return StatusError{Status: strings.Join(errs, "\n"), Code: 1}
	}
	return nil
}

// executeInspect runs the template on the typed object and, when that
// fails (a field only the daemon's JSON has), on the JSON itself.
func executeInspect(out *bytes.Buffer, text string, obj inspected) error {
	tmpl, err := format.Parse(text)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, obj.typed); err == nil {
		out.Write(b.Bytes())
		return nil
	} else {
		var raw map[string]any
		dec := json.NewDecoder(bytes.NewReader(obj.raw))
		dec.UseNumber()
		if derr := dec.Decode(&raw); derr != nil {
			return fmt.Errorf("template: %w", err)
		}
		b.Reset()
		if rerr := tmpl.Execute(&b, raw); rerr != nil {
			return fmt.Errorf("template: %w", err)
		}
		out.Write(b.Bytes())
		return nil
	}
}

// notFoundAs rewrites the daemon's not-found error as Docker's CLI prints
// it for the kind of object asked for.
func notFoundAs(get inspectFunc, kind string) inspectFunc {
	return func(ctx context.Context, name string) (inspected, error) {
		obj, err := get(ctx, name)
		if err != nil && isNotFound(err) {
			return obj, fmt.Errorf("Error: No such %s: %s", kind, name)
		}
		return obj, err
	}
}

func (c *Cli) newInspectCmd() *cobra.Command {
	var tmpl, kind string
	var size bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short: "Return low-level information on Docker objects",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var get inspectFunc
			switch kind {
			case "container":
				get = notFoundAs(c.inspectContainer(size), "container")
			case "image":
				get = notFoundAs(c.inspectImage, "image")
			case "":
				ctr := c.inspectContainer(size)
				get = func(ctx context.Context, name string) (inspected, error) {
					obj, err := ctr(ctx, name)
					if err == nil || !isNotFound(err) {
						return obj, err
					}
					obj, err = c.inspectImage(ctx, name)
					if err != nil && isNotFound(err) {
						return obj, fmt.Errorf("Error: No such object: %s", name)
					}
					return obj, err
				}
			default:
				return fmt.Errorf("%q is not a valid value for --type", kind)
			}
			return c.inspectAll(args, tmpl, get)
		},
	}
	cmd.Flags().StringVarP(&tmpl, "format", "f", "", "Format the output using the given Go template")
	cmd.Flags().StringVar(&kind, "type", "", "Return JSON for specified type")
	cmd.Flags().BoolVarP(&size, "size", "s", false, "Display total file sizes if the type is container")
	return cmd
}

func (c *Cli) newContainerInspectCmd() *cobra.Command {
	var tmpl string
	var size bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Display detailed information on one or more containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.inspectAll(args, tmpl, notFoundAs(c.inspectContainer(size), "container"))
		},
	}
	cmd.Flags().StringVarP(&tmpl, "format", "f", "", "Format the output using the given Go template")
	cmd.Flags().BoolVarP(&size, "size", "s", false, "Display total file sizes")
	return cmd
}

func (c *Cli) newImageInspectCmd() *cobra.Command {
	var tmpl string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.inspectAll(args, tmpl, notFoundAs(c.inspectImage, "image"))
		},
	}
	cmd.Flags().StringVarP(&tmpl, "format", "f", "", "Format the output using the given Go template")
	return cmd
}
