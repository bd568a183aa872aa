package server

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// cmdCase is a scripted session on one fresh connection to a fresh server.
type cmdCase struct {
	name  string
	steps []step
	// engramOnly marks cases real Redis cannot run: they move the fake
	// clock, use Engram's own commands, or pin a deliberate difference
	// (each listed in docs/commands.md). Every other case also runs
	// against redis-server in TestCommandsMatchRedis, which is what keeps
	// the expectations here honest.
	engramOnly bool
	// password, if set, is required by the server (--password, requirepass).
	password string
}

// Expected HELLO replies. The version differs between Redis releases and
// Engram, and the id between connections.
const (
	hello2 = `~\["server" "redis" "version" "[0-9.]+" "proto" :2 "id" :[0-9]+ "mode" "standalone" "role" "master" "modules" \[\]\]`
	hello3 = `~%\["server" "redis" "version" "[0-9.]+" "proto" :3 "id" :[0-9]+ "mode" "standalone" "role" "master" "modules" \[\]\]`

	errSyntaxR   = "-ERR syntax error"
	errNotIntR   = "-ERR value is not an integer or out of range"
	errNotFloatR = "-ERR value is not a valid float"
	errNoAuthR   = "-NOAUTH Authentication required."
	errWrongPwR  = "-WRONGPASS invalid username-password pair or user is disabled."
)

func arity(cmd string) string { return "-ERR wrong number of arguments for '" + cmd + "' command" }
func badExpire(cmd string) string {
	return "-ERR invalid expire time in '" + cmd + "' command"
}

// ts returns the fake clock's time plus secs, in Unix seconds, as text.
func ts(secs int64) string { return strconv.FormatInt(startMs/1000+secs, 10) }

// tms is ts in milliseconds.
func tms(ms int64) string { return strconv.FormatInt(startMs+ms, 10) }

