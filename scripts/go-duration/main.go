// Command go-duration prints what Go's time.ParseDuration makes of each input, so that the
// TypeScript parser (src/domain/GoDuration.ts) can be checked against Go itself.
//
// Input: a JSON array of strings on stdin. Output: one JSON object per input on stdout, in order,
// {"input": s, "ns": "<nanoseconds>"} or {"input": s, "error": "<err.Error()>"}; nanoseconds are a
// string because they do not fit a JavaScript number exactly.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"
)

type result struct {
	Input string `json:"input"`
	Ns    string `json:"ns,omitempty"`
	Error string `json:"error,omitempty"`
}

func main() {
	var inputs []string
	if err := json.NewDecoder(os.Stdin).Decode(&inputs); err != nil {
		fmt.Fprintln(os.Stderr, "go-duration: stdin must be a JSON array of strings:", err)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for _, in := range inputs {
		r := result{Input: in}
		if d, err := time.ParseDuration(in); err != nil {
			r.Error = err.Error()
		} else {
			r.Ns = strconv.FormatInt(int64(d), 10)
		}
		if err := out.Encode(r); err != nil {
			os.Exit(1)
		}
	}
}
