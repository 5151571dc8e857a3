package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// result is what one run of the program gave.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the program in-process through run, with env as the whole
// environment.
func runCLI(t *testing.T, env map[string]string, stdin io.Reader, args ...string) result {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, stdin, &stdout, &stderr, func(k string) string { return env[k] })
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		usageOn  string // "stdout" or "stderr"
	}{
		{"no command", nil, exitUsage, "stderr"},
		{"help", []string{"help"}, exitUsage, "stdout"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "stderr"},
		{"group without subcommand", []string{"rules"}, exitUsage, "stderr"},
		{"unknown subcommand", []string{"config", "lint"}, exitUsage, "stderr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runCLI(t, nil, nil, tt.args...)
			if got.code != tt.wantCode {
				t.Errorf("exit code = %d, want %d", got.code, tt.wantCode)
			}
			out := map[string]string{"stdout": got.stdout, "stderr": got.stderr}[tt.usageOn]
			for _, c := range commands() {
				if !strings.Contains(out, c.name) {
					t.Errorf("usage on %s does not list %q:\n%s", tt.usageOn, c.name, out)
				}
			}
		})
	}
}

func TestRunFlagErrors(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"missing --config", []string{"config", "check"}, exitUsage},
		{"missing --event", []string{"rules", "test", "--config", devConfig}, exitUsage},
		{"unknown flag", []string{"config", "check", "--config", devConfig, "--strict"}, exitUsage},
		{"extra argument", []string{"config", "check", "--config", devConfig, "more"}, exitUsage},
		{"-h", []string{"rules", "test", "-h"}, exitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runCLI(t, nil, nil, tt.args...)
			if got.code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr: %s)", got.code, tt.wantCode, got.stderr)
			}
			if got.stderr == "" {
				t.Error("nothing on stderr")
			}
		})
	}
}

func TestLookupCommand(t *testing.T) {
	tests := []struct {
		args     []string
		wantName string
		wantRest []string
	}{
		{[]string{"rules", "test", "--event", "x"}, "rules test", []string{"--event", "x"}},
		{[]string{"config", "check"}, "config check", []string{}},
		{[]string{"help", "me"}, "help", []string{"me"}},
		{[]string{"rules"}, "", nil},
		{nil, "", nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			c, rest, ok := lookupCommand(tt.args)
			if ok != (tt.wantName != "") || c.name != tt.wantName {
				t.Fatalf("lookupCommand = %q, %v; want %q", c.name, ok, tt.wantName)
			}
			if ok && strings.Join(rest, " ") != strings.Join(tt.wantRest, " ") {
				t.Errorf("rest = %q, want %q", rest, tt.wantRest)
			}
		})
	}
}