// redisCommandCases are the Redis commands Engram implements, each checked
// against Redis's documented behaviour.
func redisCommandCases() []cmdCase {
	return []cmdCase{
		{name: "GET SET", steps: []step{
			{"GET k", "(nil)"},
			{"SET k v", "+OK"},
			{"GET k", `"v"`},
			{`SET k ""`, "+OK"},
			{"GET k", `""`},
			{"set K v2", "+OK"}, // command names are case-insensitive, keys are not
			{"GET k", `""`},
			{"GET K", `"v2"`},
			{"GET", arity("get")},
			{"GET a b", arity("get")},
			{"SET k", arity("set")},
		}},
		{name: "SET NX XX", steps: []step{
			{"SET k v NX", "+OK"},
			{"SET k w NX", "(nil)"},
			{"GET k", `"v"`},
			{"SET k w XX", "+OK"},
			{"GET k", `"w"`},
			{"SET n v XX", "(nil)"},
			{"EXISTS n", ":0"},
			{"SET k x nx NX", "(nil)"}, // repeating an option is allowed
			{"SET k x xx XX", "+OK"},
			{"GET k", `"x"`},
		}},
		{name: "SET GET", steps: []step{
			{"SET k v GET", "(nil)"},
			{"SET k w GET", `"v"`},
			{"SET k x NX GET", `"w"`}, // NX fails, the old value is still returned
			{"GET k", `"w"`},
			{"SET m x XX GET", "(nil)"},
			{"EXISTS m", ":0"},
			{"SET k y GET GET", `"w"`},
		}},
		{name: "SET option errors change nothing", steps: []step{
			{"SET k v NX XX", errSyntaxR},
			{"SET k v XX NX", errSyntaxR},
			{"SET k v EX 10 PX 100", errSyntaxR},
			{"SET k v KEEPTTL EX 10", errSyntaxR},
			{"SET k v EX 10 KEEPTTL", errSyntaxR},
			{"SET k v EXAT 10 PXAT 10", errSyntaxR},
			{"SET k v EX", errSyntaxR},
			{"SET k v FOO", errSyntaxR},
			{"SET k v EX abc NX XX", errSyntaxR}, // syntax is checked before the number
			{"SET k v EX abc", errNotIntR},
			{"SET k v EX 1.5", errNotIntR},
			{"SET k v EX 010", errNotIntR},
			{"SET k v EX 0", badExpire("set")},
			{"SET k v EX -1", badExpire("set")},
			{"SET k v PX 0", badExpire("set")},
			{"SET k v EXAT 0", badExpire("set")},
			{"SET k v PXAT -5", badExpire("set")},
			{"SET k v EX 9223372036854775807", badExpire("set")},
			{"SET k v PX 9223372036854775807", badExpire("set")},
			{"GET k", "(nil)"},
			{"DBSIZE", ":0"},
		}},
		{name: "SET expiry options", steps: []step{
			{"SET k v EX 100", "+OK"},
			{"TTL k", `~:[1-9][0-9]*`},
			{"SET k v", "+OK"}, // a plain SET drops the TTL
			{"TTL k", ":-1"},
			{"SET k v PX 100000", "+OK"},
			{"PTTL k", `~:[1-9][0-9]*`},
			{"SET k v EXAT 99999999999", "+OK"},
			{"EXPIRETIME k", ":99999999999"},
			{"SET k v PXAT 99999999999123", "+OK"},
			{"PEXPIRETIME k", ":99999999999123"},
			{"SET k v EX 10 EX 99999", "+OK"}, // the last one wins
			{"TTL k", `~:999[0-9][0-9]`},
			{"SET k v KEEPTTL KEEPTTL", "+OK"},
			{"TTL k", `~:999[0-9][0-9]`},
			{"SET gone v EXAT 1", "+OK"}, // in the past: set and already expired
			{"GET gone", "(nil)"},
			{"EXISTS gone", ":0"},
		}},
		{name: "SET expiry on the clock", engramOnly: true, steps: []step{
			{"SET k v EX 10", "+OK"},
			{"TTL k", ":10"},
			{"PTTL k", ":10000"},
			{"@advance 9999", ""},
			{"GET k", `"v"`},
			{"PTTL k", ":1"},
			{"@advance 1", ""},
			{"GET k", "(nil)"},
			{"TTL k", ":-2"},
			{"EXISTS k", ":0"},
			{"SET k v PX 1500", "+OK"},
			{"PTTL k", ":1500"},
			{"TTL k", ":2"}, // rounded to the nearest second, as Redis does
			// The clock is now 10s past the start.
			{"SET k v EXAT " + ts(110), "+OK"},
			{"TTL k", ":100"},
			{"SET k v PXAT " + tms(12500), "+OK"},
			{"PTTL k", ":2500"},
			{"SET k v EX 10 EX 20", "+OK"},
			{"TTL k", ":20"},
		}},
		{name: "SET KEEPTTL", engramOnly: true, steps: []step{
			{"SET k v EX 100", "+OK"},
			{"@advance 1000", ""},
			{"SET k w KEEPTTL", "+OK"},
			{"TTL k", ":99"},
			{"GET k", `"w"`},
			{"SET k x KEEPTTL GET", `"w"`},
			{"TTL k", ":99"},
			{"SET k x", "+OK"},
			{"TTL k", ":-1"},
			{"SET new v KEEPTTL", "+OK"},
			{"TTL new", ":-1"},
		}},
		{name: "SETNX", steps: []step{
			{"SETNX k v", ":1"},
			{"SETNX k w", ":0"},
			{"GET k", `"v"`},
			{"SETNX k", arity("setnx")},
		}},
		{name: "SETEX PSETEX", steps: []step{
			{"SETEX k 100 v", "+OK"},
			{"GET k", `"v"`},
			{"TTL k", `~:[1-9][0-9]*`},
			{"PSETEX p 100000 v", "+OK"},
			{"PTTL p", `~:[1-9][0-9]*`},
			{"SETEX k 0 v", badExpire("setex")},
			{"SETEX k -1 v", badExpire("setex")},
			{"PSETEX k 0 v", badExpire("psetex")},
			{"SETEX k 9223372036854775807 v", badExpire("setex")},
			{"SETEX k abc v", errNotIntR},
			{"SETEX k 00 v", errNotIntR},
			{"SETEX k 10", arity("setex")},
			{"GET k", `"v"`},
		}},
		{name: "SETEX PSETEX on the clock", engramOnly: true, steps: []step{
			{"SETEX k 10 v", "+OK"},
			{"TTL k", ":10"},
			{"PSETEX k 1500 v", "+OK"},
			{"PTTL k", ":1500"},
			{"@advance 1500", ""},
			{"GET k", "(nil)"},
		}},
		{name: "GETSET", steps: []step{
			{"GETSET k v", "(nil)"},
			{"GETSET k w", `"v"`},
			{"GET k", `"w"`},
			{"SET t v EX 100", "+OK"},
			{"GETSET t w", `"v"`},
			{"TTL t", ":-1"}, // GETSET drops the TTL
		}},
		{name: "GETDEL", steps: []step{
			{"GETDEL k", "(nil)"},
			{"SET k v", "+OK"},
			{"GETDEL k", `"v"`},
			{"EXISTS k", ":0"},
			{"GETDEL k", "(nil)"},
			{"GETDEL", arity("getdel")},
		}},
		{name: "GETEX", steps: []step{
			{"GETEX k", "(nil)"},
			{"GETEX k EX 10", "(nil)"},
			{"GETEX k EX 0", "(nil)"}, // the time is checked only for a key that exists
			{"EXISTS k", ":0"},
			{"SET k v", "+OK"},
			{"GETEX k", `"v"`},
			{"TTL k", ":-1"},
			{"GETEX k EX 100", `"v"`},
			{"TTL k", `~:[1-9][0-9]*`},
			{"GETEX k PERSIST", `"v"`},
			{"TTL k", ":-1"},
			{"GETEX k PX 100000", `"v"`},
			{"PTTL k", `~:[1-9][0-9]*`},
			{"GETEX k EXAT 99999999999", `"v"`},
			{"EXPIRETIME k", ":99999999999"},
			{"GETEX k PXAT 99999999999123", `"v"`},
			{"PEXPIRETIME k", ":99999999999123"},
			{"GETEX k EX 10 EX 99999", `"v"`},
			{"TTL k", `~:999[0-9][0-9]`},
			{"GETEX k PERSIST PERSIST", `"v"`},
			{"TTL k", ":-1"},
			{"GETEX k EX 0", badExpire("getex")},
			{"GETEX k PX -1", badExpire("getex")},
			{"GETEX k EX abc", errNotIntR},
			{"GETEX k PERSIST EX 10", errSyntaxR},
			{"GETEX k EX 10 PERSIST", errSyntaxR},
			{"GETEX k EX 10 PX 10", errSyntaxR},
			{"GETEX k NX", errSyntaxR},
			{"GETEX k KEEPTTL", errSyntaxR},
			{"GETEX k EX", errSyntaxR},
			{"TTL k", ":-1"},
			{"GETEX k EXAT 1", `"v"`}, // in the past: returned, then deleted
			{"EXISTS k", ":0"},
			{"DBSIZE", ":0"},
		}},
		{name: "GETEX on the clock", engramOnly: true, steps: []step{
			{"SET k v", "+OK"},
			{"GETEX k EX 10", `"v"`},
			{"TTL k", ":10"},
			{"GETEX k PX 1500", `"v"`},
			{"PTTL k", ":1500"},
			{"GETEX k EXAT " + ts(30), `"v"`},
			{"TTL k", ":30"},
			{"GETEX k PXAT " + tms(40), `"v"`},
			{"PTTL k", ":40"},
			{"@advance 40", ""},
			{"GETEX k", "(nil)"},
		}},
		{name: "MGET MSET MSETNX", steps: []step{
			{"MSET a 1 b 2", "+OK"},
			{"MGET a b c", `["1" "2" (nil)]`},
			{"MGET c", `[(nil)]`},
			{"MSET a 1 b", arity("mset")},
			{"MSET a", arity("mset")},
			{"MSETNX a 1 c 3", ":0"},
			{"EXISTS c", ":0"},
			{"MSETNX c 3 d 4", ":1"},
			{"MGET c d", `["3" "4"]`},
			{"MSETNX x 1 x 2", ":1"},
			{"GET x", `"2"`},
			{"MSETNX y 1 z", arity("msetnx")},
			{"MSET a 1 a 2", "+OK"},
			{"GET a", `"2"`},
			{"SET t v EX 100", "+OK"},
			{"MSET t w", "+OK"},
			{"TTL t", ":-1"},
			{"MGET", arity("mget")},
		}},
		{name: "DEL UNLINK EXISTS", steps: []step{
			{"MSET a 1 b 2 c 3", "+OK"},
			{"EXISTS a a z", ":2"}, // a key named twice counts twice
			{"DEL a b z", ":2"},
			{"UNLINK c c", ":1"},
			{"EXISTS a b c", ":0"},
			{"DEL a", ":0"},
			{"DEL", arity("del")},
			{"UNLINK", arity("unlink")},
			{"EXISTS", arity("exists")},
		}},
		{name: "TYPE", steps: []step{
			{"TYPE k", "+none"},
			{"SET k v", "+OK"},
			{"TYPE k", "+string"},
			{"TYPE", arity("type")},
		}},
		{name: "EXPIRE options", steps: []step{
			{"EXPIRE nokey 10", ":0"},
			{"SET k v", "+OK"},
			{"EXPIRE k 100 XX", ":0"}, // XX: only if the key has a TTL
			{"EXPIRE k 100 NX", ":1"},
			{"EXPIRE k 200 NX", ":0"},
			{"EXPIRE k 50 GT", ":0"},
			{"EXPIRE k 200 GT", ":1"},
			{"EXPIRE k 300 LT", ":0"},
			{"EXPIRE k 50 LT", ":1"},
			{"EXPIRE k 60 XX GT", ":1"},
			{"PERSIST k", ":1"},
			{"EXPIRE k 50 GT", ":0"}, // no TTL counts as infinite
			{"EXPIRE k 50 LT", ":1"},
			{"EXPIRE k 10 NX XX", "-ERR NX and XX, GT or LT options at the same time are not compatible"},
			{"EXPIRE k 10 NX GT", "-ERR NX and XX, GT or LT options at the same time are not compatible"},
			{"EXPIRE k 10 GT LT", "-ERR GT and LT options at the same time are not compatible"},
			{"EXPIRE k 10 FOO", "-ERR Unsupported option FOO"},
			{"EXPIRE k x FOO", "-ERR Unsupported option FOO"}, // options are checked first
			{"EXPIRE k x NX XX", "-ERR NX and XX, GT or LT options at the same time are not compatible"},
			{"EXPIRE k abc", errNotIntR},
			{"EXPIRE k 010", errNotIntR},
			{"EXPIRE k 9223372036854775807", badExpire("expire")},
			{"EXPIRE k -9223372036854775808", badExpire("expire")},
			{"PEXPIRE k 9223372036854775807", badExpire("pexpire")},
			{"EXPIRE k", arity("expire")},
			{"TTL k", `~:[1-9][0-9]*`}, // the errors changed nothing
			{"EXPIRE k 0", ":1"},       // zero or negative deletes
			{"EXISTS k", ":0"},
			{"SET k v", "+OK"},
			{"PEXPIRE k -1", ":1"},
			{"EXISTS k", ":0"},
			{"SET k v", "+OK"},
			{"EXPIREAT k 1", ":1"},
			{"GET k", "(nil)"},
			{"SET k v", "+OK"},
			{"PEXPIREAT k 1", ":1"},
			{"GET k", "(nil)"},
			{"SET k v", "+OK"},
			{"EXPIREAT k 99999999999", ":1"},
			{"EXPIRETIME k", ":99999999999"},
			{"PEXPIRETIME k", ":99999999999000"},
			{"PEXPIREAT k 100000000000600", ":1"},
			{"EXPIRETIME k", ":100000000001"}, // rounded, as TTL is
			{"PEXPIRETIME k", ":100000000000600"},
			{"PEXPIREAT k 100000000000400", ":1"},
			{"EXPIRETIME k", ":100000000000"},
			{"EXPIREAT k 99999999999 GT", ":0"},
			{"PEXPIREAT k 99999999999000 LT", ":1"},
			{"EXPIRETIME k", ":99999999999"},
		}},
		{name: "EXPIRE on the clock", engramOnly: true, steps: []step{
			{"SET k v", "+OK"},
			{"EXPIRE k 10", ":1"},
			{"TTL k", ":10"},
			{"PTTL k", ":10000"},
			{"EXPIRETIME k", ":" + ts(10)},
			{"PEXPIRETIME k", ":" + tms(10000)},
			{"@advance 500", ""},
			{"TTL k", ":10"}, // 9500ms rounds up
			{"@advance 1", ""},
			{"TTL k", ":9"},
			{"EXPIRE k 5 GT", ":0"}, // 9.499s left: 5 is not greater
			{"EXPIRE k 50 LT", ":0"},
			{"EXPIRE k 50 GT", ":1"},
			{"EXPIRE k 5 LT", ":1"},
			{"PTTL k", ":5000"},
			{"PEXPIRE k 1500", ":1"},
			{"PTTL k", ":1500"},
			// The clock is now 501ms past the start.
			{"EXPIREAT k " + ts(101), ":1"},
			{"PTTL k", ":100499"},
			{"PEXPIREAT k " + tms(2501), ":1"},
			{"PTTL k", ":2000"},
			{"@advance 1999", ""},
			{"EXISTS k", ":1"},
			{"@advance 1", ""},
			{"EXISTS k", ":0"},
			{"GET k", "(nil)"},
			{"TTL k", ":-2"},
			{"EXPIRE k 10", ":0"},
		}},
		{name: "TTL PTTL EXPIRETIME PERSIST", steps: []step{
			{"TTL nokey", ":-2"},
			{"PTTL nokey", ":-2"},
			{"EXPIRETIME nokey", ":-2"},
			{"PEXPIRETIME nokey", ":-2"},
			{"PERSIST nokey", ":0"},
			{"SET k v", "+OK"},
			{"TTL k", ":-1"},
			{"PTTL k", ":-1"},
			{"EXPIRETIME k", ":-1"},
			{"PEXPIRETIME k", ":-1"},
			{"PERSIST k", ":0"},
			{"EXPIRE k 100", ":1"},
			{"PERSIST k", ":1"},
			{"TTL k", ":-1"},
			{"TTL", arity("ttl")},
		}},
		{name: "KEYS", steps: []step{
			{"KEYS *", "[]"},
			{"MSET hello 1 hallo 2 hxllo 3 heeeello 4 world 5", "+OK"},
			{"KEYS h?llo", `sorted:["hallo" "hello" "hxllo"]`},
			{"KEYS h*llo", `sorted:["hallo" "heeeello" "hello" "hxllo"]`},
			{"KEYS h[ae]llo", `sorted:["hallo" "hello"]`},
			{"KEYS h[^e]llo", `sorted:["hallo" "hxllo"]`},
			{"KEYS h[a-b]llo", `["hallo"]`},
			{"KEYS *", `sorted:["hallo" "heeeello" "hello" "hxllo" "world"]`},
			{"KEYS nomatch", "[]"},
			{`KEYS h\?llo`, "[]"},
			{"KEYS", arity("keys")},
		}},
		{name: "SCAN arguments", steps: []step{
			{"SET a 1", "+OK"},
			{"SCAN 0", `["0" ["a"]]`},
			{"SCAN 0 MATCH a*", `["0" ["a"]]`},
			{"SCAN 0 MATCH b*", `["0" []]`},
			{"SCAN 0 TYPE string", `["0" ["a"]]`},
			{"SCAN 0 TYPE hash", `["0" []]`},
			{"SCAN 0 COUNT 1000 MATCH * TYPE string", `["0" ["a"]]`},
			{"SCAN abc", "-ERR invalid cursor"},
			{"SCAN 18446744073709551616", "-ERR invalid cursor"},
			{"SCAN 0 COUNT 0", errSyntaxR},
			{"SCAN 0 COUNT -1", errSyntaxR},
			{"SCAN 0 COUNT abc", errNotIntR},
			{"SCAN 0 MATCH", errSyntaxR},
			{"SCAN 0 FOO bar", errSyntaxR},
			{"SCAN", arity("scan")},
		}},
		{name: "RANDOMKEY", steps: []step{
			{"RANDOMKEY", "(nil)"},
			{"SET a 1", "+OK"},
			{"RANDOMKEY", `"a"`},
			{"DEL a", ":1"},
			{"RANDOMKEY", "(nil)"},
		}},
		{name: "INCR DECR INCRBY DECRBY", steps: []step{
			{"INCR n", ":1"},
			{"INCR n", ":2"},
			{"DECR n", ":1"},
			{"INCRBY n 10", ":11"},
			{"DECRBY n 5", ":6"},
			{"INCRBY n -6", ":0"},
			{"DECR m", ":-1"},
			{"DECRBY m -3", ":2"},
			{"GET n", `"0"`},
			{"INCRBY n abc", errNotIntR},
			{"INCRBY n 1.5", errNotIntR},
			{"INCRBY n 9223372036854775808", errNotIntR},
			{"SET n 9223372036854775807", "+OK"},
			{"INCR n", "-ERR increment or decrement would overflow"},
			{"INCRBY n 1", "-ERR increment or decrement would overflow"},
			{"SET n -9223372036854775808", "+OK"},
			{"DECR n", "-ERR increment or decrement would overflow"},
			{"INCRBY n -1", "-ERR increment or decrement would overflow"},
			{"DECRBY n -9223372036854775808", "-ERR decrement would overflow"},
			{"GET n", `"-9223372036854775808"`}, // unchanged by the errors
			{"SET s abc", "+OK"},
			{"INCR s", errNotIntR},
			{"SET s 01", "+OK"},
			{"INCR s", errNotIntR},
			{`SET s " 1"`, "+OK"},
			{"INCR s", errNotIntR},
			{"SET s +1", "+OK"},
			{"INCR s", errNotIntR},
			{"SET s -0", "+OK"},
			{"INCR s", errNotIntR},
			{"SET s 1.0", "+OK"},
			{"INCR s", errNotIntR},
			{`SET s ""`, "+OK"},
			{"INCR s", errNotIntR},
			{"SET t 1 EX 100", "+OK"},
			{"INCR t", ":2"},
			{"TTL t", `~:[1-9][0-9]*`}, // INCR keeps the TTL
			{"INCR", arity("incr")},
			{"INCRBY n", arity("incrby")},
		}},
		{name: "INCRBYFLOAT", steps: []step{
			// Redis's documented examples.
			{"SET mykey 10.50", "+OK"},
			{"INCRBYFLOAT mykey 0.1", `"10.6"`},
			{"INCRBYFLOAT mykey -5", `"5.6"`},
			{"SET mykey 5.0e3", "+OK"},
			{"INCRBYFLOAT mykey 2.0e2", `"5200"`},
			{"INCRBYFLOAT new 3", `"3"`},
			{"INCRBYFLOAT new 0.25", `"3.25"`},
			{"INCRBYFLOAT new -3.25", `"0"`},
			{"GET new", `"0"`},
			{"INCRBYFLOAT new abc", errNotFloatR},
			{"INCRBYFLOAT new nan", errNotFloatR},
			{`INCRBYFLOAT new " 1"`, errNotFloatR},
			{"INCRBYFLOAT new inf", "-ERR increment would produce NaN or Infinity"},
			{"SET s abc", "+OK"},
			{"INCRBYFLOAT s 1", errNotFloatR},
			{"SET t 1 EX 100", "+OK"},
			{"INCRBYFLOAT t 1.5", `"2.5"`},
			{"TTL t", `~:[1-9][0-9]*`},
			{"INCRBYFLOAT t", arity("incrbyfloat")},
		}},
		{name: "INCRBYFLOAT in double precision", engramOnly: true, steps: []step{
			// Deliberate: Engram computes in IEEE double, Redis in the
			// platform's long double (docs/commands.md).
			{"INCRBYFLOAT f 0.1", `"0.1"`},
			{"INCRBYFLOAT f 0.2", `"0.30000000000000004"`},
			{"SET f 1e308", "+OK"},
			{"INCRBYFLOAT f 1e308", "-ERR increment would produce NaN or Infinity"},
			{"INCRBYFLOAT g 1e100", `~"1[0-9]{100}"`},
			// A long value written by INCRBYFLOAT reads back.
			{"INCRBYFLOAT g 1", `~"1[0-9]{100}"`},
		}},
		{name: "APPEND STRLEN", steps: []step{
			{"APPEND k Hello", ":5"},
			{`APPEND k " World"`, ":11"},
			{"GET k", `"Hello World"`},
			{"STRLEN k", ":11"},
			{"STRLEN nokey", ":0"},
			{`APPEND e ""`, ":0"},
			{"EXISTS e", ":1"},
			{"SET t v EX 100", "+OK"},
			{"APPEND t w", ":2"},
			{"TTL t", `~:[1-9][0-9]*`},
			{"APPEND k", arity("append")},
		}},
		{name: "GETRANGE SUBSTR", steps: []step{
			{`SET k "This is a string"`, "+OK"},
			{"GETRANGE k 0 3", `"This"`},
			{"GETRANGE k -3 -1", `"ing"`},
			{"GETRANGE k 0 -1", `"This is a string"`},
			{"GETRANGE k 10 100", `"string"`},
			{"GETRANGE k 5 2", `""`},
			{"GETRANGE k -1 -5", `""`},
			{"GETRANGE k 100 200", `""`},
			{"GETRANGE k 0 -100", `"T"`},
			{"GETRANGE nokey 0 1", `""`},
			{"GETRANGE k a 1", errNotIntR},
			{"SUBSTR k 0 3", `"This"`},
			{"GETRANGE k 0", arity("getrange")},
		}},
		{name: "SETRANGE", steps: []step{
			{`SET k "Hello World"`, "+OK"},
			{"SETRANGE k 6 Redis", ":11"},
			{"GET k", `"Hello Redis"`},
			{"SETRANGE new 5 x", ":6"},
			{"GET new", `"\x00\x00\x00\x00\x00x"`},
			{"SETRANGE k -1 x", "-ERR offset is out of range"},
			{"SETRANGE k abc x", "-ERR value is not an integer or out of range"},
			{"SETRANGE k 536870912 x", "-ERR string exceeds maximum allowed size (proto-max-bulk-len)"},
			{`SETRANGE e 0 ""`, ":0"},
			{"EXISTS e", ":0"},
			{`SETRANGE k 2 ""`, ":11"},
			{"SET t v EX 100", "+OK"},
			{"SETRANGE t 1 w", ":2"},
			{"TTL t", `~:[1-9][0-9]*`},
		}},
		{name: "DBSIZE FLUSHDB FLUSHALL SELECT", steps: []step{
			{"MSET a 1 b 2", "+OK"},
			{"DBSIZE", ":2"},
			{"SELECT 1", "+OK"},
			{"DBSIZE", ":0"},
			{"GET a", "(nil)"},
			{"SET a x", "+OK"},
			{"SELECT 0", "+OK"},
			{"GET a", `"1"`},
			{"FLUSHDB", "+OK"},
			{"DBSIZE", ":0"},
			{"SELECT 1", "+OK"},
			{"GET a", `"x"`}, // FLUSHDB cleared only the selected one
			{"FLUSHALL", "+OK"},
			{"DBSIZE", ":0"},
			{"FLUSHDB ASYNC", "+OK"},
			{"FLUSHDB sync", "+OK"},
			{"FLUSHALL ASYNC", "+OK"},
			{"FLUSHDB x", errSyntaxR},
			{"FLUSHALL x", errSyntaxR},
			{"SELECT", arity("select")},
			{"DBSIZE x", arity("dbsize")},
		}},
		{name: "SELECT any map name", engramOnly: true, steps: []step{
			{"SET k zero", "+OK"},
			{"SELECT users", "+OK"},
			{"GET k", "(nil)"},
			{"SET k u", "+OK"},
			{`SELECT "my map\x00\xff"`, "+OK"},
			{"SET k m", "+OK"},
			{"SELECT 16", "+OK"}, // Redis has 16 databases; a map name is any string
			{"DBSIZE", ":0"},
			{`SELECT ""`, "-ERR invalid map name"},
			{`SELECT "a\r\nb"`, "-ERR invalid map name"},
			{"SELECT users", "+OK"},
			{"GET k", `"u"`},
			{"SELECT 0", "+OK"},
			{"GET k", `"zero"`},
			{"MAPS", `["0" "my map\x00\xff" "users"]`},
		}},
		{name: "PING ECHO TIME", steps: []step{
			{"PING", "+PONG"},
			{"PING hi", `"hi"`},
			{"PING a b", arity("ping")},
			{`ECHO "hello world"`, `"hello world"`},
			{"ECHO", arity("echo")},
			{"TIME", `~\["[0-9]+" "[0-9]+"\]`},
			{"TIME x", arity("time")},
		}},
		{name: "unknown command", steps: []step{
			{"FOO bar baz", "-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' "},
			{"NOSUCH", "-ERR unknown command 'NOSUCH', with args beginning with: "},
			{"PING", "+PONG"},
		}},
		{name: "HELLO", steps: []step{
			{"HELLO", hello2},
			{"GET nokey", "(nil)"},
			{"HELLO 3", hello3},
			{"GET nokey", "_"}, // RESP3 null
			{"MGET nokey", "[_]"},
			{"HELLO 2", hello2},
			{"GET nokey", "(nil)"},
			{"HELLO 4", "-NOPROTO unsupported protocol version"},
			{"HELLO 1", "-NOPROTO unsupported protocol version"},
			{"HELLO x", "-ERR Protocol version is not an integer or out of range"},
			{"HELLO 3 FOO", "-ERR Syntax error in HELLO option 'FOO'"},
			{"HELLO 3 SETNAME", "-ERR Syntax error in HELLO option 'SETNAME'"},
			{"HELLO 3 AUTH default", "-ERR Syntax error in HELLO option 'AUTH'"},
			{`HELLO 3 SETNAME "a b"`, "-ERR Client names cannot contain spaces, newlines or special characters."},
			{"GET nokey", "(nil)"}, // the failed HELLOs changed nothing
			{"HELLO 3 SETNAME foo", hello3},
			{"CLIENT GETNAME", `"foo"`},
			// With no password the default user accepts any (nopass).
			{"HELLO 2 AUTH default anything", hello2},
			{"HELLO 2 AUTH bob anything", errWrongPwR},
		}},
		{name: "AUTH without a password configured", steps: []step{
			{"AUTH x", "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"},
			{"AUTH default x", "+OK"},
			{"AUTH bob x", errWrongPwR},
			{"AUTH a b c", errSyntaxR},
			{"AUTH", arity("auth")},
			{"PING", "+PONG"},
		}},
		{name: "AUTH with a password", password: "s3cret", steps: []step{
			{"GET k", errNoAuthR},
			{"PING", errNoAuthR},
			{"SELECT 1", errNoAuthR},
			{"NOSUCH", "-ERR unknown command 'NOSUCH', with args beginning with: "}, // looked up first
			{"HELLO 3", "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"},
			{"HELLO 3 AUTH default wrong", errWrongPwR},
			{"AUTH wrong", errWrongPwR},
			{"AUTH default wrong", errWrongPwR},
			{"AUTH bob s3cret", errWrongPwR},
			{"GET k", errNoAuthR},
			{"AUTH s3cret", "+OK"},
			{"SET k v", "+OK"},
			{"RESET", "+RESET"},
			{"GET k", errNoAuthR}, // RESET logs out
			{"AUTH default s3cret", "+OK"},
			{"GET k", `"v"`},
			{"RESET", "+RESET"},
			{"HELLO 3 AUTH default s3cret", hello3},
			{"GET k", `"v"`},
			{"GET nokey", "_"},
		}},
		{name: "QUIT before AUTH", password: "s3cret", steps: []step{
			{"QUIT", "+OK"},
		}},
		{name: "CLIENT", steps: []step{
			{"CLIENT ID", `~:[0-9]+`},
			{"CLIENT GETNAME", "(nil)"},
			{"CLIENT SETNAME foo", "+OK"},
			{"CLIENT GETNAME", `"foo"`},
			{`CLIENT SETNAME "a b"`, "-ERR Client names cannot contain spaces, newlines or special characters."},
			{"CLIENT GETNAME", `"foo"`},
			{"CLIENT INFO", `~"id=[0-9]+ addr=.* name=foo .*\\n"`},
			{"CLIENT LIST", `~"id=[0-9]+ addr=.* name=foo .*\\n"`},
			{"CLIENT NOSUCH", "-ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP."},
			{"CLIENT ID x", "-ERR wrong number of arguments for 'client|id' command"},
			{"CLIENT GETNAME x", "-ERR wrong number of arguments for 'client|getname' command"},
			{"CLIENT SETNAME", "-ERR wrong number of arguments for 'client|setname' command"},
			{"CLIENT", arity("client")},
		}},
		{name: "CLIENT SETINFO", engramOnly: true, steps: []step{
			// Redis 7.2's command; the Redis 7.0 in Debian lacks it.
			{"CLIENT SETINFO LIB-NAME mylib", "+OK"},
			{"CLIENT SETINFO lib-ver 1.2.3", "+OK"},
			{"CLIENT SETINFO LIB-NAME mylib", "+OK"},
			{`CLIENT SETINFO lib-name "a b"`, "-ERR lib-name cannot contain spaces, newlines or special characters."},
			{"CLIENT SETINFO foo bar", "-ERR Unrecognized option 'foo'"},
			{"CLIENT INFO", `~"id=[0-9]+ .* db=0 resp=2 lib-name=mylib lib-ver=1.2.3\\n"`},
			{"CLIENT SETINFO lib-name", "-ERR wrong number of arguments for 'client|setinfo' command"},
		}},
		{name: "COMMAND", steps: []step{
			{"COMMAND COUNT", `~:[0-9]+`},
			{"COMMAND INFO get", `~\[\["get" :2 \[.*\] :1 :1 :1 .*\]\]`},
			{"COMMAND INFO mset", `~\[\["mset" :-3 \[.*\] :1 :-1 :2 .*\]\]`},
			{"COMMAND INFO nosuch", `[(nil)]`},
			{"COMMAND FOO", "-ERR unknown subcommand 'FOO'. Try COMMAND HELP."},
		}},
		{name: "COMMAND DOCS", engramOnly: true, steps: []step{
			// Deliberate: no docs over the wire; docs/commands.md has them.
			{"COMMAND DOCS get", "[]"},
			{"HELLO 3", hello3},
			{"COMMAND DOCS", "%[]"},
		}},
		{name: "INFO", steps: []step{
			{"INFO", `~"# Server\\r\\nredis_version:[0-9.]+\\r\\n.*# Clients\\r\\nconnected_clients:[0-9]+\\r\\n.*# Memory\\r\\nused_memory:[0-9]+\\r\\n.*# Stats\\r\\n.*# Keyspace\\r\\n.*"`},
			{"INFO server", `~"# Server\\r\\n.*"`},
			{"INFO clients", `~"# Clients\\r\\nconnected_clients:[0-9]+\\r\\n.*"`},
			{"INFO nosuch", `""`},
			{"HELLO 3", hello3},
			{"INFO server", "~(?s)=txt:# Server\r\nredis_version:.*"}, // RESP3 verbatim string
		}},
		{name: "INFO Engram fields", engramOnly: true, steps: []step{
			{"SET k v", "+OK"},
			{"SELECT m", "+OK"},
			{"SETMAXTTL 60", "+OK"},
			{"INFO keyspace", `~"# Keyspace\\r\\nmap_0:keys=1,bytes=[0-9]+,max_ttl=0\\r\\nmap_m:keys=0,bytes=0,max_ttl=60\\r\\n"`},
			{"INFO server", `~"# Server\\r\\nredis_version:7.2.0\\r\\nengram_version:[^\\]+\\r\\n.*"`},
			{"INFO stats", `~".*keyspace_hits:[0-9]+\\r\\n.*"`},
			{"INFO commandstats", `~"# Commandstats\\r\\n.*cmdstat_set:calls=1,.*"`},
		}},
		{name: "CONFIG", steps: []step{
			{"CONFIG GET maxclients", `~\["maxclients" "[0-9]+"\]`},
			{"CONFIG GET nosuch", "[]"},
			{"CONFIG SET nosuch x", "-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"},
			{"CONFIG SET maxmemory 100mb", "+OK"},
			{"CONFIG GET maxmemory", `["maxmemory" "104857600"]`},
			{"CONFIG SET maxmemory 0", "+OK"},
			{"CONFIG SET maxmemory-policy allkeys-lru", "+OK"},
			{"CONFIG GET maxmemory-policy", `["maxmemory-policy" "allkeys-lru"]`},
			{"CONFIG SET maxmemory-policy noeviction", "+OK"},
			{`CONFIG SET save ""`, "+OK"},
			{"CONFIG GET save", `["save" ""]`},
			{"CONFIG GET appendonly", `["appendonly" "no"]`},
			{"CONFIG RESETSTAT", "+OK"},
			{"CONFIG GET", "-ERR wrong number of arguments for 'config|get' command"},
			{"CONFIG NOSUCH", "-ERR unknown subcommand 'NOSUCH'. Try CONFIG HELP."},
			{"CONFIG", arity("config")},
			{"HELLO 3", hello3},
			{"CONFIG GET appendonly", `%["appendonly" "no"]`},
		}},
		{name: "CONFIG Engram settings", engramOnly: true, steps: []step{
			{"CONFIG GET maxclients", `["maxclients" "10000"]`},
			{"CONFIG GET max-*", `["max-value-len" "536870912" "max-key-len" "65536"]`},
			{"CONFIG GET proto-max-bulk-len", `["proto-max-bulk-len" "536870912"]`},
			{"CONFIG SET proto-max-bulk-len 1000", "+OK"},
			{"CONFIG GET proto-max-bulk-len", `["proto-max-bulk-len" "1000"]`},
			{"CONFIG GET max-value-len", `["max-value-len" "1000"]`},
			{"CONFIG SET max-value-len 4", "+OK"},
			{"SET k 12345", "-ERR value too large: 5 bytes, the limit is 4"},
			{"SET k 1234", "+OK"},
			{"CONFIG SET maxmemory-policy bogus", `~-ERR Invalid argument 'bogus' for CONFIG SET 'maxmemory-policy' - .*`},
			{"CONFIG SET maxmemory lots", `~-ERR Invalid argument 'lots' for CONFIG SET 'maxmemory' - .*`},
			{"CONFIG REWRITE", `~-ERR Engram does not rewrite .*`},
		}},
		{name: "RESET", steps: []step{
			{"SELECT 1", "+OK"},
			{"SET k v", "+OK"},
			{"CLIENT SETNAME foo", "+OK"},
			{"HELLO 3", hello3},
			{"RESET", "+RESET"},
			{"GET k", "(nil)"}, // back on database 0, in RESP2
			{"CLIENT GETNAME", "(nil)"},
			{"SELECT 1", "+OK"},
			{"GET k", `"v"`},
			{"RESET x", arity("reset")},
		}},
		{name: "binary-safe keys and values", steps: []step{
			{`SET "\x00\r\n\xff" "v\x00\r\n\xffv"`, "+OK"},
			{`GET "\x00\r\n\xff"`, `"v\x00\r\n\xffv"`},
			{`APPEND "\x00\r\n\xff" "\x00"`, ":7"},
			{`STRLEN "\x00\r\n\xff"`, ":7"},
			{`GETRANGE "\x00\r\n\xff" 1 2`, `"\x00\r"`},
			{"KEYS *", `["\x00\r\n\xff"]`},
			{`MGET "\x00\r\n\xff" "\x00"`, `["v\x00\r\n\xffv\x00" (nil)]`},
			{`SET "\x00" ""`, "+OK"},
			{`EXISTS "\x00" "\x00\r\n\xff" ""`, ":2"},
		}},
		// One connection; subscribers and publishers together are in
		// pubsub_test.go.
		{name: "pub/sub on one connection", steps: []step{
			{"PUBLISH news hi", ":0"},
			{"PUBSUB NUMPAT", ":0"},
			{"SUBSCRIBE news", `["subscribe" "news" :1]`},
			{"PSUBSCRIBE n*", `["psubscribe" "n*" :2]`},
			{"SET k v", "-ERR Can't execute 'set': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"},
			{"UNSUBSCRIBE news", `["unsubscribe" "news" :1]`},
			{"PUNSUBSCRIBE n*", `["punsubscribe" "n*" :0]`},
			{"PUBSUB CHANNELS", "[]"},
		}},
	}
}

