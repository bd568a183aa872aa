package server

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/store"
)

// Sequence numbers (jc_s) in a cluster.
//
// On one node each store.Map keeps its own sequence, checked and recorded
// atomically with the write (Map.Set with SetOptions.HasSeq). In a
// cluster a map's sequence is cluster-wide: it is a record of the internal
// map seqMapName whose key is the map's name and whose value is the number
// in decimal. The record falls in the partition of the map's name, the
// map's "home" partition, so that partition's primary checks and records
// it, its replicas receive it through replication like any write, and it
// moves and fails over with the partition.
//
// A sequence-checked command (SETSEQ, DELSEQ, PUTALLSEQ, REMOVEITEMSSEQ)
// runs in three steps on the node the client is connected to:
//
//  1. its arguments are checked as on one node (syntax, sequence, expiry,
//     key and value limits), so bad input changes nothing;
//  2. SEQADVANCE map seq runs on the home partition's primary (a
//     replicated write, forwarded if needed): it refuses a lower number
//     with the single-node OUTOFSEQ text, and otherwise records it;
//  3. the write runs without the number (SET, DEL, PUTALL, REMOVEITEMS),
//     routed, split by partition and merged as those commands are.
//
// As in jc_s (jc_sequence:test_set, then the write), step 2 is atomic and
// step 3 follows it: a write refused in step 3 (OOM, MAPFULL, replicas
// too slow) leaves the sequence advanced, and two writers racing on one
// key may apply their writes in a different order than their numbers.
//
// SEQUENCE reads the record on the home primary (SEQGET); SEQUENCES
// scatters SEQALL over every primary, each answering for the records of
// the partitions it leads.

// seqMapName is the internal map holding the cluster's sequence numbers.
// Its name starts with a zero byte: clients cannot select it, and the
// store keeps it out of MAPS, FLUSH and eviction (store.IsInternal).
const seqMapName = "\x00seq"

// internalCommands are commands the cluster runs on another node's behalf
// (forwarded as argument vectors) or on this node, never commands of
// clients: they are not in the client command table.
func internalCommands() map[string]*command {
	list := []*command{
		// SEQADVANCE map seq: record seq as map's sequence unless it is
		// lower than the recorded one (then OUTOFSEQ, nothing changes).
		{name: "seqadvance", arity: 3, write: true, fn: cmdSeqAdvance},
		// SEQGET map: map's recorded sequence, or null.
		{name: "seqget", arity: 2, fn: cmdSeqGet},
		// SEQALL: every recorded sequence of the partitions this node
		// answers for, as a map.
		{name: "seqall", arity: 1, fn: cmdSeqAll},
	}
	t := make(map[string]*command, len(list))
	for _, c := range list {
		t[c.name] = c
	}
	return t
}

// seqMap returns the internal sequence map, creating it if needed.
func (s *Server) seqMap() *store.Map {
	m := s.st.Map(seqMapName)
	if m.MaxKeys() != 0 {
		// The default per-map key limit is for client maps: every map's
		// sequence must fit.
		m.SetMaxKeys(0)
	}
	return m
}

// parseStoredSeq reads a sequence record.
func parseStoredSeq(name, v []byte) (uint64, error) {
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("BUG: the stored sequence of map %q is not a number: %q", name, v)
	}
	return n, nil
}

func cmdSeqAdvance(c *conn, a [][]byte) {
	name := a[1]
	seq, err := strconv.ParseUint(string(a[2]), 10, 63)
	if err != nil {
		c.err("ERR sequence must be an integer between 0 and 9223372036854775807")
		return
	}
	err = c.s.seqMap().Mutate(name, func(cur store.Entry, exists bool) (store.Mutation, error) {
		if exists {
			old, err := parseStoredSeq(name, cur.Value)
			if err != nil {
				return store.Mutation{}, err
			}
			if seq < old {
				return store.Mutation{}, store.OutOfSequence(string(name), seq, old)
			}
			if seq == old {
				return store.Mutation{Action: store.Keep}, nil
			}
		}
		return store.Mutation{Action: store.Put, Value: strconv.AppendUint(nil, seq, 10)}, nil
	})
	if err != nil {
		c.storeErr(err)
		return
	}
	c.ok()
}

func cmdSeqGet(c *conn, a [][]byte) {
	m, ok := c.s.st.Lookup([]byte(seqMapName))
	if !ok {
		c.null()
		return
	}
	v, ok := m.Get(nil, a[1])
	if !ok {
		c.null()
		return
	}
	n, err := parseStoredSeq(a[1], v)
	if err != nil {
		c.storeErr(err)
		return
	}
	c.int(int64(n))
}

func cmdSeqAll(c *conn, _ [][]byte) {
	seqs := map[string]uint64{}
	if m, ok := c.s.st.Lookup([]byte(seqMapName)); ok {
		for _, kv := range m.ItemsIn(c.parts, nil, 0) {
			n, err := parseStoredSeq(kv.Key, kv.Value)
			if err != nil {
				c.storeErr(err)
				return
			}
			seqs[string(kv.Key)] = n
		}
	}
	names := sortedKeys(seqs)
	c.mapHeader(len(names))
	for _, n := range names {
		c.bulkString(n)
		c.int(int64(seqs[n]))
	}
}

