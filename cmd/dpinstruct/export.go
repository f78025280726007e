package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/dpinstruct/dpinstruct/sink"
)

func newExportCmd() *cobra.Command {
	var dsn, format, out, status, claim string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write queue items as Label Studio tasks or JSON lines",
		Long: `Writes annotation queue items with their released synthetic text (DP output,
safe for people to read) for an annotation tool.

--format labelstudio: a JSON array of Label Studio tasks, to import into a
Label Studio project whose labeling config shows $text:

  [{"id": 1,
    "data": {"text": "...", "item_id": "...", "window_id": "...", "cluster": 3, "claim_id": "..."},
    "meta": {"item_id": "...", "window_id": "...", "cluster": 3, "seq": 0, "status": "claimed",
             "claim_id": "...", "annotator": "...", "lease_until": "...",
             "generator_version": "...", "epsilon": 4, "delta": 1e-06}}]

--format jsonl: one object per line with the meta fields and "text".

Text is JSON-escaped with HTML escaping on: <, > and & are written as
\u003c, \u003e and \u0026, so an exported file can never inject markup.

Selection: --claim ID exports the items that claim holds now (what an
annotator works on); otherwise --status queued|claimed|done|all (default
all; an expired lease counts as queued). Exporting claims nothing.`,
		Example: `  dpinstruct export --claim c0123456789abcdef01234567 --format labelstudio --out tasks.json
  dpinstruct export --status done --format jsonl > done.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "labelstudio" && format != "jsonl" {
				return usageError{fmt.Errorf("--format must be labelstudio or jsonl")}
			}
			switch status {
			case "all", sink.QueueQueued, sink.QueueClaimed, sink.QueueDone:
			default:
				return usageError{fmt.Errorf("--status must be queued, claimed, done or all")}
			}
			if claim != "" && cmd.Flags().Changed("status") {
				return usageError{fmt.Errorf("--claim and --status exclude each other")}
			}
			ch, err := openQueueSink(cmd, dsn)
			if err != nil {
				return err
			}
			defer ch.Close()
			items, err := ch.ExportItems(cmd.Context(), sink.ExportFilter{ClaimID: claim, Status: status})
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if format == "labelstudio" {
				err = sink.EncodeLabelStudio(&buf, items)
			} else {
				err = sink.EncodeJSONL(&buf, items)
			}
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(buf.Bytes())
				return err
			}
			if err := writeFileAtomic(out, buf.Bytes()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d items to %s\n", len(items), out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "labelstudio", "labelstudio (JSON task array) or jsonl")
	f.StringVar(&out, "out", "", "output file (default: stdout)")
	f.StringVar(&status, "status", "all", "queued, claimed, done or all")
	f.StringVar(&claim, "claim", "", "export the items this claim holds (the id queue claim printed)")
	f.StringVar(&dsn, "clickhouse", "", clickhouseFlagHelp)
	return cmd
}

// writeFileAtomic writes path via a temporary file in the same directory.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func newImportCmd() *cobra.Command {
	var dsn, file, format string
	var maxBytes int64
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Store finished annotations and mark their items done",
		Long: `Reads finished annotations and stores them in the annotations table (one row
per item and annotation: importing the same file twice stores nothing new),
then marks their items done, whoever holds the lease.

--format labelstudio: Label Studio's JSON export of a project whose tasks
came from dpinstruct export (the item is data.item_id). Each annotation's
"result" array is stored as the label, "completed_by" as the annotator;
cancelled annotations are skipped.

--format jsonl: one object per line,
  {"item_id": "...", "annotator": "...", "label": <any JSON>}
with optional "claim_id" and "annotation_id".

Without --format the format is detected ('[' Label Studio, '{' JSON lines).

The file is untrusted input: it may be at most --max-bytes, a label at most
64 KiB, names and ids at most 256 printable characters. If any annotation is
malformed, or names an item that is not in the queue, nothing is imported;
the error gives the task/annotation or line number and never quotes the
file's content.

Exit codes: 0 ok, 1 failure, 2 bad flags or a bad file.`,
		Example: `  dpinstruct import --file project-7-at-2026-01-02.json
  dpinstruct import --file labels.jsonl --format jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageError{fmt.Errorf("--file is required")}
			}
			if format != "" && format != "labelstudio" && format != "jsonl" {
				return usageError{fmt.Errorf("--format must be labelstudio or jsonl")}
			}
			if maxBytes <= 0 {
				return usageError{fmt.Errorf("--max-bytes must be positive")}
			}
			f, err := os.Open(file)
			if err != nil {
				return usageError{err}
			}
			defer f.Close()
			r := bufio.NewReader(f)
			if format == "" {
				head, _ := r.Peek(512)
				var ok bool
				if format, ok = sink.DetectFormat(head); !ok {
					return usageError{fmt.Errorf("%s: cannot tell the format (want a Label Studio JSON export or JSON lines); pass --format", file)}
				}
			}
			lim := sink.DecodeLimits{MaxBytes: maxBytes}
			var anns []sink.Annotation
			if format == "labelstudio" {
				anns, err = sink.DecodeLabelStudio(r, lim)
			} else {
				anns, err = sink.DecodeJSONL(r, lim)
			}
			if err != nil {
				return importFailure(file, err)
			}
			ch, err := openQueueSink(cmd, dsn)
			if err != nil {
				return err
			}
			defer ch.Close()
			res, err := ch.ImportAnnotations(cmd.Context(), format, anns)
			if err != nil {
				return importFailure(file, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d annotations of %d items (%d newly done)\n", res.Annotations, res.Items, res.NewlyDone)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "file", "", "the file to import (required)")
	f.StringVar(&format, "format", "", "labelstudio or jsonl (default: detected)")
	f.Int64Var(&maxBytes, "max-bytes", 64<<20, "refuse files larger than this")
	f.StringVar(&dsn, "clickhouse", "", clickhouseFlagHelp)
	return cmd
}

func importFailure(file string, err error) error {
	if errors.Is(err, sink.ErrBadImport) {
		return usageError{fmt.Errorf("%s: %w", file, err)}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return usageError{fmt.Errorf("%s: truncated: %w", file, err)}
	}
	return err
}