// engramCommandCases cover every command of engram.go.
func engramCommandCases() []cmdCase {
	cases := []cmdCase{
		{name: "STORESTATUS", engramOnly: true, steps: []step{
			{"STORESTATUS", "[]"},
			{"STORECONFIG m mode write-behind delay 1h store mem://a", "+OK"},
			{"SELECT m", "+OK"},
			{"SET k v", "+OK"},
			{"SET k v2", "+OK"},
			{"SET j v", "+OK"},
			{"STORESTATUS m", `~^\[\["map" "m" "mode" "write-behind" "active" "true" "pending" "2" "pending_bytes" "23" "oldest_ms" "0" "received" "3" "written" "0" .*\]\]$`},
			{"STORECONFIG m max_dirty_bytes 20", "+OK"},
			{"SET z v", `-TRYAGAIN changes of map "m" waiting for the store hold 23 bytes (max_dirty_bytes 20): the store is not keeping up; retry later`},
			{"GET z", "(nil)"},
			{"SAVEMAP", ":2"},
			{"STORESTATUS m", `~^\[\["map" "m" "mode" "write-behind" "active" "true" "pending" "0" "pending_bytes" "0" "oldest_ms" "0" "received" "3" "written" "2" .*\]\]$`},
		}},
		{name: "backing store commands", engramOnly: true, steps: []step{
			{"STORESTATUS", "[]"},
			{"STORECONFIG m", `["mode" "none" "store" "" "delay" "0s" "batch" "0" "max_dirty" "0" "max_dirty_bytes" "0" "negative_ttl" "0s" "explicit" "false"]`},
			{"STORECONFIG m mode write-through", "-ERR this node has no default store (--store): name one with store=URL"},
			{"STORECONFIG m mode sometimes", `-ERR store setting mode: unknown store mode "sometimes": want none, read-through, write-through or write-behind`},
			{"STORECONFIG m batch 0", "-ERR store setting batch: must be at least 1"},
			{"STORECONFIG m mode", "-ERR store settings come in field value pairs"},
			{"STORECONFIG m mode write-through store mem://a batch 10", "+OK"},
			{"STORECONFIG m", `["mode" "write-through" "store" "mem://a" "delay" "0s" "batch" "10" "max_dirty" "1000000" "max_dirty_bytes" "268435456" "negative_ttl" "0s" "explicit" "true"]`},
			{"SELECT m", "+OK"},
			{"SET k v", "+OK"},
			{"SAVEKEY k nothere k", ":1"},
			{"SAVEMAP", ":0"},
			{"SAVEKEY", arity("savekey")},
			{"SELECT 0", "+OK"},
			{"SAVEKEY k", "-ERR map '0' has no backing store (see STORECONFIG)"},
			{"SAVEMAP", "-ERR map '0' has no backing store (see STORECONFIG)"},
		}},
		{name: "ACK READONLY READWRITE", steps: []step{
			{"ACK", `"all"`},
			{"ACK primary", "+OK"},
			{"ACK", `"primary"`},
			{"ACK NONE", "+OK"},
			{"ACK", `"none"`},
			{"ACK sometimes", "-ERR ack level must be ALL, PRIMARY or NONE"},
			{"ACK all x", errSyntaxR},
			{"ACK", `"none"`},
			{"READONLY", "+OK"},
			{"READWRITE", "+OK"},
			{"READONLY x", arity("readonly")},
		}},
		{name: "CLUSTER on a standalone node", steps: []step{
			{"CLUSTER INFO", "~-ERR This instance has cluster support disabled.*"},
			{"CLUSTER NODES", "~-ERR This instance has cluster support disabled.*"},
			{"CLUSTER KEYSLOT k", "~:[0-9]+"},
			{"CLUSTER KEYSLOT", "-ERR wrong number of arguments for 'cluster|keyslot' command"},
			{"CLUSTER", arity("cluster")},
		}},
		{name: "PSCAN", steps: []step{
			{"MSET a 1 b 2 c 3", "+OK"},
			{"PSCAN 999999 *", "-ERR invalid partition"},
			{"PSCAN x *", "-ERR invalid partition"},
			{"PSCAN 0", arity("pscan")},
		}},
		{name: "MAPS", steps: []step{
			{"MAPS", "[]"},
			{"SET a 1", "+OK"},
			{"MAPS", `["0"]`},
			{"SELECT m2", "+OK"},
			{"SET b 2", "+OK"},
			{"MAPS", `["0" "m2"]`},
			{"SETMAXTTL 10 m3", "+OK"}, // a map with settings is listed
			{"SELECT empty", "+OK"},    // a selected map with nothing is not
			{"MAPS", `["0" "m2" "m3"]`},
			{"MAPS x", arity("maps")},
		}},
		{name: "MAPSIZE", steps: []step{
			{"MAPSIZE", ":0"},
			{"MSET a 1 b 2", "+OK"},
			{"MAPSIZE", ":2"},
			{"MAPSIZE 0", ":2"},
			{"MAPSIZE nosuch", ":0"},
			{"MAPSIZE a b", errSyntaxR},
			{"MAPS", `["0"]`}, // asking about a map does not create it
		}},
		{name: "MAPINFO", steps: []step{
			{"SET a 1", "+OK"},
			{"MAPINFO", `~\["name" "0" "keys" :1 "bytes" :[1-9][0-9]* "max_ttl" :0 "max_keys" :0 "sequence" \(nil\)\]`},
			{"SETSEQ 7 b 2", "+OK"},
			{"SETMAXTTL 60", "+OK"},
			{"SETMAXKEYS 100", "+OK"},
			{"HELLO 3", hello3},
			{"MAPINFO 0", `~%\["name" "0" "keys" :2 "bytes" :[1-9][0-9]* "max_ttl" :60 "max_keys" :100 "sequence" :7\]`},
			{"MAPINFO nosuch", "_"},
			{"MAPINFO a b", errSyntaxR},
		}},
		{name: "CACHESIZE", steps: []step{
			{"CACHESIZE", "[]"},
			{"MSET a 1 b 2", "+OK"},
			{"SELECT m", "+OK"},
			{"SET c 3", "+OK"},
			{"CACHESIZE", `~\[\["0" :2 :[1-9][0-9]*\] \["m" :1 :[1-9][0-9]*\]\]`},
		}},
		{name: "UP", steps: []step{
			{"UP", `~\["up_at" "[0-9T:-]+Z" "now" "[0-9T:-]+Z" "uptime_seconds" :[0-9]+ "up_time" "[0-9]+d [0-9]{2}:[0-9]{2}:[0-9]{2}"\]`},
			{"UP x", arity("up")},
		}},
		{name: "CACHENODES", steps: []step{
			{"CACHENODES", `~\["active" \["127\.0\.0\.1:[0-9]+"\] "configured" \["127\.0\.0\.1:[0-9]+"\]\]`},
		}},
		{name: "CONTAINS", steps: []step{
			{"CONTAINS k", ":0"},
			{"SET k v PX 1000", "+OK"},
			{"CONTAINS k", ":1"},
			{"@advance 1000", ""},
			{"CONTAINS k", ":0"},
			{"CONTAINS", arity("contains")},
		}},
		{name: "GETALL", steps: []step{
			{"MSET a 1 b 2", "+OK"},
			{"GETALL a c b d", `[["a" "1" "b" "2"] ["c" "d"]]`},
			{"GETALL x", `[[] ["x"]]`},
			{"HELLO 3", hello3},
			{"GETALL a c", `[%["a" "1"] ["c"]]`},
			{"GETALL", arity("getall")},
		}},
		{name: "KEYSET VALUES", steps: []step{
			{"KEYSET", "[]"},
			{"VALUES", "[]"},
			{"MSET a 1 b 2 c 3", "+OK"},
			{"SET gone x PX 10", "+OK"},
			{"@advance 10", ""},
			{"KEYSET", `sorted:["a" "b" "c"]`},
			{"VALUES", `sorted:["1" "2" "3"]`},
			{"KEYSET x", arity("keyset")},
		}},
		{name: "PUTALL", steps: []step{
			{"PUTALL 0 a 1 b 2", ":2"},
			{"MGET a b", `["1" "2"]`},
			{"TTL a", ":-1"},
			{"PUTALL 10 c 3", ":1"},
			{"TTL c", ":10"},
			{"PUTALL -1 a 1", "-ERR ttl must be a non-negative integer of seconds (0 = none)"},
			{"PUTALL x a 1", "-ERR ttl must be a non-negative integer of seconds (0 = none)"},
			{"PUTALL 0 a 1 b", arity("putall")},
			{"PUTALL 0 a", arity("putall")},
			{"GET a", `"1"`},
		}},
		{name: "PUTALL limits change nothing", steps: []step{
			{"CONFIG SET max-value-len 3", "+OK"},
			{"PUTALL 0 a 1 b 1234", "-ERR value too large: 4 bytes, the limit is 3"},
			{"EXISTS a b", ":0"},
		}},
		{name: "SETSEQ SEQUENCE", steps: []step{
			{"SEQUENCE", "(nil)"},
			{"SETSEQ 5 k v", "+OK"},
			{"SEQUENCE", ":5"},
			{"SEQUENCE 0", ":5"},
			{"SETSEQ 5 k w", "+OK"}, // equal is not lower: allowed
			{"SETSEQ 4 k x", `-OUTOFSEQ out of sequence: sequence 4 is lower than map "0"'s current 5`},
			{"GET k", `"w"`},
			{"SETSEQ 6 k v EX 10", "+OK"},
			{"TTL k", ":10"},
			{"SETSEQ 7 t v PX 1500", "+OK"},
			{"PTTL t", ":1500"},
			{"SETSEQ 8 k v EX 0", badExpire("setseq")},
			{"SETSEQ 8 k v NX", errSyntaxR},
			{"SETSEQ 8 k v EX", errSyntaxR},
			{"SEQUENCE", ":7"}, // refused commands do not advance the sequence
			{"SETSEQ -1 k v", "-ERR sequence must be an integer between 0 and 9223372036854775807"},
			{"SETSEQ abc k v", "-ERR sequence must be an integer between 0 and 9223372036854775807"},
			{"SETSEQ 9223372036854775808 k v", "-ERR sequence must be an integer between 0 and 9223372036854775807"},
			{"SETSEQ 9 k", arity("setseq")},
			{"SEQUENCE nosuch", "(nil)"},
			{"SEQUENCE a b", errSyntaxR},
			{"SELECT other", "+OK"},
			{"SETSEQ 1 k v", "+OK"}, // sequences are per map
			{"SEQUENCES", `["0" :7 "other" :1]`},
			{"HELLO 3", hello3},
			{"SEQUENCES", `%["0" :7 "other" :1]`},
		}},
		{name: "refused sequenced writes leave the sequence", steps: []step{
			{"CONFIG SET max-value-len 2", "+OK"},
			{"PUTALLSEQ 5 0 a 123", "-ERR value too large: 3 bytes, the limit is 2"},
			{"SETSEQ 5 a 123", "-ERR value too large: 3 bytes, the limit is 2"},
			{"SEQUENCE", "(nil)"},
			{"SETMAXKEYS 1", "+OK"},
			{"SETSEQ 7 a 1", "+OK"},
			{"SETSEQ 8 b 1", `-MAPFULL map is full: map "0" holds 1 keys, the limit is 1`},
			{"SEQUENCE", ":7"},
			{"DELSEQ 9 nokey", ":0"}, // deleting nothing is still an accepted operation
			{"SEQUENCE", ":9"},
			{"SET x 1", "-MAPFULL map is full: map \"0\" holds 1 keys, the limit is 1"},
		}},
		{name: "DELSEQ", steps: []step{
			{"MSET a 1 b 2 c 3", "+OK"},
			{"DELSEQ 10 a b z", ":2"},
			{"DELSEQ 9 c", `-OUTOFSEQ out of sequence: sequence 9 is lower than map "0"'s current 10`},
			{"EXISTS c", ":1"},
			{"DELSEQ 10 c", ":1"},
			{"DELSEQ x c", "-ERR sequence must be an integer between 0 and 9223372036854775807"},
			{"DELSEQ 11", arity("delseq")},
		}},
		{name: "PUTALLSEQ", steps: []step{
			{"PUTALLSEQ 3 0 a 1 b 2", ":2"},
			{"PUTALLSEQ 2 0 a 9", `-OUTOFSEQ out of sequence: sequence 2 is lower than map "0"'s current 3`},
			{"GET a", `"1"`},
			{"PUTALLSEQ 4 5 c 3", ":1"},
			{"TTL c", ":5"},
			{"PUTALLSEQ 4 0 a", arity("putallseq")},
			{"PUTALLSEQ x 0 a 1", "-ERR sequence must be an integer between 0 and 9223372036854775807"},
			{"SEQUENCE", ":4"},
		}},
		{name: "REMOVEITEMS REMOVEITEMSSEQ", steps: []step{
			{"MSET a 1 b 2 c 3", "+OK"},
			{"REMOVEITEMS a z", `["a" "1"]`},
			{"EXISTS a", ":0"},
			{"REMOVEITEMS z", "[]"},
			{"REMOVEITEMSSEQ 5 b", `["b" "2"]`},
			{"REMOVEITEMSSEQ 4 c", `-OUTOFSEQ out of sequence: sequence 4 is lower than map "0"'s current 5`},
			{"EXISTS c", ":1"},
			{"HELLO 3", hello3},
			{"REMOVEITEMSSEQ 6 c", `%["c" "3"]`},
			{"REMOVEITEMSSEQ 7", arity("removeitemsseq")},
			{"REMOVEITEMS", arity("removeitems")},
		}},
		{name: "sequences outlive FLUSH and CLEAR", steps: []step{
			{"SETSEQ 3 k v", "+OK"},
			{"FLUSHALL", "+OK"},
			{"SEQUENCE", ":3"},
			{"SET k v", "+OK"},
			{"FLUSH", "+OK"},
			{"FLUSHDB", "+OK"},
			{"CLEAR", "+OK"},
			{"DBSIZE", ":0"},
			{"SEQUENCE", ":3"},
			{"MAPS", `["0"]`}, // a map with a sequence is listed
			{"SETSEQ 2 k v", `-OUTOFSEQ out of sequence: sequence 2 is lower than map "0"'s current 3`},
			{"CACHESIZE", `[["0" :0 :0]]`},
		}},
		{name: "internal map names are refused", steps: []step{
			{`SELECT "\x00seq"`, "-" + errInternalMap},
			{`SELECT "\x00"`, "-" + errInternalMap},
			{`MAPSIZE "\x00seq"`, "-" + errInternalMap},
			{`MAPINFO "\x00seq"`, "-" + errInternalMap},
			{`SEQUENCE "\x00seq"`, "-" + errInternalMap},
			{`MAXTTL "\x00seq"`, "-" + errInternalMap},
			{`SETMAXTTL 1 "\x00seq"`, "-" + errInternalMap},
			{`SETMAXKEYS 1 "\x00seq"`, "-" + errInternalMap},
			{`CLEAR "\x00seq"`, "-" + errInternalMap},
			{"SEQADVANCE 0 1", "~-ERR unknown command 'SEQADVANCE'.*"}, // cluster-internal
			{"SEQGET 0", "~-ERR unknown command 'SEQGET'.*"},
			{"SEQALL", "~-ERR unknown command 'SEQALL'.*"},
			{"MAPS", "[]"},
		}},
		{name: "EVICTSINCE", steps: []step{
			{"SET old 1", "+OK"},
			{"@advance 10000", ""},
			{"SET new 2", "+OK"},
			{"EVICTSINCE 5", ":1"},
			{"EXISTS old new", ":1"},
			{"EVICTSINCE 0", ":1"},
			{"EVICTSINCE -1", "-ERR age must be a non-negative integer of seconds"},
			{"EVICTSINCE x", "-ERR age must be a non-negative integer of seconds"},
		}},
		{name: "SETMAXTTL MAXTTL GETMAXTTLS", steps: []step{
			{"MAXTTL", ":0"},
			{"GETMAXTTLS", "[]"},
			{"SET a 1", "+OK"},
			{"SETMAXTTL 10", "+OK"},
			{"MAXTTL", ":10"},
			{"TTL a", ":10"}, // the map's max age shows in the item's TTL
			{"SET b 1 EX 5", "+OK"},
			{"TTL b", ":5"}, // the sooner of the two
			{"@advance 9999", ""},
			{"GET a", `"1"`},
			{"@advance 1", ""},
			{"GET a", "(nil)"},
			{"SETMAXTTL 5 other", "+OK"},
			{"MAXTTL other", ":5"},
			{"MAXTTL nosuch", ":0"},
			{"GETMAXTTLS", `["0" :10 "other" :5]`},
			{"SETMAXTTL 0", "+OK"},
			{"GETMAXTTLS", `["other" :5]`},
			{"SETMAXTTL -1", "-ERR max ttl must be a non-negative integer of seconds (0 = none)"},
			{"SETMAXTTL 1 a b", errSyntaxR},
			{"SETMAXTTL", arity("setmaxttl")},
		}},
		{name: "SETMAXKEYS", steps: []step{
			{"SETMAXKEYS 2", "+OK"},
			{"SET a 1", "+OK"},
			{"SET b 2", "+OK"},
			{"SET c 3", `-MAPFULL map is full: map "0" holds 2 keys, the limit is 2`},
			{"SET a 9", "+OK"}, // overwriting is not growing
			{"MSET c 3", `-MAPFULL map is full: map "0" holds 2 keys, the limit is 2`},
			{"EXISTS c", ":0"},
			{"SETMAXKEYS 1 other", "+OK"},
			{"MAPINFO other", `~\["name" "other" "keys" :0 "bytes" :0 "max_ttl" :0 "max_keys" :1 "sequence" \(nil\)\]`},
			{"SETMAXKEYS 0", "+OK"},
			{"SET c 3", "+OK"},
			{"SETMAXKEYS -1", "-ERR max keys must be a non-negative integer (0 = none)"},
		}},
		{name: "CLEAR", steps: []step{
			{"SET a 1", "+OK"},
			{"SELECT m", "+OK"},
			{"SET b 2", "+OK"},
			{"CLEAR 0", "+OK"},
			{"DBSIZE", ":1"},
			{"SELECT 0", "+OK"},
			{"DBSIZE", ":0"},
			{"SELECT m", "+OK"},
			{"CLEAR", "+OK"},
			{"DBSIZE", ":0"},
			{"CLEAR nosuch", "+OK"},
			{"CLEAR a b", errSyntaxR},
		}},
		{name: "FLUSH", steps: []step{
			{"SET a 1", "+OK"},
			{"SELECT m", "+OK"},
			{"SET b 2", "+OK"},
			{"FLUSH", "+OK"},
			{"DBSIZE", ":0"},
			{"MAPSIZE 0", ":0"},
			{"SET b 2", "+OK"},
			{"FLUSH SILENT", "+OK"},
			{"DBSIZE", ":0"},
			{"FLUSH x", errSyntaxR},
			{"FLUSH SILENT x", errSyntaxR},
		}},
		{name: "UNSAFESET", steps: []step{
			{"UNSAFESET k v", "+OK"},
			{"GET k", `"v"`},
			{"UNSAFESET k w NX", "(nil)"},
			{"UNSAFESET k w EX 10 GET", `"v"`},
			{"TTL k", ":10"},
			{"UNSAFESET k", arity("unsafeset")},
		}},
		{name: "error prefixes", steps: []step{
			{"CONFIG SET maxmemory 1", "+OK"},
			{"SET k v", "~-OOM command not allowed when used memory > 'maxmemory'.*"},
			{"GET k", "(nil)"},
			{"DEL k", ":0"}, // reads and deletes still work
			{"CONFIG SET maxmemory 0", "+OK"},
			{"SET k v", "+OK"},
		}},
	}
	for i := range cases {
		cases[i].engramOnly = true
	}
	return cases
}

