package node

import (
	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/pubsub"
	"github.com/engramdb/engram/internal/store"
)

// PubSub returns the node's pub/sub hub: subscribe to topics, map events
// and node events of the whole cluster through it (docs/pubsub.md).
func (n *Node) PubSub() *pubsub.Hub { return n.hub }

// pubsubObserver returns the store observer feeding the hub map events:
// the hub itself on a standalone node; on a cluster member, one that
// passes on only the events of partitions this node leads (and ships
// them to the nodes whose subscribers want them), bound in wirePubSub.
func (n *Node) pubsubObserver() store.Observer {
	if n.cluster == nil {
		return n.hub
	}
	n.psObs = cluster.NewPubSubObserver()
	return n.psObs
}

// wirePubSub connects the hub to the cluster (after the data plane is
// composed): map events from other nodes' primaries, topic messages
// across nodes, and node events from this node's gossip.
func (n *Node) wirePubSub() error {
	if n.cluster == nil {
		return nil
	}
	if err := n.cluster.data.EnablePubSub(n.hub, n.psObs); err != nil {
		return err
	}
	n.cluster.subscribe(func(ev NodeEvent) {
		e := pubsub.NodeEvent{Event: "nodedown", Node: ev.Node, Left: ev.Left, Active: ev.Active, Configured: ev.Configured}
		if ev.Up {
			e.Event = "nodeup"
		}
		n.hub.NodeEvent(e)
	})
	return nil
}
