package cli

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
)

var storeCmd = &command{
	name: "store", summary: "show the backing store of each map: mode, pending changes, writes, failures",
	minArgs: 0, maxArgs: 1,
	details: `Prints STORESTATUS of the node it connects to: for each map that uses a
backing store (or only MAP), its mode, the changes waiting to be written
back (count, bytes, age of the oldest), the keys written and deleted, the
store failures (total and current run, with the last error) and the
read-through loads. --json prints the rows as objects. A cluster node shows
the changes of the partitions it leads: ask each node.`,
	setup: func(fs *flag.FlagSet) func(context.Context, *session, []string) error {
		return func(ctx context.Context, s *session, args []string) error {
			c, err := s.connect(ctx, 1)
			if err != nil {
				return err
			}
			cmd := []any{"STORESTATUS"}
			if len(args) == 1 {
				cmd = append(cmd, args[0])
			}
			rows, err := c.Do(ctx, cmd...).Slice()
			if err != nil {
				return err
			}
			var list []map[string]string
			for _, r := range rows {
				f, _ := r.([]any)
				row := map[string]string{}
				for i := 0; i+1 < len(f); i += 2 {
					row[fmt.Sprint(f[i])] = fmt.Sprint(f[i+1])
				}
				list = append(list, row)
			}
			if s.json {
				if list == nil {
					list = []map[string]string{}
				}
				return s.printJSON(list)
			}
			if len(list) == 0 {
				_, err := fmt.Fprintln(s.io.Stdout, "no map uses a backing store on this node")
				return err
			}
			w := tabwriter.NewWriter(s.io.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "MAP\tMODE\tPENDING\tBYTES\tOLDEST\tWRITTEN\tDELETED\tFAILURES\tLOADS\tLAST ERROR")
			for _, r := range list {
				ms, _ := strconv.ParseInt(r["oldest_ms"], 10, 64)
				fail := r["failures"]
				if r["consecutive_failures"] != "0" {
					fail += " (" + r["consecutive_failures"] + " now)"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%.1fs\t%s\t%s\t%s\t%s\t%s\n", r["map"], r["mode"], r["pending"],
					r["pending_bytes"], float64(ms)/1000, r["written"], r["deleted"], fail, r["loads"], r["last_error"])
			}
			return w.Flush()
		}
	},
}
