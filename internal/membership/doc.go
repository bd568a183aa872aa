// Package membership tells a node who else is in the cluster and whether
// they are alive. It is the only importer of hashicorp/memberlist (SWIM
// gossip with suspicion and indirect probes): failure detection is a solved
// problem we do not rewrite.
//
// Each node gossips a small Meta (its data, RESP and HTTP addresses and
// role). Gossip is encrypted and authenticated with a key derived from the
// cluster's shared secret, so a node without the secret cannot join or read
// the traffic. Events (join, leave, fail, update) go to one callback in
// order. It must not import the cluster, control or store packages.
package membership
