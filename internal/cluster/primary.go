package cluster

// IsPrimary reports whether this node currently leads partition p (it
// accepts the partition's writes). It is one atomic load: the backing
// store asks it under a key's lock for every change of a map it records.
func (n *Node) IsPrimary(p int) bool {
	return p >= 0 && p < len(n.parts) && n.parts[p].primary.Load()
}
