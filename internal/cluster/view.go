package cluster

// View is the cluster as admin commands and endpoints show it (CLUSTER
// INFO / NODES, GET /v1/cluster). The node composing the cluster fills it
// from the control plane's state and this node's data plane.
type View struct {
	// State is "ok" when this node has a partition table and its lease,
	// else "fail" with Reason.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Epoch is the partition table's epoch.
	Epoch uint64 `json:"epoch"`
	// MyID is this node's member ID; Leader the control plane leader's.
	MyID   string `json:"my_id"`
	Leader string `json:"leader"`
	// Cluster is the cluster's identity (named by the node that started
	// it; "" while a joining node has met no member).
	Cluster string `json:"cluster,omitempty"`
	// Partitions and Replicas (copies, primary included) of the table.
	Partitions int `json:"partitions"`
	Replicas   int `json:"replicas"`
	// Migrations counts partition copies still being filled (rebalancing
	// progress: 0 when the table has reached its target).
	Migrations int `json:"migrations"`
	// Syncing lists this node's outgoing copies in progress.
	Syncing []SyncView `json:"syncing,omitempty"`
	// Members, sorted by ID.
	Members []MemberView `json:"members"`
	// Owners[p] lists partition p's owners, the primary first (only when
	// asked for: it is long).
	Owners [][]string `json:"owners,omitempty"`
}

// SyncView is one copy of a partition being sent by this node.
type SyncView struct {
	Partition int    `json:"partition"`
	To        string `json:"to"`
	Sent      int64  `json:"sent"`
	Total     int64  `json:"total"`
}

// MemberView is one member of the cluster.
type MemberView struct {
	ID        string `json:"id"`
	RESPAddr  string `json:"resp,omitempty"`
	HTTPAddr  string `json:"http,omitempty"`
	DataAddr  string `json:"data,omitempty"`
	Role      string `json:"role"` // data or client
	Alive     bool   `json:"alive"`
	Manager   bool   `json:"manager"` // votes in the control plane
	Primaries int    `json:"primaries"`
	Replicas  int    `json:"replicas"`
}
