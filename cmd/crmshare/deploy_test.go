package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

const deployDir = "../../deploy"

// deployEnv is the environment the deploy files give crmshare: made-up
// values for every secret they name.
func deployEnv(k string) string {
	return map[string]string{
		"ZOHO_CLIENT_ID":         "1000.DEPLOYTEST",
		"ZOHO_CLIENT_SECRET":     "deploy-test-secret",
		"ZOHO_REFRESH_TOKEN":     "1000.deploy.refresh",
		"CRMSHARE_INGRESS_TOKEN": "deploy-test-ingress-token",
	}[k]
}

// readYAMLDocs decodes every document of a YAML file into generic values.
func readYAMLDocs(tb testing.TB, path string) []map[string]any {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// dig walks nested maps and lists: keys are map keys or list indexes.
func dig(v any, path ...string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any) string { s, _ := v.(string); return s }

func strs(v any) []string {
	var out []string
	for _, x := range asList(v) {
		out = append(out, strOf(x))
	}
	return out
}

func strOf(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	}
	return ""
}

func asList(v any) []any { l, _ := v.([]any); return l }

func portOf(tb testing.TB, addr string) int {
	tb.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		tb.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		tb.Fatalf("address %q: %v", addr, err)
	}
	return n
}

// checkArgs checks that args name a real command and that each --flag is one
// of its flags (as its -h output lists them).
func checkArgs(t *testing.T, where string, args []string) {
	t.Helper()
	cmd, rest, ok := lookupCommand(args)
	if !ok {
		t.Errorf("%s: %v names no crmshare command", where, args)
		return
	}
	var help bytes.Buffer
	run(t.Context(), append(strings.Fields(cmd.name), "-h"), strings.NewReader(""), io.Discard, &help, deployEnv)
	for _, a := range rest {
		if name, ok := strings.CutPrefix(a, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			if !strings.Contains(help.String(), "  -"+name+" ") && !strings.Contains(help.String(), "  -"+name+"\n") {
				t.Errorf("%s: %s has no flag --%s\n%s", where, cmd.name, name, help.String())
			}
		}
	}
}

// dockerfile reads the Dockerfile's stages: EXPOSE ports and ENTRYPOINT/CMD
// (exec form) per stage name.
type stage struct {
	expose     []int
	entrypoint []string
	cmd        []string
}

func readDockerfile(tb testing.TB) map[string]*stage {
	tb.Helper()
	f, err := os.Open(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	stages := map[string]*stage{}
	var cur *stage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			cur = &stage{}
			if len(fields) >= 4 && strings.EqualFold(fields[2], "AS") {
				stages[fields[3]] = cur
			}
		case "EXPOSE":
			for _, p := range fields[1:] {
				n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
				if err != nil {
					tb.Fatalf("Dockerfile EXPOSE %q: %v", p, err)
				}
				cur.expose = append(cur.expose, n)
			}
		case "ENTRYPOINT", "CMD":
			var v []string
			rest := strings.TrimSpace(strings.TrimPrefix(sc.Text(), fields[0]))
			if err := json.Unmarshal([]byte(rest), &v); err != nil {
				tb.Fatalf("Dockerfile %s is not in exec form: %v", fields[0], err)
			}
			if strings.EqualFold(fields[0], "CMD") {
				cur.cmd = v
			} else {
				cur.entrypoint = v
			}
		}
	}
	return stages
}

