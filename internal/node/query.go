package node

import (
	"fmt"
	"slices"

	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/control"
	"github.com/engramdb/engram/internal/query"
)

// JSON query indexes in a cluster: a map's index definitions are part of
// its cluster configuration (control.MapConfig.Indexes), recorded through
// the Raft leader like the map's other settings and applied by every
// node, including nodes that join later. Each node builds its own indexes
// over the partitions it holds.

// Queries returns the node's JSON query and index manager.
func (n *Node) Queries() *query.Manager { return n.queries }

// setIndexConfig records that mapName gains (add) or loses an index on
// path cluster-wide (server IndexConfig).
func (c *clusterNode) setIndexConfig(mapName, path string, add, auto bool) error {
	ms := &mapSetting{Name: mapName, Setting: "index_del", Text: path}
	if add {
		ms.Setting = "index_add"
		if auto {
			ms.Value = 1
		}
	}
	if c.ctl.IsLeader() {
		return c.applyMapConfig(ms)
	}
	if err := c.toLeader(controlRequest{Map: ms}); err != nil {
		return fmt.Errorf("%w: cannot record the index in the control plane: %v", cluster.ErrUnreachable, err)
	}
	return nil
}

// mergeIndex returns list with the index_add or index_del setting ms
// applied (as the control plane's leader). It never changes list, which
// the control plane's state shares.
func mergeIndex(list []control.IndexDef, ms *mapSetting) []control.IndexDef {
	path, err := query.ParsePath(ms.Text)
	if err != nil {
		return list // the node asked checked it; nothing to record
	}
	out := slices.Clone(list)
	i := slices.IndexFunc(out, func(d control.IndexDef) bool { return d.Path == path })
	switch {
	case ms.Setting == "index_del" && i >= 0:
		out = slices.Delete(out, i, i+1)
	case ms.Setting == "index_add" && i < 0:
		out = append(out, control.IndexDef{Path: path, Auto: ms.Value == 1})
	case ms.Setting == "index_add" && ms.Value == 0:
		out[i].Auto = false // asked for explicitly: a user's index now
	}
	return out
}

// applyIndexes brings this node's indexes of mapName to the cluster's
// definitions.
func (c *clusterNode) applyIndexes(mapName string, defs []control.IndexDef) {
	q := c.n.queries
	if q == nil {
		return
	}
	want := make([]query.Def, len(defs))
	for i, d := range defs {
		want[i] = query.Def{Path: d.Path, Auto: d.Auto}
	}
	if slices.Equal(q.Defs(mapName), want) {
		return
	}
	if err := q.SetDefs(mapName, want); err != nil {
		c.log.Warn("cannot apply the map's indexes", "map", mapName, "err", err)
	}
}
