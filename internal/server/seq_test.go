package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/ring"
)

func outOfSeq(m string, seq, cur int) string {
	return fmt.Sprintf("-OUTOFSEQ out of sequence: sequence %d is lower than map %q's current %d", seq, m, cur)
}

// keysLedBy returns, for each node of c, a key of map "0" whose partition
// that node leads, none in the partition of the map's name.
func keysLedBy(t *testing.T, c *testCluster) []string {
	t.Helper()
	tbl := c.nodes[0].Table()
	home := tbl.PartitionOf([]byte("0"))
	keys := make([]string, len(c.ids))
	for i := 0; slices.Contains(keys, ""); i++ {
		if i > 10000 {
			t.Fatal("no key for every node")
		}
		k := fmt.Sprintf("k%d", i)
		p := tbl.PartitionOf([]byte(k))
		if j := slices.Index(c.ids, tbl.Primary(p)); p != home && keys[j] == "" {
			keys[j] = k
		}
	}
	return keys
}

// A map's sequence is one number for the whole cluster: advanced through
// any node by writes to keys of any partition, it refuses a lower number
// through every node.
func TestClusterSequences(t *testing.T) {
	c := startCluster(t, "")
	keys := keysLedBy(t, c)
	var cls []*client
	for _, ts := range c.servers {
		cls = append(cls, ts.dial(t))
	}
	cls[0].must("+OK", "SETSEQ", "5", keys[1], "a")
	cls[1].must(":1", "DELSEQ", "6", keys[1], keys[2])
	// Keys of three partitions (and primaries): once refused with CROSSSLOT.
	cls[2].must(":3", "PUTALLSEQ", "7", "0", keys[0], "x", keys[1], "y", keys[2], "z")
	cls[0].must(fmt.Sprintf("[%q %q]", keys[0], "x"), "REMOVEITEMSSEQ", "8", keys[0], "nosuch")
	for i, cl := range cls {
		cl.must(outOfSeq("0", 7, 8), "SETSEQ", "7", keys[i], "stale")
		cl.must(outOfSeq("0", 7, 8), "DELSEQ", "7", keys[1], keys[2])
		cl.must(outOfSeq("0", 1, 8), "PUTALLSEQ", "1", "0", keys[0], "stale", keys[2], "stale")
		cl.must(outOfSeq("0", 0, 8), "REMOVEITEMSSEQ", "0", keys[1])
		cl.must(`[(nil) "y" "z"]`, append([]string{"MGET"}, keys...)...)
		cl.must(":8", "SEQUENCE")
		cl.must(":8", "SEQUENCE", "0")
		cl.must("(nil)", "SEQUENCE", "nosuch")
		cl.must(`["0" :8]`, "SEQUENCES")
		if got, want := cl.doS("MAPINFO"), `~\["name" "0" "keys" :[0-9]+ "bytes" :[0-9]+ "max_ttl" :0 "max_keys" :0 "sequence" :8\]`; !matches(got, want) {
			t.Errorf("MAPINFO: got %s, want %s", got, want)
		}
	}
	// The number is a record of the map's home partition, on its primary
	// and its replica only.
	tbl := c.nodes[0].Table()
	home := tbl.PartitionOf([]byte("0"))
	for i, ts := range c.servers {
		m, ok := ts.st.Lookup([]byte(seqMapName))
		has := ok && m.Contains([]byte("0"))
		if want := slices.Contains(tbl.Owners[home], c.ids[i]); has != want {
			t.Errorf("node %s holds the sequence record: %v, want %v", c.ids[i], has, want)
		}
	}

	// Maps have their own numbers, wherever their home partitions are.
	cls[1].must("+OK", "SELECT", "other")
	cls[1].must("+OK", "SETSEQ", "1", keys[0], "v")
	cls[2].must(`["0" :8 "other" :1]`, "SEQUENCES")
	cls[2].do("HELLO", "3")
	cls[2].must(`%["0" :8 "other" :1]`, "SEQUENCES")
	cls[2].must("_", "SEQUENCE", "nosuch")
	cls[0].must(":1", "SEQUENCE", "other")

	// Arguments are checked before the number is recorded: bad input
	// changes nothing. (Limits are the connected node's.)
	cl := cls[0]
	cl.must("+OK", "CONFIG", "SET", "max-value-len", "2")
	runSteps(t, cl, nil, []step{
		{"SETSEQ 9 " + keys[1] + " 123", "-ERR value too large: 3 bytes, the limit is 2"},
		{"PUTALLSEQ 9 0 " + keys[0] + " 1 " + keys[1] + " 123", "-ERR value too large: 3 bytes, the limit is 2"},
		{"PUTALLSEQ 9 0 " + keys[0] + " 1 " + keys[1], arity("putallseq")},
		{"PUTALLSEQ 9 x " + keys[0] + " 1", "-ERR ttl must be a non-negative integer of seconds (0 = none)"},
		{"SETSEQ 9 k v EX 0", badExpire("setseq")},
		{"SETSEQ 9 k v NX", errSyntaxR},
		{"SETSEQ -9 k v", "-ERR sequence must be an integer between 0 and 9223372036854775807"},
		{"DELSEQ x k", "-ERR sequence must be an integer between 0 and 9223372036854775807"},
		{"SEQUENCE", ":8"},
		{"SEQUENCE 0 1", errSyntaxR},
		{"MGET " + strings.Join(keys, " "), `[(nil) "y" "z"]`},
		{"SETSEQ 9 " + keys[1] + " 12 PX 1500", "+OK"},
		{"PTTL " + keys[1], ":1500"},
		{"SEQUENCE", ":9"},
	})
	// Internal records stay out of the listings and survive FLUSH.
	cl.must("+OK", "FLUSHALL")
	cl.must("+OK", "FLUSH")
	cl.must(`["0" "other"]`, "MAPS")
	cl.must(`[["0" :0 :0] ["other" :0 :0]]`, "CACHESIZE")
	cl.must(":9", "SEQUENCE")
	cls[1].must(":1", "SEQUENCE")
	cls[1].must(outOfSeq("other", 0, 1), "SETSEQ", "0", "k", "v")
}

