// Command template_golden renders text/template language cases with Go 1.19, following the
// conformance README's procedure for language cases:
//
//	var data interface{}
//	json.Unmarshal(dataJSON, &data)
//	tmpl, err := template.New("template.tmpl").Parse(src)   // parse error -> failure
//	err = tmpl.Execute(&buf, data)                          // exec error  -> failure
//
// Two modes:
//
//	template_golden -cases DIR [-check]
//	    every subdirectory of DIR holding a template.tmpl is a case: write expected.out
//	    (or expected.err holding the word "error", removing the other file). With
//	    -check, write nothing and report the cases whose golden differs (exit 1).
//	    A case with a keys.json (nested objects of strings, confd's file-backend
//	    layout) renders as confd would: confd's functions over the flattened keys
//	    (confd.go), dot nil.
//
//	template_golden -batch < cases.json > results.jsonl
//	    read a JSON array of {"tmpl": base64, "data": base64 or null, "keys": {key:
//	    value} or absent} and print one
//	    line per case, {"ok": bool, "out": base64, "err": message, "phase": "parse"|
//	    "exec"} (the random differential fuzzer, fuzz.py, drives this mode). A case
//	    still running after -timeout prints phase "timeout" and ends the process
//	    (exit 3), since a goroutine cannot be stopped: the caller resumes after it.
//	    With "keys", the case renders as confd would: confd's function map (confd.go,
//	    host-independent functions only) over those keys, with dot nil.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"text/template"
	"time"
)

// maxOutput caps a render so that a runaway template cannot exhaust memory; the
// fuzzer discards cases that hit it.
const maxOutput = 1 << 20

type limitedBuffer struct {
	bytes.Buffer
}

var errTooLong = fmt.Errorf("output exceeds %d bytes", maxOutput)

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxOutput {
		return 0, errTooLong
	}
	return b.Buffer.Write(p)
}

type result struct {
	OK    bool   `json:"ok"`
	Out   []byte `json:"out"`
	Err   []byte `json:"err"` // bytes, as a message may quote invalid UTF-8
	Phase string `json:"phase"`
}

// render is the README's procedure; a panic (which text/template should never let
// escape) is reported as phase "panic" so that the caller can tell it apart.
func render(src []byte, dataJSON []byte, keys map[string]string) (res result) {
	defer func() {
		if r := recover(); r != nil {
			res = result{Err: []byte(fmt.Sprint(r)), Phase: "panic"}
		}
	}()
	var data interface{}
	if dataJSON != nil {
		json.Unmarshal(dataJSON, &data)
	}
	tmpl := template.New("template.tmpl")
	if keys != nil {
		// A confd case: confd's functions over the keys, and dot is nil as in confd.
		tmpl.Funcs(confdFuncs(keys))
		data = nil
	}
	tmpl, err := tmpl.Parse(string(src))
	if err != nil {
		return result{Err: []byte(err.Error()), Phase: "parse"}
	}
	var buf limitedBuffer
	if err := tmpl.Execute(&buf, data); err != nil {
		if err == errTooLong {
			return result{Err: []byte(err.Error()), Phase: "limit"}
		}
		return result{Err: []byte(err.Error()), Phase: "exec"}
	}
	return result{OK: true, Out: buf.Bytes()}
}

type batchCase struct {
	Tmpl []byte            `json:"tmpl"`
	Data []byte            `json:"data"`
	Keys map[string]string `json:"keys"` // set: render as confd would (confd.go)
}

func batch(timeout time.Duration) error {
	var cases []batchCase
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	for _, c := range cases {
		done := make(chan result, 1)
		go func(c batchCase) { done <- render(c.Tmpl, c.Data, c.Keys) }(c)
		select {
		case res := <-done:
			if err := enc.Encode(res); err != nil {
				return err
			}
		case <-time.After(timeout):
			enc.Encode(result{Err: []byte("timeout"), Phase: "timeout"})
			os.Exit(3)
		}
	}
	return nil
}

