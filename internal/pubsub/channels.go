package pubsub

import (
	"encoding/json"
	"strings"
)

// Channel names of events. Names starting with ReservedPrefix belong to
// Engram: clients cannot publish on them.
const (
	// ReservedPrefix begins every event channel.
	ReservedPrefix = "__engram"
	// MapPrefix begins the channels of map events:
	// "__engram@<map>__:write:<key>" and "__engram@<map>__:delete:<key>".
	MapPrefix = "__engram@"
	// NodeChannel carries node events (jc_node_events).
	NodeChannel = "__engram__:nodes"
)

// mapSep ends the map name in a map event channel.
const mapSep = "__:"

// Kind is the kind of a map event a channel carries.
type Kind string

// Map event kinds.
const (
	Write  Kind = "write"
	Delete Kind = "delete"
)

// IsReserved reports whether name is an event channel name (or pattern
// beginning), which clients cannot publish on.
func IsReserved(name string) bool { return strings.HasPrefix(name, ReservedPrefix) }

// MapChannel returns the channel of kind events of key in map m.
func MapChannel(m string, kind Kind, key string) string {
	return MapPrefix + m + mapSep + string(kind) + ":" + key
}

// MapPattern returns the pattern of kind events of every key of map m
// (kind "" for both kinds). Glob characters in m are escaped.
func MapPattern(m string, kind Kind) string {
	p := MapPrefix + EscapeGlob(m) + mapSep
	if kind == "" {
		return p + "*"
	}
	return p + string(kind) + ":*"
}

// EscapeGlob escapes the bytes of s that glob patterns give a meaning
// (* ? [ ] \), so the result matches s literally.
func EscapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ParseMapChannel splits a map event channel into its map, kind and key.
// The map name ends at the first "__:" (maps whose names contain "__:"
// cannot be told apart from their keys; subscribe to them by pattern).
func ParseMapChannel(ch string) (m string, kind Kind, key string, ok bool) {
	rest, ok := strings.CutPrefix(ch, MapPrefix)
	if !ok {
		return "", "", "", false
	}
	i := strings.Index(rest, mapSep)
	if i < 0 {
		return "", "", "", false
	}
	m, rest = rest[:i], rest[i+len(mapSep):]
	switch {
	case strings.HasPrefix(rest, "write:"):
		return m, Write, rest[len("write:"):], true
	case strings.HasPrefix(rest, "delete:"):
		return m, Delete, rest[len("delete:"):], true
	}
	return "", "", "", false
}

// literalPrefix returns the bytes a glob pattern matches literally before
// its first wildcard (escapes resolved), and whether the whole pattern is
// literal.
func literalPrefix(p string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*', '?', '[':
			return b.String(), false
		case '\\':
			if i+1 < len(p) {
				i++
				b.WriteByte(p[i])
			} else {
				b.WriteByte(c)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// patternScope says which channels a pattern may match: topics only, the
// events of one map (m), or any event channel.
type patternScope struct {
	event bool   // matches event channels (never topics)
	m     string // with event: the one map whose events it can match; "" = any
	mOK   bool
}

func scopeOf(pattern string) patternScope {
	lit, _ := literalPrefix(pattern)
	if !strings.HasPrefix(lit, ReservedPrefix) {
		return patternScope{}
	}
	sc := patternScope{event: true}
	if rest, ok := strings.CutPrefix(lit, MapPrefix); ok {
		if i := strings.Index(rest, mapSep); i >= 0 {
			sc.m, sc.mOK = rest[:i], true
		}
	}
	return sc
}

// NodeEvent is the payload of a message on NodeChannel, JSON encoded
// (jc's {nodeup|nodedown, Node, Active, Configured}).
type NodeEvent struct {
	// Event is "nodeup" or "nodedown".
	Event string `json:"event"`
	// Node is the member ID of the node that came up or went down.
	Node string `json:"node"`
	// Left is true when a node that went down left gracefully.
	Left bool `json:"left,omitempty"`
	// Active and Configured are the data nodes after the change, sorted.
	Active     []string `json:"active"`
	Configured []string `json:"configured"`
}

// Encode returns the event's JSON payload.
func (e NodeEvent) Encode() []byte {
	if e.Active == nil {
		e.Active = []string{}
	}
	if e.Configured == nil {
		e.Configured = []string{}
	}
	b, _ := json.Marshal(e)
	return b
}

// DecodeNodeEvent parses a NodeChannel payload.
func DecodeNodeEvent(b []byte) (NodeEvent, error) {
	var e NodeEvent
	err := json.Unmarshal(b, &e)
	return e, err
}

// Event types, as Decode names them.
const (
	TypeTopic  = "topic"
	TypeWrite  = "write"
	TypeDelete = "delete"
	TypeNode   = "node"
)

// Event is a delivered message with its channel decoded: what HTTP and
// the Go API hand to subscribers.
type Event struct {
	// Type is TypeTopic, TypeWrite, TypeDelete or TypeNode.
	Type string
	// Channel and Pattern are the message's (Pattern "" for a channel
	// subscription).
	Channel, Pattern string
	// Map and Key name the key of a map event.
	Map, Key string
	// Value is a topic message's payload or a write's new value.
	Value []byte
	// Reason says why a key was deleted: delete, expired, evicted or
	// cleared.
	Reason string
	// Node is a node event (nil otherwise).
	Node *NodeEvent
}

// Decode describes a message.
func Decode(m Message) Event {
	e := Event{Type: TypeTopic, Channel: m.Channel, Pattern: m.Pattern, Value: m.Payload}
	if mp, kind, key, ok := ParseMapChannel(m.Channel); ok {
		e.Map, e.Key = mp, key
		if kind == Write {
			e.Type = TypeWrite
		} else {
			e.Type, e.Reason, e.Value = TypeDelete, string(m.Payload), nil
		}
	} else if m.Channel == NodeChannel {
		if ne, err := DecodeNodeEvent(m.Payload); err == nil {
			e.Type, e.Node, e.Value = TypeNode, &ne, nil
		}
	}
	return e
}