// TestDeployFilesParse parses every YAML and JSON file under deploy/.
func TestDeployFilesParse(t *testing.T) {
	var n int
	err := filepath.WalkDir(deployDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml":
			n++
			if docs := readYAMLDocs(t, path); len(docs) == 0 {
				t.Errorf("%s: no YAML document", path)
			}
		case ".json":
			n++
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !json.Valid(b) {
				t.Errorf("%s: not valid JSON", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Errorf("found %d YAML and JSON files under deploy/, want the compose, k8s, nats and example files", n)
	}
}

// deployConfigs are the crmshare configs embedded in deploy/, loaded.
func deployConfigs(t *testing.T) map[string]*Config {
	t.Helper()
	out := map[string]*Config{}
	load := func(name string, data []byte) {
		cfg, err := LoadConfig(data, deployEnv)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		out[name] = cfg
	}
	for _, p := range []string{"examples/dev.yaml", "compose/crmshare.yaml"} {
		b, err := os.ReadFile(filepath.Join(deployDir, p))
		if err != nil {
			t.Fatal(err)
		}
		load(p, b)
	}
	for _, d := range readYAMLDocs(t, filepath.Join(deployDir, "k8s/configmap.yaml")) {
		load("k8s/configmap.yaml", []byte(str(dig(d, "data", "config.yaml"))))
	}
	return out
}

func TestDeployConfigsLoad(t *testing.T) {
	cfgs := deployConfigs(t)
	for _, name := range []string{"examples/dev.yaml", "compose/crmshare.yaml", "k8s/configmap.yaml"} {
		if cfgs[name] == nil {
			t.Errorf("%s: not loaded", name)
		}
	}
}

func TestDeployKubernetes(t *testing.T) {
	cfg := deployConfigs(t)["k8s/configmap.yaml"]
	if cfg == nil {
		t.Fatal("k8s config did not load")
	}
	var dep, svc, secret, cm map[string]any
	for _, f := range []string{"deployment.yaml", "service.yaml", "secret.example.yaml", "configmap.yaml", "pdb.yaml"} {
		for _, d := range readYAMLDocs(t, filepath.Join(deployDir, "k8s", f)) {
			switch str(d["kind"]) {
			case "Deployment":
				dep = d
			case "Service":
				svc = d
			case "Secret":
				secret = d
			case "ConfigMap":
				cm = d
			}
		}
	}
	c := dig(dep, "spec", "template", "spec", "containers", "0")
	if c == nil {
		t.Fatal("deployment has no container")
	}
	if img := str(dig(c, "image")); !strings.Contains(img, "crmshare") {
		t.Errorf("image %q is not crmshare's", img)
	}
	args := strs(dig(c, "args"))
	checkArgs(t, "deployment args", args)
	ports := map[string]int{}
	for _, p := range asList(dig(c, "ports")) {
		ports[str(dig(p, "name"))], _ = dig(p, "containerPort").(int)
	}
	if got, want := ports["metrics"], portOf(t, cfg.Telemetry.MetricsAddr); got != want {
		t.Errorf("metrics containerPort %d, config metrics_addr port %d", got, want)
	}
	if got, want := ports["ingress"], portOf(t, cfg.Ingress.Addr); got != want {
		t.Errorf("ingress containerPort %d, config ingress.addr port %d", got, want)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got := str(dig(c, probe, "httpGet", "path")); got != path {
			t.Errorf("%s path %q, want %q", probe, got, path)
		}
		if got := str(dig(c, probe, "httpGet", "port")); got != "metrics" {
			t.Errorf("%s port %q, want the metrics port", probe, got)
		}
	}
	// --config names the ConfigMap's key where it is mounted.
	cfgFlag := args[slices.Index(args, "--config")+1]
	mounted := false
	for _, m := range asList(dig(c, "volumeMounts")) {
		vol := str(dig(m, "name"))
		for _, v := range asList(dig(dep, "spec", "template", "spec", "volumes")) {
			if str(dig(v, "name")) == vol && str(dig(v, "configMap", "name")) == str(dig(cm, "metadata", "name")) &&
				filepath.Join(str(dig(m, "mountPath")), "config.yaml") == cfgFlag {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("--config %s is not the ConfigMap's config.yaml as mounted", cfgFlag)
	}
	// Every env var the config expands is set, from keys the Secret has.
	envs := map[string]bool{}
	for _, e := range asList(dig(c, "env")) {
		envs[str(dig(e, "name"))] = true
		if ref := dig(e, "valueFrom", "secretKeyRef"); ref != nil {
			if str(dig(ref, "name")) != str(dig(secret, "metadata", "name")) || dig(secret, "stringData", str(dig(ref, "key"))) == nil {
				t.Errorf("env %s: secret key %v not in secret.example.yaml", str(dig(e, "name")), ref)
			}
		}
	}
	for _, v := range []string{"ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN", "CRMSHARE_INGRESS_TOKEN"} {
		if strings.Contains(str(dig(cm, "data", "config.yaml")), "${"+v) && !envs[v] {
			t.Errorf("config expands $%s but the deployment does not set it", v)
		}
	}
	for _, p := range asList(dig(svc, "spec", "ports")) {
		if _, ok := ports[str(dig(p, "targetPort"))]; !ok {
			t.Errorf("service port %v targets no container port", p)
		}
	}
	// The NATS definitions agree with the config the service binds to.
	var stream, dlq, cons struct {
		Name          string          `json:"name"`
		Durable       string          `json:"durable_name"`
		Subjects      []string        `json:"subjects"`
		AckWait       time.Duration   `json:"ack_wait"`
		MaxDeliver    int             `json:"max_deliver"`
		MaxAckPending int             `json:"max_ack_pending"`
		BackOff       []time.Duration `json:"backoff"`
	}
	for f, v := range map[string]any{"stream-crm-events.json": &stream, "stream-crm-events-dlq.json": &dlq, "consumer-crmshare.json": &cons} {
		b, err := os.ReadFile(filepath.Join(deployDir, "nats", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	n := cfg.NATS
	if stream.Name != n.Stream.Name || !slices.Equal(stream.Subjects, n.Stream.Subjects) {
		t.Errorf("nats stream %s %v, config %s %v", stream.Name, stream.Subjects, n.Stream.Name, n.Stream.Subjects)
	}
	if dlq.Name != n.DeadLetter.Stream || !slices.Equal(dlq.Subjects, []string{n.DeadLetter.Subject + ".>"}) {
		t.Errorf("nats dead-letter stream %s %v, config %s %s.>", dlq.Name, dlq.Subjects, n.DeadLetter.Stream, n.DeadLetter.Subject)
	}
	if cons.Durable != n.Consumer.Durable || cons.AckWait != n.Consumer.AckWait || cons.MaxDeliver != n.Consumer.MaxDeliver ||
		cons.MaxAckPending != n.Consumer.MaxAckPending {
		t.Errorf("nats consumer %+v disagrees with config %+v", cons, n.Consumer)
	}
	// The server-side BackOff the service would set itself: AckWait plus each
	// nak step, fewer steps than MaxDeliver.
	var want []time.Duration
	for i, d := range n.Consumer.Backoff {
		if i < n.Consumer.MaxDeliver-1 {
			want = append(want, n.Consumer.AckWait+d)
		}
	}
	if diff := cmp.Diff(cons.BackOff, want); diff != "" {
		t.Errorf("consumer-crmshare.json backoff (-got +want, ack_wait plus each step):\n%s", diff)
	}
}

func TestDeployCompose(t *testing.T) {
	cfg := deployConfigs(t)["compose/crmshare.yaml"]
	if cfg == nil {
		t.Fatal("compose config did not load")
	}
	docs := readYAMLDocs(t, filepath.Join(deployDir, "compose/compose.yaml"))
	services := dig(docs[0], "services")
	stages := readDockerfile(t)
	cs := dig(services, "crmshare")
	if target := str(dig(cs, "build", "target")); stages[target] == nil {
		t.Errorf("crmshare build target %q is not a Dockerfile stage", target)
	}
	args := strs(dig(cs, "command"))
	checkArgs(t, "compose crmshare command", args)
	cfgFlag := args[slices.Index(args, "--config")+1]
	if !slices.ContainsFunc(strs(dig(cs, "volumes")), func(v string) bool {
		return strings.HasPrefix(v, "./crmshare.yaml:"+cfgFlag)
	}) {
		t.Errorf("--config %s is not where compose mounts crmshare.yaml", cfgFlag)
	}
	published := map[int]bool{}
	for _, p := range strs(dig(cs, "ports")) {
		parts := strings.Split(p, ":")
		n, _ := strconv.Atoi(parts[len(parts)-1])
		published[n] = true
	}
	for what, addr := range map[string]string{"metrics_addr": cfg.Telemetry.MetricsAddr, "ingress.addr": cfg.Ingress.Addr} {
		if p := portOf(t, addr); !published[p] {
			t.Errorf("compose does not publish %s port %d", what, p)
		}
	}
	for _, v := range []string{"ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN"} {
		if dig(cs, "environment", v) == nil {
			t.Errorf("compose crmshare sets no %s, which its config expands", v)
		}
	}
	// The config reaches NATS and the emulator where compose runs them.
	if !strings.HasPrefix(cfg.NATS.URL, "nats://nats:") || !slices.Contains(strs(dig(services, "nats", "ports")), "127.0.0.1:4222:4222") {
		t.Errorf("nats url %s does not match the compose nats service", cfg.NATS.URL)
	}
	emu := stages[str(dig(services, "zohoemu", "build", "target"))]
	if emu == nil {
		t.Fatal("zohoemu build target is not a Dockerfile stage")
	}
	emuAddr := emu.entrypoint[slices.Index(emu.entrypoint, "--addr")+1]
	if cfg.Zoho.APIURL != "http://zohoemu:"+strconv.Itoa(portOf(t, emuAddr)) || !slices.Contains(emu.expose, portOf(t, emuAddr)) {
		t.Errorf("zoho.api_url %s, emulator listens on %s (EXPOSE %v)", cfg.Zoho.APIURL, emuAddr, emu.expose)
	}
}

func TestDeployDockerfile(t *testing.T) {
	stages := readDockerfile(t)
	st := stages["crmshare"]
	if st == nil {
		t.Fatal("no crmshare stage")
	}
	checkArgs(t, "Dockerfile CMD", st.cmd)
	for name, cfg := range deployConfigs(t) {
		if name == "examples/dev.yaml" {
			continue // dev mode runs on the host, on loopback
		}
		for what, addr := range map[string]string{"metrics_addr": cfg.Telemetry.MetricsAddr, "ingress.addr": cfg.Ingress.Addr} {
			if addr == "" {
				continue
			}
			if p := portOf(t, addr); !slices.Contains(st.expose, p) {
				t.Errorf("%s %s port %d is not EXPOSEd (%v)", name, what, p, st.expose)
			}
		}
	}
}
