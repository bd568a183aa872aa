package server

import (
	"fmt"
	"strings"

	"github.com/engramdb/engram/internal/keyhash"
)

// CLUSTER INFO | NODES | MYID | KEYSLOT key | PARTITIONS | OWNERS key
func cmdCluster(c *conn, a [][]byte) {
	sub := strings.ToLower(string(a[1]))
	if sub == "keyslot" {
		if len(a) != 3 {
			c.errorf("ERR wrong number of arguments for 'cluster|keyslot' command")
			return
		}
		c.int(int64(keyhash.Partition(keyhash.Sum(a[2]), c.s.st.Partitions())))
		return
	}
	if c.s.opts.ClusterView == nil {
		c.err("ERR This instance has cluster support disabled (start it with --cluster-secret to form a cluster)")
		return
	}
	v := c.s.opts.ClusterView(sub == "partitions" || sub == "owners")
	switch {
	case sub == "info" && len(a) == 2:
		var b strings.Builder
		data := 0
		for _, m := range v.Members {
			if m.Role == "data" && m.Alive {
				data++
			}
		}
		fmt.Fprintf(&b, "cluster_state:%s\r\n", v.State)
		if v.Reason != "" {
			fmt.Fprintf(&b, "cluster_state_reason:%s\r\n", v.Reason)
		}
		fmt.Fprintf(&b, "cluster_epoch:%d\r\ncluster_my_id:%s\r\ncluster_leader:%s\r\n", v.Epoch, v.MyID, v.Leader)
		if v.Cluster != "" {
			fmt.Fprintf(&b, "cluster_id:%s\r\n", v.Cluster)
		}
		fmt.Fprintf(&b, "cluster_known_nodes:%d\r\ncluster_data_nodes:%d\r\n", len(v.Members), data)
		fmt.Fprintf(&b, "cluster_partitions:%d\r\ncluster_replicas:%d\r\ncluster_migrations:%d\r\n", v.Partitions, v.Replicas, v.Migrations)
		for _, s := range v.Syncing {
			fmt.Fprintf(&b, "sync_partition_%d:to=%s,sent=%d,total=%d\r\n", s.Partition, s.To, s.Sent, s.Total)
		}
		c.bulkString(b.String())
	case sub == "nodes" && len(a) == 2:
		// One line per member: id resp-addr data-addr role state manager
		// primaries replicas (myself marked).
		var b strings.Builder
		for _, m := range v.Members {
			state := "alive"
			if !m.Alive {
				state = "failed"
			}
			mgr := "-"
			if m.Manager {
				mgr = "manager"
			}
			self := ""
			if m.ID == v.MyID {
				self = ",myself"
			}
			if m.ID == v.Leader {
				self += ",leader"
			}
			fmt.Fprintf(&b, "%s %s %s %s%s %s %s primaries=%d replicas=%d\n", m.ID, dash(m.RESPAddr), dash(m.DataAddr),
				m.Role, self, state, mgr, m.Primaries, m.Replicas)
		}
		c.bulkString(b.String())
	case sub == "myid" && len(a) == 2:
		c.bulkString(v.MyID)
	case sub == "partitions" && len(a) == 2:
		c.array(len(v.Owners))
		for p, own := range v.Owners {
			c.array(2)
			c.int(int64(p))
			c.array(len(own))
			for _, o := range own {
				c.bulkString(o)
			}
		}
	case sub == "owners" && len(a) == 3:
		p := keyhash.Partition(keyhash.Sum(a[2]), c.s.st.Partitions())
		if p >= len(v.Owners) {
			c.err("CLUSTERDOWN no partition table yet")
			return
		}
		c.array(len(v.Owners[p]))
		for _, o := range v.Owners[p] {
			c.bulkString(o)
		}
	case sub == "help":
		lines := []string{
			"CLUSTER <subcommand> [<arg> ...]. Subcommands are:",
			"INFO", "    State, epoch, leader, members, partitions, migrations in progress.",
			"NODES", "    One line per member: id, RESP and data addresses, role, state, manager, load.",
			"MYID", "    This node's member ID.",
			"KEYSLOT <key>", "    The partition of <key>.",
			"OWNERS <key>", "    The owners of <key>'s partition, primary first.",
			"PARTITIONS", "    Every partition with its owners.",
		}
		c.array(len(lines))
		for _, l := range lines {
			c.simple(l)
		}
	default:
		c.errorf("ERR unknown subcommand or wrong number of arguments for '%s'. Try CLUSTER HELP.", trunc(a[1]))
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
