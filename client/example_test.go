package client_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/engramdb/engram"
	"github.com/engramdb/engram/client"
)

// Connect to a node and use a map. The node here runs in the same process
// only to keep the example self-contained; normally it is `engram serve`.
func ExampleDial() {
	node, err := engram.Open(engram.Config{RESPAddr: "127.0.0.1:0"})
	if err != nil {
		panic(err)
	}
	defer node.Close()
	ctx := context.Background()

	c, err := client.Dial(ctx, client.Options{Addr: node.RESPAddr()})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	users := c.Map("users") // SELECT users on each of this map's connections
	if err := users.Set(ctx, "42", []byte(`{"name":"Ada"}`), engram.TTL(time.Hour)); err != nil {
		panic(err)
	}
	v, err := users.Get(ctx, "42")
	fmt.Println(string(v), err)

	// The same errors as the embedded API.
	_, err = users.Get(ctx, "43")
	fmt.Println(errors.Is(err, engram.ErrNotFound))

	// The node sees what the client wrote.
	v, _ = node.Map("users").Get(ctx, "42")
	fmt.Println(string(v))
	// Output:
	// {"name":"Ada"} <nil>
	// true
	// {"name":"Ada"}
}

// Sequence-checked writes work the same over the network.
func ExampleMap_PutAll() {
	node, _ := engram.Open(engram.Config{RESPAddr: "127.0.0.1:0"})
	defer node.Close()
	ctx := context.Background()
	c, _ := client.Dial(ctx, client.Options{Addr: node.RESPAddr(), Protocol: 2})
	defer c.Close()
	m := c.Map("prices")

	n, err := m.PutAll(ctx, []engram.KV{
		{Key: "AAPL", Value: []byte("190.1")},
		{Key: "MSFT", Value: []byte("420.5")},
	}, engram.WithSeq(100), engram.TTL(time.Minute))
	fmt.Println(n, err)

	_, err = m.PutAll(ctx, []engram.KV{{Key: "AAPL", Value: []byte("1.0")}}, engram.WithSeq(99))
	fmt.Println(errors.Is(err, engram.ErrOutOfSequence))

	seqs, _ := c.Sequences(ctx)
	fmt.Println(seqs)
	// Output:
	// 2 <nil>
	// true
	// map[prices:100]
}