func readOptional(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	return b, err
}

func goldens(dir string, check bool) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	names := []string{}
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	stale := 0
	written := 0
	for _, name := range names {
		caseDir := filepath.Join(dir, name)
		src, err := os.ReadFile(filepath.Join(caseDir, "template.tmpl"))
		if os.IsNotExist(err) {
			continue
		} else if err != nil {
			return err
		}
		data, err := readOptional(filepath.Join(caseDir, "data.json"))
		if err != nil {
			return err
		}
		keysJSON, err := readOptional(filepath.Join(caseDir, "keys.json"))
		if err != nil {
			return err
		}
		var keys map[string]string
		if keysJSON != nil {
			if keys, err = flattenKeys(keysJSON); err != nil {
				return fmt.Errorf("%s: keys.json: %v", caseDir, err)
			}
		}
		if data != nil && !json.Valid(data) {
			// The procedure ignores Unmarshal's error (dot stays nil); say so, as a
			// case author usually did not mean it.
			fmt.Fprintf(os.Stderr, "%s: warning: data.json is not valid JSON\n", name)
		}
		res := render(src, data, keys)
		if res.Phase == "panic" || res.Phase == "limit" {
			return fmt.Errorf("%s: %s: %s", caseDir, res.Phase, string(res.Err))
		}
		outPath := filepath.Join(caseDir, "expected.out")
		errPath := filepath.Join(caseDir, "expected.err")
		keep, drop, body := outPath, errPath, res.Out
		if !res.OK {
			keep, drop, body = errPath, outPath, []byte("error\n")
			fmt.Fprintf(os.Stderr, "%s: %s\n", name, string(res.Err))
		}
		if check {
			old, err := readOptional(keep)
			if err != nil {
				return err
			}
			_, dropErr := os.Stat(drop)
			if old == nil || !bytes.Equal(old, body) || dropErr == nil {
				fmt.Printf("stale: %s\n", name)
				stale++
			}
			continue
		}
		if err := os.WriteFile(keep, body, 0o644); err != nil {
			return err
		}
		if err := os.Remove(drop); err != nil && !os.IsNotExist(err) {
			return err
		}
		written++
	}
	if check {
		if stale > 0 {
			return fmt.Errorf("%d stale goldens", stale)
		}
		fmt.Printf("%d goldens up to date\n", len(names))
		return nil
	}
	fmt.Printf("%d goldens written\n", written)
	return nil
}

// flattenKeys walks nested JSON objects of strings into /a/b keys, as confd's file
// backend walks its YAML; anything but objects and strings is refused, so that no
// YAML scalar rule is involved.
func flattenKeys(raw []byte) (map[string]string, error) {
	var tree map[string]interface{}
	if err := json.Unmarshal(raw, &tree); err != nil {
		return nil, err
	}
	keys := map[string]string{}
	var walk func(prefix string, node map[string]interface{}) error
	walk = func(prefix string, node map[string]interface{}) error {
		for k, v := range node {
			switch v := v.(type) {
			case string:
				keys[prefix+"/"+k] = v
			case map[string]interface{}:
				if err := walk(prefix+"/"+k, v); err != nil {
					return err
				}
			default:
				return fmt.Errorf("%s/%s: only objects and strings", prefix, k)
			}
		}
		return nil
	}
	return keys, walk("", tree)
}

func main() {
	casesDir := flag.String("cases", "", "directory of case directories to write goldens for")
	check := flag.Bool("check", false, "with -cases: only report stale goldens")
	batchMode := flag.Bool("batch", false, "render a JSON batch from stdin")
	timeout := flag.Duration("timeout", 5*time.Second, "with -batch: time limit of one case")
	flag.Parse()
	var err error
	switch {
	case *batchMode:
		err = batch(*timeout)
	case *casesDir != "":
		err = goldens(*casesDir, *check)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "template_golden:", err)
		os.Exit(1)
	}
}
