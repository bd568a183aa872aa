package backing_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/backing"
)

const crashEnv = "ENGRAM_BACKING_CRASH_ROOT"

// crashKeys are the keys the helper writes: short ones and a hashed long one.
var crashKeys = []string{"k0", "k1", "k2", "k3", "../k4", strings.Repeat("long/", 60)}

// crashValue is a self-checking value: generation, length, then a pattern
// that depends on both, so a torn or mixed file is detected.
func crashValue(key int, gen uint64) []byte {
	n := 1<<20 + int(gen%4)*(1<<20) + int(gen%1000)
	v := make([]byte, n)
	binary.LittleEndian.PutUint64(v, gen)
	binary.LittleEndian.PutUint64(v[8:], uint64(n))
	for i := 16; i < n; i++ {
		v[i] = byte(uint64(i)*7 + gen*31 + uint64(key))
	}
	return v
}

func checkCrashValue(key int, v []byte) (uint64, error) {
	if len(v) < 16 {
		return 0, fmt.Errorf("%d bytes", len(v))
	}
	gen := binary.LittleEndian.Uint64(v)
	if !bytes.Equal(v, crashValue(key, gen)) {
		return gen, fmt.Errorf("torn value: %d bytes, header gen %d length %d", len(v), gen, binary.LittleEndian.Uint64(v[8:]))
	}
	return gen, nil
}

// TestDirCrashHelper is the process the crash test kills: it writes large
// values in a loop and prints each acknowledged write.
func TestDirCrashHelper(t *testing.T) {
	root := os.Getenv(crashEnv)
	if root == "" {
		t.Skip("helper process of TestDirCrash")
	}
	d, err := backing.OpenDir(root, backing.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := strconv.ParseUint(os.Getenv(crashEnv+"_GEN"), 10, 64)
	fmt.Println("started")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		gen++
		k := int(gen % uint64(len(crashKeys)))
		key := []byte(crashKeys[k])
		switch {
		case gen%7 == 0:
			err = d.Delete(ctx, "m", key)
			fmt.Printf("del %d %d\n", k, gen)
		case gen%3 == 0:
			k2 := (k + 1) % len(crashKeys)
			err = d.StoreBatch(ctx, "m", []backing.Entry{{Key: key, Value: crashValue(k, gen)},
				{Key: []byte(crashKeys[k2]), Value: crashValue(k2, gen)}})
			fmt.Printf("store %d %d\nstore %d %d\n", k, gen, k2, gen)
		default:
			err = d.Store(ctx, "m", key, crashValue(k, gen))
			fmt.Printf("store %d %d\n", k, gen)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestDirCrash kills a process writing to a directory store (SIGKILL, at
// random moments) and checks that every key holds a complete value, that
// no acknowledged write is lost, and that temporary files are never keys.
func TestDirCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills subprocesses")
	}
	root := t.TempDir()
	type ack struct {
		del bool
		gen uint64
	}
	last := map[int]ack{}
	sawTemp := 0
	for round := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDirCrashHelper$", "-test.count=1")
		maxGen := uint64(round+1) * 1_000_000 // the helper's last acknowledged generation
		cmd.Env = append(os.Environ(), crashEnv+"="+root, fmt.Sprintf("%s_GEN=%d", crashEnv, maxGen))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		if !sc.Scan() || sc.Text() != "started" {
			t.Fatalf("helper did not start: %q %v", sc.Text(), sc.Err())
		}
		time.Sleep(time.Duration(20+rand.IntN(200)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		acks := 0
		for sc.Scan() {
			var op string
			var k int
			var gen uint64
			if _, err := fmt.Sscanf(sc.Text(), "%s %d %d", &op, &k, &gen); err != nil {
				t.Fatalf("helper printed %q", sc.Text())
			}
			last[k] = ack{del: op == "del", gen: gen}
			maxGen = max(maxGen, gen)
			acks++
		}
		_ = cmd.Wait()
		// The operation the kill interrupted may have completed without
		// being acknowledged; only a delete can make a key vanish.
		inflight := maxGen + 1
		inflightDel := -1
		if inflight%7 == 0 {
			inflightDel = int(inflight % uint64(len(crashKeys)))
		}

		// Temporary files the killed writer left behind.
		temps := 0
		_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(e.Name(), ".tmp-") {
				temps++
			}
			return nil
		})
		sawTemp += temps

		d, err := backing.OpenDir(root, backing.DirOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := d.List(ctx, "m", backing.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		listed := map[int]bool{}
		for _, key := range p.Keys {
			k := -1
			for i, ck := range crashKeys {
				if ck == string(key) {
					k = i
				}
			}
			if k < 0 {
				t.Fatalf("round %d: List returned %q, not a key the helper wrote", round, key)
			}
			listed[k] = true
		}
		for k := range crashKeys {
			v, found, err := d.Load(ctx, "m", []byte(crashKeys[k]))
			if err != nil {
				t.Fatal(err)
			}
			if found != listed[k] {
				t.Fatalf("round %d: key %d found %v, listed %v", round, k, found, listed[k])
			}
			a, acked := last[k]
			if !found {
				if acked && !a.del && inflightDel != k {
					t.Fatalf("round %d: key %d missing; its store of gen %d was acknowledged", round, k, a.gen)
				}
				continue
			}
			gen, err := checkCrashValue(k, v)
			if err != nil {
				t.Fatalf("round %d: key %d: %v", round, k, err)
			}
			if acked && (gen < a.gen || a.del && gen == a.gen) {
				t.Fatalf("round %d: key %d holds gen %d; gen %d (delete %v) was acknowledged", round, k, gen, a.gen, a.del)
			}
		}
		// List removed the dead writer's temporary files.
		_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(e.Name(), ".tmp-") {
				t.Errorf("round %d: temporary file %s left after List", round, p)
			}
			return nil
		})
		d.Close()
		t.Logf("round %d: %d acknowledged operations, %d keys, %d temporary files after the kill", round, acks, len(p.Keys), temps)
	}
	if sawTemp == 0 {
		t.Log("no kill landed mid-write (no temporary files seen)")
	}
}
