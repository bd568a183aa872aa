package server

import (
	"sync"

	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/ring"
)

// Pipelines in a cluster. A client that pipelines commands to a node that
// does not own their keys would wait one node-to-node round trip per
// command, one after the other. Instead, the commands already received
// are gathered (up to maxPipeline, stopping at the first that is not a
// single-partition key command: SELECT, ACK, multi-partition and
// whole-keyspace commands keep their place), the ones for each remote
// owner go in one message (cluster.ForwardBatch, run there in order), the
// owners are asked in parallel while local ones run here, and the replies
// are written in the client's order. Commands for one partition always go
// to one owner in their order; commands for different partitions are
// independent, as they are on Redis Cluster.

const maxPipeline = 128

// pipeItem is one gathered command.
type pipeItem struct {
	args  [][]byte
	cmd   *command
	p     int
	cc    *cluster.Command
	reply []byte
	done  bool
}

// batchable returns the command and partition of args if it may join a
// forwarded pipeline.
func (s *Server) batchable(c *conn, args [][]byte) (*command, int, bool) {
	if s.cl == nil || c.forwarded || !c.authed || len(args) == 0 || len(args[0]) > 32 {
		return nil, 0, false
	}
	cmd := s.cmds[lowerName(args[0])]
	if cmd == nil || (cmd.arity > 0 && len(args) != cmd.arity) || (cmd.arity < 0 && len(args) < -cmd.arity) {
		return nil, 0, false
	}
	r, ok := routes[cmd.name]
	if !ok || r.kind != routeKeys || (!cmd.write && c.readonly) {
		return nil, 0, false
	}
	if cmd.write && s.opts.Persist != nil && c.writeThrough() {
		return nil, 0, false // its reply waits for the store (afterWrite)
	}
	first, last := r.keyArgs(len(args))
	if first >= len(args) || last < first || (last-first+1)%r.step != 0 {
		return nil, 0, false
	}
	t := s.cl.Table()
	if t == nil {
		return nil, 0, false
	}
	p := t.PartitionOf(args[first])
	for i := first + r.step; i <= last; i += r.step {
		if t.PartitionOf(args[i]) != p {
			return nil, 0, false
		}
	}
	return cmd, p, true
}

func lowerName(b []byte) string {
	var lower [32]byte
	for i, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		lower[i] = ch
	}
	return string(lower[:len(b)])
}

// runPipeline runs first (batchable) and the batchable commands buffered
// after it, then the first other command read, if any.
func (s *Server) runPipeline(c *conn, first [][]byte) {
	cmd, p, _ := s.batchable(c, first)
	items := []*pipeItem{{args: first, cmd: cmd, p: p}}
	var next [][]byte
	for len(items) < maxPipeline {
		a, ok, err := c.rd.TryReadCommand()
		if err != nil || !ok {
			break // an error is returned again by the next ReadCommand
		}
		cmd, p, ok := s.batchable(c, a)
		if !ok {
			next = a
			break
		}
		items = append(items, &pipeItem{args: a, cmd: cmd, p: p})
	}
	if len(items) == 1 {
		s.dispatch(c, first)
	} else {
		s.runItems(c, items)
	}
	if next != nil {
		s.dispatch(c, next)
	}
}

func (s *Server) runItems(c *conn, items []*pipeItem) {
	byOwner := map[ring.NodeID][]*pipeItem{}
	var owners []ring.NodeID
	var local []*pipeItem
	for _, it := range items {
		it.cc = c.clusterCommand(it.cmd, it.args)
		it.cmd.calls.Add(1)
		owner, mine := s.cl.Owner(it.p)
		switch {
		case mine || owner == "":
			local = append(local, it)
		default:
			if byOwner[owner] == nil {
				owners = append(owners, owner)
			}
			byOwner[owner] = append(byOwner[owner], it)
		}
	}
	var wg sync.WaitGroup
	for _, owner := range owners {
		group := byOwner[owner]
		wg.Go(func() {
			batch := make([]cluster.BatchItem, len(group))
			for i, it := range group {
				batch[i] = cluster.BatchItem{P: it.p, C: it.cc}
			}
			results, err := s.cl.ForwardBatch(c.ctx(), owner, batch)
			if err != nil {
				return // all run one by one below
			}
			for i, r := range results {
				group[i].done = true
				if r.Err != nil {
					// Ran but not acknowledged by every replica: reply so,
					// never run it again.
					ec := &conn{proto: 2}
					ec.clusterErr(r.Err)
					group[i].reply = ec.out
					continue
				}
				group[i].reply = r.Reply
			}
		})
	}
	saved := c.out
	for _, it := range local {
		c.out = nil
		c.failed = false
		s.runPart(c, it.cmd, it.p, it.args)
		it.reply, it.done = c.out, true
	}
	wg.Wait()
	// What the owners did not run (the table changed, a replica was
	// slow...) runs now, one by one and in order: a group stopped at its
	// first failure, so nothing after it ran.
	for _, it := range items {
		if !it.done {
			c.out = nil
			c.failed = false
			s.runPart(c, it.cmd, it.p, it.args)
			it.reply, it.done = c.out, true
		}
	}
	c.out = saved
	c.failed = false
	for _, it := range items {
		c.out = append(c.out, it.reply...)
		if len(it.reply) > 0 && it.reply[0] == '-' {
			it.cmd.errors.Add(1)
			c.failed = true
		}
	}
}
