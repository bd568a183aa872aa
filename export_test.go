package engram

// Kill stops n as a crash would: a cluster member stops without handing
// its partitions over or telling the others it leaves, so they see a
// failure. For tests of failures only.
func Kill(n *Node) error { return n.close(false) }