func TestCommands(t *testing.T) {
	cases := append(redisCommandCases(), engramCommandCases()...)
	names := map[string]bool{}
	for _, tc := range cases {
		if names[tc.name] {
			t.Fatalf("two cases are named %q", tc.name)
		}
		names[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, func(c *serverConfig) { c.opts.Password = tc.password })
			runSteps(t, ts.dial(t), ts.clock.advance, tc.steps)
		})
	}
}

// TestCommandsMatchRedis replays the Redis-compatible cases against a real
// redis-server: a case that passes on Engram but not on Redis has a wrong
// expectation, or Engram copies a Redis behaviour that is not there.
func TestCommandsMatchRedis(t *testing.T) {
	// One redis-server per password the cases need, shared by the cases.
	servers := map[string]*redisServer{}
	for _, tc := range redisCommandCases() {
		if _, ok := servers[tc.password]; ok || tc.engramOnly {
			continue
		}
		var extra []string
		if tc.password != "" {
			extra = []string{"--requirepass", tc.password}
		}
		servers[tc.password] = startRedis(t, extra...)
	}
	for _, tc := range redisCommandCases() {
		if tc.engramOnly {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			rs := servers[tc.password]
			admin := rs.dial(t)
			if tc.password != "" {
				admin.must("+OK", "AUTH", tc.password)
			}
			admin.must("+OK", "FLUSHALL")
			runSteps(t, rs.dial(t), nil, tc.steps)
		})
	}
}

// TestEveryCommandIsCovered fails when a command is added to the table
// without a scripted case here.
func TestEveryCommandIsCovered(t *testing.T) {
	used := map[string]bool{}
	for _, tc := range slices.Concat(redisCommandCases(), engramCommandCases(), queryCommandCases()) {
		for _, s := range tc.steps {
			if f := strings.Fields(s.cmd); len(f) > 0 {
				used[strings.ToLower(f[0])] = true
			}
		}
	}
	var missing []string
	for name := range commandTable() {
		if !used[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	// QUIT closes the connection; it has its own test.
	if missing = slices.DeleteFunc(missing, func(n string) bool { return n == "quit" }); len(missing) > 0 {
		t.Errorf("commands with no case in commands_test.go: %v", missing)
	}
}
