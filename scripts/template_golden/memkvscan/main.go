// Command memkv answers confd's store functions (exists get gets getv getvs ls lsdir)
// over key sets, with the semantics of github.com/kelseyhightower/memkv as vendored by
// confd 0.17: every query scans every key, patterns use path.Match, results are sorted
// with the sort package. fuzz_store.py compares muster's indexed KVStore against it.
//
// Input (stdin): a JSON array of {"keys": {key: value}, "op": name, "arg": string}.
// Output (stdout): a JSON array of {"value": ..., "err": message}.
package main

import (
	"encoding/json"
	"os"
	"path"
	"sort"
	"strings"
)

type query struct {
	Keys map[string]string `json:"keys"`
	Op   string            `json:"op"`
	Arg  string            `json:"arg"`
}

type answer struct {
	Value interface{} `json:"value"`
	Err   string      `json:"err"`
}

type pair struct{ Key, Value string }

type byKey []pair

func (p byKey) Len() int           { return len(p) }
func (p byKey) Less(i, j int) bool { return p[i].Key < p[j].Key }
func (p byKey) Swap(i, j int)      { p[i], p[j] = p[j], p[i] }

// terms splits a cleaned path on "/": "/a/b" -> ["", "a", "b"], "/" -> ["", ""].
func terms(p string) []string { return strings.Split(path.Clean(p), "/") }

func hasPrefixTerms(prefix, test []string) bool {
	if len(test) < len(prefix) {
		return false
	}
	for i := range prefix {
		if prefix[i] != test[i] {
			return false
		}
	}
	return true
}

func matchAll(keys map[string]string, pattern string) ([]pair, error) {
	found := []pair{}
	for k, v := range keys {
		ok, err := path.Match(pattern, k)
		if err != nil {
			return nil, err
		}
		if ok {
			found = append(found, pair{k, v})
		}
	}
	sort.Sort(byKey(found))
	return found, nil
}

func sortedSet(set map[string]bool) []string {
	out := []string{}
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ls: the key itself names its base; otherwise every key whose directory lies at or
// under dir contributes the first component of what follows dir in the key.
func ls(keys map[string]string, dir string) []string {
	set := map[string]bool{}
	prefix := terms(dir)
	for k := range keys {
		if k == dir {
			set[path.Base(k)] = true
			continue
		}
		if hasPrefixTerms(prefix, terms(path.Dir(k))) {
			rest := strings.TrimPrefix(strings.TrimPrefix(k, dir), "/")
			set[strings.Split(rest, "/")[0]] = true
		}
	}
	return sortedSet(set)
}

// lsdir: keys that start with dir (as a string) and sit at least one directory below
// it contribute the directory component right after dir.
func lsdir(keys map[string]string, dir string) []string {
	set := map[string]bool{}
	prefix := terms(dir)
	for k := range keys {
		if !strings.HasPrefix(k, dir) {
			continue
		}
		items := terms(path.Dir(k))
		if hasPrefixTerms(prefix, items) && len(items)-len(prefix) >= 1 {
			set[items[len(prefix)]] = true
		}
	}
	return sortedSet(set)
}

func run(q query) answer {
	switch q.Op {
	case "exists":
		_, ok := q.Keys[q.Arg]
		return answer{Value: ok}
	case "getv", "get":
		v, ok := q.Keys[q.Arg]
		if !ok {
			return answer{Err: "key does not exist: " + q.Arg}
		}
		if q.Op == "get" {
			return answer{Value: []string{q.Arg, v}}
		}
		return answer{Value: v}
	case "gets":
		found, err := matchAll(q.Keys, q.Arg)
		if err != nil {
			return answer{Err: err.Error()}
		}
		out := [][]string{}
		for _, p := range found {
			out = append(out, []string{p.Key, p.Value})
		}
		return answer{Value: out}
	case "getvs":
		found, err := matchAll(q.Keys, q.Arg)
		if err != nil {
			return answer{Value: []string{}, Err: err.Error()}
		}
		out := []string{}
		for _, p := range found {
			out = append(out, p.Value)
		}
		sort.Strings(out)
		return answer{Value: out}
	case "ls":
		return answer{Value: ls(q.Keys, q.Arg)}
	case "lsdir":
		return answer{Value: lsdir(q.Keys, q.Arg)}
	}
	return answer{Err: "unknown op " + q.Op}
}

func main() {
	var qs []query
	if err := json.NewDecoder(os.Stdin).Decode(&qs); err != nil {
		panic(err)
	}
	out := make([]answer, len(qs))
	for i, q := range qs {
		out[i] = run(q)
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