// Writers racing through every node: a number lower than one already
// accepted is always refused, and the map ends at the highest accepted.
func TestClusterSequenceRace(t *testing.T) {
	c := startCluster(t, "")
	keys := keysLedBy(t, c)
	var (
		mu       sync.Mutex
		high     int // highest number accepted by a finished command
		accepted []int
		refused  []int
		wg       sync.WaitGroup
	)
	for g, ts := range c.servers {
		cl := ts.dial(t)
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range 60 {
				seq := rng.IntN(300)
				mu.Lock()
				before := high
				mu.Unlock()
				var v string
				switch rng.IntN(3) {
				case 0:
					v = cl.doS("SETSEQ", strconv.Itoa(seq), keys[rng.IntN(len(keys))], "v")
				case 1:
					v = cl.doS("DELSEQ", strconv.Itoa(seq), keys[rng.IntN(len(keys))])
				default:
					v = cl.doS("PUTALLSEQ", strconv.Itoa(seq), "0", keys[0], "a", keys[1], "b", keys[2], "c")
				}
				mu.Lock()
				switch {
				case strings.HasPrefix(v, "-OUTOFSEQ"):
					refused = append(refused, seq)
				case strings.HasPrefix(v, "-"):
					t.Errorf("%d: %s", seq, v)
				default:
					if seq < before {
						t.Errorf("sequence %d accepted after %d was", seq, before)
					}
					accepted = append(accepted, seq)
					high = max(high, seq)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(accepted) == 0 || len(refused) == 0 {
		t.Fatalf("%d accepted, %d refused: the race did not happen", len(accepted), len(refused))
	}
	top := slices.Max(accepted)
	for _, r := range refused {
		if r >= top {
			t.Errorf("sequence %d refused, but the highest accepted is %d", r, top)
		}
	}
	for _, ts := range c.servers {
		ts.dial(t).must(":"+strconv.Itoa(top), "SEQUENCE")
	}
}

// A map's number survives the failure of its home partition's primary:
// the replica it was replicated to takes over.
func TestClusterSequenceFailover(t *testing.T) {
	c := startCluster(t, "")
	t1 := c.nodes[0].Table()
	const name = "orders"
	home := t1.PartitionOf([]byte(name))
	primary, replica := t1.Owners[home][0], t1.Owners[home][1]
	other := slices.IndexFunc(c.ids, func(id ring.NodeID) bool { return id != primary && id != replica })
	cl := c.servers[other].dial(t)
	cl.must("+OK", "SELECT", name)
	cl.must("+OK", "SETSEQ", "10", "k", "v")

	c.network.Kill(c.addrs[primary])
	var survivors []ring.NodeID
	for _, id := range c.ids {
		if id != primary {
			survivors = append(survivors, id)
		}
	}
	t2, err := ring.Assign(t1, survivors, t1.Partitions(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if t2.Primary(home) != replica {
		t.Fatalf("the new table gives partition %d to %s, not its replica %s", home, t2.Primary(home), replica)
	}
	for _, id := range survivors {
		if err := c.nodes[slices.Index(c.ids, id)].SetTable(t2, c.addrs); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range survivors {
		x := c.servers[slices.Index(c.ids, id)].dial(t)
		x.must("+OK", "SELECT", name)
		x.must(":10", "SEQUENCE")
		x.must(outOfSeq(name, 9, 10), "SETSEQ", "9", "k", "stale")
		x.must(`"v"`, "GET", "k")
	}
	cl.must("+OK", "SETSEQ", "11", "k", "w")
	cl.must(`["orders" :11]`, "SEQUENCES")
	c.servers[slices.Index(c.ids, replica)].dial(t).must(`[`+strconv.Quote(name)+` :11]`, "SEQUENCES")
}

// The HTTP and Go APIs cannot reach internal maps either.
func TestDoRefusesInternalMaps(t *testing.T) {
	c := startCluster(t, "")
	srv := c.servers[0].srv
	got := string(srv.Do(context.Background(), seqMapName, [][]byte{[]byte("SET"), []byte("0"), []byte("1")}, false, cluster.AckAll, false))
	if want := "-" + errInternalMap + "\r\n"; got != want {
		t.Fatalf("Do on the sequence map: %q, want %q", got, want)
	}
	for _, ts := range c.servers {
		if _, ok := ts.st.Lookup([]byte(seqMapName)); ok {
			t.Fatal("the sequence map was created")
		}
	}
}
