// Command funcs renders templates with Go's text/template and a restatement of confd's
// function map, producing goldens for muster's confd functions as the engine prints them.
//
//	cd scripts/confd_golden/funcs && go run . < ../../../tests/unit/confd/data/funcs_cases.json \
//	    > ../../../tests/unit/confd/data/funcs_golden.json
//
// With -render FILE it instead renders that template with the keys (a JSON object)
// read from stdin, as confd would, and writes the output: bench/render_seed.py --check
// uses it to compare muster's output with Go's.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"musterconfdgolden/memkv"
)

type byLength []string

func (s byLength) Len() int           { return len(s) }
func (s byLength) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }
func (s byLength) Less(i, j int) bool { return len(s[i]) < len(s[j]) }

type byLengthKV []memkv.KVPair

func (s byLengthKV) Len() int           { return len(s) }
func (s byLengthKV) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }
func (s byLengthKV) Less(i, j int) bool { return len(s[i].Key) < len(s[j].Key) }

func reverse(values interface{}) interface{} {
	switch v := values.(type) {
	case []string:
		for l, r := 0, len(v)-1; l < r; l, r = l+1, r-1 {
			v[l], v[r] = v[r], v[l]
		}
	case []memkv.KVPair:
		for l, r := 0, len(v)-1; l < r; l, r = l+1, r-1 {
			v[l], v[r] = v[r], v[l]
		}
	}
	return values
}

func funcMap(s memkv.Store) template.FuncMap {
	return template.FuncMap{
		"exists": s.Exists, "get": s.Get, "gets": s.GetAll, "getv": s.GetValue, "getvs": s.GetAllValues,
		"ls": s.List, "lsdir": s.ListDir,
		"base": path.Base, "dir": path.Dir, "split": strings.Split, "join": strings.Join,
		"json": func(d string) (map[string]interface{}, error) {
			var r map[string]interface{}
			err := json.Unmarshal([]byte(d), &r)
			return r, err
		},
		"jsonArray": func(d string) ([]interface{}, error) {
			var r []interface{}
			err := json.Unmarshal([]byte(d), &r)
			return r, err
		},
		"map": func(values ...interface{}) (map[string]interface{}, error) {
			if len(values)%2 != 0 {
				return nil, errors.New("invalid map call")
			}
			d := map[string]interface{}{}
			for i := 0; i < len(values); i += 2 {
				k, ok := values[i].(string)
				if !ok {
					return nil, errors.New("map keys must be strings")
				}
				d[k] = values[i+1]
			}
			return d, nil
		},
		"toUpper": strings.ToUpper, "toLower": strings.ToLower, "contains": strings.Contains,
		"replace": strings.Replace, "trimSuffix": strings.TrimSuffix,
		"base64Encode": func(d string) string { return base64.StdEncoding.EncodeToString([]byte(d)) },
		"base64Decode": func(d string) (string, error) {
			b, err := base64.StdEncoding.DecodeString(d)
			return string(b), err
		},
		"parseBool": strconv.ParseBool, "reverse": reverse,
		"sortByLength":   func(v []string) []string { sort.Sort(byLength(v)); return v },
		"sortKVByLength": func(v []memkv.KVPair) []memkv.KVPair { sort.Sort(byLengthKV(v)); return v },
		"add":            func(a, b int) int { return a + b },
		"sub":            func(a, b int) int { return a - b },
		"div":            func(a, b int) int { return a / b },
		"mod":            func(a, b int) int { return a % b },
		"mul":            func(a, b int) int { return a * b },
		"seq": func(first, last int) []int {
			var arr []int
			for i := first; i <= last; i++ {
				arr = append(arr, i)
			}
			return arr
		},
		"atoi": strconv.Atoi,
	}
}

type result struct {
	Out string `json:"out"`
	Err string `json:"err,omitempty"`
}

func render(file string) {
	var keys map[string]string
	if err := json.NewDecoder(os.Stdin).Decode(&keys); err != nil {
		panic(err)
	}
	src, err := os.ReadFile(file)
	if err != nil {
		panic(err)
	}
	t := template.Must(template.New(path.Base(file)).Funcs(funcMap(memkv.New(keys))).Parse(string(src)))
	if err := t.Execute(os.Stdout, nil); err != nil {
		panic(err)
	}
}

func main() {
	renderFile := flag.String("render", "", "render this template with keys from stdin")
	flag.Parse()
	if *renderFile != "" {
		render(*renderFile)
		return
	}
	var cases struct {
		Keys      map[string]string `json:"keys"`
		Templates map[string]string `json:"templates"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		panic(err)
	}
	store := memkv.New(cases.Keys)
	out := map[string]result{}
	for name, src := range cases.Templates {
		t, err := template.New("t.tmpl").Funcs(funcMap(store)).Parse(src)
		if err != nil {
			out[name] = result{Err: err.Error()}
			continue
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, nil); err != nil {
			out[name] = result{Err: err.Error()}
			continue
		}
		out[name] = result{Out: buf.String()}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		panic(err)
	}
}