// clusterSeq runs the sequence commands of a client in a cluster (see
// above). It reports false for other commands.
func (s *Server) clusterSeq(c *conn, cmd *command, args [][]byte) bool {
	switch cmd.name {
	case "setseq":
		o, ok := parseSetSeq(c, args)
		if !ok {
			return true
		}
		if err := c.m.CheckLimits(args[2], len(args[3])); err != nil {
			c.storeErr(err)
			return true
		}
		s.seqWrite(c, o.Seq, "set", args[2:])
	case "putallseq":
		o, items, ok := parsePutAll(c, args, true)
		if !ok {
			return true
		}
		for _, it := range items {
			if err := c.m.CheckLimits(it.Key, len(it.Value)); err != nil {
				c.storeErr(err)
				return true
			}
		}
		s.seqWrite(c, o.Seq, "putall", args[2:])
	case "delseq":
		if seq, ok := parseSeq(c, args[1]); ok {
			s.seqWrite(c, seq, "del", args[2:])
		}
	case "removeitemsseq":
		if seq, ok := parseSeq(c, args[1]); ok {
			s.seqWrite(c, seq, "removeitems", args[2:])
		}
	case "sequence":
		s.clusterSequence(c, args)
	case "sequences":
		s.clusterSequences(c)
	default:
		return false
	}
	return true
}

// seqWrite advances the selected map's sequence to seq and, if that was
// accepted, runs the client command name with rest as its arguments.
func (s *Server) seqWrite(c *conn, seq uint64, name string, rest [][]byte) {
	t := s.cl.Table()
	if t == nil {
		c.err("TRYAGAIN this node has no partition table yet (joining the cluster)")
		return
	}
	m := []byte(c.m.Name())
	reply, ok := s.runInternal(c, t.PartitionOf(m), [][]byte{[]byte("SEQADVANCE"), m, strconv.AppendUint(nil, seq, 10)})
	if !ok {
		return
	}
	if len(reply) > 0 && reply[0] == '-' {
		c.out = append(c.out, reply...)
		c.failed = true
		return
	}
	cmd := s.cmds[name]
	args := append([][]byte{[]byte(name)}, rest...)
	s.runKeys(c, cmd, routes[name], args)
}

// runInternal runs the internal command args on partition p's primary
// (here, or forwarded there) and returns its reply. It reports false
// after replying with a cluster failure.
func (s *Server) runInternal(c *conn, p int, args [][]byte) ([]byte, bool) {
	cmd := s.internal[string(bytes.ToLower(args[0]))]
	cc := &cluster.Command{Map: seqMapName, Args: args, RESP3: c.proto == 3, Write: cmd.write, Ack: c.ack}
	mark := len(c.out)
	reply, err := s.cl.Run(c.ctx(), p, cc, func() {
		c.out = c.out[:mark]
		cmd.fn(c, args)
	})
	if err == nil && reply == nil {
		reply = bytes.Clone(c.out[mark:])
	}
	c.out = c.out[:mark]
	c.failed = false
	if err != nil {
		c.clusterErr(err)
		return nil, false
	}
	return reply, true
}

// clusterSeqOf returns map name's cluster-wide sequence. It reports false
// after replying with an error.
func (s *Server) clusterSeqOf(c *conn, name []byte) (seq uint64, has, ok bool) {
	t := s.cl.Table()
	if t == nil {
		c.err("TRYAGAIN this node has no partition table yet (joining the cluster)")
		return 0, false, false
	}
	reply, ok := s.runInternal(c, t.PartitionOf(name), [][]byte{[]byte("SEQGET"), name})
	if !ok {
		return 0, false, false
	}
	v, err := parseReply(reply)
	switch {
	case err != nil:
		c.err("ERR cannot read a cluster reply: " + err.Error())
		return 0, false, false
	case v.Kind == '-' || v.Kind == '!':
		c.out = append(c.out, reply...)
		c.failed = true
		return 0, false, false
	case v.Kind == ':':
		return uint64(v.Int), true, true
	}
	return 0, false, true
}

// clusterSequence is SEQUENCE [map] in a cluster.
func (s *Server) clusterSequence(c *conn, a [][]byte) {
	name := []byte(c.m.Name())
	switch {
	case len(a) > 2:
		c.err(errSyntax)
		return
	case len(a) == 2:
		if store.IsInternal(string(a[1])) {
			c.err(errInternalMap)
			return
		}
		name = a[1]
	}
	seq, has, ok := s.clusterSeqOf(c, name)
	switch {
	case !ok:
	case has:
		c.int(int64(seq))
	default:
		c.null()
	}
}

// clusterSequences is SEQUENCES in a cluster: every primary answers for
// the records of the partitions it leads.
func (s *Server) clusterSequences(c *conn) {
	cmd := s.internal["seqall"]
	args := [][]byte{[]byte("SEQALL")}
	cc := &cluster.Command{Map: seqMapName, Args: args, RESP3: c.proto == 3}
	replies, err := s.cl.Scatter(c.ctx(), cc, func(parts []int) ([]byte, error) {
		return s.execScatter(c.ctx(), c, cmd, parts, cc, args)
	})
	if err != nil {
		c.clusterErr(err)
		return
	}
	seqs := map[string]int64{}
	for _, b := range replies {
		v, err := parseReply(b)
		if err != nil {
			c.err("ERR cannot merge cluster replies: " + err.Error())
			return
		}
		if v.Kind == '-' || v.Kind == '!' {
			c.out = append(c.out, b...)
			c.failed = true
			return
		}
		for i := 0; i+1 < len(v.Elems); i += 2 {
			seqs[string(v.Elems[i].Str)] = v.Elems[i+1].Int
		}
	}
	names := sortedKeys(seqs)
	c.mapHeader(len(names))
	for _, n := range names {
		c.bulkString(n)
		c.int(seqs[n])
	}
}
