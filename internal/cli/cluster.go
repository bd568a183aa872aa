package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
)

var clusterCmd = &command{
	name: "cluster", summary: "show the cluster: state, epoch, leader, migrations and members",
	minArgs: 0, maxArgs: 0,
	details: `Prints CLUSTER INFO and CLUSTER NODES of the node it connects to: the
cluster's state (ok, or fail with the reason), the partition table's epoch,
the control plane's leader, copies still being filled (migrations) and one
line per member (ID, RESP and data addresses, role, alive or failed, load).
--json prints the same as an object. On a standalone node it says so and
exits 1.`,
	setup: func(fs *flag.FlagSet) func(context.Context, *session, []string) error {
		return func(ctx context.Context, s *session, _ []string) error {
			c, err := s.connect(ctx, 1)
			if err != nil {
				return err
			}
			info, err := c.Do(ctx, "CLUSTER", "INFO").Text()
			if err != nil {
				return err
			}
			nodes, err := c.Do(ctx, "CLUSTER", "NODES").Text()
			if err != nil {
				return err
			}
			if s.json {
				fields := map[string]string{}
				for _, l := range strings.Split(strings.TrimSpace(info), "\r\n") {
					if k, v, ok := strings.Cut(l, ":"); ok {
						fields[k] = v
					}
				}
				return s.printJSON(map[string]any{"info": fields, "nodes": strings.Split(strings.TrimSpace(nodes), "\n")})
			}
			_, err = fmt.Fprintf(s.io.Stdout, "%s\n%s", strings.ReplaceAll(strings.TrimSpace(info), "\r\n", "\n"), nodes)
			return err
		}
	},
}
